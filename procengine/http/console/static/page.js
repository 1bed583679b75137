// The page around the views: which view shows, the breadcrumbs, the live indicator, the error banner, and the
// widgets both views draw (status badges, progress bars, links to an execution). `app.view` is the view open now.

import { $, h } from './util.js';

/** The view on the page (a ListView or an ExecutionView), set by the router in console.js. */
export const app = { view: null };

// ---------------------------------------------------------------------------------------------- views and crumbs

export function show(viewId) {
  for (const view of document.querySelectorAll('.view')) view.hidden = view.id !== viewId;
}

export function crumbs(...parts) {
  $('crumbs').replaceChildren(
    ...parts.flatMap(([label, href], i) => [
      ...(i ? [h('span', { class: 'sep', text: '›' })] : []),
      href ? h('a', { href, text: label }) : h('span', { text: label }),
    ]),
  );
}

// ------------------------------------------------------------------------------------------- the live indicator

export function setLive(state, waitMs) {
  const live = $('live');
  live.dataset.state = state;
  const text = {
    idle: 'idle',
    connecting: 'connecting…',
    live: 'live',
    ended: 'ended',
    failed: 'not live',
    reconnecting: `reconnecting in ${Math.ceil((waitMs || 0) / 1000)} s`,
  }[state];
  live.textContent = text || state;
  live.title =
    state === 'live'
      ? 'updated from the server-sent event stream as things happen'
      : state === 'ended'
        ? 'the execution has ended: its event stream is closed'
        : 'the event stream is not connected';
}

// ------------------------------------------------------------------------------------------------ errors

export function showError(error) {
  const banner = $('error');
  const lines = [h('strong', { text: error.text || String(error) })];
  if (Array.isArray(error.details)) lines.push(h('ul', {}, error.details.map((d) => h('li', { text: d }))));
  if (error.status === 401) {
    lines.push(h('p', { text: 'The API wants a valid bearer token: enter it in the API token field above.' }));
  }
  banner.replaceChildren(...lines);
  banner.dataset.status = String(error.status || 0);
  banner.hidden = false;
}

export function clearError() {
  $('error').hidden = true;
  $('error').replaceChildren();
}

/** A failure that leaves the view with nothing to show (401, 404): the view goes, the error stays. */
export function fatal(error) {
  if (app.view) app.view.stop();
  show(null);
  setLive('failed');
  showError(error);
}

// ----------------------------------------------------------------------------------------- shared widgets

export function badge(status) {
  return h('span', { class: `badge st-${status}`, text: status });
}

export function setProgress(bar, percentage, status, label) {
  const pct = Math.max(0, Math.min(100, Number(percentage) || 0));
  bar.querySelector('.fill').style.width = `${pct}%`; // CSSOM, which the style-src policy allows
  bar.querySelector('.label').textContent = label ?? `${pct.toFixed(pct % 1 ? 1 : 0)}%`;
  bar.dataset.status = status || '';
  bar.setAttribute('aria-valuenow', String(pct));
}

export function progressBar() {
  return h(
    'div',
    { class: 'progress', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100 },
    h('div', { class: 'fill' }),
    h('span', { class: 'label', text: '…' }),
  );
}

export function executionLink(id, text) {
  return h('a', { href: `#/executions/${id}`, text: text ?? `#${id}` });
}
