// Bulk imports: pick a CSV or JSON Lines file, register the import, upload the file with a progress
// bar, then watch the status and row errors until the import completes or fails. `#/imports/<id>`
// shows one import. Row errors name the column and, while the file is at hand, show its value.

import { announce, showError } from './banner.js';
import { $, formatBytes, h, timeElement } from './dom.js';
import { rowsOf } from './importfiles.js';
import { hashFor, navigate } from './router.js';
import { uploadFile } from './upload.js';

const FINAL = new Set(['completed', 'failed']);
const STATUS_TEXT = {
  loading: 'loading',
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
  const files = new Map(); // import id → the rows of the file uploaded from this page, by line

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
        ({ data: created } = await api.request('POST', '/imports', { body: { format, size: file.size, filename: [...file.name].slice(0, 255).join('') } }));
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
      file.text().then((text) => files.set(created.id, rowsOf(format, text))).catch(() => {});
      showImport(created);
      navigate(hashFor('imports', created.id), { replace: true });
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
        if (mine === generation) announce(`Upload of “${file.name}” failed: ${error.message}`, 'error');
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
    const finished = current.status !== 'loading' && !FINAL.has(current.status) && FINAL.has(latest.status);
    showImport(latest);
    if (finished) {
      if (latest.status === 'completed') {
        announce(`Import finished: ${latest.rows_imported} imported, ${latest.rows_failed} failed.`,
          latest.rows_failed ? 'info' : 'success');
      } else {
        announce(`The import of ${nameOf(latest)} failed: ${failureReason(latest)}`, 'error');
      }
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
        h('h3', { 'data-testid': 'import-name' }, nameOf(entry)),
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
        h('dt', {}, 'Import'), h('dd', {}, h('code', {}, entry.id)),
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
          h('a', { href: '#/items' }, 'Show the items'))
        : null,
      entry.status === 'failed' ? renderFailure(entry) : null,
      errors.length && entry.status !== 'failed' ? renderErrors(entry, errors) : null,
    ];
    card.replaceChildren(...parts.filter(Boolean));
    card.hidden = false;
    card.setAttribute('tabindex', '-1');
  }

  // A failed import says why, in words, and what to do next.
  function renderFailure(entry) {
    const created = entry.rows_imported ?? 0;
    return h('div', { className: 'failure', 'data-testid': 'import-failure' },
      h('p', { className: 'error-text' }, created
        ? `The import stopped before the end: ${created} ${created === 1 ? 'item was' : 'items were'} created.`
        : 'The file could not be imported; nothing was created.'),
      h('p', {}, h('strong', {}, 'Why: '), failureReason(entry)),
      h('p', { className: 'hint' }, 'Correct the file and start a new import with it.'),
      entry.errors?.length ? renderErrors(entry, entry.errors) : null);
  }

  function renderErrors(entry, errors) {
    const more = (entry.rows_failed ?? 0) > errors.length && entry.status !== 'failed';
    const rows = files.get(entry.id);
    const column = entry.format === 'csv' ? 'Column' : 'Field';
    return h('div', { className: 'table-scroll' },
      h('table', { 'data-testid': 'import-errors', className: 'errors-table' },
        h('caption', {}, entry.status === 'failed' ? 'Where' : `Row errors${more ? ` (the first ${errors.length})` : ''}`),
        h('thead', {}, h('tr', {},
          h('th', { scope: 'col', className: 'nowrap' }, 'Line'), h('th', { scope: 'col' }, column),
          h('th', { scope: 'col' }, 'Value'), h('th', { scope: 'col' }, 'Problem'))),
        h('tbody', {}, errors.flatMap((error) => describeRowError(error, rows?.get(error.line)).map((part) => h('tr', { 'data-testid': 'import-error' },
          h('td', { className: 'nowrap' }, error.line ?? '\u2014'),
          h('td', { 'data-testid': 'import-error-column' }, part.column ?? '\u2014'),
          h('td', { 'data-testid': 'import-error-value' }, part.value === undefined ? '\u2014' : h('code', {}, part.value)),
          h('td', { 'data-testid': 'import-error-detail' }, part.detail)))))));
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
    h('a', { href: hashFor('imports', entry.id), className: 'item-open', 'data-testid': 'import-open' }, nameOf(entry)),
    h('span', { className: `badge status-${entry.status}` }, STATUS_TEXT[entry.status] ?? entry.status),
    h('p', { className: 'item-meta' },
      `${entry.format === 'csv' ? 'CSV' : 'JSON Lines'} · ${formatBytes(entry.size)} · `,
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

  // `#/imports/<id>`: the import named in the URL, from the list or fetched.
  function select(id) {
    if (current?.id === id) return;
    polls = 0;
    showImport(history.find((entry) => entry.id === id) ?? { id, status: 'loading', format: '', errors: [] });
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
    view: {
      element: $('#imports-view'),
      heading: $('#imports-heading'),
      show(route) {
        if (!loaded) loadHistory();
        if (route.id) select(route.id);
      },
    },
    setEnabled(value) {
      enabled = value;
    },
  };
}

function nameOf(entry) {
  return entry.filename ?? `${entry.format === 'csv' ? 'CSV' : entry.format === 'jsonl' ? 'JSON Lines' : ''} import ${entry.id}`.trim();
}

// The file-level reason of a failed import, in words.
function failureReason(entry) {
  const detail = (entry.errors ?? []).map((error) => error.detail).filter(Boolean).join('; ');
  if (!detail) return 'the service gave no reason.';
  if (/not valid UTF-8/.test(detail)) return `${detail}. Save the file as UTF-8 text and try again.`;
  if (/column/.test(detail) && entry.format === 'csv') {
    return `${detail}. The header may only use the columns name, id, description, tags, data and expires_at.`;
  }
  if (/not uploaded|upload window|within/.test(detail)) return `${detail}. Start a new import and upload the file right away.`;
  return `${detail}.`;
}

// One row error ("/name must not be blank; /tags/1 is longer than 50 characters") as parts with
// the column (or JSONL field) it is about and, when the row is at hand, the value found there.
function describeRowError(error, record) {
  const detail = String(error.detail ?? '');
  const parts = detail.split(/; (?=\/)/);
  return parts.map((part) => {
    const match = /^\/([^/\s]*)(\/\S*)? (.*)$/s.exec(part);
    if (!match) return { detail: part };
    const column = match[1].replaceAll('~1', '/').replaceAll('~0', '~');
    const value = record && column in record ? shown(record[column]) : undefined;
    return { column: column || undefined, value, detail: `${match[2] ? `at ${match[2].slice(1)}: ` : ''}${match[3]}` };
  });
}

function shown(value) {
  if (value === null) return 'null';
  if (typeof value === 'string') return value === '' ? '(empty)' : value;
  return JSON.stringify(value);
}
