// One execution's page (#/executions/{id}): status, progress and facts, the graph, the variables and outputs,
// the stack, the elements, the checkpoint timeline and the audit log, breakpoints on the graph and Step, kept up to date from the execution's log event stream (each new
// entry reads the status, the elements and the state again).

import { api, processCache } from './api.js';
import { renderBlocked } from './blocked.js';
import { Breakpoints } from './breakpoints.js';
import { hideDetails, renderDetails } from './details.js';
import { note, signalNames } from './forms.js';
import { Graph, legend } from './graph.js';
import { renderMigrate } from './migrate.js';
import { listHash } from './list.js';
import { crumbs, executionLink, fatal, setLive, setProgress, show, showError } from './page.js';
import { detailCell, renderElements, renderMemory, renderStack } from './panels.js';
import { renderEditor, renderFailure, retryExecution } from './repair.js';
import { renderStep } from './step.js';
import { hideStepControls, renderStepControls } from './steps.js';
import { EventStream } from './streams.js';
import { Timeline } from './timeline.js';
import { $, fmtDuration, fmtTime, h, since } from './util.js';
import { Zoom } from './zoom.js';

const MAX_LOG_ROWS = 2000;

export class ExecutionView {
  /** `reopen`: opens the page of the execution again (after a repair made a finished execution live again). */
  constructor(id, reopen) {
    this.id = id;
    this.reopen = reopen;
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
    this.zoom = null;
    this.selected = null; // the element whose details are open
    this.latest = null; // the last {status, elements, state} read together
    this.resumeProblem = undefined; // why resume would be refused (null: it would not; undefined: state not read yet)
    this.timeline = null; // the checkpoint timeline (timeline.js)
    this.breakpoints = null; // the breakpoints set from the graph (breakpoints.js)
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
    for (const id of ['exec-error', 'state-problem', 'repair', 'vars-problem']) $(id).hidden = true;
    hideDetails();
    hideStepControls();
    this.timeline = new Timeline(this); // the checkpoints: read with the rest on every read
    this.breakpoints = new Breakpoints(this); // the set: from the log's breakpoints-set entries and the PUT's answers
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
    this.graph = new Graph(this.definition.definition, {
      onSelect: (key) => this.select(key),
      onBreakpoint: (key) => this.breakpoints.toggle(key),
    });
    $('graph').replaceChildren(this.graph.svg);
    this.zoom = new Zoom($('graph'), this.graph.svg, this.graph.width, this.graph.height);
    $('graph-caption').textContent = `${this.definition.key} v${this.definition.version}`;
    this.breakpoints.render();
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
    if (this.zoom) this.zoom.stop();
  }

  /** Open the details of element `key` (from the graph or the elements table); they follow every read. */
  select(key) {
    this.selected = key;
    if (this.graph) this.graph.select(key);
    for (const tr of $('elements').tBodies[0].rows) tr.classList.toggle('selected', tr.dataset.key === key);
    this.renderDetails();
    $('details').scrollIntoView({ block: 'nearest' });
  }

  closeDetails() {
    this.selected = null;
    if (this.graph) this.graph.select(null);
    for (const tr of $('elements').tBodies[0].rows) tr.classList.remove('selected');
    hideDetails();
    hideStepControls();
  }

