// The confirmation dialog. A native <dialog> opened with showModal() keeps keyboard focus inside
// and closes on Escape; focus goes back to whatever opened it (or to `fallbackFocus` when that
// element is gone, e.g. the row that was just deleted).

import { $ } from './dom.js';

export function confirmDelete({ title, message, confirmLabel = 'Delete' }) {
  const dialog = $('#confirm-dialog');
  const opener = document.activeElement;
  $('#confirm-heading').textContent = title;
  $('#confirm-message').textContent = message;
  $('#confirm-ok').textContent = confirmLabel;
  dialog.returnValue = '';
  dialog.showModal();
  $('#confirm-cancel').focus();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      const confirmed = dialog.returnValue === 'confirm';
      if (!confirmed && opener instanceof HTMLElement && opener.isConnected) opener.focus();
      resolve(confirmed);
    }, { once: true });
  });
}
