// Rewind from a checkpoint (docs/repair.md "Go back"): Rewind here… of the checkpoint shown opens a confirmation
// under it that says what changes from the execution's state now to that checkpoint (the server's diff from the
// kept checkpoint that is the state now; for a cancelled execution, whose stack and memory the cancel cleared,
// computed here from `…/state`), with a reason and an optional merge patch of the checkpoint's variables; only its
// button sends `POST …/{id}/rewind {checkpoint, reason?, variables?}`. The server's refusals (409 while running,
// with the status; 404 for a checkpoint no longer kept; 422 with its details) show in the confirmation as the
// repair forms show theirs. After a rewind the page is opened again: paused at the checkpoint, `rewound` in its log.

import { api } from './api.js';
import { diffSummary, renderDiff, stateDiff } from './diff.js';
import { note } from './forms.js';
import { fatal } from './page.js';
import { fillProblem } from './repair.js';
import { $, h } from './util.js';

const NOTHING = { variables: {}, nodeOutputs: {}, stack: {} };

export function closeRewind() {
  const box = $('rewind');
  if (!box) return;
  box.hidden = true;
  box.replaceChildren();
  delete box.dataset.seq;
  delete box.dataset.now;
}

/** The confirmation of a rewind of `timeline`'s execution to `checkpoint` (as GET …/checkpoints/{seq} gives it). */
export async function openRewind(timeline, checkpoint) {
  const box = $('rewind');
  const view = timeline.view;
  const { seq } = checkpoint;
  box.hidden = false;
  box.dataset.seq = String(seq);
  const field = (label, input) => h('label', {}, h('span', { text: label }), input);
  const changes = h('div', { id: 'rewind-diff', class: 'rewind-diff' }, h('p', { class: 'muted', text: 'reading what changes…' }));
  const reason = h('input', { id: 'rewind-reason', maxlength: 1000, placeholder: 'optional, written to the audit log' });
  const patch = h('textarea', {
    id: 'rewind-variables',
    rows: 2,
    spellcheck: 'false',
    placeholder: `optional: a merge patch of #${seq}'s variables, e.g. {"amount": 12}`,
  });
  const confirm = h('button', { type: 'button', id: 'rewind-confirm', class: 'danger', text: `Rewind to #${seq}` });
  const back = h('button', { type: 'button', id: 'rewind-back', class: 'quiet', text: 'Back' });
  const problem = h('div', { class: 'problem', id: 'rewind-problem', role: 'alert', hidden: true });
  back.addEventListener('click', closeRewind);
  confirm.addEventListener('click', () => send(view, seq, { reason, patch, confirm, problem }));
  box.replaceChildren(
    h('h4', { id: 'rewind-title', text: `Rewind #${view.id} to checkpoint #${seq}?` }),
    h('p', {
      class: 'small',
      text:
        `Its stack and memory become those of #${seq} (with the patch below, if any) in one write, and it is paused ` +
        'there; resume goes on from it, and the elements after it run again (a task at least once). The audit log ' +
        'keeps everything that happened before.',
    }),
    changes,
    h('div', { class: 'step-fields' }, field('Reason', reason), field('Variables patch (JSON)', patch)),
    h('div', { class: 'step-buttons' }, confirm, back),
    problem,
  );
  await showChanges(timeline, checkpoint);
}

/** The state now moved on (the page was read again) while a confirmation is open: what changes is read again. */
export function followRewind(timeline) {
  const box = $('rewind');
  if (!box || box.hidden || !box.dataset.seq || !timeline.shown || String(timeline.shown.seq) !== box.dataset.seq) return;
  if (box.dataset.now !== nowKey(timeline)) showChanges(timeline, timeline.shown);
}

/** What the state now is: the kept checkpoint it is, or the time `…/state` says it was saved. */
const nowKey = (timeline) => {
  const now = timeline.current();
  return now ? `#${now.seq}` : String((timeline.state && timeline.state.savedAt) || '');
};

async function showChanges(timeline, checkpoint) {
  const box = $('rewind');
  const changes = $('rewind-diff');
  const seq = String(checkpoint.seq);
  const key = nowKey(timeline);
  box.dataset.now = key;
  let found;
  try {
    found = await whatChanges(timeline, checkpoint);
  } catch (error) {
    if (box.dataset.seq !== seq || box.dataset.now !== key) return;
    const problem = h('div', { class: 'problem', role: 'alert' });
    fillProblem(problem, error);
    return changes.replaceChildren(h('p', { text: 'What changes cannot be read:' }), problem);
  }
  if (box.dataset.seq !== seq || box.dataset.now !== key) return; // closed, another opened, or read again meanwhile
  changes.replaceChildren(
    h('p', {}, h('strong', { text: found.label }), ' ', h('span', { class: 'muted', id: 'rewind-summary', text: diffSummary(found.diff) })),
    renderDiff(found.diff),
  );
}

/** `{label, diff}`: what the rewind changes, from the state now to `checkpoint`. */
async function whatChanges(timeline, checkpoint) {
  const { seq } = checkpoint;
  const now = timeline.current();
  if (now && now.seq === seq) return { label: `#${seq} is the state now: only the status changes (to paused).`, diff: NOTHING };
  if (now) {
    const diff = await api('GET', timeline.path(`/${now.seq}/diff/${seq}`));
    return { label: `From now (checkpoint #${now.seq}) to #${seq}:`, diff };
  }
  const state = timeline.state;
  const cleared = !state || !state.memory;
  const label = cleared ? `From now (no stack and memory: the cancel cleared them) to #${seq}:` : `From the state now to #${seq}:`;
  return { label, diff: stateDiff(state, checkpoint) };
}

/**
 * The body of a rewind or a fork from checkpoint `seq`: the reason and the variables patch of its confirmation; null
 * (the problem said in the confirmation) when the patch is not JSON.
 */
export function checkpointBody(seq, reason, patch, problem) {
  const body = { checkpoint: seq };
  if (reason.value.trim()) body.reason = reason.value.trim();
  const text = patch.value.trim();
  if (text) {
    try {
      body.variables = JSON.parse(text); // anything but an object is sent as it is: the server's 422 says why not
    } catch (error) {
      fillProblem(problem, `the variables patch is not JSON: ${error.message}`);
      return null;
    }
  }
  fillProblem(problem, null);
  return body;
}

/** Send the rewind; a patch that is not JSON is said in the confirmation and nothing is sent. */
async function send(view, seq, { reason, patch, confirm, problem }) {
  const body = checkpointBody(seq, reason, patch, problem);
  if (body === null) return;
  confirm.disabled = true;
  note('rewind…', 'busy');
  try {
    const result = await api('POST', view.path('/rewind'), { body });
    view.reopen(); // live again (it may have been final): the page follows it from here
    note(`rewind: the execution is ${result.status} at checkpoint #${result.checkpoint} (it was ${result.rewoundFrom})`);
  } catch (error) {
    note(`rewind refused: ${error.text}`, 'error');
    fillProblem(problem, error);
    confirm.disabled = false;
    if (error.status === 401) fatal(error);
    view.refreshSoon();
  }
}
