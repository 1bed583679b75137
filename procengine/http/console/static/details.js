// The details of one element (a click on it in the graph or in the elements table): everything its record has
// (GET .../elements), its input and output, each attempt with its start, duration and error, its entries on
// the stack (GET .../state) and its definition. Drawn whole from the latest answers, again after each read.

import { executionLink } from './page.js';
import { $, compact, errorText, fmtDuration, fmtTime, h, json, runTime } from './util.js';

/** Fields the panel shows in their own place; any other field of a record is listed under "Other fields". */
const SHOWN = new Set([
  'key', 'type', 'threadKey', 'path', 'status', 'attempts', 'startedAt', 'stoppedAt', 'retryAt', 'output', 'error',
  'errorType', 'caught', 'input', 'attemptHistory',
]);
const MAX_RECORDS = 20;

/**
 * Fill the details panel for element `key`. `records`: every record of the element (one per element today; one
 * per iteration of a for-each body when the API gives them), `entries`: its stack entries, `el`: its definition.
 */
export function renderDetails({ key, el, records, entries, status, childIds, onClose }) {
  const panel = $('details');
  panel.hidden = false;
  panel.dataset.key = key;
  const latest = records.length ? records[records.length - 1] : null;
  const heading = h(
    'h2',
    {},
    `${key} `,
    h('span', { class: 'muted', text: el ? el.type : latest ? latest.type : '' }),
    ' ',
    h('span', { class: `mini st-${latest ? latest.status : 'idle'}`, text: latest ? latest.status : 'not reached' }),
  );
  const close = h('button', { type: 'button', class: 'quiet close', id: 'details-close', text: 'Close', title: 'close the details' });
  close.addEventListener('click', onClose);
  const parts = [h('div', { class: 'details-head' }, heading, close)];
  if (!records.length) parts.push(h('p', { class: 'empty', text: 'Not reached: the element has no record yet.' }));
  const shown = records.slice(-MAX_RECORDS);
  if (records.length > shown.length) {
    parts.push(h('p', { class: 'muted small', text: `the latest ${shown.length} of ${records.length} records` }));
  }
  for (const record of shown) parts.push(recordBlock(record, status, shown.length > 1));
  if (entries.length) parts.push(h('h3', { text: 'On the stack' }), stackList(entries));
  if (childIds && childIds.length) {
    parts.push(h('h3', { text: 'Child executions' }), h('p', {}, childIds.map((id, i) => [i ? ', ' : '', executionLink(id)])));
  }
  if (el) parts.push(h('details', { class: 'definition' }, h('summary', { text: 'Definition' }), h('pre', { text: json(el) })));
  panel.replaceChildren(...parts);
}

export function hideDetails() {
  const panel = $('details');
  panel.hidden = true;
  panel.replaceChildren();
  delete panel.dataset.key;
}

function recordBlock(record, status, titled) {
  const run = runTime(record, status);
  const facts = [
    ['Status', h('span', { class: `mini st-${record.status}`, text: record.status })],
    ['Thread', record.threadKey],
    ['Lane', record.path || '—'],
    ['Attempts', String(record.attempts)],
    ['Started', timeCell(record.startedAt)],
    ['Stopped', timeCell(record.stoppedAt)],
    [run.how ? capital(run.how) : 'Took', fmtDuration(run.ms)],
  ];
  if (record.retryAt) facts.push(['Next attempt', timeCell(record.retryAt)]);
  if (record.caught) facts.push(['Caught', `went on at ${record.caught}`]);
  const block = [
    titled ? h('h3', { text: record.path || record.threadKey }) : null,
    h('dl', { class: 'facts details-facts' }, facts.map(([dt, dd]) => h('div', {}, h('dt', { text: dt }), h('dd', {}, dd)))),
  ];
  if (record.error) {
    block.push(h('div', { class: 'failure details-error' }, errorText(record.errorType, record.error)));
  }
  block.push(
    h(
      'div',
      { class: 'columns' },
      h('div', { class: 'details-input' }, h('h3', { text: 'Input' }), valueOrNote(record.input, record.type === 'task' ? 'not recorded' : 'not a task: no input')),
      h('div', { class: 'details-output' }, h('h3', { text: 'Output' }), valueOrNote(record.output, 'none')),
    ),
  );
  if (record.type === 'task' || record.attemptHistory) block.push(h('h3', { text: 'Attempts' }), attemptsTable(record));
  const other = Object.entries(record).filter(([name, value]) => !SHOWN.has(name) && value !== null && value !== undefined);
  if (other.length) {
    block.push(
      h('h3', { text: 'Other fields' }),
      h('table', { class: 'kv' }, h('tbody', {}, other.map(([name, value]) => h('tr', {}, h('th', { text: name }), h('td', {}, h('pre', { text: json(value) })))))),
    );
  }
  return h('section', { class: 'record', 'data-path': record.path || record.threadKey }, block);
}

function attemptsTable(record) {
  const history = record.attemptHistory;
  if (!Array.isArray(history) || !history.length) {
    return h('p', { class: 'empty', text: 'not recorded (a record written before attempts were kept)' });
  }
  const rows = history.map((a) =>
    h(
      'tr',
      { 'data-attempt': a.attempt },
      h('td', { text: a.attempt }),
      h('td', {}, h('span', { class: `mini st-${a.status}`, text: a.status })),
      h('td', { title: a.startedAt || '', text: fmtTimeMs(a.startedAt) }),
      h('td', { class: 'took', text: a.durationMs !== null && a.durationMs !== undefined ? fmtDuration(a.durationMs) : a.status === 'running' ? 'running' : '—' }),
      h('td', { class: 'err', text: a.error || a.errorType ? errorText(a.errorType, a.error) : '' }),
    ),
  );
  const kept = history[0].attempt > 1 ? h('p', { class: 'muted small', text: `attempts before ${history[0].attempt} are not kept` }) : null;
  return [
    h(
      'table',
      { class: 'grid attempts' },
      h('thead', {}, h('tr', {}, ['Attempt', 'Status', 'Started', 'Took', 'Error'].map((t) => h('th', { text: t })))),
      h('tbody', {}, rows),
    ),
    kept,
  ];
}

function stackList(entries) {
  return h(
    'ul',
    { class: 'stack-entries' },
    entries.slice(0, 50).map((e) => {
      const bits = [`in ${e.path}`, `attempt ${e.attempt}`];
      if (e.due_at_ms) bits.push(`due ${fmtTime(new Date(e.due_at_ms).toISOString())}`);
      if (e.remaining_ms !== undefined) bits.push(`${fmtDuration(e.remaining_ms)} left (frozen)`);
      if (e.rerun) bits.push('runs again');
      if (e.branches) bits.push(`lanes ${e.branches.started} started, ${e.branches.ended} of ${e.branches.total} ended`);
      return h('li', { text: bits.join(', ') }, e.child_execution_id ? [' · ', executionLink(e.child_execution_id, `child #${e.child_execution_id}`)] : '');
    }),
  );
}

function valueOrNote(value, note) {
  if (value === null || value === undefined) return h('p', { class: 'empty', text: note });
  return h('pre', { class: 'value', title: compact(value, 200), text: json(value) });
}

function timeCell(iso) {
  return h('span', { title: iso || '', text: fmtTimeMs(iso) });
}

/** A time of day to the millisecond (attempts a few ms apart must read apart). */
function fmtTimeMs(iso) {
  if (!iso) return '—';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return `${fmtTime(iso)}.${String(date.getMilliseconds()).padStart(3, '0')}`;
}

function capital(text) {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
