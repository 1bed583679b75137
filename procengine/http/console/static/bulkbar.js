// The executions list's selection and its bulk action bar (issue 23; docs/operations.md "Bulk operations"): a
// checkbox on each row (and one in the header for the page), "Select all that match" (the list's filter: status
// and process, as the list reads them), and with a selection the actions: pause, resume, cancel, signal, retry,
// edit variables, migrate. An action first sends `POST /bulk-operations` with `dryRun: true` and shows how many
// executions it would touch and the first of them; only Confirm sends it for real (by `ids` for a hand selection,
// by `filter` for all that match) and opens the job's page (#/bulk/<jobID>). The list calls `cell(id)` for each
// row it draws; everything else is here.

import { api } from './api.js';
import { parseMapping } from './migrate.js';
import { executionLink } from './page.js';
import { fillProblem } from './repair.js';
import { $, h } from './util.js';

const ACTIONS = [
  ['pause', 'Pause'],
  ['resume', 'Resume'],
  ['cancel', 'Cancel'],
  ['signal', 'Signal…'],
  ['retry', 'Retry…'],
  ['edit-variables', 'Edit variables…'],
  ['migrate', 'Migrate…'],
];
const VERB = Object.fromEntries(ACTIONS.map(([action, label]) => [action, label.replace('…', '')]));
const QUICK = new Set(['pause', 'resume', 'cancel']); // nothing to fill in: the dry run goes at once

/** `{value}` from a JSON text (`empty` when it is blank), or `{problem}`. */
function parseJson(text, what, empty) {
  if (!text.trim()) return { value: empty };
  try {
    return { value: JSON.parse(text) };
  } catch (error) {
    return { problem: `${what} is not JSON: ${error.message}` };
  }
}

export class BulkBar {
  /** `params`: the list's {status, process}, and `searched` its search field's [name, value] pairs: the filter
   *  "all that match" sends (a bulk filter takes the list's query parameters as names). */
  constructor(params, searched = []) {
    this.filter = {};
    if (params.status) this.filter.status = params.status;
    if (params.process) this.filter.processID = Number(params.process);
    for (const [name, value] of searched) this.filter[name] = value;
    this.picked = new Set(); // a hand selection: executionIDs
    this.all = false; // all that match the filter
    this.action = null;
    this.pageBox = h('input', {
      type: 'checkbox',
      id: 'bulk-page',
      title: 'select the executions on this page',
      'aria-label': 'select the executions on this page',
      onchange: () => this.pickPage(this.pageBox.checked),
    });
    $('bulk-head').replaceChildren(this.pageBox);
    this.render();
  }

  filterText() {
    const parts = [];
    if (this.filter.status) parts.push(`status ${this.filter.status}`);
    if (this.filter.processID) parts.push(`process #${this.filter.processID}`);
    for (const [name, value] of Object.entries(this.filter)) {
      if (name !== 'status' && name !== 'processID') parts.push(`${name}=${value}`);
    }
    return parts.length ? parts.join(', ') : 'every execution';
  }

  /** The checkbox cell of a row of the list. */
  cell(id) {
    const box = h('input', {
      type: 'checkbox',
      'data-pick': id,
      'aria-label': `select execution ${id}`,
      checked: this.all || this.picked.has(id),
      disabled: this.all,
      onchange: () => {
        if (box.checked) this.picked.add(id);
        else this.picked.delete(id);
        this.changed();
      },
    });
    queueMicrotask(() => this.syncPage());
    return h('td', { class: 'pick' }, box);
  }

  boxes() {
    return [...$('executions').tBodies[0].querySelectorAll('input[data-pick]')];
  }

  syncPage() {
    const boxes = this.boxes();
    this.pageBox.checked = this.all || (boxes.length > 0 && boxes.every((box) => box.checked));
    this.pageBox.disabled = this.all;
  }

  pickPage(on) {
    for (const box of this.boxes()) {
      box.checked = on;
      if (on) this.picked.add(Number(box.dataset.pick));
      else this.picked.delete(Number(box.dataset.pick));
    }
    this.changed();
  }

