// The process graph of the execution page: a layout (columns by longest path from the start, a lane per thread,
// branch and body) drawn as SVG, and the legend of its colours. Each element has a breakpoint marker (its top right
// corner, markers.js): a click on it calls `onBreakpoint(key)` (breakpoints.js, which paints them).

import { marker } from './markers.js';
import { SVG_NS, clip, errorText, fmtDuration, h, runTime, s } from './util.js';

const ELEMENT_STATES = ['running', 'pending', 'retrying', 'interrupted', 'completed', 'failed', 'paused', 'idle'];

const G = { nodeW: 176, nodeH: 56, gapX: 38, gapY: 16, pad: 12, head: 60, laneHead: 18, laneGap: 8, margin: 14 };

/** Where an element can go on to: its `next`, branches of conditions and switches, timeouts and catch clauses. */
function successors(el) {
  const out = [];
  const add = (to, label, kind, title) => {
    if (to) out.push({ to, label, kind, title });
  };
  switch (el.type) {
    case 'if-condition':
      add(el.then, 'then', 'branch', el.condition);
      add(el.else ?? el.else_, 'else', 'branch', el.condition);
      break;
    case 'switch':
      (el.cases || []).forEach((c, i) => add(c.next, `case ${i + 1}`, 'branch', c.when));
      add(el.default, 'default', 'branch', 'no case matched');
      break;
    case 'wait-signal':
      add(el.next, '', 'next');
      add(el.onTimeout, 'timeout', 'timeout', 'no signal in time');
      break;
    case 'fail':
    case 'end':
      break;
    default:
      add(el.next, '', 'next');
  }
  for (const clause of el.catch || []) add(clause.next, 'catch', 'catch', `catch ${(clause.errors || []).join(', ')}`);
  return out;
}

/** Columns by longest path from the start (back edges of loops left out), in definition order within a column. */
function layoutLane(elements, start) {
  const byKey = new Map(elements.map((el, index) => [el.key, { el, index }]));
  const boxes = new Map(elements.map((el) => [el.key, layoutElement(el)]));
  const state = new Map();
  const back = new Set();
  const order = [];
  const visit = (key) => {
    state.set(key, 1);
    for (const edge of successors(byKey.get(key).el)) {
      if (!byKey.has(edge.to)) continue;
      const seen = state.get(edge.to);
      if (seen === 1) back.add(`${key}\u0000${edge.to}`);
      else if (!seen) visit(edge.to);
    }
    state.set(key, 2);
    order.push(key);
  };
  visit(start && byKey.has(start) ? start : elements[0].key);
  for (const el of elements) if (!state.has(el.key)) visit(el.key);
  order.reverse();
  const rank = new Map(order.map((key) => [key, 0]));
  for (const key of order) {
    for (const edge of successors(byKey.get(key).el)) {
      if (byKey.has(edge.to) && !back.has(`${key}\u0000${edge.to}`)) {
        rank.set(edge.to, Math.max(rank.get(edge.to), rank.get(key) + 1));
      }
    }
  }
  const columns = [];
  for (const el of elements) (columns[rank.get(el.key)] ||= []).push(el.key);
  const heights = columns.map((keys) => keys.reduce((sum, k) => sum + boxes.get(k).h, 0) + G.gapY * (keys.length - 1));
  const laneH = Math.max(...heights);
  const places = new Map();
  let x = 0;
  columns.forEach((keys, i) => {
    const width = Math.max(...keys.map((k) => boxes.get(k).w));
    let y = (laneH - heights[i]) / 2;
    for (const key of keys) {
      const box = boxes.get(key);
      places.set(key, { x: x + (width - box.w) / 2, y, ...box });
      y += box.h + G.gapY;
    }
    x += width + G.gapX;
  });
  const edges = [];
  for (const el of elements) {
    for (const edge of successors(el)) {
      if (byKey.has(edge.to)) edges.push({ from: el.key, ...edge, back: back.has(`${el.key}\u0000${edge.to}`) });
    }
  }
  const loops = edges.some((e) => e.back || rank.get(e.to) <= rank.get(e.from));
  return { w: x - G.gapX, h: laneH + (loops ? 34 : 0), places, edges };
}

