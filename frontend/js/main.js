// Entry point: settings, the connection to the API, the two views (items, imports) and routing.

import { ApiClient, ApiError } from './api.js';
import { createAttachments } from './attachments.js';
import { announce, clearError, showError, wireBanner } from './banner.js';
import { $ } from './dom.js';
import { createImports } from './imports.js';
import { createItems } from './items.js';
import { createOperations } from './operations.js';
import * as settings from './settings.js';

let config = settings.current();
let capabilities = { attachments: true, imports: true };
const api = new ApiClient(() => config);
const attachments = createAttachments({ api });
const items = createItems({ api, attachments });
const imports = createImports({ api, onItemsChanged: () => items.markStale() });
const operations = createOperations({ container: $('#operations-view') });
operations.available().then((local) => {
  $('[data-view-link="operations"]').hidden = !local;
  if (local && location.hash === '#operations') route();
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
  attachments.setEnabled(capabilities.attachments);
  imports.setEnabled(capabilities.imports);
  $('[data-view-link="imports"]').hidden = !capabilities.imports;
  route();
}

function renderConnection() {
  let where = config.apiUrl || 'not configured';
  try {
    where = new URL(config.apiUrl).host;
  } catch {
    // Shown as typed.
  }
  $('#connection-label').textContent = `API: ${where}${config.custom ? ' (from Settings)' : ''}`;
}

function currentView() {
  if (location.hash === '#operations' && !$('[data-view-link="operations"]').hidden) return 'operations';
  return location.hash === '#imports' && capabilities.imports ? 'imports' : 'items';
}

function route({ focus = false } = {}) {
  const view = currentView();
  $('#items-view').hidden = view !== 'items';
  $('#imports-view').hidden = view !== 'imports';
  $('#operations-view').hidden = view !== 'operations';
  for (const link of document.querySelectorAll('[data-view-link]')) {
    if (link.dataset.viewLink === view) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  if (view === 'operations') operations.activate();
  else operations.deactivate();
  if (view === 'imports') imports.activate();
  else if (view === 'items') items.activate();
  if (focus) $(`#${view}-heading`).focus();
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

// The skip link moves focus without touching the URL fragment, which selects the view.
$('.skip-link').addEventListener('click', (event) => {
  event.preventDefault();
  $('#main').focus();
});

window.addEventListener('hashchange', () => route({ focus: true }));

connect();
