// The breakpoint markers of the graph (graph.js): a dot at the top right of each element that sets or removes a
// breakpoint before it (breakpoints.js sends the set), filled red where one is set.

import { s } from './util.js';

/** The marker of element `el` (its box `place`): a click, Enter or Space on it calls `onToggle(el.key)`. */
export function marker(el, place, onToggle) {
  const tip = s('title', { text: `no breakpoint: click to pause before ${el.key}` });
  const g = s(
    'g',
    { class: 'bp', 'data-bp': el.key, role: 'button', tabindex: 0, 'aria-pressed': 'false', 'aria-label': `breakpoint before ${el.key}` },
    tip,
    s('circle', { cx: place.w - 12, cy: 12, r: 6 }),
  );
  const toggle = (event) => {
    event.preventDefault();
    event.stopPropagation(); // the marker, not the element's details
    onToggle(el.key);
  };
  g.addEventListener('click', toggle);
  g.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' || event.key === ' ') toggle(event);
  });
  return { g, tip };
}

/** Paint the markers of `nodes` (key -> {g, marker}): `set` maps an element key to its `when` (or null). */
export function paintMarkers(nodes, set, enabled) {
  for (const [key, entry] of nodes) {
    if (!entry.marker) continue;
    const on = set.has(key);
    const when = set.get(key);
    entry.g.classList.toggle('bp-on', on);
    entry.marker.g.classList.toggle('off', !enabled);
    entry.marker.g.setAttribute('aria-pressed', on ? 'true' : 'false');
    entry.marker.tip.textContent = on
      ? `breakpoint: pauses before ${key}${when ? ` when ${when}` : ''}${enabled ? ' (click to remove)' : ''}`
      : enabled
        ? `no breakpoint: click to pause before ${key}`
        : `no breakpoint before ${key}`;
  }
}
