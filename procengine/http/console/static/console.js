// The procengine web console: plain JavaScript (an ES module), no build step, no third-party code.
//
// Everything comes from the REST API under BASE with the bearer token of the token field (kept in
// sessionStorage). Live updates come from the API's server-sent event streams, read with fetch() and a
// ReadableStream reader (EventSource cannot send an Authorization header) and parsed here; a stream that
// breaks is opened again with Last-Event-ID. Nothing is polled: a view reads the API when it opens and again
// when an event says something changed.
//
// The page's Content-Security-Policy allows no inline script and no inline style, so the markup has neither:
// every element is built with the DOM API, every text goes in with textContent, and the only styles set from
// here are CSSOM properties (a progress bar's width).

const BASE = '/api/v1/process-engine';
const TOKEN_KEY = 'procengine.console.token';
const STATUSES = ['running', 'paused', 'completed', 'failed', 'cancelled'];
const ELEMENT_STATES = ['running', 'pending', 'retrying', 'interrupted', 'completed', 'failed', 'paused', 'idle'];
const COUNT_PAGE_SIZE = 500;
const COUNT_PAGES = 4;
const SVG_NS = 'http://www.w3.org/2000/svg';
const MAX_LOG_ROWS = 2000;
const STALE_STREAM_MS = 20000; // the server sends a keep-alive every few seconds; silence this long is a dead line

// ---------------------------------------------------------------------------------------------- DOM helpers

const $ = (id) => document.getElementById(id);

function build(el, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === 'text') el.textContent = String(value);
    else if (name === 'class') el.setAttribute('class', Array.isArray(value) ? value.filter(Boolean).join(' ') : value);
    else if (name.startsWith('on') && typeof value === 'function') el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** An HTML element. */
const h = (tag, attrs, ...children) => build(document.createElement(tag), attrs, children);
/** An SVG element. */
const s = (tag, attrs, ...children) => build(document.createElementNS(SVG_NS, tag), attrs, children);

function show(viewId) {
  for (const view of document.querySelectorAll('.view')) view.hidden = view.id !== viewId;
}

function crumbs(...parts) {
  $('crumbs').replaceChildren(
    ...parts.flatMap(([label, href], i) => [
      ...(i ? [h('span', { class: 'sep', text: '›' })] : []),
      href ? h('a', { href, text: label }) : h('span', { text: label }),
    ]),
  );
}

function clip(text, max) {
  const value = String(text ?? '');
  return value.length > max ? `${value.slice(0, max - 1)}…` : value;
}

function json(value, max = 4000) {
  let text;
  try {
    text = JSON.stringify(value, null, 2);
  } catch {
    text = String(value);
  }
  if (text === undefined) text = 'undefined';
  return text.length > max ? `${text.slice(0, max)}\n… (${text.length - max} more characters)` : text;
}

function compact(value, max = 300) {
  let text;
  try {
    text = JSON.stringify(value);
  } catch {
    text = String(value);
  }
  return clip(text ?? '', max);
}

// ------------------------------------------------------------------------------------------- time and numbers

function fmtTime(iso) {
  if (!iso) return '—';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  const sameDay = date.toDateString() === new Date().toDateString();
  const time = date.toLocaleTimeString([], { hour12: false });
  return sameDay ? time : `${date.toLocaleDateString()} ${time}`;
}

function fmtDuration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '—';
  if (ms < 0) ms = 0;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const sec = ms / 1000;
  if (sec < 60) return `${sec < 10 ? sec.toFixed(1) : Math.floor(sec)} s`;
  const min = Math.floor(sec / 60);
  if (min < 60) return `${min}m ${Math.floor(sec % 60)}s`;
  const hours = Math.floor(min / 60);
  if (hours < 48) return `${hours}h ${min % 60}m`;
  return `${Math.floor(hours / 24)}d ${hours % 24}h`;
}

const since = (iso) => (iso ? Date.now() - new Date(iso).getTime() : null);
const between = (from, to) => (from && to ? new Date(to).getTime() - new Date(from).getTime() : null);

// ------------------------------------------------------------------------------------------------ the API

class ApiError extends Error {
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

const token = () => sessionStorage.getItem(TOKEN_KEY) || '';
const authHeaders = () => (token() ? { Authorization: `Bearer ${token()}` } : {});

async function errorOf(response) {
  try {
    const body = await response.json();
    if (body && body.error) return new ApiError(response.status, body.error.code, body.error.message, body.error.details);
  } catch {
    // not an envelope
  }
  return new ApiError(response.status, `HTTP_${response.status}`, response.statusText || 'error');
}

/** The `data` of a successful answer; an ApiError otherwise (status 0: no answer at all). */
async function api(method, path, { body, headers } = {}) {
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
  return payload.data;
}

/** Run `work` over `items`, at most `limit` at a time. */
async function eachLimited(items, limit, work) {
  const queue = [...items];
  const workers = Array.from({ length: Math.min(limit, queue.length) }, async () => {
    while (queue.length) await work(queue.shift());
  });
  await Promise.all(workers);
}

// ------------------------------------------------------------------------------ server-sent events over fetch

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
class EventStream {
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

function setLive(state, waitMs) {
  const live = $('live');
  live.dataset.state = state;
  const text = {
    idle: 'idle',
    connecting: 'connecting…',
    live: 'live',
    ended: 'ended',
    failed: 'not live',
    reconnecting: `reconnecting in ${Math.ceil((waitMs || 0) / 1000)} s`,
  }[state];
  live.textContent = text || state;
  live.title =
    state === 'live'
      ? 'updated from the server-sent event stream as things happen'
      : state === 'ended'
        ? 'the execution has ended: its event stream is closed'
        : 'the event stream is not connected';
}

// ------------------------------------------------------------------------------------------ errors and notes

function showError(error) {
  const banner = $('error');
  const lines = [h('strong', { text: error.text || String(error) })];
  if (Array.isArray(error.details)) lines.push(h('ul', {}, error.details.map((d) => h('li', { text: d }))));
  if (error.status === 401) {
    lines.push(h('p', { text: 'The API wants a valid bearer token: enter it in the API token field above.' }));
  }
  banner.replaceChildren(...lines);
  banner.dataset.status = String(error.status || 0);
  banner.hidden = false;
}

function clearError() {
  $('error').hidden = true;
  $('error').replaceChildren();
}

/** A failure that leaves the view with nothing to show (401, 404): the view goes, the error stays. */
function fatal(error) {
  if (app.view) app.view.stop();
  show(null);
  setLive('failed');
  showError(error);
}

function note(text, kind = 'ok') {
  const el = $('action-result');
  el.textContent = text;
  el.dataset.kind = kind;
}

// ----------------------------------------------------------------------------------------- shared widgets

function badge(status) {
  return h('span', { class: `badge st-${status}`, text: status });
}

function setProgress(bar, percentage, status, label) {
  const pct = Math.max(0, Math.min(100, Number(percentage) || 0));
  bar.querySelector('.fill').style.width = `${pct}%`; // CSSOM, which the style-src policy allows
  bar.querySelector('.label').textContent = label ?? `${pct.toFixed(pct % 1 ? 1 : 0)}%`;
  bar.dataset.status = status || '';
  bar.setAttribute('aria-valuenow', String(pct));
}

function progressBar() {
  return h(
    'div',
    { class: 'progress', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100 },
    h('div', { class: 'fill' }),
    h('span', { class: 'label', text: '…' }),
  );
}

function executionLink(id, text) {
  return h('a', { href: `#/executions/${id}`, text: text ?? `#${id}` });
}

// ---------------------------------------------------------------------------------------- the list of executions

const processCache = new Map(); // processID -> ProcessView

async function loadProcesses() {
  const data = await api('GET', '/processes');
  for (const process of data.items) processCache.set(process.processID, process);
  return data.items;
}

function listParams() {
  const query = new URLSearchParams((location.hash.split('?')[1] || '').trim());
  const limit = Number(query.get('limit'));
  return {
    status: STATUSES.includes(query.get('status')) ? query.get('status') : '',
    process: /^[1-9][0-9]{0,18}$/.test(query.get('process') || '') ? query.get('process') : '',
    limit: [20, 50, 100].includes(limit) ? limit : 50,
  };
}

function listHash({ status, process, limit }) {
  const query = new URLSearchParams();
  if (status) query.set('status', status);
  if (process) query.set('process', process);
  if (limit !== 50) query.set('limit', String(limit));
  const text = query.toString();
  return text ? `#/?${text}` : '#/';
}

class ListView {
  constructor() {
    this.params = listParams();
    this.cursors = [null]; // the cursor of each page seen so far: Newer goes back through them
    this.page = 0;
    this.nextCursor = null;
    this.rows = new Map(); // executionID -> {tr, summary}
    this.known = new Map(); // executionID -> status, for the counts
    this.counts = null;
    this.countNote = '';
    this.stream = null;
    this.stopped = false;
  }

