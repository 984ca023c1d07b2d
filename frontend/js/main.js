// Entry point: settings, the connection to the API, and the views (items, imports) behind the
// hash router (router.js).

import { createAccount } from './account.js';
import { ApiClient, ApiError } from './api.js';
import { createAttachments } from './attachments.js';
import { announce, clearError, showError, wireBanner } from './banner.js';
import { $ } from './dom.js';
import { createImports } from './imports.js';
import { createItems } from './items.js';
import * as router from './router.js';
import { createSession } from './session.js';
import { createOperations } from './operations.js';
import * as settings from './settings.js';

let config = settings.current();
let capabilities = { attachments: true, imports: true };
const session = createSession(window.ITEMS_CONFIG?.userPool);
let signedInAs = session.active ? session.email : '';

// A signed-in person's access token, else the configured API key (operators, scripts).
async function credentials() {
  if (!session.active) return config;
  return { ...config, apiKey: (await session.accessToken()) ?? '', person: true };
}

// The API refused the token: renew it once; if the session is over, ask to sign in again.
async function renewSession() {
  if (!session.active) return false;
  const token = await session.accessToken({ forceRefresh: true }).catch(() => null);
  if (token) return true;
  session.forget();
  account.sessionEnded();
  return false;
}

const api = new ApiClient(credentials, renewSession);
const attachments = createAttachments({ api });
const items = createItems({ api, attachments });
const imports = createImports({ api, onItemsChanged: () => items.markStale() });
const account = createAccount({
  session,
  // The same person again (their session had ended): carry on. Anyone else: start afresh.
  onSignedIn: () => {
    const same = session.email === signedInAs;
    signedInAs = session.email;
    renderConnection();
    if (!same) startOver();
  },
  onSignedOut: () => {
    signedInAs = '';
    startOver();
  },
});

router.register('items', items.view, { isDefault: true });
router.register('imports', imports.view);

// The operations view: only where the local stack serves its data (never in a deployed stage).
const operations = createOperations({ container: $('#operations-view') });
router.register('operations', {
  element: $('#operations-view'),
  get heading() {
    return $('#operations-heading');
  },
  show: () => operations.activate(),
});
router.enabled('operations', false);
window.addEventListener('hashchange', () => {
  if (router.parse().view !== 'operations') operations.deactivate();
});
operations.available().then((local) => {
  $('[data-view-link="operations"]').hidden = !local;
  router.enabled('operations', local);
  if (local && router.parse().view === 'operations') router.dispatch();
});

// The API describes itself: features this stage does not offer (yet) are left out of the page
// instead of failing on use.
async function detectCapabilities() {
  try {
    const { data } = await api.request('GET', '/openapi.json', { auth: false });
    const paths = Object.keys(data?.paths ?? {});
    return {
      attachments: paths.some((path) => /^\/items\/\{[^}/]+\}\/attachments$/.test(path)),
      imports: paths.includes('/imports'),
    };
  } catch (error) {
    if (error.kind === 'client') return { attachments: true, imports: true };
    throw error;
  }
}

// Another caller (signed out, or someone else signed in): what the page showed was the previous
// caller's, so it starts again from the list, leaving no item of theirs open.
function startOver() {
  history.replaceState(null, '', '#/items');
  connect();
}

async function connect() {
  config = settings.current();
  renderConnection();
  clearError();
  items.reset();
  imports.reset();
  if (!config.apiUrl) {
    showError(new ApiError('config', 'No API URL is configured. Open Settings and enter the API URL and key of a stage.'));
    openSettings();
    return;
  }
  try {
    capabilities = await detectCapabilities();
  } catch (error) {
    showError(error, { retry: connect });
    return;
  }
  if (!session.active && !config.apiKey && session.available) {
    // A deployed page has no key: people sign in.
    account.open('signin', 'Sign in to see your items.');
  }
  attachments.setEnabled(capabilities.attachments);
  imports.setEnabled(capabilities.imports);
  $('[data-view-link="imports"]').hidden = !capabilities.imports;
  router.enabled('imports', capabilities.imports);
  router.dispatch();
}

function renderConnection() {
  let where = config.apiUrl || 'not configured';
  try {
    where = new URL(config.apiUrl).host;
  } catch {
    // Shown as typed.
  }
  const who = session.active ? 'signed in' : config.apiKey ? 'API key' : 'not signed in';
  $('#connection-label').textContent = `API: ${where}${config.custom ? ' (from Settings)' : ''} · ${who}`;
}

// -- settings panel ---------------------------------------------------------------------------

let settingsOpener = null;

function openSettings() {
  const dialog = $('#settings-dialog');
  if (dialog.open) return;
  settingsOpener = document.activeElement;
  const shown = settings.current();
  const defaults = settings.defaults();
  $('#settings-url').value = shown.apiUrl;
  $('#settings-key').value = shown.apiKey;
  $('#settings-key').type = 'password';
  $('#settings-show-key').checked = false;
  settingsUrlError('');
  $('#settings-source').textContent = shown.custom
    ? 'Using the values saved in this browser. “Use page defaults” forgets them.'
    : defaults.apiUrl
      ? 'Using the defaults this page was deployed with.'
      : 'This page was deployed without defaults: enter the API URL and key of a stage.';
  dialog.showModal();
  $('#settings-url').focus();
}

function settingsUrlError(message) {
  const output = $('#settings-url-error');
  output.textContent = message;
  output.hidden = !message;
  const input = $('#settings-url');
  if (message) {
    input.setAttribute('aria-invalid', 'true');
    input.setAttribute('aria-describedby', output.id);
  } else {
    input.removeAttribute('aria-invalid');
    input.removeAttribute('aria-describedby');
  }
}

function validApiUrl(value) {
  try {
    const url = new URL(value);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}

function closeSettings(result) {
  $('#settings-dialog').close(result);
}

$('#settings-form').addEventListener('submit', (event) => {
  if (event.submitter?.value !== 'save') return; // Cancel: the dialog closes by itself
  event.preventDefault();
  const url = settings.normaliseUrl($('#settings-url').value);
  if (!validApiUrl(url)) {
    settingsUrlError('Enter the full URL of the API, starting with https:// or http://');
    $('#settings-url').focus();
    return;
  }
  try {
    settings.save(url, $('#settings-key').value.trim());
  } catch {
    settingsUrlError('This browser does not allow saving settings (storage is blocked).');
    return;
  }
  closeSettings('save');
  announce('Settings saved.');
  connect();
});

$('#settings-reset').addEventListener('click', () => {
  settings.clear();
  closeSettings('reset');
  announce('Using the page defaults.');
  connect();
});

$('#settings-show-key').addEventListener('change', (event) => {
  $('#settings-key').type = event.target.checked ? 'text' : 'password';
});

$('#settings-dialog').addEventListener('close', () => {
  const target = settingsOpener instanceof HTMLElement && settingsOpener.isConnected && settingsOpener !== document.body
    ? settingsOpener : $('#open-settings');
  target.focus();
});

$('#open-settings').addEventListener('click', openSettings);
wireBanner(openSettings);

// The skip link moves focus without touching the URL fragment, which holds the route.
$('.skip-link').addEventListener('click', (event) => {
  event.preventDefault();
  $('#main').focus();
});

router.start();
connect();
