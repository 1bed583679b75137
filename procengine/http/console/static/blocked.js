// "Why is it not moving?": the status's blockedOn, one line per lane that is not moving (docs/api.md).

import { $, fmtTime, h } from './util.js';

/** What one blockedOn entry's lane waits for, as words (`kind` and `detail` as the status gives them). */
export function why(kind, detail, since, until) {
  const d = detail || {};
  const at = since ? ` since ${fmtTime(since)}` : '';
  switch (kind) {
    case 'signal':
      return `waits for signal '${d.signal}' (${d.buffered ?? 0} buffered${d.timeoutAt ? `, times out at ${fmtTime(d.timeoutAt)}` : ''})${at}`;
    case 'delay':
      return `is delayed until ${fmtTime(d.dueAt || until)}`;
    case 'backoff':
      return `retries (attempt ${d.attempt}) at ${fmtTime(d.retryAt || until)}${d.lastError ? `; last error: ${d.lastError}` : ''}`;
    case 'task':
      return `runs attempt ${d.attempt} on node ${d.node}${at}${d.timeoutAt ? `, times out at ${fmtTime(d.timeoutAt)}` : ''}`;
    case 'child':
      return `waits for child execution #${d.childExecutionID} (${d.childStatus ?? '?'})${at}`;
    case 'paused':
      return `is paused by ${d.by || '?'}${at}${d.reason ? `: ${d.reason}` : ''}${then(d.waiting)}`;
    case 'owner-dead':
      return `does not move: its node ${d.owner || '(none)'} is gone and no node has adopted it yet (last checkpoint ${fmtTime(d.lastCheckpointAt)})${then(d.waiting)}`;
    default:
      return `${kind}${at}`;
  }
}

function then(waiting) {
  if (!waiting || typeof waiting !== 'object') return '';
  const { kind, remainingMs, ...detail } = waiting;
  const left = remainingMs !== undefined && remainingMs !== null ? ` (${remainingMs} ms left)` : '';
  return `; then it ${why(kind, detail, null, null)}${left}`;
}

/** The blockedOn lines of the execution page: one per entry, hidden when there are none. */
export function renderBlocked(entries) {
  const box = $('exec-blocked');
  const list = Array.isArray(entries) ? entries : [];
  box.hidden = list.length === 0;
  box.replaceChildren(
    ...list.map((e) =>
      h(
        'li',
        { class: `blocked-${e.kind}`, 'data-lane': e.lane, 'data-kind': e.kind },
        h('span', { class: 'lane', text: e.lane }),
        ' ',
        h('code', { text: e.elementKey }),
        ` ${why(e.kind, e.detail, e.since, e.until)}`,
      ),
    ),
  );
}
