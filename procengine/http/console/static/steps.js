// The step controls of one element (a click on it in the graph): retry it, skip it, complete it with an output,
// fail it with an error and a type, on a paused or failed execution where it stands on the stack; run a delay or a
// retry backoff now on a running one (POST …/{id}/elements/{elementKey}/{verb}, docs/repair.md); move a lane
// before it (move.js); change its retry policy and timeout as a pending task (policy.js). A button is enabled only
// where its operation applies, and only if the server has the route (its OpenAPI document says so); its disabled
// title says why not. What the server answers shows under the buttons.

import { BASE, api, serverRoutes } from './api.js';
import { note } from './forms.js';
import { MOVE_ROUTE, containersOf, moveBody, moveRow, movableLanes, updateMove } from './move.js';
import { fatal } from './page.js';
import { POLICY_ROUTE, clearPolicyFields, policyBody, policyRow, updatePolicy } from './policy.js';
import { $, h } from './util.js';

const VERBS = [
  ['retry', 'Retry', 'run it again from attempt 1'],
  ['skip', 'Skip', 'record it skipped and follow its next (the output below, if any, is stored as if it had run)'],
  ['complete', 'Complete', 'as if it had run and returned the output below'],
  ['fail', 'Fail', 'as if it had failed with the error and type below (a catch can route it)'],
  ['run-now', 'Run now', 'end its delay or retry backoff now'],
];
const ROUTE = (verb) =>
  new RegExp(`^POST ${BASE.replace(/\//g, '\\/')}\\/executions\\/processes\\/\\{[^}]+\\}\\/elements\\/\\{[^}]+\\}\\/${verb}$`);

/** The controls shown now: their element and the execution's page they act on. */
const shown = { view: null, key: null, el: null, lanes: [], routes: new Set(), containers: new Map() };

export function hideStepControls() {
  const box = $('steps');
  box.hidden = true;
  box.replaceChildren();
  delete box.dataset.key;
  shown.key = null;
}

/** The controls of element `key` of `view`'s execution: built when another element is picked, updated on every read. */
export async function renderStepControls(view, { key, el, entries, stack, status }) {
  const box = $('steps');
  if (shown.view !== view || shown.key !== key) {
    const definition = view.definition ? view.definition.definition : null;
    Object.assign(shown, { view, key, el, lanes: [], containers: containersOf(definition) });
    build(box, key, el);
    shown.routes = await serverRoutes();
    if (shown.view !== view || shown.key !== key) return; // another element was picked meanwhile
  }
  update(status, entries, stack);
}

function build(box, key, el) {
  box.hidden = false;
  box.dataset.key = key;
  const field = (label, input) => h('label', {}, h('span', { text: label }), input);
  box.replaceChildren(
    h('h2', {}, 'Repair ', h('code', { text: key }), ' ', h('span', { class: 'muted', text: el ? el.type : '' })),
    h(
      'div',
      { class: 'step-fields' },
      field('Lane', h('select', { id: 'step-lane', title: 'where the element stands, when it stands in several' })),
      field('Reason', h('input', { id: 'step-reason', maxlength: 1000, placeholder: 'optional, written to the audit log' })),
      field('Output (JSON)', h('textarea', { id: 'step-output', rows: 2, spellcheck: 'false', placeholder: 'for Complete and Skip, e.g. {"approved": true}' })),
      field('Error', h('input', { id: 'step-error', placeholder: 'for Fail: the message' })),
      field('Type', h('input', { id: 'step-error-type', placeholder: 'for Fail: e.g. TaskFailed' })),
    ),
    h(
      'div',
      { class: 'step-buttons' },
      VERBS.map(([verb, label, what]) => {
        const button = h('button', { type: 'button', id: `step-${verb}`, 'data-verb': verb, text: label, 'data-what': what, disabled: true });
        button.addEventListener('click', () => send(verb));
        return button;
      }),
    ),
    moveRow(() => submit('move', 'POST', shown.view.path('/move'), moveBody(shown.key, reasonGiven()))),
    policyRow(() =>
      submit('policy change', 'PATCH', elementPath(), policyBody({ lane: laneGiven(), reason: reasonGiven() }), clearPolicyFields),
    ),
    h('p', { class: 'note', id: 'step-result', role: 'status' }),
    h('div', { class: 'problem', id: 'step-problem', role: 'alert', hidden: true }),
  );
}

