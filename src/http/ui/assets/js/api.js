// The management API as the UI calls it: the user's credentials on every request (kept
// in sessionStorage: gone when the browser session ends), JSON in and out, RabbitMQ's
// error bodies turned into ApiError. Every page reaches the broker through here.

import { toBase64 } from './dom.js';

const KEY = 'warren.credentials';
let credentials = sessionStorage.getItem(KEY);

/** What the API answered with a status that is not 2xx. */
export class ApiError extends Error {
  constructor(status, body) {
    const reason = body && (body.reason ?? body.error);
    super(typeof reason === 'string' ? reason : `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

/** Listeners told when the API says the credentials are no good (401). */
const unauthorised = new Set();
export function onUnauthorised(fn) { unauthorised.add(fn); }

export function loggedIn() { return credentials !== null; }

export function setCredentials(user, password) {
  // btoa takes Latin-1 only: encode as UTF-8 first, as browsers send Basic credentials.
  credentials = toBase64(new TextEncoder().encode(`${user}:${password}`));
  sessionStorage.setItem(KEY, credentials);
}

export function forget() {
  credentials = null;
  sessionStorage.removeItem(KEY);
}

/** A path with each interpolated value percent-encoded as one segment:
 *  path`/queues/${vhost}/${name}` -> "/queues/%2F/orders". */
export function path(strings, ...values) {
  return strings.reduce((out, s, i) => out + s + (i < values.length ? encodeURIComponent(values[i]) : ''), '');
}

/** "?a=1&b=2" from an object, leaving out undefined, null and '' values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** One API call; resolves to the parsed JSON (or null for an empty body). */
export async function request(method, apiPath, body, { headers = {}, signal, raw = false } = {}) {
  // Marks the call as the UI's: a wrong password then gets a 401 without
  // WWW-Authenticate, so the browser does not open its own login dialog over the form.
  const h = { 'x-requested-with': 'XMLHttpRequest', ...headers };
  if (credentials) h.authorization = `Basic ${credentials}`;
  let payload;
  if (body !== undefined) {
    if (body instanceof FormData || typeof body === 'string') {
      payload = body;
    } else {
      h['content-type'] = 'application/json';
      payload = JSON.stringify(body);
    }
  }
  // Relative to the page, so a UI served behind a path prefix still finds its API.
  const response = await fetch(`api${apiPath}`, { method, headers: h, body: payload, signal, cache: 'no-store' });
  if (raw && response.ok) return response;
  const text = await response.text();
  let json = null;
  if (text) {
    try { json = JSON.parse(text); } catch { json = { reason: text }; }
  }
  if (!response.ok) {
    // RabbitMQ answers 401 both for bad credentials and for an action the user's tags
    // or permissions do not allow: only the first signs the user out.
    if (response.status === 401 && credentials && !(await stillSignedIn(apiPath))) {
      unauthorised.forEach((fn) => fn(json));
    }
    throw new ApiError(response.status, json);
  }
  return json;
}

/** Whether the credentials are still good after a 401 on `apiPath`. */
async function stillSignedIn(apiPath) {
  if (apiPath === '/whoami') return false;
  try {
    const r = await fetch('api/whoami', { headers: { authorization: `Basic ${credentials}` }, cache: 'no-store' });
    return r.ok;
  } catch {
    return true;
  }
}

export const get = (p, params, opts) => request('GET', p + query(params), undefined, opts);
export const put = (p, body, opts) => request('PUT', p, body ?? {}, opts);
export const post = (p, body, opts) => request('POST', p, body ?? {}, opts);
export const del = (p, opts) => request('DELETE', p, undefined, opts);

/** The signed-in user and the vhost the lists show ('' = all), shared by every page. */
export const session = {
  user: null,
  tags: [],
  vhost: sessionStorage.getItem('warren.vhost') || '',
  setVhost(v) {
    this.vhost = v;
    sessionStorage.setItem('warren.vhost', v);
  },
  has(tag) { return this.tags.includes(tag) || this.tags.includes('administrator'); },
};
