// The error banner (one at a time, announced to screen readers) and the polite status line.

import { $ } from './dom.js';

let retryAction = null;

export function showError(error, { retry } = {}) {
  const banner = $('#error-banner');
  const kind = error?.kind ?? 'client';
  $('#error-title').textContent = TITLES[kind] ?? 'Something went wrong';
  $('#error-message').textContent = error?.message || String(error);
  const requestId = error?.requestId;
  $('#error-request-id').hidden = !requestId;
  $('#error-request-id').textContent = requestId ? `Request id: ${requestId}` : '';
  banner.dataset.kind = kind;
  retryAction = retry ?? null;
  $('#error-retry').hidden = !retryAction;
  $('#error-settings').hidden = !SETTINGS_KINDS.includes(kind);
  banner.hidden = false;
}

const SETTINGS_KINDS = ['auth', 'network', 'config', 'timeout'];

const TITLES = {
  config: 'The API is not configured',
  network: 'Network error',
  timeout: 'No answer from the API',
  auth: 'Not authorised',
  busy: 'The service is busy',
  server: 'Server error',
  client: 'Request refused',
  conflict: 'Changed by someone else',
  upload: 'Upload failed',
};

export function clearError() {
  $('#error-banner').hidden = true;
  retryAction = null;
}

export function wireBanner(openSettings) {
  $('#error-dismiss').addEventListener('click', clearError);
  $('#error-retry').addEventListener('click', () => {
    const action = retryAction;
    clearError();
    action?.();
  });
  $('#error-settings').addEventListener('click', openSettings);
}

let statusTimer = 0;

export function announce(message) {
  const status = $('#status');
  status.textContent = message;
  clearTimeout(statusTimer);
  statusTimer = setTimeout(() => {
    status.textContent = '';
  }, 8000);
}
