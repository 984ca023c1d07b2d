// The item list (cursor paging, order) and the create/edit form (inline field errors, conflict
// handling on 412, delete with confirmation).

import { ApiError } from './api.js';
import { announce, clearError, showError } from './banner.js';
import { confirmDelete } from './dialogs.js';
import { $, formatDate, fromLocalInput, h, randomKey, timeElement, toLocalInput } from './dom.js';
import { LosslessNumber, parseJson, stringifyJson } from './json.js';

const FIELDS = ['name', 'description', 'tags', 'expires_at', 'data'];
const LABELS = {
  id: 'ID', name: 'Name', description: 'Description', tags: 'Tags', expires_at: 'Expires at', data: 'Data',
};
const INPUTS = {
  id: 'item-id', name: 'item-name', description: 'item-description', tags: 'item-tags',
  expires_at: 'item-expires', data: 'item-data',
};

const itemPath = (id) => `/items/${encodeURIComponent(id)}`;

export function createItems({ api, attachments }) {
  const list = {
    order: 'desc',
    limit: 20,
    cursors: [null], // the cursor of every page visited; the last one is the current page
    nextCursor: null,
    items: [],
    controller: null,
    stale: true,
  };
  let editing = null; // { item } while editing an existing item, null while creating
  let conflict = null; // { latest, merged } while the conflict panel is open
  let pendingCreate = null; // { body, key }: a retried create reuses its Idempotency-Key
  let saving = false;
  // Bumped whenever the form switches item (or to a new one): an answer that arrives after the
  // user moved on must not overwrite what the form now shows.
  let formGeneration = 0;

  const itemList = $('#item-list');

  // -- list -------------------------------------------------------------------------------------

  async function loadPage() {
    list.controller?.abort();
    const controller = new AbortController();
    list.controller = controller;
    list.stale = false;
    itemList.setAttribute('aria-busy', 'true');
    try {
      let page;
      for (let hops = 0; ; hops += 1) {
        const query = { limit: list.limit, order: list.order, cursor: list.cursors.at(-1) };
        ({ data: page } = await api.request('GET', '/items', { query, signal: controller.signal }));
        // A page may be empty while more follow (items expired in between): move on by itself.
        if (page.items.length > 0 || !page.next_cursor || hops >= 20) break;
        list.cursors[list.cursors.length - 1] = page.next_cursor;
      }
      list.items = page.items;
      list.nextCursor = page.next_cursor;
      renderList();
    } catch (error) {
      if (controller.signal.aborted) return;
      if (error.status === 400 && error.fieldErrors.some((e) => e.pointer === '/query/cursor')) {
        list.cursors = [null]; // a cursor from another key or stage: start over
        await loadPage();
        return;
      }
      list.stale = true;
      showError(error, { retry: loadPage });
    } finally {
      if (list.controller === controller) {
        list.controller = null;
        itemList.setAttribute('aria-busy', 'false');
      }
    }
  }

  function renderList() {
    itemList.replaceChildren(...list.items.map(renderRow));
    const empty = $('#list-empty');
    empty.hidden = list.items.length > 0;
    empty.textContent = list.cursors.length > 1 ? 'No items on this page.' : 'No items yet. Create one with the form.';
    $('#previous-page').disabled = list.cursors.length <= 1;
    $('#next-page').disabled = !list.nextCursor;
    $('#page-label').textContent = `Page ${list.cursors.length}`;
  }

  function renderRow(item) {
    const selected = editing?.item.id === item.id;
    return h('li', { className: 'item-row', 'data-testid': 'item-row', 'data-item-id': item.id, 'aria-current': selected ? 'true' : null },
      h('div', { className: 'item-main' },
        h('button', { type: 'button', className: 'item-open', 'data-testid': 'item-open', onclick: () => openItem(item.id) },
          h('span', { className: 'visually-hidden' }, 'Edit '), item.name),
        item.description ? h('p', { className: 'item-description' }, item.description) : null,
        item.tags.length ? h('ul', { className: 'tags', 'aria-label': 'Tags' }, item.tags.map((tag) => h('li', {}, tag))) : null,
        h('p', { className: 'item-meta' },
          `version ${item.version} · updated `, timeElement(item.updated_at),
          item.expires_at ? [' · expires ', timeElement(item.expires_at)] : null)),
      h('button', {
        type: 'button', className: 'danger-outline small', 'data-testid': 'item-delete',
        'aria-label': `Delete ${item.name}`, onclick: () => deleteItem(item),
      }, 'Delete'));
  }

  function markSelectedRow() {
    for (const row of itemList.querySelectorAll('[data-testid="item-row"]')) {
      if (editing && row.dataset.itemId === editing.item.id) row.setAttribute('aria-current', 'true');
      else row.removeAttribute('aria-current');
    }
  }

  async function goToPage(direction) {
    if (direction > 0 && list.nextCursor) list.cursors.push(list.nextCursor);
    else if (direction < 0 && list.cursors.length > 1) list.cursors.pop();
    else return;
    await loadPage();
    // The button just used may now be disabled (first or last page): keep focus in the list.
    const active = document.activeElement;
    if (!active || active === document.body || active.disabled) $('#items-heading').focus();
  }

  function restart() {
    list.cursors = [null];
    return loadPage();
  }

  // -- form -------------------------------------------------------------------------------------

  function setFormValues(values) {
    $('#item-name').value = values.name ?? '';
    $('#item-description').value = values.description ?? '';
    $('#item-tags').value = (values.tags ?? []).join(', ');
    $('#item-expires').value = toLocalInput(values.expires_at);
    $('#item-data').value = stringifyJson(values.data ?? {}, 2);
  }

  function startEditing(item, values = item) {
    formGeneration += 1;
    editing = { item };
    hideConflict();
    clearFieldErrors();
    setFormValues(values);
    const idInput = $('#item-id');
    idInput.value = item.id;
    idInput.readOnly = true;
    $('#field-id .hint').textContent = '(read-only)';
    $('#form-heading').textContent = `Edit “${item.name}”`;
    $('#item-save').textContent = 'Save changes';
    $('#item-version').hidden = false;
    $('#item-version').textContent = `version ${item.version}`;
    $('#cancel-edit').hidden = false;
    $('#item-meta').textContent = `Created ${formatDate(item.created_at)} · updated ${formatDate(item.updated_at)}`;
    markSelectedRow();
    attachments.show(item);
  }

  function startCreating() {
    formGeneration += 1;
    editing = null;
    pendingCreate = null;
    hideConflict();
    clearFieldErrors();
    setFormValues({});
    const idInput = $('#item-id');
    idInput.value = '';
    idInput.readOnly = false;
    $('#field-id .hint').textContent = '(optional; assigned when left empty)';
    $('#form-heading').textContent = 'New item';
    $('#item-save').textContent = 'Create item';
    $('#item-version').hidden = true;
    $('#cancel-edit').hidden = true;
    $('#item-meta').textContent = '';
    markSelectedRow();
    attachments.hide();
  }

  async function openItem(id) {
    const generation = formGeneration;
    try {
      const { data: item } = await api.request('GET', itemPath(id));
      if (generation !== formGeneration) return; // the user opened something else meanwhile
      startEditing(item);
      $('#item-name').focus();
    } catch (error) {
      if (error.status === 404) {
        announce('That item no longer exists.');
        await loadPage();
      } else {
        showError(error, { retry: () => openItem(id) });
      }
    }
  }

  function readForm() {
    const errors = [];
    const description = $('#item-description').value;
    const values = {
      name: $('#item-name').value,
      description: description === '' ? null : description,
      tags: $('#item-tags').value.split(',').map((tag) => tag.trim()).filter(Boolean),
      data: {},
    };
    // No expiry is sent by leaving the field out, which means "no expiry" for create and replace.
    const expires = fromLocalInput($('#item-expires').value);
    if (expires === undefined) errors.push({ pointer: '/expires_at', detail: 'is not a valid date and time' });
    else if (expires) values.expires_at = expires;
    const dataText = $('#item-data').value.trim();
    if (dataText) {
      try {
        const data = parseJson(dataText);
        if (data === null || typeof data !== 'object' || Array.isArray(data) || data instanceof LosslessNumber) {
          errors.push({ pointer: '/data', detail: 'must be a JSON object, e.g. {"amount": 12.5}' });
        } else {
          values.data = data;
        }
      } catch (error) {
        errors.push({ pointer: '/data', detail: `is not valid JSON (${error.message})` });
      }
    }
    return { values, id: $('#item-id').value.trim(), errors };
  }

  async function submit(event) {
    event.preventDefault();
    if (saving) return;
    clearFieldErrors();
    clearError();
    const { values, id, errors } = readForm();
    if (errors.length) {
      showFieldErrors(errors);
      return;
    }
    saving = true;
    $('#item-save').setAttribute('aria-disabled', 'true');
    $('#item-form').setAttribute('aria-busy', 'true');
    try {
      if (editing) await saveChanges(values, formGeneration);
      else await create(values, id, formGeneration);
    } finally {
      saving = false;
      $('#item-save').removeAttribute('aria-disabled');
      $('#item-form').setAttribute('aria-busy', 'false');
    }
  }

  async function create(values, id, generation) {
    const body = id ? { id, ...values } : values;
    const serialised = stringifyJson(body);
    if (pendingCreate?.body !== serialised) pendingCreate = { body: serialised, key: randomKey() };
    try {
      const { data: item } = await api.request('POST', '/items', {
        body, headers: { 'Idempotency-Key': pendingCreate.key },
      });
      pendingCreate = null;
      if (generation === formGeneration) startEditing(item);
      announce(`Created “${item.name}”.`);
      await restart();
    } catch (error) {
      if (generation !== formGeneration) {
        showError(error);
      } else if (error.status === 409 && id && !error.fieldErrors.length) {
        showFieldErrors([{ pointer: '/id', detail: error.problem?.detail || 'is already used by another item' }]);
      } else {
        handleWriteError(error);
      }
    }
  }

  async function saveChanges(values, generation) {
    const base = editing.item;
    try {
      const { data: item } = await api.request('PUT', itemPath(base.id), {
        body: values, headers: { 'If-Match': `"${base.version}"` },
      });
      if (generation === formGeneration) startEditing(item);
      announce(`Saved “${item.name}” (version ${item.version}).`);
      await loadPage();
    } catch (error) {
      if (generation !== formGeneration) showError(error);
      else if (error.status === 412) await showConflict(values);
      else if (error.status === 404) await itemGone(values);
      else handleWriteError(error);
    }
  }

  function handleWriteError(error) {
    if (error.fieldErrors.length && (error.status === 422 || error.status === 400)) {
      showFieldErrors(error.fieldErrors);
    } else if (error.kind === 'client') {
      showFormError(error.message);
    } else {
      showError(error, { retry: () => $('#item-form').requestSubmit() });
    }
  }

  async function itemGone(values) {
    const id = editing.item.id;
    startCreating();
    setFormValues(values);
    $('#item-id').value = id;
    showFormError('This item was deleted in the meantime. Your values are kept: save to create it again.');
    await loadPage();
  }

  // -- field errors -----------------------------------------------------------------------------

  function showFieldErrors(errors) {
    const byField = new Map();
    const others = [];
    const tags = $('#item-tags').value.split(',').map((tag) => tag.trim()).filter(Boolean);
    for (const { pointer, detail } of errors) {
      const segments = String(pointer ?? '').split('/').slice(1)
        .map((segment) => segment.replaceAll('~1', '/').replaceAll('~0', '~'));
      const field = segments[0];
      if (!INPUTS[field] || (field === 'id' && editing)) {
        others.push(`${pointer || 'The request'}: ${detail}`);
        continue;
      }
      let message = `${LABELS[field]} ${detail}`;
      if (field === 'tags' && segments.length > 1) {
        const index = Number(segments[1]);
        const tag = tags[index];
        message = `Tag ${index + 1}${tag === undefined ? '' : ` (“${tag}”)`} ${detail}`;
      } else if (field === 'data' && segments.length > 1) {
        message = `Data at /${segments.slice(1).join('/')}: ${detail}`;
      }
      byField.set(field, [...(byField.get(field) ?? []), message]);
    }
    let first = null;
    for (const field of Object.keys(INPUTS)) {
      const messages = byField.get(field);
      if (!messages) continue;
      const input = $(`#${INPUTS[field]}`);
      const output = $(`#${INPUTS[field]}-error`);
      output.textContent = messages.join(' · ');
      output.hidden = false;
      input.setAttribute('aria-invalid', 'true');
      describeBy(input, output.id, true);
      first ??= input;
    }
    const count = byField.size + others.length;
    showFormError(
      `Not saved: ${count} ${count === 1 ? 'problem needs' : 'problems need'} your attention.`,
      others,
    );
    (first ?? $('#form-error')).focus();
  }

  function clearFieldErrors() {
    for (const id of Object.values(INPUTS)) {
      const input = $(`#${id}`);
      const output = $(`#${id}-error`);
      input.removeAttribute('aria-invalid');
      describeBy(input, output.id, false);
      output.hidden = true;
      output.textContent = '';
    }
    const formError = $('#form-error');
    formError.hidden = true;
    formError.replaceChildren();
  }

  function showFormError(message, details = []) {
    const formError = $('#form-error');
    formError.replaceChildren(h('p', {}, message));
    if (details.length) formError.append(h('ul', {}, details.map((detail) => h('li', {}, detail))));
    formError.hidden = false;
    formError.setAttribute('tabindex', '-1');
  }

  function describeBy(input, id, on) {
    const ids = new Set((input.getAttribute('aria-describedby') ?? '').split(/\s+/).filter(Boolean));
    if (on) ids.add(id);
    else ids.delete(id);
    if (ids.size) input.setAttribute('aria-describedby', [...ids].join(' '));
    else input.removeAttribute('aria-describedby');
  }

  // -- conflict (412) ---------------------------------------------------------------------------

  async function showConflict(mine) {
    const base = editing.item;
    const generation = formGeneration;
    let latest;
    try {
      ({ data: latest } = await api.request('GET', itemPath(base.id)));
      if (generation !== formGeneration) return;
    } catch (error) {
      if (generation !== formGeneration) return;
      if (error.status === 404) await itemGone(mine);
      else showError(error);
      return;
    }
    const merged = {};
    const rows = [];
    for (const field of FIELDS) {
      const original = comparable(field, base[field]);
      const theirs = comparable(field, latest[field]);
      const yours = comparable(field, mine[field]);
      const youChanged = yours !== original;
      merged[field] = youChanged ? mine[field] : latest[field];
      if (!youChanged && theirs === original) continue;
      const clash = youChanged && theirs !== original && theirs !== yours;
      rows.push(h('tr', { className: clash ? 'clash' : null },
        h('th', { scope: 'row' }, LABELS[field], clash ? h('span', { className: 'badge warn' }, 'both changed') : null),
        h('td', {}, display(field, latest[field])),
        h('td', {}, youChanged ? display(field, mine[field]) : h('span', { className: 'muted' }, 'unchanged'))));
    }
    conflict = { latest, merged };
    $('#conflict-summary').textContent = `You were editing version ${base.version}, but version ${latest.version} `
      + `was saved in the meantime. Reapply your changes on top of version ${latest.version} (fields you did not `
      + 'change take the newer values), or discard them and load the newer version.';
    $('#conflict-rows').replaceChildren(...rows);
    $('#conflict').hidden = false;
    $('#conflict-heading').focus();
  }

  function hideConflict() {
    conflict = null;
    $('#conflict').hidden = true;
  }

  function reapply() {
    if (!conflict) return;
    const { latest, merged } = conflict;
    startEditing(latest, merged);
    announce(`Your changes are reapplied to version ${latest.version}. Review them and save.`);
    $('#item-save').focus();
  }

  function discard() {
    if (!conflict) return;
    const { latest } = conflict;
    startEditing(latest);
    announce(`Loaded version ${latest.version}.`);
    $('#item-name').focus();
  }

  // -- delete -----------------------------------------------------------------------------------

  async function deleteItem(item) {
    const confirmed = await confirmDelete({
      title: 'Delete item?',
      message: `“${item.name}” and its attachments will be deleted. This cannot be undone.`,
    });
    if (!confirmed) return;
    const index = list.items.findIndex((entry) => entry.id === item.id);
    try {
      await api.request('DELETE', itemPath(item.id), { headers: { 'If-Match': `"${item.version}"` } });
      announce(`Deleted “${item.name}”.`);
    } catch (error) {
      if (error.status === 412) {
        showError(new ApiError('conflict', `“${item.name}” was changed after the list was loaded, so it was not `
          + 'deleted. The list is refreshed: check the item and delete it again if you still want to.', error));
      } else if (error.status === 404) {
        announce(`“${item.name}” was already deleted.`);
      } else {
        showError(error, { retry: () => deleteItem(item) });
        return;
      }
    }
    if (editing?.item.id === item.id) startCreating();
    await loadPage();
    if (!list.items.length && list.cursors.length > 1) {
      list.cursors.pop();
      await loadPage();
    }
    const rows = itemList.querySelectorAll('[data-testid="item-open"]');
    (rows[Math.min(index, rows.length - 1)] ?? $('#items-heading')).focus();
  }

  // -- wiring -----------------------------------------------------------------------------------

  $('#item-form').addEventListener('submit', submit);
  $('#new-item').addEventListener('click', () => {
    startCreating();
    $('#item-name').focus();
  });
  $('#cancel-edit').addEventListener('click', () => {
    const id = editing?.item.id;
    startCreating();
    const row = id && itemList.querySelector(`[data-item-id="${CSS.escape(id)}"] [data-testid="item-open"]`);
    (row || $('#item-name')).focus();
  });
  $('#conflict-reapply').addEventListener('click', reapply);
  $('#conflict-discard').addEventListener('click', discard);
  $('#next-page').addEventListener('click', () => goToPage(1));
  $('#previous-page').addEventListener('click', () => goToPage(-1));
  $('#refresh-items').addEventListener('click', loadPage);
  $('#order').addEventListener('change', (event) => {
    list.order = event.target.value;
    restart();
  });
  $('#page-size').addEventListener('change', (event) => {
    list.limit = Number(event.target.value);
    restart();
  });
  list.limit = Number($('#page-size').value);
  list.order = $('#order').value;

  return {
    reset() {
      list.controller?.abort();
      list.cursors = [null];
      list.items = [];
      list.nextCursor = null;
      list.stale = true;
      renderList();
      startCreating();
    },
    activate() {
      if (list.stale) loadPage();
    },
    markStale() {
      list.stale = true;
    },
  };
}

function comparable(field, value) {
  switch (field) {
    case 'name': return String(value ?? '').trim();
    case 'description': return value ?? '';
    case 'tags': return JSON.stringify(value ?? []);
    case 'expires_at': return value ? String(new Date(value).getTime()) : '';
    default: return stringifyJson(value ?? {});
  }
}

function display(field, value) {
  switch (field) {
    case 'tags': return value?.length ? value.join(', ') : '—';
    case 'expires_at': return value ? formatDate(value) : '—';
    case 'data': return h('code', {}, stringifyJson(value ?? {}));
    default: return value || '—';
  }
}
