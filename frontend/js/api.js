// The API client: every request goes through here, and every failure comes out as an ApiError
// whose `kind` says what the user can do about it (fix the network or URL, fix the key, fix the
// input, or wait for the server).

import { parseJson, stringifyJson } from './json.js';

const TIMEOUT_MS = 30000;

export class ApiError extends Error {
  constructor(kind, message, { status = 0, problem = null, requestId = null, retryAfter = null } = {}) {
    super(message);
    this.name = 'ApiError';
    this.kind = kind; // config | network | timeout | auth | client | busy | server
    this.status = status;
    this.problem = problem;
    this.requestId = requestId;
    this.retryAfter = retryAfter;
  }

  get fieldErrors() {
    return Array.isArray(this.problem?.errors) ? this.problem.errors : [];
  }
}

export class ApiClient {
  constructor(getSettings, onUnauthorized = null) {
    this.getSettings = getSettings;
    this.onUnauthorized = onUnauthorized;
  }

  // `getSettings()` (may be async) gives {apiUrl, apiKey, person}: the credential is a person's
  // access token when `person` is set. `onUnauthorized()` (optional) is asked once when the API
  // answers 401: it renews the credential and says whether to try again.
  async request(method, path, options = {}) {
    try {
      return await this.send(method, path, options);
    } catch (error) {
      if (error instanceof ApiError && error.status === 401 && options.auth !== false && this.onUnauthorized
          && await this.onUnauthorized()) {
        return this.send(method, path, options);
      }
      throw error;
    }
  }

  async send(method, path, { body, headers = {}, query, signal, auth = true } = {}) {
    const { apiUrl, apiKey, person = false } = await this.getSettings();
    if (!apiUrl) {
      throw new ApiError('config', 'No API URL is configured. Open Settings and enter the API URL and key.');
    }
    let url;
    try {
      url = new URL(apiUrl + path);
    } catch {
      throw new ApiError('config', `The API URL “${apiUrl}” is not a valid URL. Correct it in Settings.`);
    }
    for (const [name, value] of Object.entries(query ?? {})) {
      if (value !== undefined && value !== null && value !== '') url.searchParams.set(name, value);
    }
    const init = { method, headers: { Accept: 'application/json, application/problem+json', ...headers } };
    if (auth && apiKey) init.headers.Authorization = `Bearer ${apiKey}`;
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = stringifyJson(body);
    }
    const timeout = AbortSignal.timeout(TIMEOUT_MS);
    init.signal = signal && AbortSignal.any ? AbortSignal.any([signal, timeout]) : signal ?? timeout;

    let response;
    let text;
    try {
      response = await fetch(url, init);
      text = await response.text();
    } catch (error) {
      if (signal?.aborted) throw error;
      if (error?.name === 'TimeoutError' || timeout.aborted) {
        throw new ApiError('timeout', `The API at ${apiUrl} did not answer within ${TIMEOUT_MS / 1000} s. Try again.`);
      }
      throw new ApiError(
        'network',
        `Cannot reach the API at ${apiUrl}. Check your connection, that the API is running, and the API URL in Settings.`,
      );
    }
    let data = null;
    if (text) {
      try {
        data = parseJson(text);
      } catch {
        data = null;
      }
    }
    if (response.ok) return { status: response.status, data, headers: response.headers };
    throw errorFromResponse(response, data, person);
  }
}

function errorFromResponse(response, data, person) {
  const status = response.status;
  const problem = data && typeof data === 'object' && typeof data.type === 'string' ? data : null;
  const detail = String(problem?.detail || data?.message || data?.Message || response.statusText || '').trim();
  const requestId = problem?.request_id || response.headers.get('X-Request-Id');
  const retryAfter = response.headers.get('Retry-After');
  const details = { status, problem, requestId, retryAfter };
  const because = detail ? `: ${detail}` : '';
  if (status === 401) {
    return person
      ? new ApiError('auth', `Your session has ended (401${because}). Sign in again.`, details)
      : new ApiError('auth', `The API did not accept the API key (401${because}). Enter a valid key in Settings.`, details);
  }
  if (status === 403) {
    return person
      ? new ApiError('auth', `Your account may not do this (403${because}). Ask an administrator.`, details)
      : new ApiError('auth', `The API refused access with this API key (403${because}). Check the key in Settings.`, details);
  }
  if (status === 429 || status === 503) {
    const wait = retryAfter ? ` in ${retryAfter} s` : ' in a moment';
    return new ApiError('busy', `The service is busy (${status}${because}). Try again${wait}.`, details);
  }
  if (status >= 500) {
    return new ApiError('server', `The server failed to handle the request (${status}${because}).`, details);
  }
  const title = problem?.title || 'The request was refused';
  return new ApiError('client', `${title} (${status}${because}).`, details);
}
