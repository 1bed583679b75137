// Zoom and fit of the process graph. The SVG keeps its viewBox (the layout's size); its width and height
// attributes set the scale, so the box around it scrolls only when the graph is wider than it at that scale.
// "Fit" follows the box's width as the window changes; it never enlarges past 100 %.

import { $ } from './util.js';

const STEPS = [0.25, 0.33, 0.5, 0.67, 0.8, 0.9, 1, 1.25, 1.5, 2];
const MIN = STEPS[0];
const MAX = STEPS[STEPS.length - 1];

export class Zoom {
  /** `box`: the scrolling element the SVG sits in; `width`, `height`: the graph's own size (scale 1). */
  constructor(box, svg, width, height) {
    this.box = box;
    this.svg = svg;
    this.width = width;
    this.height = height;
    this.mode = 'fit'; // 'fit' (follows the box), or 'manual' (a scale the user chose)
    this.scale = 1;
    this.observer = new ResizeObserver(() => {
      if (this.mode === 'fit') this.apply(this.fitScale());
    });
    this.observer.observe(box);
    this.fit(); // by default: the whole graph when it is wider than the view, else its own size
  }

  fitScale() {
    const room = this.box.clientWidth - 2;
    if (room <= 0) return 1;
    return Math.max(MIN, Math.min(1, room / this.width));
  }

  apply(scale) {
    this.scale = Math.max(MIN, Math.min(MAX, scale));
    this.svg.setAttribute('width', String(Math.round(this.width * this.scale)));
    this.svg.setAttribute('height', String(Math.round(this.height * this.scale)));
    this.svg.dataset.scale = this.scale.toFixed(3);
    this.box.dataset.zoom = this.mode;
    $('zoom-level').textContent = `${Math.round(this.scale * 100)}%`;
    $('zoom-fit').setAttribute('aria-pressed', String(this.mode === 'fit'));
    $('zoom-out').disabled = this.scale <= MIN;
    $('zoom-in').disabled = this.scale >= MAX;
  }

  fit() {
    this.mode = 'fit';
    this.apply(this.fitScale());
  }

  /** One step in (+1) or out (-1) from the scale shown now. */
  step(direction) {
    const next =
      direction > 0
        ? STEPS.find((s) => s > this.scale + 0.001) ?? MAX
        : [...STEPS].reverse().find((s) => s < this.scale - 0.001) ?? MIN;
    this.mode = 'manual';
    this.apply(next);
  }

  actual() {
    this.mode = 'manual';
    this.apply(1);
  }

  stop() {
    this.observer.disconnect();
  }
}

/** Wire the graph's zoom buttons once: they act on the zoom of the execution open now (`current()`). */
export function wireZoomControls(current) {
  $('zoom-fit').addEventListener('click', () => current() && current().fit());
  $('zoom-in').addEventListener('click', () => current() && current().step(1));
  $('zoom-out').addEventListener('click', () => current() && current().step(-1));
  $('zoom-actual').addEventListener('click', () => current() && current().actual());
}
