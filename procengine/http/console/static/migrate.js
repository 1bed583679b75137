// Migrate to another version (docs/operations.md "Migrating executions"): Migrate… beside the execution's actions
// opens a small form: the target version (the other versions of its process), the elements renamed in it (one
// `old=new` a line) and a reason. Plan sends `POST …/{id}/migrate {version, mapping, dryRun: true}` and shows the
// plan (lane, from, to, type) and every problem; Apply sends the same without dryRun, enabled once a plan of those
// very inputs has no problem. The server's refusals (409 while running, 404, 422 with its problems) show in the
// form. After a migration the page is opened again: the new version's graph, `migrated` in its log.

import { api, loadProcesses } from './api.js';
import { note } from './forms.js';
import { fatal } from './page.js';
import { fillProblem } from './repair.js';
import { $, h } from './util.js';

/** Enable Migrate… on a paused or failed execution; say why not in its title otherwise. The form of another
 * execution (the page shows a new one) is closed. */
export function renderMigrate(status) {
  const box = $('migrate');
  if (box && !box.hidden && box.dataset.execution !== String(status.executionID)) closeMigrate();
  const button = $('do-migrate');
  if (!button) return;
  const applies = ['paused', 'failed'].includes(status.status);
  button.disabled = !applies;
  button.title = applies
    ? 'move it to another version of its process (a plan first)'
    : `applies to a paused or failed execution; this one is ${status.status}`;
  if (!applies) closeMigrate();
}

export function closeMigrate() {
  const box = $('migrate');
  if (!box) return;
  box.hidden = true;
  box.replaceChildren();
}

/** `{mapping}` from the text (`old=new`, one a line or comma-separated), or `{problem}`. */
export function parseMapping(text) {
  const mapping = {};
  for (const part of text.split(/[\n,]/).map((p) => p.trim()).filter(Boolean)) {
    const [old, neu, ...rest] = part.split('=').map((p) => p.trim());
    if (!old || !neu || rest.length) return { problem: `'${part}' is not old=new` };
    mapping[old] = neu;
  }
  return { mapping };
}

/** Open the form for the execution of `view` (an ExecutionView whose status has been read). */
export async function openMigrate(view) {
  const box = $('migrate');
  const status = view.status;
  if (!status) return;
  let versions = [];
  try {
    versions = (await loadProcesses()).filter((p) => p.key === status.processKey && p.version !== status.processVersion);
  } catch (error) {
    if (error.status === 401) return fatal(error);
  }
  versions.sort((a, b) => b.version - a.version);
  const version = h(
    'select',
    { id: 'migrate-version' },
    versions.map((p) => h('option', { value: String(p.version), text: `v${p.version}` })),
  );
  const mapping = h('textarea', {
    id: 'migrate-mapping',
    rows: 2,
    spellcheck: 'false',
    placeholder: 'renamed elements, old=new (one a line); same keys map by themselves',
  });
  const reason = h('input', { id: 'migrate-reason', maxlength: 1000, placeholder: 'optional, written to the audit log' });
  const plan = h('button', { type: 'button', id: 'migrate-plan', text: 'Plan (dry run)' });
  const apply = h('button', { type: 'button', id: 'migrate-apply', class: 'danger', text: 'Apply', disabled: true });
  const back = h('button', { type: 'button', id: 'migrate-back', class: 'quiet', text: 'Close' });
  const result = h('div', { id: 'migrate-result' });
  const problem = h('div', { class: 'problem', id: 'migrate-problem', role: 'alert', hidden: true });
  let planned = null; // the body of the last plan without problems
  const body = () => {
    const parsed = parseMapping(mapping.value);
    if (parsed.problem) {
      fillProblem(problem, `the mapping: ${parsed.problem}`);
      return null;
    }
    if (!version.value) {
      fillProblem(problem, `${status.processKey} has no other version to migrate to`);
      return null;
    }
    const sent = { version: Number(version.value), mapping: parsed.mapping };
    if (reason.value.trim()) sent.reason = reason.value.trim();
    return sent;
  };
  const changed = () => {
    planned = null;
    apply.disabled = true;
  };
  for (const input of [version, mapping, reason]) input.addEventListener('input', changed);
  version.addEventListener('change', changed);
  plan.addEventListener('click', async () => {
    const sent = body();
    if (sent === null) return;
    fillProblem(problem, null);
    try {
      const answer = await api('POST', view.path('/migrate'), { body: { ...sent, dryRun: true } });
      showPlan(result, answer);
      planned = answer.problems.length ? null : JSON.stringify(sent);
      apply.disabled = planned === null;
    } catch (error) {
      fillProblem(problem, error);
      if (error.status === 401) fatal(error);
    }
  });
  apply.addEventListener('click', async () => {
    const sent = body();
    if (sent === null || JSON.stringify(sent) !== planned) return;
    apply.disabled = true;
    note('migrate…', 'busy');
    try {
      const answer = await api('POST', view.path('/migrate'), { body: sent });
      note(`migrated from v${answer.fromVersion} to v${answer.toVersion}; it is ${answer.status}`);
      closeMigrate();
      view.reopen(); // the new version's graph and definition
    } catch (error) {
      note(`migrate refused: ${error.text}`, 'error');
      fillProblem(problem, error);
      if (error.status === 401) fatal(error);
      view.refreshSoon();
    }
  });
  back.addEventListener('click', closeMigrate);
  box.replaceChildren(
    h('h2', { id: 'migrate-title', text: `Migrate #${view.id} from ${status.processKey} v${status.processVersion}` }),
    h(
      'div',
      { class: 'migrate-form' },
      h('label', {}, h('span', { text: 'To version' }), version),
      h('label', {}, h('span', { text: 'Mapping' }), mapping),
      h('label', {}, h('span', { text: 'Reason' }), reason),
      h('div', { class: 'vars-buttons' }, plan, apply, back),
    ),
    result,
    problem,
  );
  box.dataset.execution = String(view.id);
  box.hidden = false;
}

/** The plan as a table (lane, from, to, type) and its problems as a list. */
function showPlan(box, answer) {
  const rows = answer.plan.map((step) =>
    h(
      'tr',
      { class: step.from === step.to ? null : 'renamed' },
      h('td', { text: step.lane }),
      h('td', { text: step.from }),
      h('td', { text: step.to }),
      h('td', { text: step.type + (step.parked ? ' (parked)' : '') }),
    ),
  );
  box.replaceChildren(
    h('table', { class: 'grid', id: 'migrate-steps' }, h('thead', {}, h('tr', {}, ['Lane', 'From', 'To', 'Type'].map((t) => h('th', { text: t })))), h('tbody', {}, rows)),
    answer.problems.length
      ? h('div', { class: 'problem', id: 'migrate-problems' }, h('strong', { text: `${answer.problems.length} problem(s): not applied` }), h('ul', {}, answer.problems.map((p) => h('li', { text: p }))))
      : h('p', { class: 'muted', id: 'migrate-ok', text: `no problems: Apply moves it to v${answer.toVersion}` }),
  );
}
