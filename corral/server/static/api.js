// Talking to the corral server: JSON calls, SSE and NDJSON streams, all with the API key when set.
// The key lives in localStorage (asked for once); a 401 anywhere brings back the login prompt.

const KEY = "corral.key";
let onUnauthorized = () => {};

export function setUnauthorizedHandler(fn) { onUnauthorized = fn; }
export function apiKey() { return localStorage.getItem(KEY) || ""; }
export function saveKey(key) { localStorage.setItem(KEY, key); }

export class ApiError extends Error {
  constructor(message, status) { super(message); this.status = status; }
}

function headers(extra = {}) {
  const h = { ...extra };
  const key = apiKey();
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

async function errorOf(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    const e = body.error;
    message = typeof e === "string" ? e : (e && e.message) || body.detail || message;
  } catch (_) { /* not JSON */ }
  if (response.status === 401) onUnauthorized(message);
  return new ApiError(message, response.status);
}

/** fetch with the key; throws ApiError (with the server's message) on a non-2xx answer. */
export async function call(method, path, body, { signal } = {}) {
  let response;
  try {
    response = await fetch(path, {
      method, signal,
      headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError("cannot reach the corral server: is it still running?", 0);
  }
  if (!response.ok) throw await errorOf(response);
  return response;
}

export async function getJSON(path, opts) { return (await call("GET", path, undefined, opts)).json(); }
export async function postJSON(path, body, opts) {
  const r = await call("POST", path, body, opts);
  return r.status === 204 ? null : r.json();
}
export async function send(method, path, body) {
  const r = await call(method, path, body);
  return r.status === 204 ? null : r.json();
}

async function* lines(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let nl;
    while ((nl = buffer.indexOf("\n")) >= 0) {
      yield buffer.slice(0, nl).replace(/\r$/, "");
      buffer = buffer.slice(nl + 1);
    }
  }
  if (buffer.trim()) yield buffer;
}

/** Server-sent events of an OpenAI-style stream: yields each parsed `data:` object until [DONE]. */
export async function* sse(path, body, signal) {
  const response = await call("POST", path, body, { signal });
  try {
    for await (const line of lines(response)) {
      if (!line.startsWith("data:")) continue;
      const data = line.slice(5).trim();
      if (data === "[DONE]") return;
      const obj = JSON.parse(data);
      if (obj.error) throw new ApiError(obj.error.message || String(obj.error), 500);
      yield obj;
    }
  } catch (e) {
    if (e.name === "AbortError" || e instanceof ApiError) throw e;
    throw new ApiError(BROKEN, 0);
  }
  throw new ApiError(BROKEN, 0);  // the stream ended without [DONE]: the server went away
}

const BROKEN = "the connection to the server broke mid-reply";

/** An NDJSON stream (Ollama style): yields each object; an {"error"} line throws. */
export async function* ndjson(path, body, signal) {
  const response = await call("POST", path, body, { signal });
  for await (const line of lines(response)) {
    if (!line.trim()) continue;
    const obj = JSON.parse(line);
    if (obj.error) throw new ApiError(obj.error, 500);
    yield obj;
  }
}
