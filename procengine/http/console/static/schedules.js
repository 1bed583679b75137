// The Schedules page (#/schedules, #/schedules/{scheduleID}; docs/schedules.md): the tenant's schedules (process,
// when, state, the next fire time, the last outcome) with a form that creates one (the server's 422 problems shown
// under it: a bad cron, an unknown time zone, cron and every both or neither), and one schedule: its spec, its next
// five fire times, its last outcomes (fire time, result, the execution started, why) and the buttons Pause, Resume,
// Trigger now and Delete. Nothing is polled, but a schedule's page reads it again a few times after Trigger now,
// until the firing's outcome shows.

import { api } from './api.js';
import { crumbs, executionLink, fatal, setLive, show, showError } from './page.js';
import { fillProblem } from './repair.js';
import { $, fmtTime, h } from './util.js';

const AFTER_TRIGGER_MS = 300;
const AFTER_TRIGGER_TRIES = 20;

export const schedulesHash = (id) => (id ? `#/schedules/${id}` : '#/schedules');
const when = (s) => (s.cron ? `cron ${s.cron} (${s.timezone})` : `every ${s.every}`);

export class SchedulesView {
  constructor(scheduleID) {
    this.scheduleID = scheduleID ? Number(scheduleID) : null;
    this.stopped = false;
    this.timer = null;
  }