/** Which buttons apply to the execution and element as read now, and why the others do not. */
function update(status, entries, stack) {
  const blocked = (status.blockedOn || []).filter((b) => b.elementKey === shown.key && ['delay', 'backoff'].includes(b.kind));
  const repairable = ['paused', 'failed'].includes(status.status);
  // where the element stands; on a running execution, the lanes waiting for a timer first (run-now's)
  const lanes = [...new Set([...(status.status === 'running' ? blocked.map((b) => b.lane) : []), ...entries.map((e) => e.path)])];
  const select = $('step-lane');
  if (!select) return;
  if (lanes.join('\n') !== shown.lanes.join('\n')) {
    shown.lanes = lanes;
    select.replaceChildren(...lanes.map((lane) => h('option', { value: lane, text: lane })));
  }
  select.disabled = lanes.length < 2;
  for (const [verb, , what] of VERBS) {
    const button = $(`step-${verb}`);
    let why = null;
    if (![...shown.routes].some((route) => ROUTE(verb).test(route))) {
      why = `this server has no step controls (no POST …/elements/{elementKey}/${verb} in its OpenAPI document)`;
    } else if (verb === 'run-now') {
      if (status.status !== 'running') why = `applies to a running execution; this one is ${status.status}`;
      else if (!blocked.length) why = 'applies to an element waiting for its delay or retry backoff; this one is not';
    } else if (!repairable) why = `applies to a paused or failed execution; this one is ${status.status}`;
    else if (!entries.length) why = 'applies to an element on the stack (pending); this one is not';
    else if (verb === 'complete' && shown.el?.type !== 'task') why = `applies to a task; this one is a ${shown.el?.type}: skip it (with an output)`;
    button.disabled = why !== null;
    button.title = why ?? `POST …/elements/${shown.key}/${verb}: ${what}`;
  }
  const has = (route) => shown.routes.has(route);
  updateMove({ key: shown.key, status, lanes: movableLanes(shown.containers, shown.key, stack), hasRoute: has(MOVE_ROUTE) });
  updatePolicy({ key: shown.key, el: shown.el, status, entries, hasRoute: has(POLICY_ROUTE) });
}

const reasonGiven = () => $('step-reason').value.trim();
const laneGiven = () => (shown.lanes.length > 1 ? $('step-lane').value : undefined);
const elementPath = (verb) => shown.view.path(`/elements/${encodeURIComponent(shown.key)}${verb ? `/${verb}` : ''}`);

function problem(error) {
  const box = $('step-problem');
  box.hidden = !error;
  if (!error) return box.replaceChildren();
  if (typeof error === 'string') return box.replaceChildren(h('strong', { text: error }));
  const details = Array.isArray(error.details)
    ? error.details.map(String)
    : error.details && typeof error.details === 'object'
      ? Object.entries(error.details).map(([k, v]) => `${k === 'status' ? 'current status' : k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`)
      : [];
  box.dataset.status = String(error.status || 0);
  box.replaceChildren(h('strong', { text: error.text }), details.length ? h('ul', {}, details.map((d) => h('li', { text: d }))) : '');
}

/** The body of `verb` from the fields; a string when a field is wrong (nothing is sent then). */
function bodyOf(verb) {
  const body = {};
  const reason = reasonGiven();
  if (reason) body.reason = reason;
  const lane = laneGiven();
  if (lane) body.lane = lane;
  const text = $('step-output').value.trim();
  if ((verb === 'complete' || verb === 'skip') && text) {
    try {
      body.output = JSON.parse(text);
    } catch (error) {
      return `the output is not JSON: ${error.message}`;
    }
  } else if (verb === 'complete') body.output = null;
  if (verb === 'fail') {
    body.error = $('step-error').value.trim();
    body.type = $('step-error-type').value.trim();
    if (!body.error || !body.type) return 'Fail needs an error message and a type';
  }
  return body;
}

const send = (verb) => submit(verb, 'POST', elementPath(verb), bodyOf(verb));

/**
 * Send `body` (a string: what is wrong in the fields, said in the panel, nothing sent), show the answer; `onDone`
 * after a success.
 */
async function submit(what, method, path, body, onDone = () => {}) {
  const view = shown.view;
  const key = shown.key;
  if (typeof body === 'string') return problem(body);
  problem(null);
  $('step-result').textContent = `${what}…`;
  const following = view.stream && !view.ended; // live now: it shows what follows; else it is opened again
  try {
    const result = await api(method, path, { body });
    const now = result && result.status ? `: the execution is ${result.status}` : '';
    const done = what === 'move' ? `lane ${body.lane} moved before ${key}` : `${what} of ${key} done`;
    const text = `${done}${now}`;
    onDone();
    if (!following && view.reopen) {
      // it was failed (no event stream, or the one that saw it fail has ended): paused now, followed live again
      view.reopen();
      note(text);
    } else {
      $('step-result').textContent = text;
      $('step-result').dataset.kind = 'ok';
      view.refreshSoon();
    }
  } catch (error) {
    $('step-result').textContent = '';
    problem(error);
    if (error.status === 401) fatal(error);
    view.refreshSoon();
  }
}
