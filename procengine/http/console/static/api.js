// The REST API under BASE: requests with the bearer token of the token field (kept in sessionStorage for the
// tab), answers unwrapped from their envelope, failures as ApiError with the API's code, message and details.

export const BASE = '/api/v1/process-engine';
const TOKEN_KEY = 'procengine.console.token';

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }

  get text() {
    return `${this.status || ''} ${this.code}: ${this.message}`.trim();
  }
}

export const token = () => sessionStorage.getItem(TOKEN_KEY) || '';

/** Keep `value` as the token for this tab; an empty one forgets it. */
export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export const authHeaders = () => (token() ? { Authorization: `Bearer ${token()}` } : {});

export async function errorOf(response) {
  try {
    const body = await response.json();
    if (body && body.error) return new ApiError(response.status, body.error.code, body.error.message, body.error.details);
  } catch {
    // not an envelope
  }
  return new ApiError(response.status, `HTTP_${response.status}`, response.statusText || 'error');
}

/** The `data` of a successful answer; an ApiError otherwise (status 0: no answer at all). */
export async function api(method, path, options = {}) {
  return (await apiAnswer(method, path, options)).data;
}

/** `api`, with the answer's HTTP status: {status, data} (a start's 201 from a repeat's 200). */
export async function apiAnswer(method, path, { body, headers } = {}) {
  const init = { method, cache: 'no-store', headers: { Accept: 'application/json', ...authHeaders(), ...headers } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(BASE + path, init);
  } catch (error) {
    throw new ApiError(0, 'NETWORK', `the server cannot be reached (${error.message})`);
  }
  if (!response.ok) throw await errorOf(response);
  const payload = await response.json();
  if (!payload || payload.success !== true) throw new ApiError(response.status, 'BAD_ANSWER', 'not a success envelope');
  return { status: response.status, data: payload.data };
}

// ------------------------------------------------------------------------------------- the processes, read once

export const processCache = new Map(); // processID -> ProcessView

export async function loadProcesses() {
  const data = await api('GET', '/processes');
  for (const process of data.items) processCache.set(process.processID, process);
  return data.items;
}

// ------------------------------------------------------------------------- what this server offers, read once

let routes = null; // Promise of the Set of 'METHOD path' of the server's OpenAPI document

/** The server's routes ('POST /api/v1/…/{id}/retry'), from its OpenAPI document; an empty set if it cannot be read. */
export function serverRoutes() {
  if (!routes) {
    routes = (async () => {
      try {
        const response = await fetch('/openapi.json', { cache: 'no-store' });
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        const document = await response.json();
        const found = new Set();
        for (const [path, operations] of Object.entries(document.paths || {})) {
          for (const method of Object.keys(operations)) found.add(`${method.toUpperCase()} ${path}`);
        }
        return found;
      } catch {
        routes = null; // read it again next time (a 401 before the token was given, a server restarting)
        return new Set();
      }
    })();
  }
  return routes;
}
