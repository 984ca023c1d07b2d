// Attachments of the item being edited: upload straight to storage with a progress bar (and a
// Cancel button), status (pending → ready or rejected) refreshed by polling while anything is
// pending, thumbnails of images, and download links renewed before they expire.

import { announce, showError } from './banner.js';
import { confirmDelete } from './dialogs.js';
import { $, formatBytes, h, randomKey } from './dom.js';
import { uploadFile } from './upload.js';

const TYPES_BY_EXTENSION = {
  png: 'image/png', jpg: 'image/jpeg', jpeg: 'image/jpeg', gif: 'image/gif', webp: 'image/webp',
  pdf: 'application/pdf', txt: 'text/plain', csv: 'text/csv', json: 'application/json',
};
const ACCEPTED = new Set(Object.values(TYPES_BY_EXTENSION));
const POLL_FAST_MS = 1000;
const POLL_SLOW_MS = 5000;
const FAST_POLLS = 60;
const IMAGES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp']);
// Download links are presigned for a limited time (X-Amz-Expires, 300 s by default): the list is
// fetched again when the first of them has run through this share of its lifetime.
const RENEW_AT = 0.8;

// When a presigned URL stops working, in ms since the epoch (null when it does not say).
function expiryOf(url) {
  try {
    const params = new URL(url).searchParams;
    const seconds = Number(params.get('X-Amz-Expires'));
    const signed = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(params.get('X-Amz-Date') ?? '');
    if (seconds > 0 && signed) {
      const [, y, mo, d, hh, mm, ss] = signed.map(Number);
      return Date.UTC(y, mo - 1, d, hh, mm, ss) + seconds * 1000;
    }
    const expires = Number(params.get('Expires'));
    return expires > 0 ? expires * 1000 : null;
  } catch {
    return null;
  }
}

export function contentTypeOf(file) {
  if (ACCEPTED.has(file.type)) return file.type;
  const extension = file.name.includes('.') ? file.name.split('.').pop().toLowerCase() : '';
  return TYPES_BY_EXTENSION[extension] ?? null;
}