  async start() {
    show('view-list');
    crumbs(['Executions', null]);
    $('filter-status').value = this.params.status;
    $('filter-limit').value = String(this.params.limit);
    // Status changes from now on; what they change is applied once the counts and the page are read.
    this.stream = new EventStream('/executions/events', {
      onEvent: (event) => this.onStatusEvent(event),
      onError: (error) => (error.status === 401 ? fatal(error) : showError(error)),
      onState: setLive,
    }).start();
    try {
      await this.fillProcesses();
      await Promise.all([this.loadCounts(), this.loadPage()]);
    } catch (error) {
      if (!this.stopped) (error.status === 401 ? fatal : showError)(error);
    }
  }

  stop() {
    this.stopped = true;
    if (this.stream) this.stream.stop();
  }

  async fillProcesses() {
    const items = await loadProcesses();
    const select = $('filter-process');
    select.replaceChildren(
      h('option', { value: '', text: 'any' }),
      ...items
        .slice()
        .sort((a, b) => a.key.localeCompare(b.key) || a.version - b.version)
        .map((p) => h('option', { value: String(p.processID), text: `${p.key} v${p.version} (#${p.processID})` })),
    );
    select.value = this.params.process;
    if (select.value !== this.params.process) select.value = '';
  }

  async loadCounts() {
    const counts = Object.fromEntries(STATUSES.map((name) => [name, 0]));
    let cursor = null;
    let pages = 0;
    let seen = 0;
    do {
      const query = new URLSearchParams({ limit: String(COUNT_PAGE_SIZE) });
      if (cursor) query.set('cursor', cursor);
      const data = await api('GET', `/executions/processes?${query}`);
      pages += 1;
      for (const item of data.items) {
        if (!this.known.has(item.executionID)) {
          this.known.set(item.executionID, item.status);
          counts[item.status] += 1;
          seen += 1;
        }
      }
      cursor = data.nextCursor;
    } while (cursor && pages < COUNT_PAGES && !this.stopped);
    if (this.stopped) return;
    const source = `${pages} page${pages > 1 ? 's' : ''} of GET /executions/processes?limit=${COUNT_PAGE_SIZE}`;
    this.complete = !cursor;
    this.countNote = cursor
      ? `Counted over the newest ${seen} executions only (${source}); older ones are not counted. ` +
        'Every process, whatever the filters below; kept up to date from the status event stream.'
      : `Counted over all ${seen} executions (${source}), every process whatever the filters below; ` +
        'kept up to date from the status event stream.';
    this.counts = counts;
    this.renderCounts();
  }

  renderCounts() {
    if (!this.counts) return;
    const total = Object.values(this.counts).reduce((a, b) => a + b, 0);
    const chip = (label, value, status) =>
      h(
        'a',
        {
          class: ['count', status ? `st-${status}` : 'all', this.params.status === (status || '') ? 'on' : ''],
          href: listHash({ ...this.params, status: status || '' }),
          title: this.countNote,
          'data-status': status || 'all',
        },
        h('span', { class: 'n', text: `${value}${!this.complete && !status ? '+' : ''}` }),
        h('span', { class: 'what', text: label }),
      );
    $('counts').replaceChildren(
      chip('all', total, null),
      ...STATUSES.map((name) => chip(name, this.counts[name], name)),
      h('span', { class: 'count-note', title: this.countNote, text: this.complete ? 'all executions' : 'newest only' }),
    );
  }

  async loadPage() {
    const query = new URLSearchParams({ limit: String(this.params.limit) });
    if (this.params.status) query.set('status', this.params.status);
    if (this.params.process) query.set('processID', this.params.process);
    const cursor = this.cursors[this.page];
    if (cursor) query.set('cursor', cursor);
    const data = await api('GET', `/executions/processes?${query}`);
    if (this.stopped) return;
    this.nextCursor = data.nextCursor;
    const body = $('executions').tBodies[0];
    this.rows.clear();
    body.replaceChildren(...data.items.map((summary) => this.row(summary)));
    $('list-empty').hidden = data.items.length > 0;
    $('page-label').textContent = `page ${this.page + 1}`;
    $('page-newer').disabled = this.page === 0;
    $('page-older').disabled = !this.nextCursor;
    await eachLimited(data.items, 8, (summary) => this.refreshRow(summary.executionID));
  }