  selectAll(on) {
    this.all = on;
    if (!on) this.picked.clear();
    for (const box of this.boxes()) {
      box.checked = on;
      box.disabled = on;
    }
    this.changed();
  }

  changed() {
    this.syncPage();
    if (!this.all && !this.picked.size) this.action = null;
    this.render();
  }

  /** The bar: what is selected, Select all that match, Clear, the actions, and the open action's form. */
  render() {
    const bar = $('bulk-bar');
    const any = this.all || this.picked.size > 0;
    const count = this.all
      ? `All executions that match: ${this.filterText()}`
      : any
        ? `${this.picked.size} selected`
        : 'Select executions for a bulk action, or';
    const line = h(
      'div',
      { class: 'bulk-line' },
      h('span', { id: 'bulk-count', class: 'bulk-count', text: count }),
      this.all
        ? ''
        : h('button', {
            type: 'button',
            id: 'bulk-all',
            class: 'quiet',
            text: 'Select all that match',
            title: `every execution the list's filter matches (${this.filterText()}), not only this page`,
            onclick: () => this.selectAll(true),
          }),
      any ? h('button', { type: 'button', id: 'bulk-clear', class: 'quiet', text: 'Clear', onclick: () => this.selectAll(false) }) : '',
      any ? h('span', { class: 'sep' }) : '',
      any
        ? ACTIONS.map(([action, label]) =>
            h('button', {
              type: 'button',
              id: `bulk-do-${action}`,
              'data-action': action,
              class: [action === 'cancel' ? 'danger' : '', this.action === action ? 'on' : ''],
              text: label,
              onclick: () => this.open(action),
            }),
          )
        : '',
      h('a', { href: '#/bulk', class: 'small', text: 'Bulk operations' }),
    );
    bar.replaceChildren(line, any && this.action ? this.form() : '');
    bar.hidden = false;
  }

  open(action) {
    this.action = action;
    this.render();
    if (QUICK.has(action)) this.check();
  }

  /** The open action's fields, a reason, Dry run, and the confirm step (filled by the dry run). */
  form() {
    const field = (id, label, control) => h('label', { class: 'bulk-field' }, h('span', { text: label }), control);
    const fields = {
      signal: () => [
        field('bulk-signal', 'Signal', h('input', { id: 'bulk-signal', required: true, placeholder: 'name' })),
        field('bulk-payload', 'Payload (JSON)', h('textarea', { id: 'bulk-payload', rows: 2, spellcheck: 'false', placeholder: 'empty is null' })),
      ],
      retry: () => [
        field('bulk-vars', 'Variables patch (JSON, optional)', h('textarea', { id: 'bulk-vars', rows: 2, spellcheck: 'false', placeholder: '{"limit": 500}' })),
      ],
      'edit-variables': () => [
        field('bulk-vars', 'Merge patch (JSON object)', h('textarea', { id: 'bulk-vars', rows: 2, spellcheck: 'false', placeholder: '{"limit": 500, "old": null}' })),
      ],
      migrate: () => [
        field('bulk-version', 'Target version', h('input', { id: 'bulk-version', type: 'number', min: 1, required: true })),
        field('bulk-mapping', 'Renamed elements (old=new)', h('textarea', { id: 'bulk-mapping', rows: 2, spellcheck: 'false', placeholder: 'one a line; same keys map by themselves' })),
      ],
    }[this.action];
    const box = h(
      'form',
      { class: 'bulk-form', id: 'bulk-form', autocomplete: 'off', 'data-action': this.action, onsubmit: (event) => event.preventDefault() },
      h('strong', { text: `${VERB[this.action]}: ` }),
      fields ? fields() : '',
      field('bulk-reason', 'Reason', h('input', { id: 'bulk-reason', maxlength: 1000, placeholder: 'optional, in each audit entry' })),
      h('button', { type: 'button', id: 'bulk-check', text: 'Dry run', title: 'how many it would touch: nothing is changed', onclick: () => this.check() }),
      h('button', { type: 'button', id: 'bulk-close', class: 'quiet', text: 'Close', onclick: () => this.open(null) }),
      h('div', { class: 'bulk-confirm', id: 'bulk-confirm', role: 'alertdialog', hidden: true }),
      h('div', { class: 'problem', id: 'bulk-problem', role: 'alert', hidden: true }),
    );
    box.addEventListener('input', (event) => {
      if (event.target.id !== 'bulk-reason') $('bulk-confirm').hidden = true; // a changed form is checked again
    });
    return box;
  }

