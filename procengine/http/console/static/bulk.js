// The Bulk operations page (#/bulk, #/bulk/{jobID}; docs/operations.md "Bulk operations"): the tenant's jobs,
// newest first (action, status, matched, done, refused, failed, created), and one job: a progress bar that moves
// while it runs (the job is read every 500 ms while its status is running, and no more once it ends or the page
// changes: a job has no event stream), its refusals counted by reason, its items a page at a time (each
// execution's outcome, oldest first), and the buttons that steer it: Pause, Resume, Cancel, and Undo of an ended
// bulk pause (which starts a resume job and opens it).

import { ApiError, api } from './api.js';
import { badge, crumbs, executionLink, fatal, progressBar, setLive, setProgress, show, showError } from './page.js';
import { fillProblem } from './repair.js';
import { $, compact, fmtTime, h } from './util.js';

const POLL_MS = 500;
const JOBS_PAGE = 20;
const ITEMS_PAGE = 50;
const ENDED = new Set(['completed', 'cancelled', 'failed']);

const refusedTotal = (job) => Object.values(job.refused || {}).reduce((a, b) => a + b, 0);
const handled = (job) => job.done + refusedTotal(job) + job.failed;
export const bulkHash = (id) => (id ? `#/bulk/${id}` : '#/bulk');

export class BulkView {
  constructor(jobID) {
    this.jobID = jobID ? Number(jobID) : null;
    this.stopped = false;
    this.timer = null;
    this.cursors = [null]; // the cursor of each page seen (jobs, or the job's items)
    this.page = 0;
    this.job = null;
    this.seen = -1; // how many items the items table shows the outcome of (read again when it changes)
  }