  row(summary) {
    const bar = progressBar();
    const process = processCache.get(summary.processID);
    const tr = h(
      'tr',
      { 'data-id': summary.executionID },
      h('td', {}, executionLink(summary.executionID)),
      h(
        'td',
        { title: process ? process.name : '' },
        h('span', { class: 'pkey', text: summary.processKey }),
        h('span', { class: 'muted', text: ` v${summary.processVersion}` }),
      ),
      h('td', { class: 'status' }, badge(summary.status)),
      h('td', { class: 'progress-cell' }, bar),
      h('td', { title: summary.startedAt, text: fmtTime(summary.startedAt) }),
      h('td', { class: 'age' }),
      h('td', {}, summary.parentExecutionID ? executionLink(summary.parentExecutionID) : '—'),
    );
    this.rows.set(summary.executionID, { tr, summary, bar });
    this.renderAge(this.rows.get(summary.executionID));
    return tr;
  }

  renderAge(entry) {
    const { summary } = entry;
    const cell = entry.tr.querySelector('.age');
    if (summary.stoppedAt) {
      cell.textContent = `took ${fmtDuration(between(summary.startedAt, summary.stoppedAt))}`;
      cell.title = `stopped ${summary.stoppedAt}`;
    } else {
      cell.textContent = `${fmtDuration(since(summary.startedAt))}`;
      cell.title = 'running or paused for';
    }
  }

  tick() {
    for (const entry of this.rows.values()) this.renderAge(entry);
  }

  async refreshRow(executionID) {
    const entry = this.rows.get(executionID);
    if (!entry) return;
    try {
      const status = await api('GET', `/executions/processes/${executionID}/status`);
      const { progress } = status;
      entry.summary = { ...entry.summary, status: status.status, stoppedAt: status.timing.stoppedAt };
      entry.tr.querySelector('.status').replaceChildren(badge(status.status));
      setProgress(
        entry.bar,
        progress.percentage,
        status.status,
        `${progress.completedNodes}/${progress.totalNodes} · ${Math.round(progress.percentage)}%`,
      );
      entry.bar.title = `as of ${new Date().toLocaleTimeString([], { hour12: false })}`;
      this.renderAge(entry);
    } catch (error) {
      if (error.status === 401) fatal(error);
    }
  }

  onStatusEvent(event) {
    if (event.event !== 'status') return;
    let change;
    try {
      change = JSON.parse(event.data);
    } catch {
      return;
    }
    if (this.counts) {
      const before = this.known.get(change.executionID);
      if (before !== change.status) {
        if (before) this.counts[before] -= 1;
        this.counts[change.status] += 1;
        this.known.set(change.executionID, change.status);
        this.renderCounts();
      }
    }
    const entry = this.rows.get(change.executionID);
    if (entry) {
      entry.tr.classList.remove('flash');
      void entry.tr.offsetWidth; // restart the highlight
      entry.tr.classList.add('flash');
      entry.tr.classList.toggle('filtered-out', !!this.params.status && this.params.status !== change.status);
      this.refreshRow(change.executionID);
    } else if (this.page === 0 && change.status === 'running' && (!this.params.status || this.params.status === 'running')) {
      this.addNew(change.executionID);
    }
  }

  async addNew(executionID) {
    let status;
    try {
      status = await api('GET', `/executions/processes/${executionID}/status`);
    } catch {
      return;
    }
    if (this.stopped || this.rows.has(executionID)) return;
    if (this.params.process && String(status.processID) !== this.params.process) return;
    const tr = this.row({
      executionID,
      processID: status.processID,
      processKey: status.processKey,
      processVersion: status.processVersion,
      status: status.status,
      startedAt: status.timing.startedAt,
      stoppedAt: status.timing.stoppedAt,
      parentExecutionID: status.parentExecutionID,
    });
    tr.classList.add('flash');
    const body = $('executions').tBodies[0];
    body.prepend(tr);
    $('list-empty').hidden = true;
    while (body.rows.length > this.params.limit) {
      const last = body.rows[body.rows.length - 1];
      this.rows.delete(Number(last.dataset.id));
      last.remove();
    }
    await this.refreshRow(executionID);
  }

  async older() {
    if (!this.nextCursor) return;
    this.cursors[this.page + 1] = this.nextCursor;
    this.page += 1;
    await this.loadPage().catch(showError);
  }

