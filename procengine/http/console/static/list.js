// The list of executions (#/ with ?status, ?process, ?limit, ?search): counts by status, filters, one page at a time, and
// the status event stream that moves the counts and the rows on and adds new executions at the top.

import { api, loadProcesses, processCache } from './api.js';
import { BulkBar } from './bulkbar.js';
import { EventStream } from './streams.js';
import { badge, crumbs, executionLink, fatal, progressBar, setLive, setProgress, show, showError } from './page.js';
import { $, between, eachLimited, fmtDuration, fmtTime, h, since } from './util.js';

const STATUSES = ['running', 'paused', 'completed', 'failed', 'cancelled'];
const COUNT_PAGE_SIZE = 500;
const COUNT_PAGES = 4;

function listParams() {
  const query = new URLSearchParams((location.hash.split('?')[1] || '').trim());
  const limit = Number(query.get('limit'));
  return {
    status: STATUSES.includes(query.get('status')) ? query.get('status') : '',
    process: /^[1-9][0-9]{0,18}$/.test(query.get('process') || '') ? query.get('process') : '',
    limit: [20, 50, 100].includes(limit) ? limit : 50,
    search: (query.get('search') || '').trim(),
  };
}

// The search field's filters (issue 23) as the list's query parameters: `attr.customer=acme errorType=Timeout`,
// separated by spaces or `&`; the server checks them (a 422 names a bad one).
const SEARCHED = /^(attr\.[^=]+|startedAfter|startedBefore|errorType|processKey)=/;

export function searchParams(text) {
  const pairs = [];
  for (const part of text.split(/[\s&]+/).filter(Boolean)) {
    if (!SEARCHED.test(part)) throw new Error(`search: ${part} is not attr.NAME=VALUE, startedAfter=, startedBefore=, errorType= or processKey=`);
    const at = part.indexOf('=');
    pairs.push([part.slice(0, at), part.slice(at + 1)]);
  }
  return pairs;
}

export function listHash({ status, process, limit, search = '' }) {
  const query = new URLSearchParams();
  if (status) query.set('status', status);
  if (process) query.set('process', process);
  if (limit !== 50) query.set('limit', String(limit));
  if (search) query.set('search', search);
  const text = query.toString();
  return text ? `#/?${text}` : '#/';
}

export class ListView {
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
    let searched = [];
    try { searched = searchParams(this.params.search); } catch { /* the list says what is wrong with it */ }
    this.bulk = new BulkBar(this.params, searched); // the selection and the bulk actions (bulkbar.js)
  }

  async start() {
    show('view-list');
    crumbs(['Executions', null]);
    $('filter-status').value = this.params.status;
    $('filter-limit').value = String(this.params.limit);
    $('filter-search').value = this.params.search;
    // the rows of the view before (a refresh, other filters) go at once: a row ticked there would not be this one's
    $('executions').tBodies[0].replaceChildren();
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
    for (const [name, value] of searchParams(this.params.search)) query.append(name, value);
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
      this.bulk.cell(summary.executionID),
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
      h('td', { class: 'attributes', text: attributesText(summary.attributes) }),
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
    if (this.params.search) return; // whether it matches the search is the server's to say: Refresh shows it
    const tr = this.row({
      executionID,
      processID: status.processID,
      processKey: status.processKey,
      processVersion: status.processVersion,
      status: status.status,
      startedAt: status.timing.startedAt,
      stoppedAt: status.timing.stoppedAt,
      parentExecutionID: status.parentExecutionID,
      attributes: status.attributes,
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

function attributesText(attributes) {
  const entries = Object.entries(attributes || {});
  return entries.length ? entries.map(([name, value]) => `${name}=${typeof value === 'string' ? value : JSON.stringify(value)}`).join(', ') : '—';
}
