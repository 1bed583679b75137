// Step (docs/repair.md "Go back"): beside Resume, on a paused execution, `POST …/{id}/step {reason?}` runs the
// next element of each lane and pauses it again; the note says what ran (`completed`, or `under way` for one that
// waits), and the page is read again. Enabled only where the server has the route and resume would be taken.

import { BASE, api, serverRoutes } from './api.js';
import { note } from './forms.js';
import { fatal } from './page.js';
import { $ } from './util.js';

export const STEP_ROUTE = `POST ${BASE}/executions/processes/{id}/step`;

/** Step enabled where it applies: paused, resumable (`problem` null; undefined: the state is not read yet), and the
 * server has the route. */
export async function renderStep(status, problem) {
  const button = $('do-step');
  const routes = await serverRoutes();
  const why = !routes.has(STEP_ROUTE)
    ? 'this server cannot step (no POST …/{id}/step in its OpenAPI document)'
    : status.status !== 'paused'
      ? `applies to a paused execution; this one is ${status.status}`
      : problem === undefined
        ? 'reading the state…'
        : problem
          ? `step would be refused: ${problem}`
          : null;
  button.disabled = why !== null || button.dataset.busy === 'true';
  button.title = why ?? 'POST …/step: run the next element of each lane, then pause again';
}

/** Step the execution of `view`, with the reason field's reason; say what ran, then read the page again. */
export async function sendStep(view) {
  const button = $('do-step');
  const reason = $('reason').value.trim();
  button.disabled = true;
  button.dataset.busy = 'true';
  note('step…', 'busy');
  try {
    const result = await api('POST', view.path('/step'), { body: reason ? { reason } : {} });
    const ran = result.ran.map((r) => `${r.elementKey} (${r.lane}) ${r.outcome}`).join(', ');
    note(`step: ran ${ran || 'nothing'}; the execution is ${result.status}`);
    $('reason').value = '';
  } catch (error) {
    const now = error.details && error.details.status ? ` (it is ${error.details.status})` : '';
    note(`step refused: ${error.text}${now}`, 'error');
    if (error.status === 401) fatal(error);
  }
  button.dataset.busy = 'false';
  view.refreshSoon();
}