  async newer() {
    if (this.page === 0) return;
    this.page -= 1;
    await this.loadPage().catch(showError);
  }
}

// ---------------------------------------------------------------------------------------- the process graph

const G = { nodeW: 176, nodeH: 56, gapX: 38, gapY: 16, pad: 12, head: 60, laneHead: 18, laneGap: 8, margin: 14 };

/** Where an element can go on to: its `next`, branches of conditions and switches, timeouts and catch clauses. */
function successors(el) {
  const out = [];
  const add = (to, label, kind, title) => {
    if (to) out.push({ to, label, kind, title });
  };
  switch (el.type) {
    case 'if-condition':
      add(el.then, 'then', 'branch', el.condition);
      add(el.else ?? el.else_, 'else', 'branch', el.condition);
      break;
    case 'switch':
      (el.cases || []).forEach((c, i) => add(c.next, `case ${i + 1}`, 'branch', c.when));
      add(el.default, 'default', 'branch', 'no case matched');
      break;
    case 'wait-signal':
      add(el.next, '', 'next');
      add(el.onTimeout, 'timeout', 'timeout', 'no signal in time');
      break;
    case 'fail':
    case 'end':
      break;
    default:
      add(el.next, '', 'next');
  }
  for (const clause of el.catch || []) add(clause.next, 'catch', 'catch', `catch ${(clause.errors || []).join(', ')}`);
  return out;
}

/** Columns by longest path from the start (back edges of loops left out), in definition order within a column. */
function layoutLane(elements, start) {
  const byKey = new Map(elements.map((el, index) => [el.key, { el, index }]));
  const boxes = new Map(elements.map((el) => [el.key, layoutElement(el)]));
  const state = new Map();
  const back = new Set();
  const order = [];
  const visit = (key) => {
    state.set(key, 1);
    for (const edge of successors(byKey.get(key).el)) {
      if (!byKey.has(edge.to)) continue;
      const seen = state.get(edge.to);
      if (seen === 1) back.add(`${key}\u0000${edge.to}`);
      else if (!seen) visit(edge.to);
    }
    state.set(key, 2);
    order.push(key);
  };
  visit(start && byKey.has(start) ? start : elements[0].key);
  for (const el of elements) if (!state.has(el.key)) visit(el.key);
  order.reverse();
  const rank = new Map(order.map((key) => [key, 0]));
  for (const key of order) {
    for (const edge of successors(byKey.get(key).el)) {
      if (byKey.has(edge.to) && !back.has(`${key}\u0000${edge.to}`)) {
        rank.set(edge.to, Math.max(rank.get(edge.to), rank.get(key) + 1));
      }
    }
  }
  const columns = [];
  for (const el of elements) (columns[rank.get(el.key)] ||= []).push(el.key);
  const heights = columns.map((keys) => keys.reduce((sum, k) => sum + boxes.get(k).h, 0) + G.gapY * (keys.length - 1));
  const laneH = Math.max(...heights);
  const places = new Map();
  let x = 0;
  columns.forEach((keys, i) => {
    const width = Math.max(...keys.map((k) => boxes.get(k).w));
    let y = (laneH - heights[i]) / 2;
    for (const key of keys) {
      const box = boxes.get(key);
      places.set(key, { x: x + (width - box.w) / 2, y, ...box });
      y += box.h + G.gapY;
    }
    x += width + G.gapX;
  });
  const edges = [];
  for (const el of elements) {
    for (const edge of successors(el)) {
      if (byKey.has(edge.to)) edges.push({ from: el.key, ...edge, back: back.has(`${el.key}\u0000${edge.to}`) });
    }
  }
  const loops = edges.some((e) => e.back || rank.get(e.to) <= rank.get(e.from));
  return { w: x - G.gapX, h: laneH + (loops ? 34 : 0), places, edges };
}

function layoutElement(el) {
  if (el.type === 'parallel' || el.type === 'for-each') {
    const lanes =
      el.type === 'parallel'
        ? (el.branches || []).map((b) => ({ key: b.key, label: `branch ${b.key}`, lane: layoutLane(b.elements, b.start) }))
        : [{ key: 'body', label: `body, once per ${el.as ?? el.as_ ?? 'item'}`, lane: layoutLane(el.body.elements, el.body.start) }];
    const inner = Math.max(...lanes.map((l) => l.lane.w));
    const w = Math.max(G.nodeW, inner + 2 * G.pad);
    const h = G.head + lanes.reduce((sum, l) => sum + G.laneHead + l.lane.h + G.laneGap, 0) + G.pad - G.laneGap;
    return { w, h, lanes };
  }
  return { w: G.nodeW, h: G.nodeH, lanes: null };
}

function subtitle(el) {
  switch (el.type) {
    case 'task':
      return `task · ${el.handler}`;
    case 'set-variable':
      return `set ${Object.keys(el.set || {}).join(', ')}`;
    case 'if-condition':
      return `if ${el.condition}`;
    case 'switch':
      return `switch · ${(el.cases || []).length} case${(el.cases || []).length === 1 ? '' : 's'}`;
    case 'delay':
      return el.durationMs !== null && el.durationMs !== undefined
        ? `delay ${fmtDuration(el.durationMs)}`
        : `delay until ${el.until}`;
    case 'wait-signal':
      return `wait for '${el.signal}'`;
    case 'parallel':
      return `parallel · ${(el.branches || []).length} branches`;
    case 'for-each':
      return `for each in ${el.items} · ≤${el.maxConcurrency ?? 10}`;
    case 'call-process':
      return `call ${el.process}${el.version ? ` v${el.version}` : ''}`;
    case 'fail':
      return 'fail';
    case 'end':
      return 'end';
    default:
      return el.type;
  }
}

function edgePath(a, b, edge) {
  if (edge.back || b.x <= a.x) {
    // a loop back (or a jump to an earlier column): under both boxes
    const x1 = a.x + a.w / 2;
    const y1 = a.y + a.h;
    const x2 = b.x + b.w / 2;
    const y2 = b.y + b.h;
    const low = Math.max(y1, y2) + 26;
    return { d: `M${x1},${y1} C${x1},${low} ${x2},${low} ${x2},${y2 + 2}`, lx: (x1 + x2) / 2, ly: low - 4 };
  }
  const x1 = a.x + a.w;
  const y1 = a.y + a.h / 2;
  const x2 = b.x;
  const y2 = b.y + b.h / 2;
  const bend = Math.max(18, (x2 - x1) / 2);
  return { d: `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2 - 2},${y2}`, lx: (x1 + x2) / 2, ly: (y1 + y2) / 2 - 4 };
}

/**
 * The process as SVG: one lane per thread, one box per element (parallel and for-each as boxes holding their
 * branches and body), arrows for every way on. Built once per definition; `update` recolours it.
 */
class Graph {
  constructor(definition) {
    this.nodes = new Map(); // element key -> {g, el, title, statusText, child link}
    this.lanes = new Map(); // thread key -> its label
    const threads = definition.threads.map((thread) => ({ thread, lane: layoutLane(thread.elements, thread.start) }));
    const width = Math.max(...threads.map((t) => t.lane.w)) + 2 * G.margin;
    let y = G.margin;
    const groups = [];
    for (const { thread, lane } of threads) {
      const label = s('text', { class: 'thread-label', x: 0, y: 12 });
      this.lanes.set(thread.key, label);
      const g = s(
        'g',
        { class: 'thread', transform: `translate(${G.margin},${y})`, 'data-thread': thread.key },
        s('rect', { class: 'thread-bg', x: -6, y: -4, width: width - 2 * G.margin + 12, height: lane.h + 30, rx: 8 }),
        label,
        s('g', { transform: 'translate(0,22)' }, this.lane(lane, thread.elements)),
      );
      groups.push(g);
      y += lane.h + 30 + 14;
    }
    this.svg = s(
      'svg',
      {
        class: 'process-graph',
        xmlns: SVG_NS,
        width,
        height: y,
        viewBox: `0 0 ${width} ${y}`,
        role: 'img',
        'aria-label': `graph of process ${definition.key}`,
      },
      s(
        'defs',
        {},
        ['next', 'branch', 'timeout', 'catch'].map((kind) =>
          s(
            'marker',
            {
              id: `arrow-${kind}`,
              class: `arrow-${kind}`,
              viewBox: '0 0 10 10',
              refX: 9,
              refY: 5,
              markerWidth: 7,
              markerHeight: 7,
              orient: 'auto-start-reverse',
            },
            s('path', { d: 'M0,0 L10,5 L0,10 z' }),
          ),
        ),
      ),
      groups,
    );
  }

  lane(lane, elements) {
    const g = s('g', { class: 'lane' });
    for (const edge of lane.edges) {
      const { d, lx, ly } = edgePath(lane.places.get(edge.from), lane.places.get(edge.to), edge);
      g.append(
        s(
          'g',
          { class: `edge e-${edge.kind}` },
          edge.title ? s('title', { text: `${edge.from} → ${edge.to}: ${edge.title}` }) : null,
          s('path', { d, 'marker-end': `url(#arrow-${edge.kind})` }),
          edge.label ? s('text', { x: lx, y: ly, 'text-anchor': 'middle', text: edge.label }) : null,
        ),
      );
    }
    for (const el of elements) g.append(this.node(el, lane.places.get(el.key)));
    return g;
  }