  async start() {
    show('view-bulk');
    setLive('idle');
    crumbs(['Executions', '#/'], ['Bulk operations', this.jobID ? '#/bulk' : null], ...(this.jobID ? [[`#${this.jobID}`, null]] : []));
    this.root = $('view-bulk');
    if (this.jobID) this.buildJob();
    else this.buildList();
    await this.load();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  tick() {}

  /** Read again in POLL_MS while something shown is running; not once the view has gone. */
  pollIf(running) {
    clearTimeout(this.timer);
    this.timer = null;
    setLive(running ? 'live' : 'idle');
    if (running && !this.stopped) this.timer = setTimeout(() => this.load(), POLL_MS);
  }

  async load() {
    try {
      await (this.jobID ? this.loadJob() : this.loadList());
    } catch (error) {
      if (this.stopped) return;
      if (error.status === 401 || error.status === 404) return fatal(error);
      showError(error);
      this.pollIf(true); // a node restarting: try again
    }
  }

  // ------------------------------------------------------------------------------------------------ the jobs

  buildList() {
    const pager = h(
      'nav',
      { class: 'pager' },
      h('button', { type: 'button', id: 'bulk-newer', text: '← Newer', onclick: () => this.turn(-1) }),
      h('span', { id: 'bulk-page-label', text: 'page 1' }),
      h('button', { type: 'button', id: 'bulk-older', text: 'Older →', onclick: () => this.turn(1) }),
    );
    this.root.replaceChildren(
      h('div', { class: 'exec-head' }, h('h1', { text: 'Bulk operations' })),
      h('p', { class: 'muted small', text: 'One action over many executions, run as a job. Start one from the list of executions: tick rows (or Select all that match), then an action.' }),
      h(
        'table',
        { class: 'grid', id: 'bulk-jobs' },
        h('thead', {}, h('tr', {}, ['Job', 'Action', 'Status', 'Progress', 'Matched', 'Done', 'Refused', 'Failed', 'Created', 'Reason'].map((t) => h('th', { text: t })))),
        h('tbody'),
      ),
      h('p', { class: 'empty', id: 'bulk-empty', hidden: true, text: 'No bulk operations yet.' }),
      pager,
    );
  }

  async loadList() {
    const query = new URLSearchParams({ limit: String(JOBS_PAGE) });
    if (this.cursors[this.page]) query.set('cursor', this.cursors[this.page]);
    const data = await api('GET', `/bulk-operations?${query}`);
    if (this.stopped) return;
    this.cursors[this.page + 1] = data.nextCursor;
    $('bulk-jobs').tBodies[0].replaceChildren(...data.items.map((job) => this.jobRow(job)));
    $('bulk-empty').hidden = data.items.length > 0;
    $('bulk-page-label').textContent = `page ${this.page + 1}`;
    $('bulk-newer').disabled = this.page === 0;
    $('bulk-older').disabled = !data.nextCursor;
    this.pollIf(data.items.some((job) => job.status === 'running'));
  }

  jobRow(job) {
    const bar = progressBar();
    setProgress(bar, job.matched ? (100 * handled(job)) / job.matched : 100, job.status, `${handled(job)}/${job.matched}`);
    const refused = refusedTotal(job);
    return h(
      'tr',
      { 'data-job': job.jobID },
      h('td', {}, h('a', { href: bulkHash(job.jobID), text: `#${job.jobID}` })),
      h('td', { text: job.action + (job.undoOf ? ` (undo of #${job.undoOf})` : '') }),
      h('td', { class: 'status' }, badge(job.status)),
      h('td', { class: 'progress-cell' }, bar),
      h('td', { class: 'n', 'data-count': 'matched', text: String(job.matched) }),
      h('td', { class: 'n', 'data-count': 'done', text: String(job.done) }),
      h('td', { class: 'n', 'data-count': 'refused', text: String(refused), title: Object.entries(job.refused).map(([r, n]) => `${n}: ${r}`).join('\n') }),
      h('td', { class: 'n', 'data-count': 'failed', text: String(job.failed) }),
      h('td', { title: job.createdAt, text: fmtTime(job.createdAt) }),
      h('td', { class: 'muted', text: job.reason || '' }),
    );
  }

  async turn(step) {
    if (this.page + step < 0 || (step > 0 && !this.cursors[this.page + 1])) return;
    this.page += step;
    this.seen = -1;
    await this.load();
  }

  // ------------------------------------------------------------------------------------------------ one job

  buildJob() {
    const button = (id, text, verb, attrs = {}) => h('button', { type: 'button', id, text, onclick: () => this.steer(verb), ...attrs });
    this.bar = progressBar();
    this.bar.classList.add('big');
    this.bar.id = 'bulk-progress';
    this.root.replaceChildren(
      h('div', { class: 'exec-head' }, h('h1', { id: 'bulk-title', text: `Bulk operation #${this.jobID}` }), h('span', { id: 'bulk-status' })),
      this.bar,
      h('dl', { class: 'facts', id: 'bulk-facts' }),
      h('div', { class: 'failure', id: 'bulk-error', hidden: true }),
      h(
        'div',
        { class: 'actions bulk-steer', id: 'bulk-steer' },
        h('label', { for: 'bulk-steer-reason', text: 'Reason' }),
        h('input', { id: 'bulk-steer-reason', maxlength: 1000, placeholder: 'optional' }),
        button('bulk-pause', 'Pause job', 'pause', { title: 'the items in flight finish first; nothing else is touched until Resume' }),
        button('bulk-resume', 'Resume job', 'resume'),
        button('bulk-cancel', 'Cancel job', 'cancel', { class: 'danger', title: 'what it did stays done' }),
        button('bulk-undo', 'Undo this pause', 'undo', { title: 'a resume job over the executions this pause still holds paused' }),
      ),
      h('p', { class: 'note', id: 'bulk-note', role: 'status' }),
      h('div', { class: 'problem', id: 'bulk-steer-problem', role: 'alert', hidden: true }),
      h(
        'section',
        { class: 'panel', id: 'bulk-refused-panel' },
        h('h2', { text: 'Refused, by reason' }),
        h('table', { class: 'grid', id: 'bulk-refused' }, h('thead', {}, h('tr', {}, h('th', { text: 'Reason' }), h('th', { text: 'Executions' }))), h('tbody')),
        h('p', { class: 'empty', id: 'bulk-refused-none', text: 'None refused.' }),
      ),
      h(
        'section',
        { class: 'panel' },
        h('h2', {}, 'Items ', h('span', { class: 'muted', text: "each execution's outcome, oldest first" })),
        h('table', { class: 'grid', id: 'bulk-items' }, h('thead', {}, h('tr', {}, ['Execution', 'Outcome', 'Reason', 'At'].map((t) => h('th', { text: t })))), h('tbody')),
        h('p', { class: 'empty', id: 'bulk-items-empty', hidden: true, text: 'No outcome yet.' }),
        h(
          'nav',
          { class: 'pager' },
          h('button', { type: 'button', id: 'bulk-items-prev', text: '← Earlier', onclick: () => this.turn(-1) }),
          h('span', { id: 'bulk-items-label', text: 'page 1' }),
          h('button', { type: 'button', id: 'bulk-items-next', text: 'Later →', onclick: () => this.turn(1) }),
        ),
      ),
    );
  }

  async loadJob() {
    const job = await api('GET', `/bulk-operations/${this.jobID}`);
    if (this.stopped) return;
    this.job = job;
    this.renderJob(job);
    if (handled(job) !== this.seen) {
      await this.loadItems();
      this.seen = handled(job);
    }
    this.pollIf(job.status === 'running');
  }

  renderJob(job) {
    $('bulk-title').textContent = `Bulk ${job.action} #${job.jobID}`;
    $('bulk-status').replaceChildren(badge(job.status));
    const pct = job.matched ? (100 * handled(job)) / job.matched : 100;
    setProgress(this.bar, pct, job.status, `${handled(job)} of ${job.matched} · ${Math.floor(pct)}%`);
    const link = (id) => h('a', { href: bulkHash(id), text: `#${id}` });
    const facts = [
      ['action', job.action],
      ['matched', String(job.matched)],
      ['done', String(job.done)],
      ['refused', String(refusedTotal(job))],
      ['failed', String(job.failed)],
      ['over', job.filter ? `filter ${compact(job.filter)}` : job.undoOf ? `what pause #${job.undoOf} still held` : 'the executions picked'],
      ['created', fmtTime(job.createdAt)],
      ['ended', fmtTime(job.endedAt)],
      ['by', job.by],
      ['reason', job.reason || '—'],
      ...(job.maxPerSecond ? [['at most', `${job.maxPerSecond}/s`]] : []),
      ...(job.undoOf ? [['undo of', link(job.undoOf)]] : []),
      ...(job.undoneBy ? [['undone by', link(job.undoneBy)]] : []),
    ];
    $('bulk-facts').replaceChildren(...facts.flatMap(([dt, dd]) => [h('dt', { text: dt }), h('dd', { 'data-fact': dt }, dd)]));
    $('bulk-error').hidden = !job.error;
    $('bulk-error').textContent = job.error ? `The job itself failed: ${job.error}` : '';
    const can = {
      pause: job.status === 'running',
      resume: job.status === 'paused',
      cancel: job.status === 'running' || job.status === 'paused',
      undo: job.action === 'pause' && (job.status === 'completed' || job.status === 'cancelled') && !job.undoneBy,
    };
    for (const [verb, allowed] of Object.entries(can)) $(`bulk-${verb}`).disabled = !allowed;
    $('bulk-undo').hidden = job.action !== 'pause';
    const reasons = Object.entries(job.refused || {}).sort((a, b) => b[1] - a[1]);
    $('bulk-refused').tBodies[0].replaceChildren(
      ...reasons.map(([reason, n]) => h('tr', { 'data-reason': reason }, h('td', { text: reason }), h('td', { class: 'n', text: String(n) }))),
    );
    $('bulk-refused').hidden = reasons.length === 0;
    $('bulk-refused-none').hidden = reasons.length > 0;
  }

  async loadItems() {
    const query = new URLSearchParams({ limit: String(ITEMS_PAGE) });
    if (this.cursors[this.page]) query.set('cursor', this.cursors[this.page]);
    const data = await api('GET', `/bulk-operations/${this.jobID}/items?${query}`);
    if (this.stopped) return;
    this.cursors[this.page + 1] = data.nextCursor;
    $('bulk-items').tBodies[0].replaceChildren(
      ...data.items.map((item) =>
        h(
          'tr',
          { 'data-id': item.executionID, 'data-outcome': item.outcome },
          h('td', {}, executionLink(item.executionID)),
          h('td', {}, h('span', { class: `mini outcome-${item.outcome}`, text: item.outcome })),
          h('td', { text: item.reason || '' }),
          h('td', { title: item.at, text: fmtTime(item.at) }),
        ),
      ),
    );
    $('bulk-items-empty').hidden = data.items.length > 0;
    $('bulk-items-label').textContent = `page ${this.page + 1}`;
    $('bulk-items-prev').disabled = this.page === 0;
    $('bulk-items-next').disabled = !data.nextCursor;
  }

  /** Pause, resume or cancel the job, or undo it (a new job: its page opens). */
  async steer(verb) {
    const box = $('bulk-steer-problem');
    fillProblem(box, null);
    const reason = $('bulk-steer-reason').value.trim();
    let answer;
    try {
      answer = await api('POST', `/bulk-operations/${this.jobID}/${verb}`, { body: reason ? { reason } : {} });
    } catch (error) {
      if (error.status === 401) return fatal(error);
      return fillProblem(box, error instanceof ApiError ? error : String(error));
    }
    if (verb === 'undo') {
      location.hash = bulkHash(answer.jobID);
      return;
    }
    $('bulk-note').textContent = `the job is ${answer.status}`;
    $('bulk-note').dataset.kind = 'ok';
    await this.load();
  }
}
