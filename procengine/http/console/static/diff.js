// What changed between two states of an execution, shown readably: the answer of `GET …/checkpoints/{a}/diff/{b}`
// (`{variables: {added, removed, changed}, nodeOutputs: {…}, stack: {added, removed, changed}}`, a changed value
// `{from, to}`), added in green, removed in red, changed as from → to. `stateDiff` computes the same shape in the
// page for a state the server has no checkpoint of (a cancelled execution's: its stack and memory are cleared).

import { compact, h } from './util.js';

const SIDES = [
  ['added', '+', 'added'],
  ['removed', '−', 'removed'],
  ['changed', '~', 'changed'],
];

/** How many things the diff names, by kind: `{added, removed, changed}` over variables, outputs and the stack. */
export function diffCounts(diff) {
  const counts = { added: 0, removed: 0, changed: 0 };
  for (const part of [diff.variables, diff.nodeOutputs, diff.stack]) {
    for (const [side] of SIDES) {
      const value = part && part[side];
      counts[side] += Array.isArray(value) ? value.length : value ? Object.keys(value).length : 0;
    }
  }
  return counts;
}

/** One line that sums the diff up: "2 added, 1 removed, 3 changed" or "no difference". */
export function diffSummary(diff) {
  const counts = diffCounts(diff);
  const parts = SIDES.filter(([side]) => counts[side]).map(([side]) => `${counts[side]} ${side}`);
  return parts.length ? parts.join(', ') : 'no difference';
}

/** The diff as a block: a table per part that has something (variables, node outputs, the stack's entries). */
export function renderDiff(diff) {
  const parts = [
    ['Variables', 'variables', mappingRows(diff.variables)],
    ['Node outputs', 'outputs', mappingRows(diff.nodeOutputs)],
    ['Stack', 'stack', stackRows(diff.stack)],
  ].filter(([, , rows]) => rows.length);
  if (!parts.length) return h('p', { class: 'empty diff-none', text: 'no difference: the same variables, outputs and stack' });
  return h(
    'div',
    { class: 'diff' },
    parts.map(([title, part, rows]) =>
      h('div', { class: 'diff-part', 'data-part': part }, h('h4', { text: title }), h('table', { class: 'diff-table' }, h('tbody', {}, rows))),
    ),
  );
}

function row(side, name, ...value) {
  const mark = SIDES.find(([s]) => s === side)[1];
  return h(
    'tr',
    { class: `diff-${side}`, 'data-name': name, 'data-side': side },
    h('td', { class: 'diff-mark', text: mark, title: side }),
    h('th', { text: name }),
    h('td', {}, ...value),
  );
}

const value = (v) => h('code', { text: compact(v, 400) });
const fromTo = (from, to) => [h('del', { class: 'from', text: compact(from, 300) }), h('span', { class: 'arrow', text: ' → ' }), h('ins', { class: 'to', text: compact(to, 300) })];

function mappingRows(part) {
  if (!part) return [];
  return [
    ...Object.entries(part.added || {}).map(([name, v]) => row('added', name, value(v))),
    ...Object.entries(part.removed || {}).map(([name, v]) => row('removed', name, value(v))),
    ...Object.entries(part.changed || {}).map(([name, c]) => row('changed', name, ...fromTo(c && c.from, c && c.to))),
  ];
}

/** A stack entry's name in the diff: its element, and its lane where that is not its thread. */
const entryName = (e) => (e ? `${e.element_key}${e.path && e.path !== e.thread_key ? ` [${e.path}]` : ''}` : '?');
const entryText = (e) => (e ? `${e.element_type} · lane ${e.path} · attempt ${e.attempt}${e.started_at_ms ? ' · started' : ''}` : '');

function stackRows(part) {
  if (!part) return [];
  return [
    ...(part.added || []).map((e) => row('added', entryName(e), entryText(e))),
    ...(part.removed || []).map((e) => row('removed', entryName(e), entryText(e))),
    ...(part.changed || []).map((c) => row('changed', entryName(c.to || c.from), ...changedFields(c.from || {}, c.to || {}))),
  ];
}

/** The fields of a stack entry that differ, each from → to. */
function changedFields(from, to) {
  const names = [...new Set([...Object.keys(from), ...Object.keys(to)])].filter((n) => JSON.stringify(from[n]) !== JSON.stringify(to[n]));
  return names.flatMap((name, i) => [i ? '; ' : '', `${name}: `, ...fromTo(from[name] ?? null, to[name] ?? null)]);
}

// ------------------------------------------------------------------------------- a diff computed in the page

function mappingDiff(before, after) {
  const diff = { added: {}, removed: {}, changed: {} };
  for (const [name, v] of Object.entries(before)) if (!(name in after)) diff.removed[name] = v;
  for (const [name, v] of Object.entries(after)) {
    if (!(name in before)) diff.added[name] = v;
    else if (JSON.stringify(before[name]) !== JSON.stringify(v)) diff.changed[name] = { from: before[name], to: v };
  }
  return diff;
}

const entriesOf = (stack) => (stack && Array.isArray(stack.execution_stack) ? stack.execution_stack : []);
const identity = (e) => `${e.path}\u0000${e.element_key}\u0000${e.execution_order}`;

/**
 * The diff from state `a` to state `b` (each `{stack, memory}` as `…/state` and `…/checkpoints/{seq}` show them; a
 * missing stack or memory is empty), in the server's shape: a stack entry is told apart by its lane, element and
 * execution order, as the server tells them.
 */
export function stateDiff(a, b) {
  const memory = (s) => (s && s.memory && !s.memory.error ? s.memory : {});
  const before = new Map(entriesOf(a && a.stack).map((e) => [identity(e), e]));
  const after = new Map(entriesOf(b && b.stack).map((e) => [identity(e), e]));
  const stack = { added: [], removed: [], changed: [] };
  for (const [id, e] of before) if (!after.has(id)) stack.removed.push(e);
  for (const [id, e] of after) {
    if (!before.has(id)) stack.added.push(e);
    else if (JSON.stringify(before.get(id)) !== JSON.stringify(e)) stack.changed.push({ from: before.get(id), to: e });
  }
  return {
    variables: mappingDiff(memory(a).variables || {}, memory(b).variables || {}),
    nodeOutputs: mappingDiff(memory(a).node_outputs || {}, memory(b).node_outputs || {}),
    stack,
  };
}