  node(el, place) {
    const container = !!place.lanes;
    const title = s('title');
    const statusText = s('text', { class: 'st', x: 14, y: 48 });
    const g = s(
      'g',
      {
        class: ['node', `t-${el.type}`, container ? 'container' : ''],
        transform: `translate(${place.x},${place.y})`,
        'data-key': el.key,
        'data-type': el.type,
        'data-status': 'idle',
        tabindex: 0,
      },
      title,
      s('rect', { class: 'box', width: place.w, height: place.h, rx: 7 }),
      s('rect', { class: 'stripe', width: 6, height: place.h, rx: 3 }),
      s('text', { class: 'k', x: 14, y: 18, text: clip(el.key, Math.floor((place.w - 22) / 8)) }),
      s('text', { class: 'sub', x: 14, y: 33, text: clip(subtitle(el), Math.floor((place.w - 22) / 6.1)) }),
      statusText,
    );
    const entry = { g, el, title, statusText, child: null };
    if (el.type === 'call-process') {
      const child = s('text', { class: 'child-link', x: place.w - 10, y: 48, 'text-anchor': 'end' });
      entry.child = s('a', { href: '#', class: 'child' }, child);
      entry.childText = child;
      entry.child.addEventListener('click', (event) => {
        if (!entry.childId) event.preventDefault();
      });
      g.append(entry.child);
    }
    if (container) {
      let y = G.head;
      for (const { key, label, lane } of place.lanes) {
        const elements = el.type === 'parallel' ? el.branches.find((b) => b.key === key).elements : el.body.elements;
        g.append(
          s('rect', { class: 'lane-bg', x: G.pad - 4, y: y - 2, width: place.w - 2 * G.pad + 8, height: G.laneHead + lane.h + 2, rx: 5 }),
          s('text', { class: 'lane-label', x: G.pad, y: y + 11, text: clip(label, 40) }),
          s('g', { transform: `translate(${G.pad + (place.w - 2 * G.pad - lane.w) / 2},${y + G.laneHead})` }, this.lane(lane, elements)),
        );
        y += G.laneHead + lane.h + G.laneGap;
      }
    }
    this.nodes.set(el.key, entry);
    return g;
  }

  /** Colour every element by its record (GET .../elements) and the stack (GET .../state). */
  update({ status, records, stack, children, threads }) {
    const execution = status.status;
    for (const [key, entry] of this.nodes) {
      const record = records.get(key);
      const entries = stack.get(key) || [];
      let state = 'idle';
      if (record && ['running', 'retrying', 'interrupted'].includes(record.status)) state = record.status;
      else if (entries.length) state = entries.some((e) => e.started_at_ms && !e.rerun) ? 'running' : 'pending';
      else if (record) state = record.status;
      const frozen = execution === 'paused' && ['running', 'pending', 'retrying'].includes(state);
      const stopped = ['cancelled', 'failed', 'completed'].includes(execution) && ['running', 'pending', 'retrying'].includes(state);
      entry.g.dataset.status = state;
      entry.g.classList.remove(...ELEMENT_STATES.map((st) => `st-${st}`), 'frozen', 'stopped', 'caught');
      entry.g.classList.add(`st-${state}`);
      if (frozen) entry.g.classList.add('frozen');
      if (stopped) entry.g.classList.add('stopped');
      if (record && record.caught) entry.g.classList.add('caught');
      entry.g.dataset.frozen = frozen ? 'true' : 'false';
      let label = state === 'idle' ? 'not reached' : state;
      if (frozen) label = `paused (${state})`;
      if (stopped) label = `stopped (${execution})`;
      const fanout = entries.find((e) => e.branches);
      if (fanout) label += ` · ${fanout.branches.ended}/${fanout.branches.total} done`;
      else if (entries.length > 1) label += ` · ×${entries.length}`;
      if (record && record.attempts > 1) label += ` · attempt ${record.attempts}`;
      entry.statusText.textContent = label;
      entry.title.textContent = this.tooltip(entry.el, state, record, entries, execution, children.get(key));
      if (entry.child) {
        const ids = children.get(key) || [];
        entry.childId = ids[ids.length - 1] || null;
        entry.childText.textContent = entry.childId ? `child #${entry.childId} ↗` : '';
        entry.child.setAttribute('href', entry.childId ? `#/executions/${entry.childId}` : '#');
      }
    }
    for (const [key, label] of this.lanes) {
      const thread = threads.get(key);
      label.textContent = thread
        ? `thread ${key} · ${thread.status} · ${thread.completedNodes}/${thread.totalNodes}`
        : `thread ${key}`;
    }
    this.svg.dataset.executionStatus = execution;
  }

  tooltip(el, state, record, entries, execution, childIds) {
    const lines = [`${el.key} (${el.type})`, subtitle(el), `status: ${state === 'idle' ? 'not reached' : state}`];
    if (execution === 'paused' && state !== 'idle') lines.push('the execution is paused');
    if (record) {
      lines.push(`attempts: ${record.attempts}`);
      if (record.startedAt) lines.push(`started: ${record.startedAt}`);
      if (record.stoppedAt) lines.push(`stopped: ${record.stoppedAt}`);
      const took = record.stoppedAt ? between(record.startedAt, record.stoppedAt) : since(record.startedAt);
      if (record.startedAt) lines.push(`${record.stoppedAt ? 'took' : 'running for'}: ${fmtDuration(took)}`);
      if (record.path) lines.push(`lane: ${record.path}`);
      if (record.error) lines.push(`error: ${record.errorType ? `${record.errorType}: ` : ''}${record.error}`);
      if (record.caught) lines.push(`caught: went on at ${record.caught}`);
    }
    for (const entry of entries.slice(0, 8)) {
      const bits = [`on the stack in ${entry.path}`, `attempt ${entry.attempt}`];
      if (entry.due_at_ms) bits.push(`due ${new Date(entry.due_at_ms).toISOString()}`);
      if (entry.remaining_ms !== undefined) bits.push(`${fmtDuration(entry.remaining_ms)} left (frozen)`);
      if (entry.rerun) bits.push('runs again on resume');
      if (entry.branches) bits.push(`lanes ${entry.branches.started} started, ${entry.branches.ended} of ${entry.branches.total} ended`);
      if (entry.child_execution_id) bits.push(`child #${entry.child_execution_id}`);
      lines.push(bits.join(', '));
    }
    if (entries.length > 8) lines.push(`… and ${entries.length - 8} more on the stack`);
    if (childIds && childIds.length) lines.push(`children: ${childIds.map((id) => `#${id}`).join(', ')}`);
    return lines.join('\n');
  }
}

function legend() {
  const items = [
    ['running', 'running'],
    ['pending', 'pending (on the stack, not started)'],
    ['retrying', 'retrying (backing off)'],
    ['interrupted', 'interrupted (cut short)'],
    ['completed', 'completed'],
    ['failed', 'failed'],
    ['frozen', 'paused with the execution'],
    ['idle', 'not reached'],
  ];
  return items.map(([state, text]) => h('span', { class: `key st-${state}` }, h('i'), text));
}

// ---------------------------------------------------------------------------------------- one execution

class ExecutionView {
  constructor(id) {
    this.id = id;
    this.seen = new Set(); // log entry ids already shown
    this.children = new Map(); // call-process key -> child execution ids (from child-started entries)
    this.stream = null;
    this.graph = null;
    this.definition = null;
    this.status = null;
    this.fetchedAt = 0;
    this.refreshing = null;
    this.again = false;
    this.ended = false; // the log showed the final transition
    this.stopped = false;
  }