  /** The request's body from the form, or `{problem}`. */
  body(dryRun) {
    const body = { action: this.action, dryRun };
    if (this.all) body.filter = { ...this.filter };
    else body.ids = [...this.picked].sort((a, b) => b - a);
    const reason = $('bulk-reason').value.trim();
    if (reason) body.reason = reason;
    if (this.action === 'signal') {
      body.signal = $('bulk-signal').value.trim();
      const payload = parseJson($('bulk-payload').value, 'the payload', null);
      if (payload.problem) return { problem: payload.problem };
      body.payload = payload.value;
    }
    if (this.action === 'retry' || this.action === 'edit-variables') {
      const patch = parseJson($('bulk-vars').value, 'the patch', undefined);
      if (patch.problem) return { problem: patch.problem };
      if (patch.value !== undefined) body.variables = patch.value;
    }
    if (this.action === 'migrate') {
      const version = $('bulk-version').value.trim();
      if (version) body.version = Number(version);
      const parsed = parseMapping($('bulk-mapping').value);
      if (parsed.problem) return { problem: parsed.problem };
      if (Object.keys(parsed.mapping).length) body.mapping = parsed.mapping;
    }
    return { body };
  }

  /** The dry run: how many executions, the first of them, then Confirm. The server's 422 shows its problems. */
  async check() {
    const problem = $('bulk-problem');
    const confirm = $('bulk-confirm');
    fillProblem(problem, null);
    confirm.hidden = true;
    const { body, problem: bad } = this.body(true);
    if (bad) return fillProblem(problem, bad);
    let answer;
    try {
      answer = await api('POST', '/bulk-operations', { body });
    } catch (error) {
      return fillProblem(problem, error);
    }
    const what = this.all ? `that match ${this.filterText()}` : 'selected';
    const plural = answer.matched === 1 ? '' : 's';
    const sample = answer.sample.slice(0, 10);
    confirm.replaceChildren(
      h('span', {
        id: 'bulk-confirm-text',
        text: `${VERB[this.action]} ${answer.matched} execution${plural} ${what}? `,
      }),
      answer.sample.length
        ? h('span', { class: 'muted small', id: 'bulk-sample' }, 'first: ', sample.flatMap((id, i) => [i ? ', ' : '', executionLink(id)]), answer.matched > sample.length ? ' …' : '')
        : '',
      h('span', { class: 'muted small', text: ' (a dry run: nothing is touched yet)' }),
      h('button', {
        type: 'button',
        id: 'bulk-confirm-yes',
        class: 'danger',
        'data-armed': 'true',
        disabled: answer.matched === 0,
        text: `${VERB[this.action]} ${answer.matched}`,
        onclick: () => this.run(),
      }),
      h('button', { type: 'button', id: 'bulk-confirm-no', class: 'quiet', text: 'Back', onclick: () => (confirm.hidden = true) }),
    );
    confirm.dataset.matched = String(answer.matched);
    confirm.hidden = false;
  }

  /** Create the job, then open its page. */
  async run() {
    const problem = $('bulk-problem');
    const { body, problem: bad } = this.body(false);
    if (bad) return fillProblem(problem, bad);
    delete body.dryRun;
    $('bulk-confirm-yes').disabled = true;
    try {
      const created = await api('POST', '/bulk-operations', { body });
      location.hash = `#/bulk/${created.jobID}`;
    } catch (error) {
      $('bulk-confirm').hidden = true;
      fillProblem(problem, error);
    }
  }
}
