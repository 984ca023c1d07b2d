// The error banner (one at a time, announced to screen readers) and the toasts: stacked, each
// dismissible, coloured by outcome, in a polite live region that never covers the work area.

import { $, h } from './dom.js';

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

const TOAST_MS = { success: 6000, info: 8000 }; // errors stay until dismissed
const MAX_TOASTS = 4;

// kind: success | info | error
export function announce(message, kind = 'success') {
  const region = $('#toasts');
  const toast = h('div', { className: `toast toast-${kind}`, 'data-testid': 'toast', 'data-kind': kind },
    h('p', {}, message),
    h('button', { type: 'button', className: 'toast-close', 'aria-label': 'Dismiss message', onclick: () => dismiss(toast) }, '×'));
  region.append(toast);
  while (region.children.length > MAX_TOASTS) region.firstElementChild.remove();
  if (TOAST_MS[kind]) setTimeout(() => dismiss(toast), TOAST_MS[kind]);
  return toast;
}

function dismiss(toast) {
  if (!toast.isConnected) return;
  const focused = toast.contains(document.activeElement);
  toast.remove();
  if (focused) $('#main').focus();
}