function layoutElement(el) {
  if (el.type === 'parallel' || el.type === 'for-each') {
    const lanes =
      el.type === 'parallel'
        ? (el.branches || []).map((b) => ({ key: b.key, label: `branch ${b.key}`, lane: layoutLane(b.elements, b.start) }))
        : [{ key: 'body', label: `body, once per ${el.as ?? el.as_ ?? 'item'}`, lane: layoutLane(el.body.elements, el.body.start) }];
    const inner = Math.max(...lanes.map((l) => l.lane.w));
    const w = Math.max(G.nodeW, inner + 2 * G.pad);
    const h = G.head + lanes.reduce((sum, l) => sum + G.laneHead + l.lane.h + G.laneGap, 0) + G.pad - G.laneGap;
    return { w, h, lanes };
  }
  return { w: G.nodeW, h: G.nodeH, lanes: null };
}

function subtitle(el) {
  switch (el.type) {
    case 'task':
      return `task · ${el.handler}`;
    case 'set-variable':
      return `set ${Object.keys(el.set || {}).join(', ')}`;
    case 'if-condition':
      return `if ${el.condition}`;
    case 'switch':
      return `switch · ${(el.cases || []).length} case${(el.cases || []).length === 1 ? '' : 's'}`;
    case 'delay':
      return el.durationMs !== null && el.durationMs !== undefined
        ? `delay ${fmtDuration(el.durationMs)}`
        : `delay until ${el.until}`;
    case 'wait-signal':
      return `wait for '${el.signal}'`;
    case 'parallel':
      return `parallel · ${(el.branches || []).length} branches`;
    case 'for-each':
      return `for each in ${el.items} · ≤${el.maxConcurrency ?? 10}`;
    case 'call-process':
      return `call ${el.process}${el.version ? ` v${el.version}` : ''}`;
    case 'fail':
      return 'fail';
    case 'end':
      return 'end';
    default:
      return el.type;
  }
}

function edgePath(a, b, edge) {
  if (edge.back || b.x <= a.x) {
    // a loop back (or a jump to an earlier column): under both boxes
    const x1 = a.x + a.w / 2;
    const y1 = a.y + a.h;
    const x2 = b.x + b.w / 2;
    const y2 = b.y + b.h;
    const low = Math.max(y1, y2) + 26;
    return { d: `M${x1},${y1} C${x1},${low} ${x2},${low} ${x2},${y2 + 2}`, lx: (x1 + x2) / 2, ly: low - 4 };
  }
  const x1 = a.x + a.w;
  const y1 = a.y + a.h / 2;
  const x2 = b.x;
  const y2 = b.y + b.h / 2;
  const bend = Math.max(18, (x2 - x1) / 2);
  return { d: `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2 - 2},${y2}`, lx: (x1 + x2) / 2, ly: (y1 + y2) / 2 - 4 };
}

/**
 * The process as SVG: one lane per thread, one box per element (parallel and for-each as boxes holding their
 * branches and body), arrows for every way on. Built once per definition; `update` recolours it. A click on an
 * element (or Enter on it) calls `onSelect(key)`; a click on its breakpoint marker calls `onBreakpoint(key)`.
 */
export class Graph {
  constructor(definition, { onSelect, onBreakpoint } = {}) {
    this.onSelect = onSelect || (() => {});
    this.onBreakpoint = onBreakpoint || null;
    this.elements = new Map(); // element key -> its definition
    this.nodes = new Map(); // element key -> {g, el, title, statusText, child link}
    this.lanes = new Map(); // thread key -> its label
    const threads = definition.threads.map((thread) => ({ thread, lane: layoutLane(thread.elements, thread.start) }));
    const width = Math.max(...threads.map((t) => t.lane.w)) + 2 * G.margin;
    let y = G.margin;
    const groups = [];
    for (const { thread, lane } of threads) {
      const label = s('text', { class: 'thread-label', x: 0, y: 12 });
      this.lanes.set(thread.key, label);
      const g = s(
        'g',
        { class: 'thread', transform: `translate(${G.margin},${y})`, 'data-thread': thread.key },
        s('rect', { class: 'thread-bg', x: -6, y: -4, width: width - 2 * G.margin + 12, height: lane.h + 30, rx: 8 }),
        label,
        s('g', { transform: 'translate(0,22)' }, this.lane(lane, thread.elements)),
      );
      groups.push(g);
      y += lane.h + 30 + 14;
    }
    this.width = width;
    this.height = y;
    this.svg = s(
      'svg',
      {
        class: 'process-graph',
        xmlns: SVG_NS,
        width,
        height: y,
        viewBox: `0 0 ${width} ${y}`,
        role: 'img',
        'aria-label': `graph of process ${definition.key}`,
      },
      s(
        'defs',
        {},
        ['next', 'branch', 'timeout', 'catch'].map((kind) =>
          s(
            'marker',
            {
              id: `arrow-${kind}`,
              class: `arrow-${kind}`,
              viewBox: '0 0 10 10',
              refX: 9,
              refY: 5,
              markerWidth: 7,
              markerHeight: 7,
              orient: 'auto-start-reverse',
            },
            s('path', { d: 'M0,0 L10,5 L0,10 z' }),
          ),
        ),
      ),
      groups,
    );
  }

