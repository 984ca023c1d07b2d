// The item list (a table: search by name, filter by tag, sortable columns, cursor paging with a
// range label) and the editor, a side panel (full screen on a phone) with inline field errors,
// client-side checks, conflict handling on 412, an unsaved-changes guard, and delete with
// confirmation. The list's query and the open item live in the URL (router.js).

import { announce, clearError, showError } from './banner.js';
import { confirmDelete } from './dialogs.js';
import { $, formatDate, fromLocalInput, h, randomKey, timeElement, toLocalInput } from './dom.js';
import { LosslessNumber, parseJson, stringifyJson } from './json.js';
import { hashFor, navigate, parse, saveState } from './router.js';

const FIELDS = ['name', 'description', 'tags', 'expires_at', 'data'];
const LABELS = {
  id: 'ID', name: 'Name', description: 'Description', tags: 'Tags', expires_at: 'Expires at', data: 'Data',
};
const INPUTS = {
  id: 'item-id', name: 'item-name', description: 'item-description', tags: 'item-tags',
  expires_at: 'item-expires', data: 'item-data',
};
// The limits of docs/API.md, checked before sending.
const LIMITS = {
  name: 200, description: 4000, tags: 20, tag: 50, dataBytes: 16 * 1024, id: /^[A-Za-z0-9_-]{1,64}$/,
};
const SORTS = ['id', 'name', 'updated_at'];
const PAGE_SIZES = [10, 20, 50];
const DEFAULTS = { q: '', tag: '', sort: 'id', order: 'desc', limit: 20 };

const itemPath = (id) => `/items/${encodeURIComponent(id)}`;

// The list's query from the URL's parameters; anything unknown falls back to the default.
function queryFromParams(params) {
  const limit = Number(params.get('limit'));
  const q = (params.get('q') ?? '').trim().slice(0, 100);
  const tag = q ? '' : (params.get('tag') ?? '').trim();
  const sort = SORTS.includes(params.get('sort')) && !q && !tag ? params.get('sort') : 'id';
  return {
    q, tag, sort,
    order: params.get('order') === 'asc' ? 'asc' : 'desc',
    limit: PAGE_SIZES.includes(limit) ? limit : DEFAULTS.limit,
  };
}

function paramsFromQuery(query) {
  const params = new URLSearchParams();
  for (const name of ['q', 'tag', 'sort', 'order', 'limit']) {
    if (query[name] !== DEFAULTS[name]) params.set(name, query[name]);
  }
  return params;
}