  path(tail = '') {
    return `/executions/processes/${this.id}${tail}`;
  }

  async start() {
    show('view-execution');
    crumbs(['Executions', '#/'], [`#${this.id}`, null]);
    $('exec-title').textContent = `Execution #${this.id}`;
    for (const id of ['exec-status', 'exec-process', 'variables', 'outputs', 'graph', 'exec-facts']) $(id).replaceChildren();
    for (const id of ['log', 'elements', 'stack']) $(id).tBodies[0].replaceChildren();
    $('legend').replaceChildren(...legend());
    $('exec-error').hidden = true;
    note('');
    setLive('idle');
    let status;
    let log;
    try {
      [status, log] = await Promise.all([api('GET', this.path('/status')), api('GET', this.path('/log'))]);
      if (!processCache.has(status.processID)) {
        processCache.set(status.processID, await api('GET', `/processes/${status.processID}`));
      }
    } catch (error) {
      if (!this.stopped) fatal(error);
      return;
    }
    if (this.stopped) return;
    this.definition = processCache.get(status.processID);
    this.graph = new Graph(this.definition.definition);
    $('graph').replaceChildren(this.graph.svg);
    $('graph-caption').textContent = `${this.definition.key} v${this.definition.version}`;
    $('signal-names').replaceChildren(...signalNames(this.definition.definition).map((n) => h('option', { value: n })));
    for (const entry of log.items) this.addLog(entry, false);
    $('log-caption').textContent = logCaption(log.items.length);
    this.render({ status });
    await this.refresh();
    if (this.stopped) return;
    if (!this.status.isActive) {
      if (!this.ended) {
        // It ended between the two reads: the log read first lacks the end.
        const rest = await api('GET', this.path('/log')).catch(() => ({ items: [] }));
        for (const entry of rest.items) this.addLog(entry, false);
        $('log-caption').textContent = logCaption(this.seen.size);
      }
      setLive('ended');
      return;
    }
    const last = log.items.length ? log.items[log.items.length - 1].id : null;
    this.stream = new EventStream(this.path('/events'), {
      lastId: last,
      onEvent: (event) => this.onLogEvent(event),
      onEnd: () => {
        // The server ends the stream after the final transition; any other end (a proxy, a restart) is a
        // break like any other: open it again after what was seen.
        this.refreshSoon();
        return !this.ended;
      },
      onError: (error) => (error.status === 401 || error.status === 404 ? fatal(error) : showError(error)),
      onState: (state, wait) => {
        setLive(state, wait);
        if (state === 'live') this.refreshSoon(); // catch up on what happened while the line was down
      },
    }).start();
  }

  stop() {
    this.stopped = true;
    if (this.stream) this.stream.stop();
  }

  onLogEvent(event) {
    let entry;
    try {
      entry = JSON.parse(event.data);
    } catch {
      return;
    }
    if (this.addLog(entry, true)) {
      $('log-caption').textContent = logCaption(this.seen.size);
      this.refreshSoon();
    }
  }

  addLog(entry, live) {
    if (!entry || typeof entry.id !== 'string' || this.seen.has(entry.id)) return false;
    this.seen.add(entry.id);
    if (['completed', 'failed', 'cancelled'].includes(entry.event) && entry.elementKey === null) this.ended = true;
    if (entry.event === 'child-started' && entry.elementKey && entry.detail && entry.detail.childExecutionID) {
      const ids = this.children.get(entry.elementKey) || [];
      ids.push(entry.detail.childExecutionID);
      this.children.set(entry.elementKey, ids);
    }
    const detail = { ...(entry.detail || {}) };
    const tr = h(
      'tr',
      { class: ['ev', `ev-${entry.event}`, live ? 'flash' : ''], 'data-id': entry.id },
      h('td', { title: entry.at, text: fmtTime(entry.at) }),
      h('td', {}, h('span', { class: `event ev-${entry.event}`, text: entry.event })),
      h('td', { text: entry.elementKey ?? '—' }),
      h('td', { class: 'detail' }, detailCell(detail)),
    );
    const box = $('log-scroll');
    const atEnd = box.scrollTop + box.clientHeight >= box.scrollHeight - 30;
    const rows = $('log').tBodies[0];
    rows.append(tr);
    while (rows.rows.length > MAX_LOG_ROWS) rows.rows[0].remove(); // the newest only: the log may hold 10,000
    if (atEnd || !live) box.scrollTop = box.scrollHeight; // follow the tail unless scrolled back to read
    return true;
  }

  refreshSoon() {
    if (this.refreshing) {
      this.again = true;
      return;
    }
    this.refreshing = new Promise((resolve) => setTimeout(resolve, 60))
      .then(() => this.refresh())
      .finally(() => {
        this.refreshing = null;
        if (this.again && !this.stopped) {
          this.again = false;
          this.refreshSoon();
        }
      });
  }

  async refresh() {
    if (this.stopped) return;
    try {
      const [status, elements, state] = await Promise.all([
        api('GET', this.path('/status')),
        api('GET', this.path('/elements')),
        api('GET', this.path('/state')),
      ]);
      if (this.stopped) return;
      this.render({ status, elements, state });
    } catch (error) {
      if (this.stopped) return;
      if (error.status === 401 || error.status === 404) fatal(error);
      else showError(error);
    }
  }

