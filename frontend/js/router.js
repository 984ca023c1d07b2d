// Hash routes: `#/<view>[/<id>][?<query>]`, e.g. `#/items?tag=travel&sort=updated_at`,
// `#/items/<id>`, `#/imports/<id>`. The URL is the page's state: reload keeps the view, the back
// button walks it, and a link opens it. Views register with `register(name, view)`; a view is
// `{ element, heading, show(route), confirmLeave?(route) }`. To add a page: a section in index.html,
// a link `<a href="#/<name>" data-view-link="<name>">` in the header, and one `register` call.

const views = new Map();
let fallback = '';
let currentHash = null;
let current = null; // the name of the view on screen

export function register(name, view, { isDefault = false } = {}) {
  views.set(name, view);
  if (isDefault || !fallback) fallback = name;
}

export function parse(hash = location.hash) {
  const raw = hash.replace(/^#\/?/, '');
  const mark = raw.indexOf('?');
  const path = mark < 0 ? raw : raw.slice(0, mark);
  const segments = path.split('/').filter(Boolean).map(decode);
  return {
    view: segments[0] ?? '',
    id: segments[1] ?? null,
    params: new URLSearchParams(mark < 0 ? '' : raw.slice(mark + 1)),
  };
}

export function hashFor(view, id = null, params = new URLSearchParams()) {
  const query = params.toString();
  return `#/${view}${id ? `/${encodeURIComponent(id)}` : ''}${query ? `?${query}` : ''}`;
}

// Goes to `hash` as a new history entry (or in place of the current one).
export function navigate(hash, { replace = false } = {}) {
  if (hash === location.hash) return;
  if (replace) {
    history.replaceState(history.state, '', hash);
    dispatch();
  } else {
    location.hash = hash;
  }
}

// The state of the current history entry, kept across reloads (e.g. the cursors of the pages
// visited): merged, never replacing what other views keep there.
export function saveState(part) {
  history.replaceState({ ...(history.state ?? {}), ...part }, '');
}

export function enabled(name, on) {
  const view = views.get(name);
  if (view) view.disabled = !on;
}

export async function dispatch({ focus = false } = {}) {
  let route = parse();
  if (!views.has(route.view) || views.get(route.view).disabled) {
    route = { view: fallback, id: null, params: new URLSearchParams() };
    history.replaceState(history.state, '', hashFor(fallback));
  }
  if (current && currentHash !== null && location.hash !== currentHash) {
    const leaving = views.get(current);
    if (leaving?.confirmLeave && !(await leaving.confirmLeave(route))) {
      history.replaceState(history.state, '', currentHash); // stay: the URL goes back to what is shown
      return;
    }
  }
  currentHash = location.hash;
  const changed = current !== route.view;
  current = route.view;
  for (const [name, view] of views) view.element.hidden = name !== route.view;
  for (const link of document.querySelectorAll('[data-view-link]')) {
    if (link.dataset.viewLink === route.view) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  const view = views.get(route.view);
  view.show(route);
  if (focus && changed) view.heading?.focus();
}

export function start() {
  window.addEventListener('hashchange', () => dispatch({ focus: true }));
}

function decode(segment) {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}