  async start() {
    show('view-schedules');
    setLive('idle');
    crumbs(['Executions', '#/'], ['Schedules', this.scheduleID ? '#/schedules' : null], ...(this.scheduleID ? [[`#${this.scheduleID}`, null]] : []));
    this.root = $('view-schedules');
    if (this.scheduleID) this.buildOne();
    else this.buildList();
    await this.load();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  tick() {}

  async load() {
    try {
      await (this.scheduleID ? this.loadOne() : this.loadList());
    } catch (error) {
      if (this.stopped) return;
      if (error.status === 401 || error.status === 404) return fatal(error);
      showError(error);
    }
  }

  // --------------------------------------------------------------------------------------------- the list

  buildList() {
    const field = (id, label, control) => h('label', { class: 'bulk-field', for: id }, h('span', { text: label }), control);
    const select = (id, options) => h('select', { id }, options.map((o) => h('option', { text: o })));
    this.root.replaceChildren(
      h('div', { class: 'exec-head' }, h('h1', { text: 'Schedules' })),
      h(
        'table',
        { class: 'grid', id: 'schedules' },
        h('thead', {}, h('tr', {}, ['Schedule', 'Process', 'When', 'State', 'Next', 'Last outcome'].map((t) => h('th', { text: t })))),
        h('tbody'),
      ),
      h('p', { class: 'empty', id: 'schedules-empty', hidden: true, text: 'No schedules yet.' }),
      h(
        'form',
        { class: 'panel schedule-form', id: 'schedule-form', autocomplete: 'off' },
        h('h2', { text: 'New schedule' }),
        field('sched-process', 'Process key', h('input', { id: 'sched-process', required: true, placeholder: 'order-fulfilment' })),
        field('sched-cron', 'Cron (five fields)', h('input', { id: 'sched-cron', placeholder: '0 9 * * 1-5', spellcheck: 'false' })),
        field('sched-every', 'or every', h('input', { id: 'sched-every', placeholder: '5m', size: 6 })),
        field('sched-timezone', 'Time zone', h('input', { id: 'sched-timezone', placeholder: 'UTC', list: 'sched-zones' })),
        h('datalist', { id: 'sched-zones' }, ['UTC', 'Europe/Berlin', 'Europe/London', 'America/New_York', 'Asia/Tokyo'].map((z) => h('option', { value: z }))),
        field('sched-overlap', 'Overlap', select('sched-overlap', ['skip', 'buffer-one', 'allow', 'cancel-previous'])),
        field('sched-catchup', 'Catch-up', select('sched-catchup', ['none', 'latest', 'all'])),
        field('sched-variables', 'Variables (JSON object)', h('textarea', { id: 'sched-variables', rows: 2, spellcheck: 'false', placeholder: '{"region": "eu"}' })),
        h('div', { class: 'problem', id: 'sched-problem', role: 'alert', hidden: true }),
        h('div', {}, h('button', { type: 'submit', id: 'sched-create', text: 'Create' })),
      ),
    );
    $('schedule-form').addEventListener('submit', (event) => {
      event.preventDefault();
      this.create();
    });
  }

  async loadList() {
    const data = await api('GET', '/schedules?limit=100');
    if (this.stopped) return;
    $('schedules').tBodies[0].replaceChildren(...data.items.map((s) => this.row(s)));
    $('schedules-empty').hidden = data.items.length > 0;
  }

  row(s) {
    const last = s.lastOutcomes[0];
    return h(
      'tr',
      { 'data-schedule': s.scheduleID },
      h('td', {}, h('a', { href: schedulesHash(s.scheduleID), text: `#${s.scheduleID}` }), s.name ? ` ${s.name}` : ''),
      h('td', { text: s.processKey + (s.version ? ` v${s.version}` : '') }),
      h('td', { text: when(s) }),
      h('td', { class: 'status', text: s.state }),
      h('td', { title: s.nextFireTimes[0] || '', text: s.nextFireTimes[0] ? fmtTime(s.nextFireTimes[0]) : '–' }),
      h('td', {}, last ? this.outcomeText(last) : '–'),
    );
  }

  outcomeText(o) {
    return h('span', { class: `outcome outcome-${o.result}`, title: o.reason || '' }, `${o.result} `, o.executionID ? executionLink(o.executionID) : '');
  }

  async create() {
    const value = (id) => $(id).value.trim();
    const body = { processKey: value('sched-process'), overlap: value('sched-overlap'), catchup: value('sched-catchup') };
    if (value('sched-cron')) body.cron = value('sched-cron');
    if (value('sched-every')) body.every = value('sched-every');
    if (value('sched-timezone')) body.timezone = value('sched-timezone');
    if (value('sched-variables')) {
      try {
        body.variables = JSON.parse(value('sched-variables'));
      } catch (error) {
        return fillProblem($('sched-problem'), `Variables: not JSON (${error.message})`);
      }
    }
    try {
      const created = await api('POST', '/schedules', { body });
      fillProblem($('sched-problem'), null);
      location.hash = schedulesHash(created.scheduleID);
    } catch (error) {
      if (error.status === 401) return fatal(error);
      fillProblem($('sched-problem'), error);
    }
  }

  // ------------------------------------------------------------------------------------------ one schedule

  buildOne() {
    const button = (id, text, verb, attrs = {}) => h('button', { type: 'button', id, text, onclick: () => this.act(verb), ...attrs });
    this.root.replaceChildren(
      h('div', { class: 'exec-head' }, h('h1', { id: 'sched-title', text: `Schedule #${this.scheduleID}` }), h('span', { id: 'sched-state' })),
      h('dl', { class: 'facts', id: 'sched-facts' }),
      h(
        'div',
        { class: 'actions', id: 'sched-actions' },
        h('label', { for: 'sched-reason', text: 'Reason' }),
        h('input', { id: 'sched-reason', maxlength: 1000, placeholder: 'optional, for the audit log' }),
        button('sched-pause', 'Pause', 'pause'),
        button('sched-resume', 'Resume', 'resume'),
        button('sched-trigger', 'Trigger now', 'trigger'),
        button('sched-delete', 'Delete', 'delete', { class: 'danger' }),
      ),
      h('p', { class: 'note', id: 'sched-note', role: 'status' }),
      h('div', { class: 'problem', id: 'sched-act-problem', role: 'alert', hidden: true }),
      h('section', { class: 'panel' }, h('h2', { text: 'Next fire times' }), h('ol', { id: 'sched-next' })),
      h(
        'section',
        { class: 'panel' },
        h('h2', { text: 'Last outcomes' }),
        h('table', { class: 'grid', id: 'sched-outcomes' }, h('thead', {}, h('tr', {}, ['Fire time', 'Result', 'Execution', 'Why', 'Written'].map((t) => h('th', { text: t })))), h('tbody')),
      ),
    );
  }

  async loadOne() {
    const s = await api('GET', `/schedules/${this.scheduleID}`);
    if (this.stopped) return;
    this.shown = s;
    $('sched-title').textContent = `Schedule #${s.scheduleID}${s.name ? ` ${s.name}` : ''}`;
    $('sched-state').replaceChildren(h('span', { class: `badge sched-${s.state}`, text: s.state }));
    const facts = [
      ['Process', s.processKey + (s.version ? ` v${s.version}` : ' (latest version)')],
      ['When', when(s)],
      ['Overlap', s.overlap],
      ['Catch-up', `${s.catchup} (window ${s.catchupWindow})`],
      ['Variables', JSON.stringify(s.variables)],
      ['Between', `${s.startAt || '–'} … ${s.endAt || '–'}`],
      ['Changed', `${fmtTime(s.updatedAt)} by ${s.by}`],
    ];
    $('sched-facts').replaceChildren(...facts.flatMap(([k, v]) => [h('dt', { text: k }), h('dd', { text: v })]));
    $('sched-next').replaceChildren(...(s.nextFireTimes.length ? s.nextFireTimes.map((t) => h('li', { title: t, text: `${t} (${fmtTime(t)})` })) : [h('li', { class: 'muted', text: s.state === 'paused' ? 'paused' : 'none' })]));
    $('sched-outcomes').tBodies[0].replaceChildren(
      ...s.lastOutcomes.map((o) =>
        h(
          'tr',
          { 'data-result': o.result },
          h('td', { title: o.fireTime, text: fmtTime(o.fireTime) + (o.manual ? ' (by hand)' : '') }),
          h('td', { class: `outcome outcome-${o.result}`, text: o.result }),
          h('td', {}, o.executionID ? executionLink(o.executionID) : '–'),
          h('td', { class: 'muted', text: o.reason || '' }),
          h('td', { title: o.at, text: fmtTime(o.at) }),
        ),
      ),
    );
    $('sched-pause').disabled = s.state === 'paused';
    $('sched-resume').disabled = s.state !== 'paused';
  }

  async act(verb) {
    const reason = $('sched-reason').value.trim();
    const before = this.shown ? this.shown.lastOutcomes.length : 0;
    try {
      if (verb === 'delete') {
        await api('DELETE', `/schedules/${this.scheduleID}${reason ? `?reason=${encodeURIComponent(reason)}` : ''}`);
        location.hash = schedulesHash();
        return;
      }
      const answer = await api('POST', `/schedules/${this.scheduleID}/${verb}`, reason ? { body: { reason } } : {});
      fillProblem($('sched-act-problem'), null);
      $('sched-note').textContent = verb === 'trigger' ? `fired by hand at ${answer.fireTime}` : `${verb}d`;
      await this.loadOne();
      if (verb === 'trigger') this.awaitOutcome(before, AFTER_TRIGGER_TRIES);
    } catch (error) {
      if (error.status === 401) return fatal(error);
      fillProblem($('sched-act-problem'), error);
    }
  }

  /** Read the schedule again until a new outcome shows (the firing is the server's loop's, a moment later). */
  awaitOutcome(before, tries) {
    if (this.stopped || tries <= 0 || (this.shown && this.shown.lastOutcomes.length > before && this.shown.lastOutcomes[0].result !== 'buffered')) return;
    this.timer = setTimeout(async () => {
      await this.load();
      this.awaitOutcome(before, tries - 1);
    }, AFTER_TRIGGER_MS);
  }
}