  render({ status, elements, state }) {
    this.status = status;
    this.fetchedAt = Date.now();
    const st = $('exec-status');
    st.className = `badge st-${status.status}`;
    st.textContent = status.status;
    const name = this.definition ? this.definition.name : '';
    $('exec-process').replaceChildren(
      h('a', { href: listHash({ status: '', process: String(status.processID), limit: 50 }), text: `${status.processKey} v${status.processVersion}` }),
      name && name !== status.processKey ? ` — ${name}` : '',
    );
    crumbs(['Executions', '#/'], [`#${this.id} ${status.processKey}`, null]);
    const { progress } = status;
    setProgress(
      $('exec-progress'),
      progress.percentage,
      status.status,
      `${progress.completedNodes} of ${progress.totalNodes} elements · ${progress.percentage}%` +
        (progress.failedNodes ? ` · ${progress.failedNodes} failed` : ''),
    );
    this.renderFacts();
    const failure = $('exec-error');
    failure.hidden = !status.error;
    if (status.error) {
      const e = status.error;
      failure.replaceChildren(
        h('strong', { text: `Failed at ${e.element ?? '?'}: ` }),
        `${e.type ? `${e.type}: ` : ''}${e.error ?? ''}`,
        e.attempts ? h('span', { class: 'muted', text: ` (after ${e.attempts} attempt${e.attempts > 1 ? 's' : ''})` }) : '',
      );
    }
    $('do-pause').disabled = status.status !== 'running';
    $('do-resume').disabled = status.status !== 'paused';
    $('do-cancel').disabled = !status.isActive;
    $('signal-form').querySelector('button').disabled = !status.isActive;
    if (!elements || !state) return;
    const records = new Map(elements.items.map((r) => [r.key, r]));
    const stackEntries = (state.stack && Array.isArray(state.stack.execution_stack) && state.stack.execution_stack) || [];
    const stack = new Map();
    for (const entry of stackEntries) {
      if (!stack.has(entry.element_key)) stack.set(entry.element_key, []);
      stack.get(entry.element_key).push(entry);
      if (entry.child_execution_id) {
        const ids = this.children.get(entry.element_key) || [];
        if (!ids.includes(entry.child_execution_id)) ids.push(entry.child_execution_id);
        this.children.set(entry.element_key, ids);
      }
    }
    if (this.graph) {
      this.graph.update({
        status,
        records,
        stack,
        children: this.children,
        threads: new Map(status.threads.map((t) => [t.threadKey, t])),
      });
    }
    this.renderMemory(state);
    this.renderStack(stackEntries, state);
    this.renderElements(elements.items);
  }

  renderFacts() {
    const status = this.status;
    if (!status) return;
    const t = status.timing;
    this.durationEl = h('span');
    this.pausedEl = h('span');
    this.pausedTotalEl = h('span');
    const facts = [
      ['Started', h('span', { title: t.startedAt, text: fmtTime(t.startedAt) })],
      ['Stopped', h('span', { title: t.stoppedAt || '', text: fmtTime(t.stoppedAt) })],
      ['Duration', this.durationEl],
      ['Paused since', this.pausedEl],
      ['Paused in all', this.pausedTotalEl],
      ['Parent', status.parentExecutionID ? executionLink(status.parentExecutionID) : '—'],
      [
        'Children',
        status.children.length
          ? h('span', { class: 'children' }, status.children.map((id, i) => [i ? ', ' : '', executionLink(id)]))
          : '—',
      ],
      [
        'Threads',
        h(
          'span',
          {},
          status.threads.map((th, i) => [
            i ? ', ' : '',
            `${th.threadKey} `,
            h('span', { class: `mini st-${th.status}`, text: th.status }),
            ` ${th.completedNodes}/${th.totalNodes}`,
          ]),
        ),
      ],
    ];
    $('exec-facts').replaceChildren(...facts.map(([dt, dd]) => h('div', {}, h('dt', { text: dt }), h('dd', {}, dd))));
    this.tick();
  }

  /** The clock moves durations on between reads (no request). */
  tick() {
    const status = this.status;
    if (!status || !this.durationEl) return;
    const t = status.timing;
    const running = status.isActive ? Date.now() - this.fetchedAt : 0;
    this.durationEl.textContent = fmtDuration(t.durationMs + running);
    this.pausedEl.textContent = t.pausedAt ? `${fmtTime(t.pausedAt)} (${fmtDuration(since(t.pausedAt))} ago)` : '—';
    this.pausedEl.title = t.pausedAt || '';
    this.pausedTotalEl.textContent = fmtDuration(t.pausedDurationMs + (t.pausedAt ? since(t.pausedAt) : 0));
  }

  renderMemory(state) {
    const memory = state.memory;
    const vars = $('variables');
    const outs = $('outputs');
    if (!memory || memory.error) {
      const why = memory && memory.error ? `memory cannot be read: ${memory.error}` : 'no memory: the execution was cancelled';
      vars.replaceChildren(h('p', { class: 'empty', text: why }));
      outs.replaceChildren(h('p', { class: 'empty', text: why }));
      return;
    }
    const variables = memory.variables || {};
    const parts = [kvTable(variables, 'no variables yet')];
    const signals = memory.signals || {};
    if (Object.keys(signals).length) {
      parts.push(h('h3', { text: 'Signals waiting to be consumed' }), kvTable(signals, ''));
    }
    if (memory.scopes && Object.keys(memory.scopes).length) {
      parts.push(h('details', {}, h('summary', { text: 'Variables of running branches and iterations' }), kvTable(memory.scopes, '')));
    }
    if (memory.fanouts && Object.keys(memory.fanouts).length) {
      parts.push(h('details', {}, h('summary', { text: 'For-each items and results so far' }), kvTable(memory.fanouts, '')));
    }
    parts.push(h('p', { class: 'muted small', text: `saved ${fmtTime(state.savedAt)}` }));
    vars.replaceChildren(...parts);
    const outputs = memory.node_outputs || {};
    const rows = Object.entries(outputs).map(([key, out]) =>
      h(
        'tr',
        {},
        h('th', { text: key }),
        h('td', { class: 'narrow' }, h('span', { class: `mini st-${out && out.status === 'failed' ? 'failed' : 'completed'}`, text: (out && out.status) || '?' })),
        h('td', {}, h('pre', { text: out && 'data' in out ? json(out.data) : out && out.error ? `${out.type}: ${out.error}` : '—' })),
      ),
    );
    outs.replaceChildren(rows.length ? h('table', { class: 'kv' }, h('tbody', {}, rows)) : h('p', { class: 'empty', text: 'no outputs yet' }));
  }

  renderStack(entries, state) {
    const body = $('stack').tBodies[0];
    $('stack-caption').textContent = state.active ? `${entries.length} entr${entries.length === 1 ? 'y' : 'ies'}` : 'not active';
    body.replaceChildren(
      ...entries.map((e) => {
        const notes = [];
        if (e.due_at_ms) notes.push(`due ${fmtTime(new Date(e.due_at_ms).toISOString())}`);
        if (e.remaining_ms !== undefined) notes.push(`${fmtDuration(e.remaining_ms)} left, frozen`);
        if (e.rerun) notes.push('runs again');
        if (e.branches) notes.push(`lanes: ${e.branches.started} started, ${e.branches.ended}/${e.branches.total} ended`);
        return h(
          'tr',
          {},
          h('td', { text: e.element_key }),
          h('td', { text: e.element_type }),
          h('td', { text: e.path }),
          h('td', { text: e.attempt }),
          h('td', { text: e.started_at_ms ? fmtTime(new Date(e.started_at_ms).toISOString()) : '—' }),
          h('td', {}, notes.join('; '), e.child_execution_id ? [notes.length ? '; ' : '', executionLink(e.child_execution_id, `child #${e.child_execution_id}`)] : ''),
        );
      }),
    );
  }