  lane(lane, elements) {
    const g = s('g', { class: 'lane' });
    for (const edge of lane.edges) {
      const { d, lx, ly } = edgePath(lane.places.get(edge.from), lane.places.get(edge.to), edge);
      g.append(
        s(
          'g',
          { class: `edge e-${edge.kind}` },
          edge.title ? s('title', { text: `${edge.from} → ${edge.to}: ${edge.title}` }) : null,
          s('path', { d, 'marker-end': `url(#arrow-${edge.kind})` }),
          edge.label ? s('text', { x: lx, y: ly, 'text-anchor': 'middle', text: edge.label }) : null,
        ),
      );
    }
    for (const el of elements) g.append(this.node(el, lane.places.get(el.key)));
    return g;
  }

  node(el, place) {
    const container = !!place.lanes;
    const title = s('title');
    const statusText = s('text', { class: 'st', x: 14, y: 48 });
    const g = s(
      'g',
      {
        class: ['node', `t-${el.type}`, container ? 'container' : ''],
        transform: `translate(${place.x},${place.y})`,
        'data-key': el.key,
        'data-type': el.type,
        'data-status': 'idle',
        tabindex: 0,
      },
      title,
      s('rect', { class: 'box', width: place.w, height: place.h, rx: 7 }),
      s('rect', { class: 'stripe', width: 6, height: place.h, rx: 3 }),
      s('text', { class: 'k', x: 14, y: 18, text: clip(el.key, Math.floor((place.w - 22) / 8)) }),
      s('text', { class: 'sub', x: 14, y: 33, text: clip(subtitle(el), Math.floor((place.w - 22) / 6.1)) }),
      statusText,
    );
    const entry = { g, el, title, statusText, child: null, marker: null };
    if (this.onBreakpoint) entry.marker = marker(el, place, this.onBreakpoint);
    g.addEventListener('click', (event) => {
      if (event.target.closest && event.target.closest('a.child')) return; // the child's link, not the element
      event.stopPropagation(); // the innermost element of a container, not the container too
      this.onSelect(el.key);
    });
    g.addEventListener('keydown', (event) => {
      if (event.key !== 'Enter' && event.key !== ' ') return;
      event.preventDefault();
      event.stopPropagation();
      this.onSelect(el.key);
    });
    this.elements.set(el.key, el);
    if (el.type === 'call-process') {
      const child = s('text', { class: 'child-link', x: place.w - 10, y: 48, 'text-anchor': 'end' });
      entry.child = s('a', { href: '#', class: 'child' }, child);
      entry.childText = child;
      entry.child.addEventListener('click', (event) => {
        if (!entry.childId) event.preventDefault();
      });
      g.append(entry.child);
    }
    if (container) {
      let y = G.head;
      for (const { key, label, lane } of place.lanes) {
        const elements = el.type === 'parallel' ? el.branches.find((b) => b.key === key).elements : el.body.elements;
        g.append(
          s('rect', { class: 'lane-bg', x: G.pad - 4, y: y - 2, width: place.w - 2 * G.pad + 8, height: G.laneHead + lane.h + 2, rx: 5 }),
          s('text', { class: 'lane-label', x: G.pad, y: y + 11, text: clip(label, 40) }),
          s('g', { transform: `translate(${G.pad + (place.w - 2 * G.pad - lane.w) / 2},${y + G.laneHead})` }, this.lane(lane, elements)),
        );
        y += G.laneHead + lane.h + G.laneGap;
      }
    }
    if (entry.marker) g.append(entry.marker.g); // last: above a container's lanes
    this.nodes.set(el.key, entry);
    return g;
  }

