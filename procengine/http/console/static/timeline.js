// The checkpoint timeline of the execution page (docs/repair.md "Go back"): the execution's kept checkpoints
// (`GET …/{id}/checkpoints`, newest first, in pages), read again with the rest of the page; a click on one shows its
// stack and memory (`GET …/checkpoints/{seq}`); two ticked show what changed from the older to the newer (`GET
// …/checkpoints/{a}/diff/{b}`, diff.js); from the one shown, Rewind here (rewind.js) and Fork from here (fork.js).
// A button is enabled only where its operation applies and the server has the route; its
// disabled title says why.

import { BASE, api, serverRoutes } from './api.js';
import { diffSummary, renderDiff } from './diff.js';
import { closeFork, openFork } from './fork.js';
import { fatal } from './page.js';
import { kvTable } from './panels.js';
import { fillProblem } from './repair.js';
import { closeRewind, followRewind, openRewind } from './rewind.js';
import { $, fmtTime, h } from './util.js';

const PAGE = 20;
export const REWIND_ROUTE = `POST ${BASE}/executions/processes/{id}/rewind`;
export const FORK_ROUTE = `POST ${BASE}/executions/processes/{id}/fork`;
export const REWINDABLE = ['paused', 'failed', 'cancelled'];

export class Timeline {
  constructor(view) {
    this.view = view;
    this.items = []; // the kept checkpoints read, newest first
    this.cursor = null; // nextCursor of the oldest page read
    this.deeper = false; // pages older than the first were read: kept across reads of the first
    this.picked = []; // the seqs ticked to compare (two at most), in the order ticked
    this.diffFlipped = false; // the diff reads newer → older
    this.shown = null; // the checkpoint whose stack and memory show ({seq, …} as GET …/checkpoints/{seq} gives it)
    this.status = null;
    this.state = null;
    this.reading = null;
    this.again = false;
    this.routes = new Set();
    for (const id of ['timeline-list', 'checkpoint', 'checkpoint-diff']) $(id).replaceChildren();
    for (const id of ['checkpoint', 'checkpoint-diff', 'timeline-older']) $(id).hidden = true;
    $('timeline-caption').textContent = '';
    $('timeline-older').onclick = () => this.readOlder();
    closeRewind();
    closeFork();
    serverRoutes().then((routes) => {
      this.routes = routes;
      this.renderButtons();
    });
  }

  path(tail = '') {
    return this.view.path(`/checkpoints${tail}`);
  }

  /** The page was read again (`status`, `state` as GET …/status and …/state gave them): so is the first page here. */
  update(status, state) {
    this.status = status;
    this.state = state;
    this.renderButtons();
    if (this.reading) {
      this.again = true;
      return;
    }
    this.reading = this.readFirst().finally(() => {
      this.reading = null;
      if (this.again && !this.view.stopped) {
        this.again = false;
        this.update(this.status, this.state);
      }
    });
  }

  async readFirst() {
    const page = await this.read(null);
    if (!page) return;
    const oldest = page.items.length ? page.items[page.items.length - 1].seq : Infinity;
    const older = this.deeper ? this.items.filter((c) => c.seq < oldest) : [];
    if (!this.deeper) this.cursor = page.nextCursor;
    this.items = [...page.items, ...older];
    this.renderList();
    followRewind(this);
  }

  async readOlder() {
    if (!this.cursor) return;
    const page = await this.read(this.cursor);
    if (!page) return;
    this.deeper = true;
    this.cursor = page.nextCursor;
    const seen = new Set(this.items.map((c) => c.seq));
    this.items.push(...page.items.filter((c) => !seen.has(c.seq)));
    this.renderList();
  }

