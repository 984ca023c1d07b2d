// Where the page sends its requests: config.js (written by `make run` or by the deploy step)
// provides defaults; the settings panel stores an override in this browser's localStorage.

const STORAGE_KEY = 'items-ui.settings';

export function defaults() {
  const config = window.ITEMS_CONFIG ?? {};
  return { apiUrl: normaliseUrl(config.apiUrl ?? ''), apiKey: String(config.apiKey ?? '') };
}

function stored() {
  try {
    const value = JSON.parse(localStorage.getItem(STORAGE_KEY) ?? 'null');
    if (value && typeof value === 'object' && typeof value.apiUrl === 'string') {
      return { apiUrl: normaliseUrl(value.apiUrl), apiKey: String(value.apiKey ?? '') };
    }
  } catch {
    // Unreadable storage (blocked, corrupted): fall back to the defaults.
  }
  return null;
}

export function current() {
  const override = stored();
  return override ? { ...override, custom: true } : { ...defaults(), custom: false };
}

export function save(apiUrl, apiKey) {
  localStorage.setItem(STORAGE_KEY, JSON.stringify({ apiUrl: normaliseUrl(apiUrl), apiKey }));
}

export function clear() {
  localStorage.removeItem(STORAGE_KEY);
}

export function normaliseUrl(url) {
  return String(url).trim().replace(/\/+$/, '');
}
