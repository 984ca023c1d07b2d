// Interactive documentation of the API this front end talks to: its own /openapi.json, with
// "Try it out" sending requests to that API with the page's key (config.js, or the settings
// saved by the main page in this browser).
import { current } from '../js/settings.js';

const settings = current();
const apiUrl = settings.apiUrl || window.location.origin;

const ui = window.SwaggerUIBundle({
  url: `${apiUrl}/openapi.json`,
  dom_id: '#swagger-ui',
  deepLinking: true,
  // The document's server is "/", the API's own origin: requests go to the API, not to this page.
  requestInterceptor: (request) => {
    if (request.url.startsWith(window.location.origin + '/')) {
      request.url = apiUrl + request.url.slice(window.location.origin.length);
    }
    return request;
  },
  onComplete: () => {
    if (settings.apiKey) {
      ui.preauthorizeApiKey('apiKey', settings.apiKey);
    }
  },
});
window.ui = ui;
