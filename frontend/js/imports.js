// Bulk imports: pick a CSV or JSON Lines file, register the import, upload the file with a progress
// bar, then watch the status and row errors until the import completes or fails.

import { announce, showError } from './banner.js';
import { $, formatBytes, h, timeElement } from './dom.js';
import { uploadFile } from './upload.js';

const FINAL = new Set(['completed', 'failed']);
const STATUS_TEXT = {
  pending_upload: 'waiting for the file',
  processing: 'processing',
  completed: 'completed',
  failed: 'failed',
};
const POLL_FAST_MS = 1000;
const POLL_SLOW_MS = 5000;
const FAST_POLLS = 120;

export function formatOf(filename) {
  const extension = filename.includes('.') ? filename.split('.').pop().toLowerCase() : '';
  if (extension === 'csv') return 'csv';
  if (extension === 'jsonl' || extension === 'ndjson') return 'jsonl';
  return '';
}

export function createImports({ api, onItemsChanged }) {
  const card = $('#import-current');
  let enabled = true;
  let current = null; // the import shown in the card
  let upload = null; // { importId, phase: uploading|failed, progress, error }
  let pollTimer = 0;
  let polls = 0;
  let generation = 0;
  let history = [];
  let nextCursor = null;
  let loaded = false;

  async function start(event) {
    event.preventDefault();
    fieldError('');
    const file = $('#import-file').files[0];
    if (!file) {
      fieldError('Choose a CSV or JSON Lines file first.');
      $('#import-file').focus();
      return;
    }
    const format = $('#import-format').value || formatOf(file.name);
    if (!format) {
      fieldError(`Cannot tell the format of “${file.name}” from its name: choose CSV or JSON Lines under Format.`);
      $('#import-format').focus();
      return;
    }
    if (file.size === 0) {
      fieldError(`“${file.name}” is empty.`);
      $('#import-file').focus();
      return;
    }
    const button = $('#import-start');
    button.disabled = true;
    const mine = generation;
    try {
      let created;
      try {
        ({ data: created } = await api.request('POST', '/imports', { body: { format, size: file.size } }));
      } catch (error) {
        if (error.kind === 'client') {
          const fields = error.fieldErrors.map((entry) => `${entry.pointer.replace(/^\//, '')} ${entry.detail}`);
          fieldError(`The import was not accepted: ${fields.length ? fields.join('; ') : error.problem?.detail || error.message}`);
        } else {
          showError(error);
        }
        return;
      }
      upload = { importId: created.id, phase: 'uploading', progress: 0, filename: file.name };
      showImport(created);
      card.focus();
      try {
        await uploadFile(created.upload, file, {
          onProgress: (fraction) => {
            if (upload?.importId !== created.id) return;
            upload.progress = fraction;
            const bar = card.querySelector('[data-testid="upload-progress"]');
            if (bar) bar.value = Math.round(fraction * 100);
            const label = card.querySelector('.percent');
            if (label) label.textContent = `${Math.round(fraction * 100)} %`;
          },
        });
        if (upload?.importId === created.id) upload = null;
        announce(`“${file.name}” uploaded; the import is running.`);
      } catch (error) {
        if (upload?.importId === created.id) upload = { ...upload, phase: 'failed', error: error.message };
        if (mine === generation) showError({ kind: 'upload', message: `“${file.name}”: ${error.message}` });
      }
      $('#import-form').reset();
      if (mine !== generation) return;
      polls = 0;
      await refreshCurrent();
      loadHistory();
    } finally {
      button.disabled = false;
    }
  }

  function showImport(entry) {
    current = entry;
    renderCard();
    markSelected();
  }

  async function refreshCurrent() {
    clearTimeout(pollTimer);
    if (!current) return;
    const mine = generation;
    const id = current.id;
    let latest;
    try {
      ({ data: latest } = await api.request('GET', `/imports/${encodeURIComponent(id)}`));
    } catch (error) {
      if (mine === generation && current?.id === id) showError(error, { retry: refreshCurrent });
      return;
    }
    if (mine !== generation || current?.id !== id) return;
    const finished = !FINAL.has(current.status) && FINAL.has(latest.status);
    showImport(latest);
    if (finished) {
      announce(latest.status === 'completed'
        ? `Import finished: ${latest.rows_imported} imported, ${latest.rows_failed} failed.`
        : 'The import failed.');
      onItemsChanged();
      updateHistory(latest);
    }
    const uploadFailed = upload?.importId === id && upload.phase === 'failed';
    if (!FINAL.has(latest.status) && !uploadFailed) {
      polls += 1;
      pollTimer = setTimeout(refreshCurrent, polls > FAST_POLLS ? POLL_SLOW_MS : POLL_FAST_MS);
    }
  }

  function renderCard() {
    if (!current) {
      card.hidden = true;
      return;
    }
    const entry = current;
    const uploading = upload?.importId === entry.id ? upload : null;
    const total = entry.rows_total;
    const done = (entry.rows_imported ?? 0) + (entry.rows_failed ?? 0);
    const errors = Array.isArray(entry.errors) ? entry.errors : [];
    const parts = [
      h('div', { className: 'panel-header' },
        h('h3', {}, `Import ${entry.id}`),
        h('span', { className: `badge status-${entry.status}`, 'data-testid': 'import-status', 'data-status': entry.status },
          STATUS_TEXT[entry.status] ?? entry.status)),
      uploading?.phase === 'uploading'
        ? h('div', { className: 'progress-line' },
          h('progress', {
            max: 100, value: Math.round(uploading.progress * 100), 'data-testid': 'upload-progress',
            'aria-label': `Upload of ${uploading.filename}`,
          }),
          h('span', { className: 'percent' }, `${Math.round(uploading.progress * 100)} %`))
        : null,
      uploading?.phase === 'failed'
        ? h('p', { className: 'error-text' }, `The upload failed: ${uploading.error} Start a new import to try again.`)
        : null,
      h('dl', { className: 'facts' },
        h('dt', {}, 'Format'), h('dd', {}, entry.format === 'csv' ? 'CSV' : 'JSON Lines'),
        h('dt', {}, 'File size'), h('dd', {}, formatBytes(entry.size)),
        h('dt', {}, 'Rows'), h('dd', { 'data-testid': 'import-rows-total' }, total ?? 'not counted yet'),
        h('dt', {}, 'Imported'), h('dd', { 'data-testid': 'import-imported' }, String(entry.rows_imported ?? 0)),
        h('dt', {}, 'Failed'), h('dd', { 'data-testid': 'import-failed' }, String(entry.rows_failed ?? 0)),
        h('dt', {}, 'Started'), h('dd', {}, timeElement(entry.created_at)),
        entry.completed_at ? [h('dt', {}, 'Finished'), h('dd', {}, timeElement(entry.completed_at))] : null),
      entry.status === 'processing' && total
        ? h('progress', { max: total, value: done, 'aria-label': 'Rows processed', className: 'rows-progress' })
        : null,
      entry.status === 'completed'
        ? h('p', {}, `${entry.rows_imported} ${entry.rows_imported === 1 ? 'item was' : 'items were'} created. `,
          h('a', { href: '#items' }, 'Show the items'))
        : null,
      entry.status === 'failed' ? h('p', { className: 'error-text' }, 'The file could not be imported; nothing was created.') : null,
      errors.length ? renderErrors(entry, errors) : null,
    ];
    card.replaceChildren(...parts.filter(Boolean));
    card.hidden = false;
    card.setAttribute('tabindex', '-1');
  }

  function renderErrors(entry, errors) {
    const more = (entry.rows_failed ?? 0) > errors.length && entry.status !== 'failed';
    return h('div', { className: 'table-scroll' },
      h('table', { 'data-testid': 'import-errors' },
        h('caption', {}, entry.status === 'failed' ? 'Why it failed' : `Row errors${more ? ` (the first ${errors.length})` : ''}`),
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Line'), h('th', { scope: 'col' }, 'Problem'))),
        h('tbody', {}, errors.map((error) => h('tr', { 'data-testid': 'import-error' },
          h('td', {}, error.line ?? '—'), h('td', {}, error.detail ?? ''))))));
  }

  async function loadHistory({ more = false } = {}) {
    const mine = generation;
    try {
      const { data } = await api.request('GET', '/imports', { query: { order: 'desc', limit: 10, cursor: more ? nextCursor : undefined } });
      if (mine !== generation) return;
      history = more ? [...history, ...data.imports] : data.imports;
      nextCursor = data.next_cursor;
      loaded = true;
      renderHistory();
    } catch (error) {
      if (mine === generation) showError(error, { retry: () => loadHistory({ more }) });
    }
  }

  function updateHistory(entry) {
    history = history.map((existing) => (existing.id === entry.id ? entry : existing));
    renderHistory();
  }

  function renderHistory() {
    $('#import-list').replaceChildren(...history.map((entry) => h('li', {
      className: 'import-row', 'data-testid': 'import-row', 'data-import-id': entry.id,
    },
    h('button', { type: 'button', className: 'item-open', onclick: () => select(entry) },
      `${entry.format === 'csv' ? 'CSV' : 'JSON Lines'} · ${formatBytes(entry.size)}`),
    h('span', { className: `badge status-${entry.status}` }, STATUS_TEXT[entry.status] ?? entry.status),
    h('p', { className: 'item-meta' },
      timeElement(entry.created_at),
      entry.rows_total !== null && entry.rows_total !== undefined
        ? ` · ${entry.rows_imported} imported, ${entry.rows_failed} failed of ${entry.rows_total}` : ''))));
    $('#imports-empty').hidden = history.length > 0;
    $('#more-imports').hidden = !nextCursor;
    markSelected();
  }

  function markSelected() {
    for (const row of document.querySelectorAll('#import-list [data-testid="import-row"]')) {
      if (current && row.dataset.importId === current.id) row.setAttribute('aria-current', 'true');
      else row.removeAttribute('aria-current');
    }
  }

  function select(entry) {
    polls = 0;
    showImport(entry);
    card.focus();
    refreshCurrent();
  }

  function fieldError(message) {
    const output = $('#import-file-error');
    output.textContent = message;
    output.hidden = !message;
    const input = $('#import-file');
    if (message) input.setAttribute('aria-invalid', 'true');
    else input.removeAttribute('aria-invalid');
  }

  $('#import-form').addEventListener('submit', start);
  $('#import-file').addEventListener('change', () => {
    fieldError('');
    const file = $('#import-file').files[0];
    const detected = file ? formatOf(file.name) : '';
    if (detected) $('#import-format').value = detected;
  });
  $('#refresh-imports').addEventListener('click', () => loadHistory());
  $('#more-imports').addEventListener('click', () => loadHistory({ more: true }));

  return {
    reset() {
      generation += 1;
      clearTimeout(pollTimer);
      current = null;
      upload = null;
      history = [];
      nextCursor = null;
      loaded = false;
      renderCard();
      renderHistory();
    },
    activate() {
      if (enabled && !loaded) loadHistory();
    },
    setEnabled(value) {
      enabled = value;
    },
  };
}
