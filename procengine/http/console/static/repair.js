// Repair of a failed or paused execution (docs/repair.md): the Retry button of the failure banner, and the
// variables editor (the variables as JSON; what is sent is the merge patch from them to the text, RFC 7396).
// The server's problems (409, 413, 422: code, message, details) are shown next to the editor, never as an alert.

import { api } from './api.js';
import { note } from './forms.js';
import { fatal } from './page.js';
import { $, errorText, h, json } from './util.js';

/** The editor's state for the execution on the page: what its text was filled from, and whether it was edited. */
const editor = { id: null, baseline: null, dirty: false };

const isObject = (value) => value !== null && typeof value === 'object' && !Array.isArray(value);

/** The merge patch (RFC 7396) that turns `before` into `after`: removed names null, objects patched member-wise. */
export function mergePatch(before, after) {
  const patch = {};
  for (const name of Object.keys(before)) if (!(name in after)) patch[name] = null;
  for (const [name, value] of Object.entries(after)) {
    if (!(name in before)) patch[name] = value;
    else if (JSON.stringify(before[name]) === JSON.stringify(value)) continue;
    else if (isObject(before[name]) && isObject(value)) patch[name] = mergePatch(before[name], value);
    else patch[name] = value;
  }
  return patch;
}

/**
 * What the editor's text asks for: `{patch}` (an object: the changes; anything else is sent as it is, and the
 * server says why it is refused) or `{problem}` when the text is not JSON.
 */
function editedPatch() {
  const text = $('vars-editor').value.trim();
  let value;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { problem: `the variables are not JSON: ${error.message}` };
  }
  if (!isObject(value) || !isObject(editor.baseline)) return { patch: value };
  return { patch: mergePatch(editor.baseline, value) };
}

/** The failure banner of a failed execution: what failed, and the Retry button (enabled while it is failed). */
export function renderFailure(status, onRetry) {
  const failure = $('exec-error');
  const e = status.error;
  failure.hidden = !e;
  if (!e) return failure.replaceChildren();
  const retry = h('button', {
    type: 'button',
    id: 'do-retry',
    text: 'Retry',
    title: 'POST …/retry: go on from the element that failed, attempts reset (with the editor\u2019s changes, if any)',
    disabled: status.status !== 'failed',
  });
  retry.addEventListener('click', onRetry);
  failure.replaceChildren(
    h(
      'div',
      { class: 'failure-text' },
      h('strong', { text: `Failed at ${e.element ?? '?'}: ` }),
      errorText(e.type, e.error),
      e.attempts ? h('span', { class: 'muted', text: ` (after ${e.attempts} attempt${e.attempts > 1 ? 's' : ''})` }) : '',
    ),
    retry,
  );
}

/** The editor for `status` and `state` (GET …/state): on a paused or failed execution; greyed on a running one. */
export function renderEditor(id, status, state) {
  if (editor.id !== id) Object.assign(editor, { id, baseline: null, dirty: false });
  const panel = $('repair');
  const memory = state && state.memory;
  const where = status.status;
  panel.hidden = !['paused', 'failed', 'running'].includes(where);
  panel.dataset.status = where;
  const readable = memory && !memory.error;
  if (!editor.dirty || !readable) {
    editor.baseline = readable ? memory.variables || {} : null;
    $('vars-editor').value = readable ? json(editor.baseline, 1e9) : '';
  }
  const editable = readable && (where === 'paused' || where === 'failed');
  $('vars-editor').readOnly = !editable;
  $('vars-editor').hidden = where === 'running'; // the Variables panel below shows them: nothing to edit yet
  $('vars-save').disabled = !editable || where !== 'paused';
  $('vars-retry').disabled = !editable || where !== 'failed';
  $('vars-reset').disabled = !editor.dirty;
  $('vars-save').hidden = where === 'failed';
  $('vars-retry').hidden = where !== 'failed';
  $('vars-caption').textContent = !readable
    ? `(${memory && memory.error ? `the memory cannot be read: ${memory.error}` : 'no memory'})`
    : where === 'paused'
      ? '(paused: the changes are saved as a merge patch; resume goes on with them)'
      : where === 'failed'
        ? '(failed: Retry sends the changes as its variables patch, in the same write)'
        : '(can be changed while the execution is paused)';
  showPatch();
}