  async read(cursor) {
    try {
      const query = `?limit=${PAGE}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
      const page = await api('GET', this.path(query));
      return this.view.stopped ? null : page;
    } catch (error) {
      if (!this.view.stopped) this.problem(error);
      return null;
    }
  }

  /** The kept checkpoint that is the execution's state now (its last write), or null (a cancel cleared it). */
  current() {
    const newest = this.items[0];
    return newest && this.state && this.state.savedAt === newest.savedAt ? newest : null;
  }

  renderList() {
    const now = this.current();
    const caption = `${this.items.length}${this.cursor ? '+' : ''} kept, newest first`;
    $('timeline-caption').textContent = this.items.length ? caption : '';
    $('timeline-older').hidden = !this.cursor;
    const list = $('timeline-list');
    if (!this.items.length) return list.replaceChildren(h('li', { class: 'empty', text: 'no checkpoint kept (--history-checkpoints 0?)' }));
    list.replaceChildren(
      ...this.items.map((c) => {
        const picked = this.picked.includes(c.seq);
        const box = h('input', { type: 'checkbox', class: 'cp-pick', 'aria-label': `compare #${c.seq}`, title: 'tick two to compare them', checked: picked });
        box.addEventListener('change', () => this.pick(c.seq, box.checked));
        const open = h(
          'button',
          { type: 'button', class: 'cp-open', title: 'its stack and memory' },
          h('span', { class: 'cp-seq', text: `#${c.seq}` }),
          c.elementKey
            ? h('span', { class: 'cp-el', text: `after ${c.elementKey}` })
            : h('span', { class: 'cp-el none', text: 'no element', title: 'a write of no element’s: the start, a signal taken in, a pause, a resume, a repair' }),
          h('span', { class: 'cp-at muted', title: c.savedAt, text: fmtTime(c.savedAt) }),
          h('span', { class: 'cp-lanes muted', text: c.lanes.length ? `lanes ${c.lanes.join(', ')}` : 'no lane pending' }),
          h('span', { class: 'cp-bytes muted', text: `${c.bytes} B` }),
          c === now ? h('span', { class: 'cp-now', text: 'now' }) : '',
        );
        open.addEventListener('click', () => this.show(c.seq));
        const classes = ['cp', picked ? 'picked' : '', this.shown && this.shown.seq === c.seq ? 'open' : '', c === now ? 'now' : ''];
        return h('li', { class: classes, 'data-seq': c.seq }, box, open);
      }),
    );
  }

  pick(seq, on) {
    this.picked = this.picked.filter((s) => s !== seq);
    if (on) this.picked.push(seq);
    if (this.picked.length > 2) this.picked.shift(); // the third ticked replaces the first
    this.diffFlipped = false;
    this.renderList();
    this.showDiff();
  }

  /** The diff of the two ticked: older → newer (or flipped); hidden with fewer than two. */
  async showDiff() {
    const box = $('checkpoint-diff');
    if (this.picked.length < 2) {
      box.hidden = true;
      return box.replaceChildren();
    }
    const [older, newer] = [...this.picked].sort((x, y) => x - y);
    const [a, b] = this.diffFlipped ? [newer, older] : [older, newer];
    box.hidden = false;
    box.dataset.from = String(a);
    box.dataset.to = String(b);
    box.replaceChildren(h('p', { class: 'muted', text: `reading the diff #${a} → #${b}…` }));
    let diff;
    try {
      diff = await api('GET', this.path(`/${a}/diff/${b}`));
    } catch (error) {
      return box.replaceChildren(problemBox(error));
    }
    if (box.dataset.from !== String(a) || box.dataset.to !== String(b)) return; // another pair was picked meanwhile
    const flip = h('button', { type: 'button', class: 'quiet', id: 'diff-flip', text: '⇄ the other way', title: `#${b} → #${a}` });
    flip.addEventListener('click', () => {
      this.diffFlipped = !this.diffFlipped;
      this.showDiff();
    });
    const close = h('button', { type: 'button', class: 'quiet', text: 'Close', title: 'untick both' });
    close.addEventListener('click', () => {
      this.picked = [];
      this.renderList();
      this.showDiff();
    });
    box.replaceChildren(
      h('div', { class: 'cp-head' }, h('h3', {}, `From #${a} to #${b} `, h('span', { class: 'muted', id: 'diff-summary', text: diffSummary(diff) })), flip, close),
      renderDiff(diff),
    );
  }

  /** Checkpoint `seq`'s stack and memory, with Rewind here and Fork from here. */
  async show(seq) {
    const box = $('checkpoint');
    box.hidden = false;
    box.dataset.seq = String(seq);
    closeRewind();
    closeFork();
    let checkpoint;
    try {
      checkpoint = await api('GET', this.path(`/${seq}`));
    } catch (error) {
      this.shown = null;
      return box.replaceChildren(problemBox(error));
    }
    if (box.dataset.seq !== String(seq) || this.view.stopped) return;
    this.shown = checkpoint;
    this.renderList();
    const rewind = h('button', { type: 'button', id: 'checkpoint-rewind', text: 'Rewind here…' });
    rewind.addEventListener('click', () => {
      closeFork();
      openRewind(this, checkpoint);
    });
    const fork = h('button', { type: 'button', id: 'checkpoint-fork', text: 'Fork from here…', disabled: true });
    fork.addEventListener('click', () => {
      closeRewind();
      openFork(this.view, seq);
    });
    const close = h('button', { type: 'button', class: 'quiet', text: 'Close' });
    close.addEventListener('click', () => {
      this.shown = null;
      box.hidden = true;
      box.replaceChildren();
      closeRewind();
      closeFork();
      this.renderList();
    });
    const memory = checkpoint.memory && !checkpoint.memory.error ? checkpoint.memory : null;
    const entries = checkpoint.stack && Array.isArray(checkpoint.stack.execution_stack) ? checkpoint.stack.execution_stack : [];
    const outputs = memory ? Object.fromEntries(Object.entries(memory.node_outputs || {}).map(([k, o]) => [k, o && 'data' in o ? o.data : o])) : {};
    box.replaceChildren(
      h(
        'div',
        { class: 'cp-head' },
        h('h3', {}, `Checkpoint #${seq} `, h('span', { class: 'muted', text: `${checkpoint.elementKey ? `after ${checkpoint.elementKey}` : 'no element'} · ${fmtTime(checkpoint.savedAt)}` })),
        rewind,
        fork,
        close,
      ),
      h('div', { id: 'rewind', class: 'rewind', hidden: true }),
      h('div', { id: 'fork', class: 'rewind fork', hidden: true }),
      h(
        'div',
        { class: 'cp-columns' },
        h('div', {}, h('h4', { text: 'Variables' }), memory ? kvTable(memory.variables, 'no variables') : h('p', { class: 'empty', text: checkpoint.memory ? `cannot be read: ${checkpoint.memory.error}` : 'no memory' })),
        h('div', {}, h('h4', { text: 'Node outputs' }), kvTable(outputs, 'no outputs')),
      ),
      h('h4', { text: `Stack (${entries.length})` }),
      entries.length
        ? h(
            'table',
            { class: 'grid cp-stack' },
            h('thead', {}, h('tr', {}, ['Element', 'Type', 'Lane', 'Attempt', 'Started'].map((t) => h('th', { text: t })))),
            h(
              'tbody',
              {},
              entries.map((e) =>
                h('tr', {}, h('td', { text: e.element_key }), h('td', { text: e.element_type }), h('td', { text: e.path }), h('td', { text: e.attempt }), h('td', { text: e.started_at_ms ? fmtTime(new Date(e.started_at_ms).toISOString()) : '—' })),
              ),
            ),
          )
        : h('p', { class: 'empty', text: 'nothing pending: every lane had ended' }),
    );
    this.renderButtons();
  }

  /** Rewind here where it applies (and the server has it); Fork from here wherever the server has it. */
  renderButtons() {
    const rewind = $('checkpoint-rewind');
    const status = this.status && this.status.status;
    if (rewind) {
      let why = null;
      if (!this.routes.has(REWIND_ROUTE)) why = 'this server cannot rewind (no POST …/{id}/rewind in its OpenAPI document)';
      else if (!REWINDABLE.includes(status)) why = `applies to a paused, failed or cancelled execution; this one is ${status}`;
      rewind.disabled = why !== null;
      rewind.title = why ?? `POST …/rewind: back to checkpoint #${this.shown ? this.shown.seq : '?'}, paused there (shows what changes first)`;
    }
    const fork = $('checkpoint-fork');
    if (fork) {
      const can = this.routes.has(FORK_ROUTE);
      fork.disabled = !can;
      fork.title = can
        ? `POST …/fork: a new execution from checkpoint #${this.shown ? this.shown.seq : '?'} (this one is not changed)`
        : 'this server cannot fork (no POST …/{id}/fork in its OpenAPI document)';
    }
  }

  problem(error) {
    $('timeline-list').replaceChildren(h('li', {}, problemBox(error)));
    if (error.status === 401) fatal(error);
  }
}

function problemBox(error) {
  const box = h('div', { class: 'problem', role: 'alert' });
  fillProblem(box, error);
  return box;
}
