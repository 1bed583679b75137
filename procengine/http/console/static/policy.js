// "Change policy" of the step controls: a pending task's retry policy and timeout for this run of it, on a running
// or paused execution (PATCH …/{id}/elements/{elementKey} {retry?, timeoutMs?, lane?, reason?}, docs/repair.md
// "Change a task's policy for this execution"). Only the fields filled in are sent; their placeholders show the
// policy in force (the one changed before, else the definition's). The retry fields left empty are sent as they
// are in force (the server keeps those not given too: only what is filled in changes), so the line under the
// fields shows the whole policy the task will have.

import { BASE } from './api.js';
import { $, h } from './util.js';

export const POLICY_ROUTE = `PATCH ${BASE}/executions/processes/{id}/elements/{elementKey}`;

const RETRY_DEFAULTS = { maxAttempts: 1, backoffMs: 0, backoffMultiplier: 2.0, maxBackoffMs: 3_600_000 };
const FIELDS = [
  // [name, id, whole number, min]
  ['maxAttempts', 'policy-max-attempts', true, 1],
  ['backoffMs', 'policy-backoff-ms', true, 0],
  ['backoffMultiplier', 'policy-backoff-multiplier', false, 1],
  ['maxBackoffMs', 'policy-max-backoff-ms', true, 1],
  ['timeoutMs', 'policy-timeout-ms', true, 1],
];

/** The row of the panel: the five fields, the button (`onChange` on a click) and what would be sent. */
export function policyRow(onChange) {
  const button = h('button', { type: 'button', id: 'step-policy', text: 'Change policy', disabled: true });
  button.addEventListener('click', onChange);
  const fields = FIELDS.map(([name, id, whole, min]) => {
    const input = h('input', { id, type: 'number', min, step: whole ? 1 : 'any', 'data-field': name, class: 'num' });
    input.addEventListener('input', preview);
    return h('label', {}, h('span', { text: name }), input);
  });
  return h(
    'div',
    { class: 'step-row', id: 'policy-row' },
    h('span', { class: 'row-title', text: 'Retry policy and timeout of this run of the task' }),
    h('div', { class: 'step-fields' }, fields, button),
    h('p', { class: 'muted small', id: 'policy-sends' }),
  );
}

/** The policy in force for this run of the element: its stack entry's (changed before), else the definition's. */
function inForce(el, entries) {
  const changed = (entries[0] && entries[0].policy) || {};
  const retry = { ...RETRY_DEFAULTS, ...((el && el.retry) || {}), ...(changed.retry || {}) };
  const timeoutMs = changed.timeoutMs ?? (el ? el.timeoutMs : undefined);
  return { ...retry, timeoutMs };
}

let current = { ...RETRY_DEFAULTS }; // the policy in force, for the placeholders and the warning of `preview`

/** Enable the button where a policy change applies, else say why in its title; the placeholders follow the reads. */
export function updatePolicy({ key, el, status, entries, hasRoute }) {
  const button = $('step-policy');
  if (!button) return;
  const type = el ? el.type : null;
  current = inForce(el, entries);
  for (const [name, id] of FIELDS) {
    const value = type === 'task' ? current[name] : undefined; // an element that is not a task has no policy
    $(id).placeholder = value === undefined || value === null ? (name === 'timeoutMs' && type === 'task' ? 'none' : '') : String(value);
  }
  let why = null;
  if (!hasRoute) why = 'this server cannot change a policy (no PATCH …/elements/{elementKey} in its OpenAPI document)';
  else if (!['running', 'paused'].includes(status.status)) why = `applies to a running or paused execution; this one is ${status.status}`;
  else if (type !== 'task') why = `applies to a task (its retry policy and timeout); this one is a ${type}`;
  else if (!entries.length) why = 'applies to a task on the stack (pending); this one is not';
  button.disabled = why !== null;
  button.title = why ?? `PATCH …/elements/${key}: the fields filled in, for this run of the task`;
  for (const [, id] of FIELDS) $(id).disabled = why !== null;
  if (why === null) preview();
  else $('policy-sends').textContent = '';
}

/** The fields filled in: {retry?, timeoutMs?}; a string when one is not a number (nothing is sent then). */
function filled() {
  const change = {};
  for (const [name, id, whole] of FIELDS) {
    const text = $(id).value.trim();
    if (!text) continue;
    const value = Number(text);
    if (!Number.isFinite(value) || (whole && !Number.isInteger(value))) return `${name} is not a ${whole ? 'whole ' : ''}number: ${text}`;
    if (name === 'timeoutMs') change.timeoutMs = value;
    else (change.retry ||= {})[name] = value;
  }
  if (change.retry) change.retry = { ...pick(current, Object.keys(RETRY_DEFAULTS)), ...change.retry }; // the rest as in force
  return change;
}

function pick(object, names) {
  return Object.fromEntries(names.filter((name) => object[name] !== undefined && object[name] !== null).map((name) => [name, object[name]]));
}

/** What a click would send (the retry fields left empty as they are in force). */
function preview() {
  const line = $('policy-sends');
  if (!line) return;
  const change = filled();
  if (typeof change === 'string') return void (line.textContent = change);
  if (!Object.keys(change).length) return void (line.textContent = 'fill in what changes; the placeholders are the policy in force');
  line.textContent = `sends ${JSON.stringify(change)}`;
}

/** The body of the change; a string when nothing is filled in or a field is wrong (nothing is sent then). */
export function policyBody({ lane, reason }) {
  const change = filled();
  if (typeof change === 'string') return change;
  if (!Object.keys(change).length) return 'nothing to change: fill in maxAttempts, backoffMs, backoffMultiplier, maxBackoffMs or timeoutMs';
  if (lane) change.lane = lane;
  if (reason) change.reason = reason;
  return change;
}

/** After a change the server took: the fields emptied, their placeholders (read again) show the policy in force. */
export function clearPolicyFields() {
  for (const [, id] of FIELDS) $(id).value = '';
  preview();
}