  renderElements(items) {
    $('elements').tBodies[0].replaceChildren(
      ...items.map((r) =>
        h(
          'tr',
          { 'data-key': r.key },
          h('td', { text: r.key }),
          h('td', { text: r.type }),
          h('td', { text: r.path || r.threadKey }),
          h('td', {}, h('span', { class: `mini st-${r.status}`, text: r.status })),
          h('td', { text: r.attempts }),
          h('td', { title: r.startedAt || '', text: fmtTime(r.startedAt) }),
          h('td', { text: r.stoppedAt ? fmtDuration(between(r.startedAt, r.stoppedAt)) : r.startedAt ? `${fmtDuration(since(r.startedAt))}…` : '—' }),
          h('td', { class: 'err', title: r.error || '', text: r.error ? clip(`${r.errorType ? `${r.errorType}: ` : ''}${r.error}${r.caught ? ` (caught → ${r.caught})` : ''}`, 160) : '' }),
        ),
      ),
    );
  }

  async command(name) {
    const button = $(`do-${name}`);
    if (name === 'cancel' && button.dataset.armed !== 'true') {
      // Cancel cannot be undone: the first press arms the button, the second one cancels.
      button.dataset.armed = 'true';
      button.textContent = 'Really cancel?';
      setTimeout(() => {
        button.dataset.armed = 'false';
        button.textContent = 'Cancel';
      }, 4000);
      return;
    }
    button.dataset.armed = 'false';
    button.textContent = name === 'cancel' ? 'Cancel' : button.textContent;
    const reason = $('reason').value.trim();
    for (const b of $('actions').querySelectorAll('button')) b.disabled = true;
    note(`${name}…`, 'busy');
    try {
      const result = await api('POST', this.path(`/${name}`), { body: reason ? { reason } : undefined });
      note(`${name}: the execution is ${result.status}`);
      $('reason').value = '';
    } catch (error) {
      const now = error.details && error.details.status ? ` (it is ${error.details.status})` : '';
      note(`${name} refused: ${error.text}${now}`, 'error');
      if (error.status === 401) fatal(error);
    }
    this.refreshSoon();
  }

  async signal() {
    const name = $('signal-name').value.trim();
    const text = $('signal-payload').value.trim();
    if (!/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(name)) {
      note('a signal name is a letter or _ followed by letters, digits, _ . -', 'error');
      return;
    }
    if (text) {
      try {
        JSON.parse(text);
      } catch (error) {
        note(`the payload is not JSON: ${error.message}`, 'error');
        return;
      }
    }
    try {
      const result = await api('POST', this.path(`/signals/${encodeURIComponent(name)}`), { body: text || undefined });
      note(`signal '${result.signal}' accepted`);
    } catch (error) {
      note(`signal refused: ${error.text}`, 'error');
      if (error.status === 401) fatal(error);
    }
  }
}

function logCaption(count) {
  return count > MAX_LOG_ROWS ? `${count} entries, the newest ${MAX_LOG_ROWS} shown` : `${count} entries`;
}

function signalNames(definition) {
  const names = new Set();
  const walk = (elements) => {
    for (const el of elements || []) {
      if (el.type === 'wait-signal') names.add(el.signal);
      if (el.type === 'parallel') for (const b of el.branches || []) walk(b.elements);
      if (el.type === 'for-each' && el.body) walk(el.body.elements);
    }
  };
  for (const thread of definition.threads || []) walk(thread.elements);
  return [...names].sort();
}

function kvTable(object, empty) {
  const entries = Object.entries(object || {});
  if (!entries.length) return h('p', { class: 'empty', text: empty });
  return h(
    'table',
    { class: 'kv' },
    h('tbody', {}, entries.map(([key, value]) => h('tr', {}, h('th', { text: key }), h('td', {}, h('pre', { text: json(value) }))))),
  );
}

function detailCell(detail) {
  const parts = [];
  const by = detail.by;
  const reason = detail.reason;
  delete detail.requestId;
  if (detail.from !== undefined && detail.to !== undefined) {
    parts.push(h('span', { class: 'move', text: `${detail.from || '∅'} → ${detail.to}` }));
    delete detail.from;
    delete detail.to;
  }
  if (by) parts.push(h('span', { class: 'by', text: `by ${by}` }));
  if (reason) parts.push(h('q', { text: reason }));
  delete detail.by;
  delete detail.reason;
  const rest = Object.keys(detail).length ? compact(detail) : '';
  if (rest) parts.push(h('code', { text: rest }));
  return parts;
}

// ------------------------------------------------------------------------------------------- the app

const app = { view: null };

function route() {
  if (app.view) app.view.stop();
  clearError();
  setLive('idle');
  const match = /^#\/executions\/([1-9][0-9]{0,18})$/.exec(location.hash);
  app.view = match ? new ExecutionView(match[1]) : new ListView();
  app.view.start();
}

function boot() {
  const field = $('token');
  field.value = token();
  $('token-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const value = field.value.trim();
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
    route();
  });
  $('token-forget').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    field.value = '';
    route();
  });
  $('filters').addEventListener('change', () => {
    location.hash = listHash({
      status: $('filter-status').value,
      process: $('filter-process').value,
      limit: Number($('filter-limit').value),
    });
  });
  $('filters').addEventListener('submit', (event) => event.preventDefault());
  $('refresh').addEventListener('click', route);
  $('search').addEventListener('submit', (event) => {
    event.preventDefault();
    const id = $('search-id').value.trim().replace(/^#/, '');
    if (/^[1-9][0-9]{0,18}$/.test(id)) location.hash = `#/executions/${id}`;
    else showError(new ApiError(0, 'BAD_ID', `'${id}' is not an execution id (a positive integer)`));
  });
  $('page-older').addEventListener('click', () => app.view instanceof ListView && app.view.older());
  $('page-newer').addEventListener('click', () => app.view instanceof ListView && app.view.newer());
  for (const button of $('actions').querySelectorAll('button[data-command]')) {
    button.addEventListener('click', () => app.view instanceof ExecutionView && app.view.command(button.dataset.command));
  }
  $('actions').addEventListener('submit', (event) => event.preventDefault());
  $('signal-form').addEventListener('submit', (event) => {
    event.preventDefault();
    if (app.view instanceof ExecutionView) app.view.signal();
  });
  window.addEventListener('hashchange', route);
  setInterval(() => app.view && app.view.tick && app.view.tick(), 1000); // ages and durations: the clock, not the API
  route();
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot);
else boot();
