// The tables of the execution page, each drawn whole from one answer of the API: variables and node outputs
// (GET .../state), the stack (GET .../state), the elements (GET .../elements), and the detail of a log entry.

import { executionLink } from './page.js';
import { $, between, clip, compact, errorText, fmtDuration, fmtTime, h, json, runTime } from './util.js';

/** Variables, waiting signals, branch scopes, for-each items and node outputs, from the saved memory. */
export function renderMemory(state) {
  const memory = state.memory;
  const vars = $('variables');
  const outs = $('outputs');
  if (!memory || memory.error) {
    const why = memory && memory.error ? `memory cannot be read: ${memory.error}` : 'no memory: the execution was cancelled';
    vars.replaceChildren(h('p', { class: 'empty', text: why }));
    outs.replaceChildren(h('p', { class: 'empty', text: why }));
    return;
  }
  const variables = memory.variables || {};
  const parts = [kvTable(variables, 'no variables yet')];
  const signals = memory.signals || {};
  if (Object.keys(signals).length) {
    parts.push(h('h3', { text: 'Signals waiting to be consumed' }), kvTable(signals, ''));
  }
  if (memory.scopes && Object.keys(memory.scopes).length) {
    parts.push(h('details', {}, h('summary', { text: 'Variables of running branches and iterations' }), kvTable(memory.scopes, '')));
  }
  if (memory.fanouts && Object.keys(memory.fanouts).length) {
    parts.push(h('details', {}, h('summary', { text: 'For-each items and results so far' }), kvTable(memory.fanouts, '')));
  }
  parts.push(h('p', { class: 'muted small', text: `saved ${fmtTime(state.savedAt)}` }));
  vars.replaceChildren(...parts);
  const outputs = memory.node_outputs || {};
  const rows = Object.entries(outputs).map(([key, out]) =>
    h(
      'tr',
      {},
      h('th', { text: key }),
      h('td', { class: 'narrow' }, h('span', { class: `mini st-${out && out.status === 'failed' ? 'failed' : 'completed'}`, text: (out && out.status) || '?' })),
      h('td', {}, h('pre', { text: out && 'data' in out ? json(out.data) : out && out.error ? errorText(out.type, out.error) : '—' })),
    ),
  );
  outs.replaceChildren(rows.length ? h('table', { class: 'kv' }, h('tbody', {}, rows)) : h('p', { class: 'empty', text: 'no outputs yet' }));
}

/** The stack's entries; `unreadable`: why the stack snapshot cannot be read (then there are no entries to show). */
export function renderStack(entries, state, unreadable) {
  const body = $('stack').tBodies[0];
  const caption = $('stack-caption');
  caption.dataset.problem = unreadable ? 'true' : 'false';
  if (unreadable) {
    caption.textContent = 'cannot be read';
    const cell = h('td', { colspan: 6, class: 'err', text: unreadable });
    body.replaceChildren(h('tr', { class: 'stack-problem' }, cell));
    return;
  }
  caption.textContent = state.active ? `${entries.length} entr${entries.length === 1 ? 'y' : 'ies'}` : 'not active';
  body.replaceChildren(
    ...entries.map((e) => {
      const notes = [];
      if (e.due_at_ms) notes.push(`due ${fmtTime(new Date(e.due_at_ms).toISOString())}`);
      if (e.remaining_ms !== undefined) notes.push(`${fmtDuration(e.remaining_ms)} left, frozen`);
      if (e.rerun) notes.push('runs again');
      if (e.branches) notes.push(`lanes: ${e.branches.started} started, ${e.branches.ended}/${e.branches.total} ended`);
      return h(
        'tr',
        {},
        h('td', { text: e.element_key }),
        h('td', { text: e.element_type }),
        h('td', { text: e.path }),
        h('td', { text: e.attempt }),
        h('td', { text: e.started_at_ms ? fmtTime(new Date(e.started_at_ms).toISOString()) : '—' }),
        h('td', {}, notes.join('; '), e.child_execution_id ? [notes.length ? '; ' : '', executionLink(e.child_execution_id, `child #${e.child_execution_id}`)] : ''),
      );
    }),
  );
}

/** The element records; a click on a row opens its element's details (`onSelect(key)`). */
export function renderElements(items, status, onSelect, selected) {
  $('elements').tBodies[0].replaceChildren(
    ...items.map((r) =>
      h(
        'tr',
        { 'data-key': r.key, class: ['pick', r.key === selected ? 'selected' : ''], title: 'click for the details', onclick: () => onSelect(r.key) },
        h('td', { text: r.key }),
        h('td', { text: r.type }),
        h('td', { text: r.path || r.threadKey }),
        h('td', {}, h('span', { class: `mini st-${r.status}`, text: r.status })),
        h('td', { text: r.attempts }),
        h('td', { title: r.startedAt || '', text: fmtTime(r.startedAt) }),
        h('td', { class: 'took', text: took(r, status) }),
        h('td', { class: 'err', title: r.error || '', text: r.error ? clip(`${errorText(r.errorType, r.error)}${r.caught ? ` (caught → ${r.caught})` : ''}`, 160) : '' }),
      ),
    ),
  );
}

/** The latest attempt's time; a task retried says how many attempts it took and over how long, first start to last stop. */
function took(record, status) {
  const run = runTime(record, status);
  if (run.ms === null) return '—';
  let text = fmtDuration(run.ms);
  if (run.how === 'running for') text += '…';
  if (run.how === 'ran until the pause') text += ' (paused)';
  const history = Array.isArray(record.attemptHistory) ? record.attemptHistory : [];
  if (history.length > 1) {
    const span = between(history[0].startedAt, history[history.length - 1].stoppedAt);
    text += ` · ${history.length} attempts${span === null ? '' : ` over ${fmtDuration(span)}`}`;
  }
  return text;
}

/** A name → value table (values as JSON); `empty` when there is none. */
export function kvTable(object, empty) {
  const entries = Object.entries(object || {});
  if (!entries.length) return h('p', { class: 'empty', text: empty });
  return h(
    'table',
    { class: 'kv' },
    h('tbody', {}, entries.map(([key, value]) => h('tr', {}, h('th', { text: key }), h('td', {}, h('pre', { text: json(value) }))))),
  );
}

/** A log entry's detail: the move (from → to), who, why, and the rest as compact JSON. */
export function detailCell(detail) {
  const parts = [];
  const by = detail.by;
  const reason = detail.reason;
  delete detail.requestId;
  if (detail.from !== undefined && detail.to !== undefined) {
    parts.push(h('span', { class: 'move', text: `${detail.from || '∅'} → ${detail.to}` }));
    delete detail.from;
    delete detail.to;
  }
  if (by) parts.push(h('span', { class: 'by', text: `by ${by}` }));
  if (reason) parts.push(h('q', { text: reason }));
  delete detail.by;
  delete detail.reason;
  const rest = Object.keys(detail).length ? compact(detail) : '';
  if (rest) parts.push(h('code', { text: rest }));
  return parts;
}