export function createAttachments({ api }) {
  const section = $('#attachments');
  const listElement = $('#attachment-list');
  let enabled = true;
  let item = null;
  let records = [];
  const uploads = new Map(); // attachment id (or a local id before it has one) → upload state
  let generation = 0; // bumped whenever the panel switches item: late answers are dropped
  let pollTimer = 0;
  let renewTimer = 0;
  let polls = 0;
  let fetchedAt = 0;

  const base = () => `/items/${encodeURIComponent(item.id)}/attachments`;

  function show(nextItem) {
    if (!enabled) return;
    if (item?.id === nextItem.id) {
      item = nextItem;
      return;
    }
    hide();
    item = nextItem;
    section.hidden = false;
    render();
    refresh();
  }

  function hide() {
    generation += 1;
    clearTimeout(pollTimer);
    clearTimeout(renewTimer);
    for (const state of uploads.values()) state.controller?.abort();
    item = null;
    records = [];
    uploads.clear();
    section.hidden = true;
    fieldError('');
  }

  async function refresh() {
    clearTimeout(pollTimer);
    clearTimeout(renewTimer);
    if (!item) return;
    const current = generation;
    try {
      const requested = Date.now();
      const { data } = await api.request('GET', base());
      if (current !== generation) return;
      announceChanges(records, data.attachments);
      records = data.attachments;
      fetchedAt = requested;
      render();
      scheduleRenewal();
    } catch (error) {
      if (current !== generation) return;
      if (error.status !== 404) showError(error, { retry: refresh });
      return;
    }
    if (records.some((record) => record.status === 'pending' && uploads.get(record.id)?.phase !== 'failed')) {
      polls += 1;
      pollTimer = setTimeout(refresh, polls > FAST_POLLS ? POLL_SLOW_MS : POLL_FAST_MS);
    }
  }

  function scheduleRenewal() {
    const lifetimes = records.filter((record) => record.download_url)
      .map((record) => expiryOf(record.download_url))
      .filter((expiry) => expiry !== null)
      .map((expiry) => expiry - fetchedAt);
    if (!lifetimes.length) return;
    const delay = Math.max(1000, Math.min(...lifetimes) * RENEW_AT);
    renewTimer = setTimeout(refresh, delay);
  }

  function announceChanges(before, after) {
    const previous = new Map(before.map((record) => [record.id, record.status]));
    for (const record of after) {
      if (previous.get(record.id) !== 'pending') continue;
      if (record.status === 'ready') announce(`“${record.filename}” is ready.`);
      if (record.status === 'rejected') announce(`“${record.filename}” was rejected: ${record.rejection_reason ?? 'no reason given'}.`, 'error');
    }
  }

  async function upload(file) {
    const contentType = contentTypeOf(file);
    if (!contentType) {
      fieldError(`“${file.name}” is not an accepted type. Choose a PNG, JPEG, GIF, WebP, PDF, text, CSV or JSON file.`);
      return;
    }
    if (file.size === 0) {
      fieldError(`“${file.name}” is empty.`);
      return;
    }
    const current = generation;
    const localId = `local-${randomKey()}`;
    const state = { filename: file.name, size: file.size, content_type: contentType, phase: 'registering', progress: 0 };
    uploads.set(localId, state);
    render();
    let attachment;
    try {
      ({ data: attachment } = await api.request('POST', base(), {
        body: { filename: file.name, content_type: contentType, size: file.size },
      }));
    } catch (error) {
      if (current !== generation) return;
      uploads.delete(localId);
      render();
      if (error.kind === 'client') fieldError(`“${file.name}” was not accepted: ${describe(error)}`);
      else showError(error);
      return;
    }
    const visible = () => current === generation;
    uploads.delete(localId);
    uploads.set(attachment.id, { ...state, phase: 'uploading' });
    if (visible()) {
      records = [...records.filter((record) => record.id !== attachment.id), attachment];
      render();
    }
    const entry = uploads.get(attachment.id);
    entry.controller = new AbortController();
    try {
      // The part's type is the declared one, whatever the browser guessed from the file name.
      await uploadFile(attachment.upload, new File([file], file.name, { type: contentType }), {
        signal: entry.controller.signal,
        onProgress: (fraction) => {
          entry.progress = fraction;
          if (visible()) updateProgress(attachment.id, fraction);
        },
      });
      entry.phase = 'processing';
    } catch (error) {
      if (entry.controller.signal.aborted) {
        await discardCancelled(attachment, current);
        return;
      }
      entry.phase = 'failed';
      entry.error = error.message;
      if (visible()) announce(`Upload of “${file.name}” failed: ${error.message}`, 'error');
    }
    if (visible()) {
      render();
      polls = 0;
      refresh();
    }
  }

  // A cancelled upload leaves nothing behind: its pending attachment is deleted.
  async function discardCancelled(attachment, current) {
    uploads.delete(attachment.id);
    try {
      await api.request('DELETE', `/items/${encodeURIComponent(attachment.item_id)}/attachments/${encodeURIComponent(attachment.id)}`);
    } catch (error) {
      if (error.status !== 404) announce(`“${attachment.filename}” was cancelled but not removed: ${error.message}`, 'error');
    }
    if (current !== generation) return;
    records = records.filter((record) => record.id !== attachment.id);
    render();
    announce(`Upload of “${attachment.filename}” cancelled.`, 'info');
    $('#attachment-file').focus();
  }

  function render() {
    const focusKey = document.activeElement?.closest?.('#attachment-list [data-focus-key]')?.dataset.focusKey;
    const rows = [];
    for (const [id, state] of uploads) {
      if (id.startsWith('local-')) rows.push(renderRow({ id, status: 'pending', ...state }, state));
    }
    for (const record of records) rows.push(renderRow(record, uploads.get(record.id)));
    listElement.replaceChildren(...rows);
    $('#attachments-empty').hidden = rows.length > 0;
    if (focusKey) listElement.querySelector(`[data-focus-key="${CSS.escape(focusKey)}"]`)?.focus();
  }

  function renderRow(record, state) {
    const uploading = state && (state.phase === 'registering' || state.phase === 'uploading');
    const percent = Math.round((state?.progress ?? 0) * 100);
    const image = record.status === 'ready' && record.download_url && IMAGES.has(record.content_type);
    return h('li', { className: 'attachment-row', 'data-testid': 'attachment-row', 'data-status': record.status, 'data-attachment-id': record.id },
      h('div', { className: 'thumb' }, image
        ? h('img', { src: record.download_url, alt: '', width: 48, height: 48, loading: 'lazy', decoding: 'async', 'data-testid': 'attachment-thumbnail' })
        : h('span', { className: 'thumb-type', 'aria-hidden': 'true' }, typeLabel(record.content_type))),
      h('div', { className: 'attachment-main' },
        h('span', { className: 'filename' }, record.filename),
        h('span', { className: `badge status-${record.status}`, 'data-testid': 'attachment-status' }, record.status),
        h('span', { className: 'meta' }, `${record.content_type} · ${formatBytes(record.size)}`),
        h('p', { className: 'detail', 'data-testid': 'attachment-detail' }, detailText(record, state)),
        // Always there, empty when nothing uploads: the row keeps its height when the upload ends.
        h('div', { className: 'progress-line' }, uploading ? [
          h('progress', {
            max: 100, value: percent, 'data-testid': 'upload-progress', 'data-progress-for': record.id,
            'aria-label': `Upload of ${record.filename}`,
          }),
          h('span', { className: 'percent', 'data-percent-for': record.id }, `${percent} %`)] : null)),
      h('div', { className: 'attachment-actions' },
        record.status === 'ready' && record.download_url
          ? h('a', {
            href: record.download_url, download: record.filename, className: 'button secondary small',
            'data-testid': 'attachment-download', 'data-focus-key': `${record.id}:download`,
          }, 'Download', h('span', { className: 'visually-hidden' }, ` ${record.filename}`))
          : null,
        state?.phase === 'uploading' ? h('button', {
          type: 'button', className: 'secondary small', 'data-testid': 'upload-cancel',
          'data-focus-key': `${record.id}:cancel`, 'aria-label': `Cancel the upload of ${record.filename}`,
          onclick: () => state.controller?.abort(),
        }, 'Cancel') : null,
        record.id.startsWith('local-') || state?.phase === 'uploading' ? null : h('button', {
          type: 'button', className: 'danger-outline small', 'data-testid': 'attachment-delete',
          'data-focus-key': `${record.id}:delete`, 'aria-label': `Delete ${record.filename}`,
          onclick: () => remove(record),
        }, 'Delete')));
  }

  function detailText(record, state) {
    if (record.status === 'ready') return 'Ready to download.';
    if (record.status === 'rejected') return `Rejected: ${record.rejection_reason ?? 'the stored file failed the checks'}.`;
    switch (state?.phase) {
      case 'registering': return 'Preparing the upload…';
      case 'uploading': return 'Uploading…';
      case 'processing': return 'Uploaded; checking the file…';
      case 'failed': return `Upload failed: ${state.error} Delete it and try again.`;
      default: return 'Waiting for the file to be uploaded.';
    }
  }

  function updateProgress(id, fraction) {
    const percent = Math.round(fraction * 100);
    const bar = listElement.querySelector(`[data-progress-for="${CSS.escape(id)}"]`);
    if (bar) bar.value = percent;
    const label = listElement.querySelector(`[data-percent-for="${CSS.escape(id)}"]`);
    if (label) label.textContent = `${percent} %`;
  }

  async function remove(record) {
    const confirmed = await confirmDelete({
      title: 'Delete attachment?',
      message: `“${record.filename}” will be deleted. This cannot be undone.`,
    });
    if (!confirmed || !item) return;
    const current = generation;
    try {
      await api.request('DELETE', `${base()}/${encodeURIComponent(record.id)}`);
      announce(`Deleted “${record.filename}”.`);
    } catch (error) {
      if (error.status !== 404) {
        showError(error, { retry: () => remove(record) });
        return;
      }
    }
    if (current !== generation) return;
    uploads.delete(record.id);
    records = records.filter((entry) => entry.id !== record.id);
    render();
    $('#attachment-file').focus();
  }

  function fieldError(message) {
    const output = $('#attachment-file-error');
    output.textContent = message;
    output.hidden = !message;
    const input = $('#attachment-file');
    if (message) input.setAttribute('aria-invalid', 'true');
    else input.removeAttribute('aria-invalid');
  }

  $('#attachment-file').addEventListener('change', (event) => {
    fieldError('');
    const files = [...event.target.files];
    event.target.value = '';
    for (const file of files) upload(file);
  });

  return {
    show,
    hide,
    setEnabled(value) {
      enabled = value;
      if (!enabled) hide();
    },
  };
}

function describe(error) {
  const fields = error.fieldErrors.map((entry) => `${entry.pointer.replace(/^\//, '')} ${entry.detail}`);
  return fields.length ? `${fields.join('; ')}.` : (error.problem?.detail || error.message);
}

function typeLabel(contentType) {
  const sub = String(contentType ?? '').split('/').pop();
  return { plain: 'TXT', jpeg: 'JPG' }[sub] ?? sub.toUpperCase().slice(0, 4);
}
