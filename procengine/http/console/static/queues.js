// The Queues page (#/queues; docs/workers.md "Watching the queues"): the tenant's external task queues, each with
// its depth (tasks waiting for a worker), the age of the oldest of them, the tasks workers hold now and the locks
// that expired. Read when the page opens and on Refresh (the header's, or the page's own): nothing is polled.

import { api } from './api.js';
import { crumbs, fatal, setLive, show, showError } from './page.js';
import { $, fmtDuration, h } from './util.js';

export class QueuesView {
  constructor() {
    this.stopped = false;
  }

  async start() {
    show('view-queues');
    setLive('idle');
    crumbs(['Executions', '#/'], ['Task queues', null]);
    this.root = $('view-queues');
    this.root.replaceChildren(
      h('div', { class: 'exec-head' }, h('h1', { text: 'Task queues' }), h('button', { type: 'button', id: 'queues-refresh', text: 'Refresh', onclick: () => this.load() })),
      h('p', { class: 'muted small', text: 'Tasks with a queue are run by workers outside the engine (procengine worker, or any HTTP client).' }),
      h(
        'table',
        { class: 'grid', id: 'queues' },
        h('thead', {}, h('tr', {}, ['Queue', 'Waiting', 'Oldest waiting', 'In flight', 'Locks expired'].map((t) => h('th', { text: t })))),
        h('tbody'),
      ),
      h('p', { class: 'empty', id: 'queues-empty', hidden: true, text: 'No task queues yet: a task element with a queue makes one.' }),
    );
    await this.load();
  }

  stop() {
    this.stopped = true;
  }

  tick() {}

  async load() {
    try {
      const data = await api('GET', '/tasks/queues');
      if (this.stopped) return;
      $('queues').tBodies[0].replaceChildren(...data.items.map((queue) => this.row(queue)));
      $('queues-empty').hidden = data.items.length > 0;
    } catch (error) {
      if (this.stopped) return;
      if (error.status === 401) return fatal(error);
      showError(error);
    }
  }

  row(queue) {
    return h(
      'tr',
      { 'data-queue': queue.queue },
      h('td', { text: queue.queue }),
      h('td', { class: 'n', 'data-count': 'depth', text: String(queue.depth) }),
      h('td', { class: 'n', 'data-count': 'oldest', text: queue.depth ? fmtDuration(queue.oldestWaitingMs) : '—' }),
      h('td', { class: 'n', 'data-count': 'inFlight', text: String(queue.inFlight) }),
      h('td', { class: 'n', 'data-count': 'locksExpired', text: String(queue.locksExpired) }),
    );
  }
}
