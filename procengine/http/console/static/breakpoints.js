// Breakpoints from the graph (docs/repair.md "Go back"): a click on an element's marker (its top right corner)
// sets or removes a breakpoint before it; every change sends the whole set (`PUT …/{id}/breakpoints
// {pauseBefore}`), on a running or paused execution, if the server has the route. The set shown is the one the
// server holds (`GET …/state`'s `pauseBefore`, read with the rest of the page), the one it last answered, or the
// latest `breakpoints-set` entry of the log. The answer's `alreadyStarted` (runs that had begun: they will not stop) shows under the graph, the
// server's refusals (409, 422 with its details) too.

import { BASE, api, serverRoutes } from './api.js';
import { note } from './forms.js';
import { paintMarkers } from './markers.js';
import { fatal } from './page.js';
import { fillProblem } from './repair.js';
import { $ } from './util.js';

export const BREAKPOINTS_ROUTE = `PUT ${BASE}/executions/processes/{id}/breakpoints`;
const SETTABLE = ['running', 'paused'];

/** The element of a breakpoint as given: a key, or {element, when}. */
const elementOf = (breakpoint) => (typeof breakpoint === 'string' ? breakpoint : breakpoint.element);

export class Breakpoints {
  constructor(view) {
    this.view = view;
    this.set = []; // as the server last said it: element keys, or {element, when}
    this.fromLogSeen = false; // the set is known: read from the state, or a breakpoints-set entry of the log
    this.status = null;
    this.routes = new Set();
    this.sending = false;
    $('bp-clear').onclick = () => this.send([]);
    for (const id of ['bp-started', 'bp-problem']) {
      $(id).hidden = true;
      $(id).replaceChildren();
    }
    this.render();
    serverRoutes().then((routes) => {
      this.routes = routes;
      this.render();
    });
  }

  /** The execution's state (`GET …/state`): its breakpoints as the server holds them. */
  fromState(pauseBefore) {
    if (!Array.isArray(pauseBefore)) return;
    this.set = pauseBefore;
    this.fromLogSeen = true;
  }

  /** A `breakpoints-set` entry of the log: the set it says. */
  fromLog(pauseBefore) {
    if (!Array.isArray(pauseBefore)) return;
    this.set = pauseBefore;
    this.fromLogSeen = true;
    this.render();
  }

  update(status) {
    this.status = status;
    this.render();
  }

  /** Why the set cannot be changed now, or null. */
  why() {
    if (!this.routes.has(BREAKPOINTS_ROUTE)) return 'this server cannot set breakpoints (no PUT …/{id}/breakpoints in its OpenAPI document)';
    const status = this.status && this.status.status;
    if (!SETTABLE.includes(status)) return `breakpoints apply to a running or paused execution; this one is ${status ?? 'not read yet'}`;
    return null;
  }

  /** A click on `key`'s marker: the set with it added, or without it. */
  toggle(key) {
    if (this.why() !== null || this.sending) return;
    const has = this.set.some((b) => elementOf(b) === key);
    this.send(has ? this.set.filter((b) => elementOf(b) !== key) : [...this.set, key]);
  }

  async send(wanted) {
    const problem = $('bp-problem');
    this.sending = true;
    note('breakpoints…', 'busy');
    try {
      const result = await api('PUT', this.view.path('/breakpoints'), { body: { pauseBefore: wanted } });
      if (this.view.stopped) return;
      fillProblem(problem, null);
      this.set = result.pauseBefore;
      const started = $('bp-started');
      started.hidden = !result.alreadyStarted.length;
      started.textContent = result.alreadyStarted.length
        ? `already begun, will not stop: ${result.alreadyStarted.map((r) => `${r.elementKey} (${r.lane})`).join(', ')}`
        : '';
      note(`breakpoints: ${result.pauseBefore.length ? describe(result.pauseBefore) : 'none'}`);
    } catch (error) {
      if (this.view.stopped) return;
      fillProblem(problem, error);
      note(`breakpoints refused: ${error.text}`, 'error');
      if (error.status === 401) fatal(error);
    } finally {
      this.sending = false;
    }
    this.render();
    this.view.refreshSoon();
  }

  render() {
    const why = this.why();
    const map = new Map(this.set.map((b) => [elementOf(b), typeof b === 'string' ? null : b.when]));
    if (this.view.graph) paintMarkers(this.view.graph.nodes, map, why === null);
    const caption = $('bp-set');
    caption.textContent = this.set.length ? describe(this.set) : 'none';
    caption.title = this.fromLogSeen ? '' : 'not read yet: the page reads it with the execution';
    $('bp-clear').disabled = why !== null || !this.set.length;
    $('bp-hint').textContent = why ?? 'click the dot at the top right of an element to pause before it; again to remove it';
  }
}

const describe = (set) => set.map((b) => (typeof b === 'string' ? b : `${b.element} when ${b.when}`)).join(', ');