export function createItems({ api, attachments }) {
  let searchTimer = 0; // a search being typed, sent 300 ms after the last key
  const list = {
    query: { ...DEFAULTS },
    key: null, // the query the pages below belong to
    cursors: [null], // the cursor of every page visited; the last one is the current page
    offsets: [0], // how many items come before each of those pages
    nextCursor: null,
    items: [],
    controller: null,
    state: 'loading', // loading | ready | error
    error: null,
    stale: true,
  };
  let editing = null; // { item } while editing an existing item, null while creating
  let editorOpen = false;
  let snapshot = ''; // the form's values when it was filled: anything else is an unsaved edit
  let wantCreate = false; // "New item" was pressed while an item was open: create once the URL is back on the list
  let starting = true; // the first view after (re)connecting: a wide screen starts with the form for a new item
  const wide = window.matchMedia('(min-width: 1100px)');
  let conflict = null; // { latest, merged } while the conflict panel is open
  let pendingCreate = null; // { body, key }: a retried create reuses its Idempotency-Key
  let saving = false;
  // Bumped whenever the form switches item (or to a new one): an answer that arrives after the
  // user moved on must not overwrite what the form now shows.
  let formGeneration = 0;

  const itemList = $('#item-list');
  const queryKey = (query) => JSON.stringify(paramsFromQuery(query).toString());

  // -- list -------------------------------------------------------------------------------------

  function apiQuery() {
    const { q, tag, sort, order, limit } = list.query;
    const query = { limit, order, cursor: list.cursors.at(-1) };
    if (q) query.q = q;
    else if (tag) query.tag = tag;
    else if (sort !== 'id') query.sort = sort;
    return query;
  }

  async function loadPage() {
    list.controller?.abort();
    const controller = new AbortController();
    list.controller = controller;
    list.stale = false;
    list.state = 'loading';
    renderList();
    try {
      let page;
      for (let hops = 0; ; hops += 1) {
        ({ data: page } = await api.request('GET', '/items', { query: apiQuery(), signal: controller.signal }));
        // A page may be empty while more follow (items expired in between): move on by itself.
        if (page.items.length > 0 || !page.next_cursor || hops >= 20) break;
        list.cursors[list.cursors.length - 1] = page.next_cursor;
      }
      list.items = page.items;
      list.nextCursor = page.next_cursor;
      list.state = 'ready';
      saveState({ items: { key: list.key, cursors: list.cursors, offsets: list.offsets } });
    } catch (error) {
      if (controller.signal.aborted) return;
      if (error.status === 400 && error.fieldErrors.some((e) => e.pointer === '/query/cursor')) {
        list.cursors = [null]; // a cursor from another key or stage: start over
        list.offsets = [0];
        list.controller = null;
        await loadPage();
        return;
      }
      list.stale = true;
      list.items = [];
      list.nextCursor = null;
      list.state = 'error';
      list.error = error;
      showError(error, { retry: loadPage });
    } finally {
      if (list.controller === controller) {
        list.controller = null;
        renderList();
      }
    }
  }

  function renderList() {
    const loading = list.state === 'loading';
    itemList.setAttribute('aria-busy', String(loading));
    if (loading) {
      // Skeleton rows where the page will be: as many as the rows shown, or a full page at first.
      const count = list.items.length || list.query.limit;
      itemList.replaceChildren(...Array.from({ length: count }, skeletonRow));
    } else {
      itemList.replaceChildren(...list.items.map(renderRow));
    }
    const empty = $('#list-empty');
    empty.hidden = list.state !== 'ready' || list.items.length > 0;
    empty.textContent = empty.hidden ? '' : emptyText();
    $('#list-error').hidden = list.state !== 'error';
    $('#list-error-detail').textContent = list.error?.message ?? '';
    const first = list.offsets.at(-1);
    let range = '';
    if (list.state === 'ready') range = list.items.length ? `${first + 1}\u2013${first + list.items.length}` : 'No items';
    else if (loading) range = 'Loading\u2026';
    for (const suffix of ['', '-bottom']) {
      $(`#previous-page${suffix}`).disabled = loading || list.cursors.length <= 1;
      $(`#next-page${suffix}`).disabled = loading || !list.nextCursor;
      $(`#page-label${suffix}`).textContent = range;
    }
    renderQuery();
  }

  function emptyText() {
    const { q, tag } = list.query;
    if (q) return `No item names start with \u201c${q}\u201d.`;
    if (tag) return `No items are tagged \u201c${tag}\u201d.`;
    return list.cursors.length > 1 ? 'No items on this page.' : 'No items yet. Create one with \u201cNew item\u201d.';
  }

  function skeletonRow() {
    return h('tr', { className: 'skeleton', 'aria-hidden': 'true' },
      ['col-name', 'col-tags', 'col-updated', 'col-version', 'col-actions'].map((name) => h('td', { className: name }, h('span', {}))));
  }

  function renderRow(item) {
    const selected = editing?.item.id === item.id;
    return h('tr', { className: 'item-row', 'data-testid': 'item-row', 'data-item-id': item.id, 'aria-current': selected ? 'true' : null },
      h('th', { scope: 'row', className: 'col-name' },
        h('a', {
          href: hashFor('items', item.id, paramsFromQuery(list.query)), className: 'item-open', 'data-testid': 'item-open',
          'aria-label': `Edit ${item.name}`, title: item.description ?? null,
        }, item.name)),
      h('td', { className: 'col-tags' }, item.tags.length
        ? h('ul', { className: 'tags', 'aria-label': 'Tags' }, item.tags.map((tag) => h('li', {},
          h('button', {
            type: 'button', className: 'chip', 'data-testid': 'tag-chip', 'aria-label': `Show items tagged ${tag}`,
            onclick: () => setQuery({ tag, q: '', sort: 'id' }),
          }, tag))))
        : null),
      h('td', { className: 'col-updated' }, timeElement(item.updated_at, { short: true })),
      h('td', { className: 'col-version' }, String(item.version)),
      h('td', { className: 'col-actions' }, h('button', {
        type: 'button', className: 'danger-outline small', 'data-testid': 'item-delete',
        'aria-label': `Delete ${item.name}`, onclick: () => deleteItem(item),
      }, 'Delete')));
  }

  // The controls show the query in the URL.
  function renderQuery() {
    const { q, tag, sort, order, limit } = list.query;
    // Unless a search being typed is still to be sent: the URL (back button, a link) decides.
    if (!searchTimer) $('#search').value = q;
    $('#order').value = order;
    $('#page-size').value = String(limit);
    $('#table-wrap').style.setProperty('--rows', String(limit));
    const effective = q ? 'name' : tag ? 'id' : sort;
    for (const button of document.querySelectorAll('.item-table .sort')) {
      const active = button.dataset.sort === effective;
      button.closest('th').setAttribute('aria-sort', active ? (order === 'asc' ? 'ascending' : 'descending') : 'none');
      button.dataset.active = String(active);
    }
    const filter = $('#active-filter');
    filter.hidden = !tag;
    if (tag) {
      filter.replaceChildren(h('span', {}, 'Tagged '), h('strong', {}, tag), ' ',
        h('button', {
          type: 'button', className: 'secondary small', 'data-testid': 'clear-tag',
          onclick: () => setQuery({ tag: '' }),
        }, 'Show all items'));
    }
  }

  function setQuery(change) {
    const query = { ...list.query, ...change };
    navigate(hashFor('items', editing?.item.id ?? null, paramsFromQuery(query)));
  }

  function sortBy(sort) {
    const { q, tag, order } = list.query;
    const effective = q ? 'name' : tag ? 'id' : list.query.sort;
    // A second click on the sorted column turns the order round; another column starts newest
    // (or A→Z) first. Sorting shows all items: the contract does not sort a search or a tag.
    if (sort === effective) setQuery({ order: order === 'asc' ? 'desc' : 'asc' });
    else setQuery({ sort, q: '', tag: '', order: sort === 'name' ? 'asc' : 'desc' });
  }

  async function goToPage(direction) {
    if (list.state === 'loading') return; // a second click while a page loads must not skip one
    if (direction > 0 && list.nextCursor) {
      list.offsets.push(list.offsets.at(-1) + list.items.length);
      list.cursors.push(list.nextCursor);
    } else if (direction < 0 && list.cursors.length > 1) {
      list.cursors.pop();
      list.offsets.pop();
    } else {
      return;
    }
    await loadPage();
    $('#items-heading').scrollIntoView({ block: 'start' });
    // The button just used may now be disabled (first or last page): keep focus in the list.
    const active = document.activeElement;
    if (!active || active === document.body || active.disabled) $('#items-heading').focus({ preventScroll: true });
  }

  function restart() {
    list.cursors = [null];
    list.offsets = [0];
    return loadPage();
  }

  // Shows the list for the URL's query (restoring the pages visited in this history entry) and
  // the item it names, if any.
  function show(route) {
    const query = queryFromParams(route.params);
    const key = queryKey(query);
    if (key !== list.key || list.stale) {
      const kept = history.state?.items;
      list.query = query;
      list.key = key;
      if (kept?.key === key && Array.isArray(kept.cursors) && kept.cursors.length === kept.offsets?.length) {
        list.cursors = kept.cursors;
        list.offsets = kept.offsets;
        loadPage();
      } else {
        restart();
      }
    } else if (list.state === 'ready') {
      // A new history entry of the same list (an item opened): it keeps the pages visited too.
      saveState({ items: { key: list.key, cursors: list.cursors, offsets: list.offsets } });
    }
    const first = starting;
    starting = false;
    $('#editor').removeAttribute('data-state');
    if (route.id) {
      if (first && wide.matches) openEditor(); // keeps the column laid out while the item loads
      if (editing?.item.id !== route.id) openItem(route.id);
    } else if (first && wide.matches) {
      startCreating();
    } else if (first) {
      closeEditor();
    } else if (wantCreate) {
      wantCreate = false;
      startCreating();
      $('#item-name').focus();
    } else if (editing) {
      closeEditor();
    }
  }

  // -- editor -------------------------------------------------------------------------------------

  function openEditor() {
    editorOpen = true;
    $('#editor').hidden = false;
    document.body.classList.add('editor-open');
  }

  function closeEditor() {
    formGeneration += 1;
    const id = editing?.item.id;
    editing = null;
    editorOpen = false;
    snapshot = '';
    $('#editor').hidden = true;
    document.body.classList.remove('editor-open');
    attachments.hide();
    markSelectedRow();
    const row = id && itemList.querySelector(`[data-item-id="${CSS.escape(id)}"] [data-testid="item-open"]`);
    if (row) row.focus();
  }

  function formValues() {
    return JSON.stringify(Object.values(INPUTS).map((id) => $(`#${id}`).value));
  }

  function dirty() {
    return editorOpen && formValues() !== snapshot;
  }

  async function confirmDiscard() {
    if (!dirty()) return true;
    return confirmDelete({
      title: 'Discard unsaved changes?',
      message: editing
        ? `Your changes to \u201c${editing.item.name}\u201d are not saved. Discard them?`
        : 'The new item is not saved. Discard it?',
      confirmLabel: 'Discard changes',
    });
  }

  function markSelectedRow() {
    for (const row of itemList.querySelectorAll('[data-testid="item-row"]')) {
      if (editing && row.dataset.itemId === editing.item.id) row.setAttribute('aria-current', 'true');
      else row.removeAttribute('aria-current');
    }
  }

  function listHash() {
    return hashFor('items', null, paramsFromQuery(list.query));
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
    $('#item-meta').textContent = `Created ${formatDate(item.created_at)} · updated ${formatDate(item.updated_at)}`;
    snapshot = formValues();
    if (values !== item) snapshot = ''; // reapplied changes are not saved yet
    openEditor();
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
    $('#item-meta').textContent = '';
    snapshot = formValues();
    openEditor();
    markSelectedRow();
    attachments.hide();
  }

  async function openItem(id) {
    formGeneration += 1;
    const generation = formGeneration;
    try {
      const { data: item } = await api.request('GET', itemPath(id));
      if (generation !== formGeneration) return; // the user opened something else meanwhile
      startEditing(item);
      $('#item-name').focus();
    } catch (error) {
      if (generation !== formGeneration) return;
      if (error.status === 404) {
        announce(`There is no item “${id}” (it may have been deleted).`, 'error');
        closeEditor();
        navigate(listHash(), { replace: true });
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
    const id = $('#item-id').value.trim();
    if (!editing && id && !LIMITS.id.test(id)) {
      errors.push({ pointer: '/id', detail: 'may only use letters (A–Z, a–z), digits, “-” and “_”, at most 64 of them, with no spaces' });
    }
    const name = values.name.trim();
    if (!name) errors.push({ pointer: '/name', detail: 'is required' });
    else if ([...name].length > LIMITS.name) errors.push({ pointer: '/name', detail: `is too long: ${[...name].length} characters, at most ${LIMITS.name}` });
    if (description !== '' && [...description].length > LIMITS.description) {
      errors.push({ pointer: '/description', detail: `is too long: ${[...description].length} characters, at most ${LIMITS.description}` });
    }
    const unique = [...new Set(values.tags)];
    if (unique.length > LIMITS.tags) errors.push({ pointer: '/tags', detail: `are too many: ${unique.length}, at most ${LIMITS.tags}` });
    values.tags.forEach((tag, index) => {
      if ([...tag].length > LIMITS.tag) errors.push({ pointer: `/tags/${index}`, detail: `is longer than ${LIMITS.tag} characters` });
    });
    // No expiry is sent by leaving the field out, which means "no expiry" for create and replace.
    const expires = fromLocalInput($('#item-expires').value);
    if (expires === undefined) errors.push({ pointer: '/expires_at', detail: 'is not a valid date and time' });
    else if (expires && new Date(expires) <= new Date()) errors.push({ pointer: '/expires_at', detail: 'must be in the future' });
    else if (expires) values.expires_at = expires;
    const dataText = $('#item-data').value.trim();
    if (dataText) {
      try {
        const data = parseJson(dataText);
        if (data === null || typeof data !== 'object' || Array.isArray(data) || data instanceof LosslessNumber) {
          errors.push({ pointer: '/data', detail: 'must be a JSON object, e.g. {"amount": 12.5}' });
        } else if (new TextEncoder().encode(stringifyJson(data)).length > LIMITS.dataBytes) {
          errors.push({ pointer: '/data', detail: `is larger than ${LIMITS.dataBytes / 1024} KiB` });
        } else {
          values.data = data;
        }
      } catch (error) {
        errors.push({ pointer: '/data', detail: `is not valid JSON (${error.message})` });
      }
    }
    return { values, id, errors };
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
      announce(`Created “${item.name}”.`);
      if (generation === formGeneration) {
        startEditing(item);
        navigate(hashFor('items', item.id, paramsFromQuery(list.query)));
      }
      await restart();
    } catch (error) {
      if (generation !== formGeneration) {
        announce(`Not created: ${error.message}`, 'error');
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
      if (generation !== formGeneration) announce(`Not saved: ${error.message}`, 'error');
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
    snapshot = formValues(); // the values are carried over below, not lost
    navigate(listHash(), { replace: true });
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
        announce(`“${item.name}” was changed after the list was loaded, so it was not deleted. The list is `
          + 'refreshed: check the item and delete it again if you still want to.', 'error');
      } else if (error.status === 404) {
        announce(`“${item.name}” was already deleted.`, 'info');
      } else {
        showError(error, { retry: () => deleteItem(item) });
        return;
      }
    }
    if (editing?.item.id === item.id) {
      snapshot = formValues(); // deleted on purpose: nothing left to guard
      navigate(listHash(), { replace: true });
    }
    await loadPage();
    if (!list.items.length && list.cursors.length > 1) {
      list.cursors.pop();
      list.offsets.pop();
      await loadPage();
    }
    const rows = itemList.querySelectorAll('[data-testid="item-open"]');
    (rows[Math.min(index, rows.length - 1)] ?? $('#items-heading')).focus();
  }

  // -- wiring -----------------------------------------------------------------------------------

  async function newItem() {
    if (!(await confirmDiscard())) return;
    snapshot = formValues();
    if (parse().id) {
      wantCreate = true;
      navigate(listHash());
    } else {
      startCreating();
      $('#item-name').focus();
    }
  }

  async function close() {
    if (!(await confirmDiscard())) return;
    snapshot = formValues();
    if (parse().id) navigate(listHash());
    else closeEditor();
  }

  function searchFor(q) {
    if (q === list.query.q) return;
    // A new search reads A→Z from its first name; clearing it goes back to the newest items first.
    const order = q ? (list.query.q ? list.query.order : 'asc') : DEFAULTS.order;
    setQuery({ q, tag: '', sort: 'id', order });
  }

  function searchSoon() {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => {
      searchTimer = 0;
      searchFor($('#search').value.trim());
    }, 300);
  }

  $('#item-form').addEventListener('submit', submit);
  $('#new-item').addEventListener('click', newItem);
  $('#close-editor').addEventListener('click', close);
  $('#editor').addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && !document.querySelector('dialog[open]')) close();
  });
  $('#conflict-reapply').addEventListener('click', reapply);
  $('#conflict-discard').addEventListener('click', discard);
  for (const suffix of ['', '-bottom']) {
    $(`#next-page${suffix}`).addEventListener('click', () => goToPage(1));
    $(`#previous-page${suffix}`).addEventListener('click', () => goToPage(-1));
  }
  $('#refresh-items').addEventListener('click', loadPage);
  $('#list-retry').addEventListener('click', () => {
    clearError();
    loadPage();
  });
  $('#list-controls').addEventListener('submit', (event) => {
    event.preventDefault();
    clearTimeout(searchTimer);
    searchTimer = 0;
    searchFor($('#search').value.trim());
  });
  $('#search').addEventListener('input', searchSoon);
  $('#order').addEventListener('change', (event) => setQuery({ order: event.target.value }));
  $('#page-size').addEventListener('change', (event) => setQuery({ limit: Number(event.target.value) }));
  for (const button of document.querySelectorAll('.item-table .sort')) {
    button.addEventListener('click', () => sortBy(button.dataset.sort));
  }
  window.addEventListener('beforeunload', (event) => {
    if (!dirty()) return;
    event.preventDefault();
    event.returnValue = '';
  });

  return {
    view: {
      element: $('#items-view'),
      heading: $('#items-heading'),
      show,
      async confirmLeave(route) {
        if (route.view === 'items' && route.id && route.id === editing?.item.id) return true;
        if (!dirty()) return true;
        const confirmed = await confirmDiscard();
        if (confirmed) snapshot = formValues();
        return confirmed;
      },
    },
    reset() {
      list.controller?.abort();
      list.controller = null;
      list.key = null;
      list.items = [];
      list.nextCursor = null;
      list.state = 'loading';
      list.stale = true;
      starting = true;
      renderList();
      if (editorOpen) closeEditor();
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