  /** Colour every element by its record (GET .../elements) and the stack (GET .../state). */
  update({ status, records, stack, children, threads }) {
    const execution = status.status;
    const final = ['cancelled', 'failed', 'completed'].includes(execution);
    for (const [key, entry] of this.nodes) {
      const record = records.get(key);
      const entries = stack.get(key) || [];
      let state = 'idle';
      if (record && ['running', 'retrying', 'interrupted'].includes(record.status)) state = record.status;
      // the element that failed an execution stays on its stack (a retry goes on from it): failed, not stopped
      else if (final && record && record.status === 'failed') state = 'failed';
      else if (entries.length) state = entries.some((e) => e.started_at_ms && !e.rerun) ? 'running' : 'pending';
      else if (record) state = record.status;
      const frozen = execution === 'paused' && ['running', 'pending', 'retrying'].includes(state);
      const stopped = ['cancelled', 'failed', 'completed'].includes(execution) && ['running', 'pending', 'retrying'].includes(state);
      entry.g.dataset.status = state;
      entry.g.classList.remove(...ELEMENT_STATES.map((st) => `st-${st}`), 'frozen', 'stopped', 'caught');
      entry.g.classList.add(`st-${state}`);
      if (frozen) entry.g.classList.add('frozen');
      if (stopped) entry.g.classList.add('stopped');
      if (record && record.caught) entry.g.classList.add('caught');
      entry.g.dataset.frozen = frozen ? 'true' : 'false';
      let label = state === 'idle' ? 'not reached' : state;
      if (frozen) label = `paused (${state})`;
      if (stopped) label = `stopped (${execution})`;
      const fanout = entries.find((e) => e.branches);
      if (fanout) label += ` · ${fanout.branches.ended}/${fanout.branches.total} done`;
      else if (entries.length > 1) label += ` · ×${entries.length}`;
      if (record && record.attempts > 1) label += ` · attempt ${record.attempts}`;
      entry.statusText.textContent = label;
      entry.title.textContent = this.tooltip(entry.el, state, record, entries, status, children.get(key));
      if (entry.child) {
        const ids = children.get(key) || [];
        entry.childId = ids[ids.length - 1] || null;
        entry.childText.textContent = entry.childId ? `child #${entry.childId} ↗` : '';
        entry.child.setAttribute('href', entry.childId ? `#/executions/${entry.childId}` : '#');
      }
    }
    for (const [key, label] of this.lanes) {
      const thread = threads.get(key);
      label.textContent = thread
        ? `thread ${key} · ${thread.status} · ${thread.completedNodes}/${thread.totalNodes}`
        : `thread ${key}`;
    }
    this.svg.dataset.executionStatus = execution;
  }

  tooltip(el, state, record, entries, status, childIds) {
    const lines = [`${el.key} (${el.type})`, subtitle(el), `status: ${state === 'idle' ? 'not reached' : state}`];
    if (status.status === 'paused' && state !== 'idle') lines.push('the execution is paused');
    if (record) {
      lines.push(`attempts: ${record.attempts}`);
      if (record.startedAt) lines.push(`started: ${record.startedAt}`);
      if (record.stoppedAt) lines.push(`stopped: ${record.stoppedAt}`);
      const run = runTime(record, status);
      if (record.startedAt) lines.push(`${run.how}: ${fmtDuration(run.ms)}`);
      if (record.path) lines.push(`lane: ${record.path}`);
      if (record.error) lines.push(`error: ${errorText(record.errorType, record.error)}`);
      if (record.caught) lines.push(`caught: went on at ${record.caught}`);
    }
    for (const entry of entries.slice(0, 8)) {
      const bits = [`on the stack in ${entry.path}`, `attempt ${entry.attempt}`];
      if (entry.due_at_ms) bits.push(`due ${new Date(entry.due_at_ms).toISOString()}`);
      if (entry.remaining_ms !== undefined) bits.push(`${fmtDuration(entry.remaining_ms)} left (frozen)`);
      if (entry.rerun) bits.push('runs again on resume');
      if (entry.branches) bits.push(`lanes ${entry.branches.started} started, ${entry.branches.ended} of ${entry.branches.total} ended`);
      if (entry.child_execution_id) bits.push(`child #${entry.child_execution_id}`);
      lines.push(bits.join(', '));
    }
    if (entries.length > 8) lines.push(`… and ${entries.length - 8} more on the stack`);
    if (childIds && childIds.length) lines.push(`children: ${childIds.map((id) => `#${id}`).join(', ')}`);
    lines.push('click for the details');
    return lines.join('\n');
  }

  /** Mark the element whose details are open (null: none). */
  select(key) {
    for (const [k, entry] of this.nodes) entry.g.classList.toggle('selected', k === key);
  }
}

export function legend() {
  const items = [
    ['running', 'running'],
    ['pending', 'pending (on the stack, not started)'],
    ['retrying', 'retrying (backing off)'],
    ['interrupted', 'interrupted (cut short)'],
    ['completed', 'completed'],
    ['failed', 'failed'],
    ['frozen', 'paused with the execution'],
    ['idle', 'not reached'],
  ];
  return items.map(([state, text]) => h('span', { class: `key st-${state}` }, h('i'), text));
}
