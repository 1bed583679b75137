// The Processes page (#/processes, #/processes/{processID}): every definition of the tenant with its versions, how
// many executions of each version are in each status (each count links to the list filtered so), and for the version
// picked its graph (graph.js, as on the execution page), Deprecate / Undeprecate, Delete (a version no stored
// execution uses), and a Start form: variables and search attributes as JSON (the server's 422 problems shown under
// the fields) and an optional idempotency key. The counts follow the status event stream (read again at most once a second).

import { ApiError, api, apiAnswer, processCache } from './api.js';
import { Graph } from './graph.js';
import { crumbs, executionLink, fatal, setLive, show, showError } from './page.js';
import { fillProblem } from './repair.js';
import { EventStream } from './streams.js';
import { $, fmtTime, h } from './util.js';

const STATUSES = ['running', 'paused', 'completed', 'failed', 'cancelled'];
const RECOUNT_MS = 1000;

export const processesHash = (id) => (id ? `#/processes/${id}` : '#/processes');

const total = (item) => STATUSES.reduce((sum, name) => sum + ((item.executions || {})[name] || 0), 0);

export class ProcessesView {
  constructor(selected) {
    this.selected = selected ? Number(selected) : null;
    this.items = [];
    this.stream = null;
    this.stopped = false;
    this.recount = null;
    this.shownGraph = null; // the processID whose graph is drawn (a recount does not draw it again)
  }