  renderDetails() {
    const key = this.selected;
    if (key === null || !this.graph) return;
    const { status, elements, state } = this.latest || { status: this.status };
    const records = elements ? elements.items.filter((r) => r.key === key) : [];
    const stack = state && state.stack && Array.isArray(state.stack.execution_stack) ? state.stack.execution_stack : [];
    renderDetails({
      key,
      el: this.graph.elements.get(key) || null,
      records,
      entries: stack.filter((e) => e.element_key === key),
      status,
      childIds: this.children.get(key) || [],
      onClose: () => this.closeDetails(),
    });
    renderStepControls(this, { key, el: this.graph.elements.get(key) || null, entries: stack.filter((e) => e.element_key === key), stack, status });
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
    if (entry.detail && ['running', 'paused'].includes(entry.detail.to)) this.ended = false; // a retry, a step control
    if (entry.event === 'breakpoints-set' && entry.detail && this.breakpoints) this.breakpoints.fromLog(entry.detail.pauseBefore);
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
    if (state && this.breakpoints) this.breakpoints.fromState(state.pauseBefore); // what the server holds
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
    renderFailure(status, () => retryExecution(this, this.reopen));
    renderBlocked(status.blockedOn);
    const unreadable = state ? unreadableStack(state) : null;
    if (state) this.resumeProblem = status.status === 'paused' ? resumeProblem(status, state, unreadable) : null;
    this.renderResume(status);
    renderStep(status, status.status === 'paused' ? this.resumeProblem : null);
    renderMigrate(status);
    if (this.breakpoints) this.breakpoints.update(status);
    $('do-pause').disabled = status.status !== 'running';
    $('do-cancel').disabled = !status.isActive;
    $('signal-form').querySelector('button').disabled = !status.isActive;
    if (!elements || !state) return;
    this.latest = { status, elements, state };
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
    renderMemory(state);
    renderEditor(this.id, status, state);
    renderStack(stackEntries, state, unreadable);
    renderElements(elements.items, status, (key) => this.select(key), this.selected);
    this.renderDetails();
    if (this.timeline) this.timeline.update(status, state);
  }

  /**
   * Resume is offered only when the API would take it: paused, and a stack and memory that resume can go on from
   * (what it refuses with 409 STATE_CORRUPTED is shown instead, and only cancel is left).
   */
  renderResume(status) {
    const resume = $('do-resume');
    const problem = status.status === 'paused' ? this.resumeProblem : null;
    resume.disabled = status.status !== 'paused' || problem !== null;
    resume.title = problem ? `resume would be refused (409 STATE_CORRUPTED): ${problem}` : '';
    const box = $('state-problem');
    box.hidden = !problem;
    if (problem) {
      box.replaceChildren(
        h('strong', { text: 'This execution cannot be resumed: ' }),
        `${problem}. `,
        h('span', { class: 'muted', text: 'Resume would be refused with 409 STATE_CORRUPTED (see GET …/state); it can still be cancelled.' }),
      );
    }
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
    // as the API says: its pausedDurationMs counts the pause in progress; the clock moves it on since the read
    const pausedNow = status.status === 'paused' ? Date.now() - this.fetchedAt : 0;
    this.pausedTotalEl.textContent = fmtDuration((t.pausedDurationMs || 0) + pausedNow);
    this.pausedTotalEl.title = `pausedDurationMs ${t.pausedDurationMs} when read at ${new Date(this.fetchedAt).toISOString()}`;
  }
}

/** Why the stack snapshot cannot be shown (null: it can). A cancelled execution has none, and says so. */
function unreadableStack(state) {
  const stack = state.stack;
  if (!stack) return state.active ? 'the stack snapshot is missing' : null;
  if (stack.error) return `the stack snapshot cannot be read: ${stack.error}`;
  if (!Array.isArray(stack.execution_stack)) return 'the stack snapshot has no execution_stack list';
  return null;
}

/** What resume would refuse with 409 STATE_CORRUPTED (actors/snapshot.py), from GET …/state and the status. */
function resumeProblem(status, state, unreadable) {
  if (unreadable) return unreadable;
  if (!state.stack) return 'the stack snapshot is missing';
  if (!state.memory) return 'the memory snapshot is missing';
  if (state.memory.error) return `the memory snapshot cannot be read: ${state.memory.error}`;
  const unfinished = status.threads.filter((t) => t.status === 'running' || t.status === 'paused').map((t) => t.threadKey);
  if (!state.stack.execution_stack.length && unfinished.length) {
    return `the stack is empty but threads ${unfinished.join(', ')} have not finished`;
  }
  return null;
}

function logCaption(count) {
  return count > MAX_LOG_ROWS ? `${count} entries, the newest ${MAX_LOG_ROWS} shown` : `${count} entries`;
}