function showPatch() {
  const out = $('vars-patch');
  if (!editor.dirty) return void (out.textContent = '');
  const { patch, problem } = editedPatch();
  out.textContent = problem ?? (isObject(patch) && !Object.keys(patch).length ? 'no change' : `sends ${JSON.stringify(patch)}`);
}

/** The server's refusal (or a problem of the text) next to the editor; `null` hides it. */
export function showProblem(error) {
  fillProblem($('vars-problem'), error);
}

/**
 * `box` (a `.problem`) says `error`: an ApiError as the server gave it (code, message, its details listed), or a
 * string (what is wrong before anything is sent); `null` hides it. The rewind's confirmation shows its own so.
 */
export function fillProblem(box, error) {
  box.hidden = !error;
  if (!error) return box.replaceChildren();
  if (typeof error === 'string') {
    box.dataset.status = '';
    box.dataset.code = '';
    return box.replaceChildren(h('strong', { text: error }));
  }
  const details = error.details;
  const lines = Array.isArray(details)
    ? details.map(String)
    : isObject(details)
      ? Object.entries(details).map(([name, value]) => `${name === 'status' ? 'current status' : name}: ${typeof value === 'string' ? value : JSON.stringify(value)}`)
      : [];
  box.dataset.status = String(error.status || 0);
  box.dataset.code = error.code || '';
  box.replaceChildren(
    h('strong', { class: 'problem-title', text: error.text }),
    lines.length ? h('ul', { class: 'problem-details' }, lines.map((line) => h('li', { text: line }))) : '',
  );
}

/** Save the editor's changes on the paused execution of `view` (PATCH …/variables?reason=). */
export async function saveVariables(view) {
  const { patch, problem } = editedPatch();
  if (problem) return showProblem(problem);
  if (isObject(patch) && !Object.keys(patch).length) return showProblem('nothing to save: the variables are as they were');
  const reason = $('reason').value.trim();
  const query = reason ? `?reason=${encodeURIComponent(reason)}` : '';
  try {
    const result = await api('PATCH', view.path(`/variables${query}`), { body: JSON.stringify(patch) });
    showProblem(null);
    Object.assign(editor, { baseline: null, dirty: false });
    note(`variables saved: ${result.changed.length ? result.changed.join(', ') : 'nothing changed'}`);
    $('reason').value = '';
  } catch (error) {
    showProblem(error);
    if (error.status === 401) fatal(error);
  }
  view.refreshSoon();
}

/**
 * Retry the failed execution of `view` (POST …/retry) with the reason field and the editor's changes as its
 * variables patch; `reopen` opens the page again (the execution is live again: its event stream is followed).
 */
export async function retryExecution(view, reopen) {
  const { patch, problem } = editor.dirty ? editedPatch() : { patch: {} };
  if (problem) return showProblem(problem);
  const body = {};
  const reason = $('reason').value.trim();
  if (reason) body.reason = reason;
  if (!isObject(patch) || Object.keys(patch).length) body.variables = patch;
  for (const id of ['do-retry', 'vars-retry']) if ($(id)) $(id).disabled = true;
  note('retry…', 'busy');
  try {
    const result = await api('POST', view.path('/retry'), { body });
    Object.assign(editor, { baseline: null, dirty: false });
    showProblem(null);
    $('reason').value = '';
    reopen();
    note(`retry: the execution is ${result.status} again, from ${result.retried.join(', ') || 'where it failed'}`);
  } catch (error) {
    note(`retry refused: ${error.text}`, 'error');
    showProblem(error);
    if (error.status === 401) fatal(error);
    view.refreshSoon();
  }
}

/** The editor's own controls: typing marks it edited (it no longer follows the reads), Reset undoes that. */
export function wireEditor(currentView, reopen) {
  $('vars-editor').addEventListener('input', () => {
    editor.dirty = true;
    $('vars-reset').disabled = false;
    showPatch();
  });
  $('vars-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const view = currentView();
    if (view) saveVariables(view);
  });
  $('vars-retry').addEventListener('click', () => {
    const view = currentView();
    if (view) retryExecution(view, reopen);
  });
  $('vars-reset').addEventListener('click', () => {
    editor.dirty = false;
    showProblem(null);
    const view = currentView();
    if (view) view.refreshSoon();
  });
}
