// Small helpers every view uses: building DOM and SVG without HTML strings, and formatting text, times and
// durations. No state, no requests.

export const SVG_NS = 'http://www.w3.org/2000/svg';

// ---------------------------------------------------------------------------------------------- DOM helpers

export const $ = (id) => document.getElementById(id);

function build(el, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === 'text') el.textContent = String(value);
    else if (name === 'class') el.setAttribute('class', Array.isArray(value) ? value.filter(Boolean).join(' ') : value);
    else if (name.startsWith('on') && typeof value === 'function') el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** An HTML element. */
export const h = (tag, attrs, ...children) => build(document.createElement(tag), attrs, children);
/** An SVG element. */
export const s = (tag, attrs, ...children) => build(document.createElementNS(SVG_NS, tag), attrs, children);

export function clip(text, max) {
  const value = String(text ?? '');
  return value.length > max ? `${value.slice(0, max - 1)}…` : value;
}

export function json(value, max = 4000) {
  let text;
  try {
    text = JSON.stringify(value, null, 2);
  } catch {
    text = String(value);
  }
  if (text === undefined) text = 'undefined';
  return text.length > max ? `${text.slice(0, max)}\n… (${text.length - max} more characters)` : text;
}

export function compact(value, max = 300) {
  let text;
  try {
    text = JSON.stringify(value);
  } catch {
    text = String(value);
  }
  return clip(text ?? '', max);
}

/**
 * A failure's text with its type once. The engine's `error` of a handler's exception already starts with the
 * exception's class ("TaskFailed: card declined", as Python prints it, and as a catch's `into` and a fail
 * message built from it carry it); other errors do not ("timed out after 30 ms", type Timeout).
 */
export function errorText(type, error) {
  const text = String(error ?? '');
  if (!type || text === type || text.startsWith(`${type}: `)) return text || String(type ?? '');
  return text ? `${type}: ${text}` : String(type);
}

// ------------------------------------------------------------------------------------------- time and numbers

export function fmtTime(iso) {
  if (!iso) return '—';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  const sameDay = date.toDateString() === new Date().toDateString();
  const time = date.toLocaleTimeString([], { hour12: false });
  return sameDay ? time : `${date.toLocaleDateString()} ${time}`;
}

export function fmtDuration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '—';
  if (ms < 0) ms = 0;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const sec = ms / 1000;
  if (sec < 60) return `${sec < 10 ? sec.toFixed(1) : Math.floor(sec)} s`;
  const min = Math.floor(sec / 60);
  if (min < 60) return `${min}m ${Math.floor(sec % 60)}s`;
  const hours = Math.floor(min / 60);
  if (hours < 48) return `${hours}h ${min % 60}m`;
  return `${Math.floor(hours / 24)}d ${hours % 24}h`;
}

export const since = (iso) => (iso ? Date.now() - new Date(iso).getTime() : null);
export const between = (from, to) => (from && to ? new Date(to).getTime() - new Date(from).getTime() : null);

/**
 * How long an element's latest run took: to its stop, or to the pause of a paused execution (its clock is
 * frozen: it does not run on in the console while the execution is paused), or so far. `{ms, how}`.
 */
export function runTime(record, status) {
  if (!record || !record.startedAt) return { ms: null, how: '' };
  if (record.status === 'paused' && record.stoppedAt) {
    // the API freezes a record under way at the pause: stoppedAt is the pause
    return { ms: between(record.startedAt, record.stoppedAt), how: 'ran until the pause' };
  }
  if (record.stoppedAt) return { ms: between(record.startedAt, record.stoppedAt), how: 'took' };
  const pausedAt = status && status.status === 'paused' && status.timing && status.timing.pausedAt;
  if (pausedAt) return { ms: Math.max(0, between(record.startedAt, pausedAt)), how: 'ran until the pause' };
  return { ms: since(record.startedAt), how: 'running for' };
}

// ------------------------------------------------------------------------------------------------ work

/** Run `work` over `items`, at most `limit` at a time. */
export async function eachLimited(items, limit, work) {
  const queue = [...items];
  const workers = Array.from({ length: Math.min(limit, queue.length) }, async () => {
    while (queue.length) await work(queue.shift());
  });
  await Promise.all(workers);
}
