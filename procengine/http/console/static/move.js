// "Move lane here" of the step controls: put a lane of a paused or failed execution before the element picked in
// the graph (POST …/{id}/move {lane, before, reason}, docs/repair.md "Move a lane"). The lanes offered are those
// with a pending element in the same list as the picked one (its thread's own elements, or its branch's or
// for-each body's), as the server requires; the server's other refusals (a lane waiting at a fan-out whose
// branches run, a call whose child still runs: 409) show under the buttons like every step's.

import { BASE } from './api.js';
import { $, h } from './util.js';

export const MOVE_ROUTE = `POST ${BASE}/executions/processes/{id}/move`;

/**
 * Each element's key → the list it stands in, as the server computes it (engine/steps.py `containers`): its
 * thread's key, `<parallel>[<branch>]` for a branch's element, `<for-each>[*]` for a body's.
 */
export function containersOf(definition) {
  const found = new Map();
  const visit = (elements, where) => {
    for (const el of elements || []) {
      found.set(el.key, where);
      if (el.type === 'parallel') for (const branch of el.branches || []) visit(branch.elements, `${el.key}[${branch.key}]`);
      if (el.type === 'for-each' && el.body) visit(el.body.elements, `${el.key}[*]`);
    }
  };
  for (const thread of (definition && definition.threads) || []) visit(thread.elements, thread.key);
  return found;
}

/**
 * The lanes that can be moved before `key`: those whose pending element stands in `key`'s list; a held (failed)
 * one first, then in the order of the stack. Without the definition's shape, every lane (the server says no).
 */
export function movableLanes(containers, key, stack) {
  const where = containers.get(key);
  const pending = stack.filter((e) => where === undefined || containers.get(e.element_key) === where);
  pending.sort((a, b) => Number(Boolean(b.held)) - Number(Boolean(a.held)));
  return [...new Set(pending.map((e) => e.path))];
}

/** The row of the panel: the lane picker and the button (`onMove` on a click). */
export function moveRow(onMove) {
  const button = h('button', { type: 'button', id: 'step-move', text: 'Move lane here', disabled: true });
  button.addEventListener('click', onMove);
  return h(
    'div',
    { class: 'step-row', id: 'move-row' },
    h('label', {}, h('span', { text: 'Lane to move here' }), h('select', { id: 'move-lane', title: 'a lane with a pending element in this element’s thread or branch' })),
    button,
  );
}

/** Enable the button where a move applies (`lanes`: movableLanes), else say why in its title. */
export function updateMove({ key, status, lanes, hasRoute }) {
  const select = $('move-lane');
  const button = $('step-move');
  if (!select || !button) return;
  const shown = [...select.options].map((o) => o.value);
  if (shown.join('\n') !== lanes.join('\n')) {
    const picked = select.value;
    select.replaceChildren(...lanes.map((lane) => h('option', { value: lane, text: lane })));
    if (lanes.includes(picked)) select.value = picked;
  }
  select.disabled = lanes.length < 2;
  let why = null;
  if (!hasRoute) why = 'this server cannot move a lane (no POST …/{id}/move in its OpenAPI document)';
  else if (!['paused', 'failed'].includes(status.status)) why = `applies to a paused or failed execution; this one is ${status.status}`;
  else if (!lanes.length) why = 'no lane of this element’s thread or branch has a pending element';
  button.disabled = why !== null;
  button.title = why ?? `POST …/move: lane ${select.value || lanes[0]} goes on from ${key} (attempt 1); what completed is not undone`;
}

/** The body of the move: the picked lane, `before` the element, the panel's reason. */
export function moveBody(key, reason) {
  const body = { lane: $('move-lane').value, before: key };
  if (reason) body.reason = reason;
  return body;
}