  async start() {
    show('view-processes');
    crumbs(['Executions', '#/'], ['Processes', this.selected ? '#/processes' : null], ...(this.selected ? [[`#${this.selected}`, null]] : []));
    fillProblem($('start-problem'), null);
    fillProblem($('proc-problem'), null);
    $('start-result').replaceChildren();
    $('proc-confirm').hidden = true;
    this.stream = new EventStream('/executions/events', {
      onEvent: () => this.recountSoon(),
      onError: (error) => (error.status === 401 ? fatal(error) : showError(error)),
      onState: setLive,
    }).start();
    await this.load();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.recount);
    if (this.stream) this.stream.stop();
  }

  recountSoon() {
    if (this.recount || this.stopped) return;
    this.recount = setTimeout(() => {
      this.recount = null;
      this.load();
    }, RECOUNT_MS);
  }

  async load() {
    let data;
    try {
      data = await api('GET', '/processes');
    } catch (error) {
      if (!this.stopped) (error.status === 401 ? fatal : showError)(error);
      return;
    }
    if (this.stopped) return;
    this.items = data.items;
    processCache.clear(); // deleted versions go; the others are as read now
    for (const item of this.items) processCache.set(item.processID, item);
    if (this.selected === null && this.items.length) {
      const newest = this.items.reduce((a, b) => (b.processID > a.processID ? b : a));
      this.selected = newest.processID;
    }
    this.renderList();
    this.renderSelected();
  }

  /** The definitions by key, each a table of its versions (newest first) with their counts. */
  renderList() {
    const byKey = new Map();
    for (const item of this.items) (byKey.get(item.key) || byKey.set(item.key, []).get(item.key)).push(item);
    $('proc-empty').hidden = byKey.size > 0;
    const blocks = [...byKey.keys()].sort().map((key) => {
      const versions = byKey.get(key).sort((a, b) => b.version - a.version);
      const latest = versions[0].processID;
      return h(
        'div',
        { class: 'proc-key', 'data-key': key },
        h('h3', {}, h('span', { text: key }), ' ', h('span', { class: 'muted', text: versions[0].name || '' })),
        h(
          'table',
          { class: 'grid proc-versions' },
          h('thead', {}, h('tr', {}, ['Version', 'ID', '', ...STATUSES].map((name) => h('th', { text: name })))),
          h('tbody', {}, versions.map((item) => this.versionRow(item, item.processID === latest))),
        ),
      );
    });
    $('proc-list').replaceChildren(...blocks);
  }

  versionRow(item, latest) {
    const counts = item.executions || {};
    const open = () => (location.hash = processesHash(item.processID));
    const row = h(
      'tr',
      {
        class: ['pick', item.processID === this.selected ? 'on' : '', item.deprecated ? 'deprecated' : ''],
        'data-process-id': item.processID,
        tabindex: 0,
        title: `open version ${item.version} (processID ${item.processID})`,
      },
      h('td', {}, h('a', { href: processesHash(item.processID), text: `v${item.version}` })),
      h('td', { class: 'muted', text: `#${item.processID}` }),
      h('td', {}, [
        latest ? h('span', { class: 'mini tag-latest', text: 'latest' }) : '',
        item.deprecated ? h('span', { class: 'mini tag-deprecated', text: 'deprecated' }) : '',
      ]),
      STATUSES.map((name) =>
        h(
          'td',
          { class: 'n', 'data-status': name },
          counts[name]
            ? h('a', {
                class: `count-mini st-${name}`,
                href: `#/?status=${name}&process=${item.processID}`,
                title: `the ${name} executions of this version`,
                text: String(counts[name]),
              })
            : h('span', { class: 'muted', text: '0' }),
        ),
      ),
    );
    row.addEventListener('click', (event) => {
      if (!event.target.closest('a')) open();
    });
    row.addEventListener('keydown', (event) => event.key === 'Enter' && open());
    return row;
  }

  renderSelected() {
    const item = this.items.find((p) => p.processID === this.selected);
    $('proc-main').hidden = !item;
    if (!item) {
      if (this.selected !== null && this.items.length) {
        showError(new ApiError(404, 'NOT_FOUND', `process ${this.selected} not found (deleted?)`));
      }
      return;
    }
    const latest = Math.max(...this.items.filter((p) => p.key === item.key).map((p) => p.version)) === item.version;
    $('proc-title').textContent = `${item.key} v${item.version}`;
    $('proc-state').replaceChildren(
      h('span', {
        class: ['badge', item.deprecated ? 'tag-deprecated' : 'tag-active'],
        text: item.deprecated ? 'deprecated' : 'takes starts',
      }),
    );
    const used = total(item);
    $('proc-facts').replaceChildren(
      ...[
        ['processID', String(item.processID)],
        ['name', item.name || '—'],
        ['registered', fmtTime(item.createdAt)],
        ['latest of its key', latest ? 'yes' : 'no'],
        ['executions stored', String(used)],
      ].flatMap(([dt, dd]) => [h('dt', { text: dt }), h('dd', { text: dd })]),
    );
    const deprecate = $('proc-deprecate');
    deprecate.textContent = item.deprecated ? 'Undeprecate' : 'Deprecate';
    deprecate.title = item.deprecated
      ? 'PATCH {"deprecated": false}: it takes new starts again'
      : 'PATCH {"deprecated": true}: no new start of this version (its executions go on)';
    const remove = $('proc-delete');
    remove.disabled = used > 0;
    remove.title = used
      ? `${used} stored execution${used > 1 ? 's' : ''} of this version: it cannot be deleted while they are kept`
      : 'DELETE: no stored execution uses it';
    $('start-submit').disabled = item.deprecated;
    $('start-submit').title = item.deprecated ? 'deprecated: the server refuses new starts of it' : '';
    $('start-caption').textContent = `of ${item.key} v${item.version} (processID ${item.processID})`;
    if (this.shownGraph !== item.processID) {
      this.shownGraph = item.processID;
      const graph = new Graph(item.definition);
      $('proc-graph').replaceChildren(graph.svg);
      $('proc-graph-caption').textContent = `${item.key} v${item.version}`;
    }
  }

  current() {
    return this.items.find((p) => p.processID === this.selected) || null;
  }

  async toggleDeprecated() {
    const item = this.current();
    if (!item) return;
    await this.act(() => api('PATCH', `/processes/${item.processID}`, { body: { deprecated: !item.deprecated } }), (view) =>
      view.deprecated ? `v${view.version} is deprecated: it takes no new start` : `v${view.version} takes new starts again`,
    );
  }

  askDelete() {
    const item = this.current();
    if (!item) return;
    $('proc-confirm-text').textContent = `Delete ${item.key} v${item.version} (processID ${item.processID})? Its number is never given again.`;
    $('proc-confirm').hidden = false;
  }

  async confirmDelete() {
    const item = this.current();
    $('proc-confirm').hidden = true;
    if (!item) return;
    const done = await this.act(() => api('DELETE', `/processes/${item.processID}`), (result) =>
      `deleted v${result.version}` + (result.latestProcessID ? `; the latest of ${result.key} is now v${result.latestVersion}` : ''),
    );
    if (done) {
      this.selected = done.latestProcessID;
      this.shownGraph = null;
      history.replaceState(null, '', processesHash(done.latestProcessID));
      await this.load();
    }
  }

  async act(call, said) {
    fillProblem($('proc-problem'), null);
    try {
      const answer = await call();
      $('proc-note').textContent = said(answer);
      $('proc-note').dataset.kind = 'ok';
      await this.load();
      return answer;
    } catch (error) {
      $('proc-note').textContent = '';
      fillProblem($('proc-problem'), error);
      return null;
    }
  }

  /** POST /executions/processes for the version picked: 201 started, 200 its idempotency key's execution. */
  async startExecution() {
    const item = this.current();
    const box = $('start-problem');
    fillProblem(box, null);
    $('start-result').replaceChildren();
    if (!item) return;
    const body = { processID: item.processID };
    for (const [field, name] of [['variables', 'variables'], ['attributes', 'search attributes']]) {
      const text = $(`start-${field}`).value.trim();
      if (!text) continue;
      try {
        body[field] = JSON.parse(text);
      } catch (error) {
        return fillProblem(box, `the ${name} are not JSON: ${error.message}`);
      }
    }
    const key = $('start-key').value.trim();
    if (key) body.idempotencyKey = key;
    let answer;
    try {
      answer = await apiAnswer('POST', '/executions/processes', { body });
    } catch (error) {
      return fillProblem(box, error);
    }
    const [created, started] = [answer.status === 201, answer.data];
    $('start-result').replaceChildren(
      created ? 'started ' : 'its idempotency key names ',
      executionLink(started.executionID, `execution #${started.executionID}`),
      created ? '' : ' (started before: nothing new)',
    );
    $('start-result').dataset.kind = 'ok';
    this.recountSoon();
  }
}

/** The page's forms and buttons, wired once; `current()` is the ProcessesView open, or null. */
export function wireProcesses(current) {
  $('proc-deprecate').addEventListener('click', () => current() && current().toggleDeprecated());
  $('proc-delete').addEventListener('click', () => current() && current().askDelete());
  $('proc-confirm-yes').addEventListener('click', () => current() && current().confirmDelete());
  $('proc-confirm-no').addEventListener('click', () => ($('proc-confirm').hidden = true));
  $('start-form').addEventListener('submit', (event) => {
    event.preventDefault();
    if (current()) current().startExecution();
  });
}
