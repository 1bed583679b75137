// The API's server-sent event streams, read with fetch() and a ReadableStream reader (EventSource cannot send an
// Authorization header) and parsed here. A stream that breaks or goes silent is opened again with Last-Event-ID.

import { BASE, authHeaders, errorOf } from './api.js';

const STALE_STREAM_MS = 20000; // the server sends a keep-alive every few seconds; silence this long is a dead line

/**
 * Read a text/event-stream body (the WHATWG rules, as far as this API uses them): `onEvent({id, event, data})`
 * at each blank line that ends an event; `id` is the last id seen so far, `data` null when the event had none
 * (an id alone still moves Last-Event-ID on). `onBytes()` on every chunk, keep-alive comments included.
 */
async function readEventStream(body, onEvent, onBytes) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let lastId = null;
  let event = { type: 'message', data: [], fields: 0 };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    onBytes();
    buffer += value;
    const lines = buffer.split('\n');
    buffer = lines.pop();
    for (const raw of lines) {
      const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
      if (line === '') {
        if (event.fields) onEvent({ id: lastId, event: event.type, data: event.data.length ? event.data.join('\n') : null });
        event = { type: 'message', data: [], fields: 0 };
        continue;
      }
      if (line.startsWith(':')) continue; // a comment: the keep-alive
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      event.fields += 1;
      if (field === 'data') event.data.push(value);
      else if (field === 'event') event.type = value;
      else if (field === 'id' && !value.includes('\0')) lastId = value;
    }
  }
}

/**
 * One event stream of the API, kept open: a broken or silent line is opened again after a back-off with
 * Last-Event-ID, so no event is lost or seen twice. `onEnd` says whether to reconnect after the server ended
 * the stream; 4xx answers stop it and go to `onError`.
 */
export class EventStream {
  constructor(path, { lastId = null, onEvent, onEnd, onError, onState }) {
    this.path = path;
    this.lastId = lastId;
    this.handlers = { onEvent, onEnd, onError, onState: onState || (() => {}) };
    this.stopped = false;
    this.backoffMs = 1000;
    this.abort = null;
    this.timer = null;
    this.watchdog = null;
  }

  start() {
    this.connect();
    return this;
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.watchdog);
    if (this.abort) this.abort.abort();
  }

  async connect() {
    if (this.stopped) return;
    const abort = new AbortController();
    this.abort = abort;
    const headers = { Accept: 'text/event-stream', ...authHeaders() };
    if (this.lastId) headers['Last-Event-ID'] = this.lastId;
    this.handlers.onState('connecting');
    let response;
    try {
      response = await fetch(BASE + this.path, { headers, cache: 'no-store', signal: abort.signal });
    } catch (error) {
      this.retry(error);
      return;
    }
    if (this.stopped) {
      abort.abort();
      return;
    }
    if (!response.ok) {
      const error = await errorOf(response);
      if (this.stopped) return; // stopped while the body was read (which aborts it): nothing to report
      if (response.status >= 500) {
        const after = Number(response.headers.get('Retry-After'));
        this.retry(error, after > 0 ? after * 1000 : null);
      } else if (response.status === 422 && this.lastId) {
        // The id is not one the stream knows (trimmed away?): start over; what was seen is skipped by id.
        this.lastId = null;
        this.retry(error, 0);
      } else {
        this.stopped = true;
        this.handlers.onState('failed');
        this.handlers.onError(error);
      }
      return;
    }
    this.backoffMs = 1000;
    this.handlers.onState('live');
    let heard = Date.now();
    clearInterval(this.watchdog);
    this.watchdog = setInterval(() => {
      if (Date.now() - heard > STALE_STREAM_MS) abort.abort();
    }, 5000);
    try {
      await readEventStream(
        response.body,
        (event) => {
          if (event.id) this.lastId = event.id;
          if (event.data !== null) this.handlers.onEvent(event);
        },
        () => {
          heard = Date.now();
        },
      );
    } catch (error) {
      clearInterval(this.watchdog);
      this.retry(error);
      return;
    }
    clearInterval(this.watchdog);
    if (this.stopped) return;
    if (this.handlers.onEnd && !this.handlers.onEnd()) {
      this.stopped = true;
      this.handlers.onState('ended');
      return;
    }
    this.retry(null);
  }

  retry(error, waitMs = null) {
    if (this.stopped) return;
    const wait = waitMs ?? this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, 15000);
    this.handlers.onState('reconnecting', wait, error);
    this.timer = setTimeout(() => this.connect(), wait);
  }
}
