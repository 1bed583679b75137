// Fork from a checkpoint (docs/repair.md "Go back"): Fork from here of the checkpoint shown opens a confirmation
// under it, with a reason, an optional merge patch of the checkpoint's variables and "start it paused"; only its
// button sends `POST …/{id}/fork {checkpoint, reason?, variables?, paused?}`. The new execution (201) is linked in
// the confirmation; this execution is not touched (its log gets `forked`). The server's refusals (404 for a
// checkpoint no longer kept, 422 with its details, 429) show in the confirmation as the rewind's do.

import { api } from './api.js';
import { note } from './forms.js';
import { executionLink, fatal } from './page.js';
import { fillProblem } from './repair.js';
import { checkpointBody } from './rewind.js';
import { $, h } from './util.js';

export function closeFork() {
  const box = $('fork');
  if (!box) return;
  box.hidden = true;
  box.replaceChildren();
  delete box.dataset.seq;
}

/** The confirmation of a fork of `view`'s execution from checkpoint `seq`. */
export function openFork(view, seq) {
  const box = $('fork');
  box.hidden = false;
  box.dataset.seq = String(seq);
  const field = (label, input) => h('label', {}, h('span', { text: label }), input);
  const reason = h('input', { id: 'fork-reason', maxlength: 1000, placeholder: 'optional, written to both audit logs' });
  const patch = h('textarea', {
    id: 'fork-variables',
    rows: 2,
    spellcheck: 'false',
    placeholder: `optional: a merge patch of #${seq}'s variables, e.g. {"amount": 12}`,
  });
  const paused = h('input', { type: 'checkbox', id: 'fork-paused' });
  const confirm = h('button', { type: 'button', id: 'fork-confirm', text: `Fork from #${seq}` });
  const back = h('button', { type: 'button', id: 'fork-back', class: 'quiet', text: 'Back' });
  const problem = h('div', { class: 'problem', id: 'fork-problem', role: 'alert', hidden: true });
  const made = h('p', { id: 'fork-result', hidden: true });
  back.addEventListener('click', closeFork);
  confirm.addEventListener('click', () => send(view, seq, { reason, patch, paused, confirm, problem, made }));
  box.replaceChildren(
    h('h4', { id: 'fork-title', text: `Fork #${view.id} from checkpoint #${seq}?` }),
    h('p', {
      class: 'small',
      text:
        `A new execution of the same process version starts from the stack and memory of #${seq} (with the patch ` +
        'below, if any), running, or paused there if ticked. This execution is not changed; its log says it was forked.',
    }),
    h(
      'div',
      { class: 'step-fields' },
      field('Reason', reason),
      field('Variables patch (JSON)', patch),
      h('label', { class: 'check' }, paused, h('span', { text: 'start it paused' })),
    ),
    h('div', { class: 'step-buttons' }, confirm, back),
    problem,
    made,
  );
}

/** Send the fork; a patch that is not JSON is said in the confirmation and nothing is sent. */
async function send(view, seq, { reason, patch, paused, confirm, problem, made }) {
  const body = checkpointBody(seq, reason, patch, problem);
  if (body === null) return;
  if (paused.checked) body.paused = true;
  confirm.disabled = true;
  note('fork…', 'busy');
  try {
    const result = await api('POST', view.path('/fork'), { body });
    note(`fork: execution #${result.executionID} started from checkpoint #${seq}, ${result.status}`);
    made.hidden = false;
    made.dataset.id = String(result.executionID);
    const link = executionLink(result.executionID, `execution #${result.executionID}`);
    link.id = 'fork-link';
    made.replaceChildren('Forked: ', link, ` (${result.status})`);
  } catch (error) {
    note(`fork refused: ${error.text}`, 'error');
    fillProblem(problem, error);
    if (error.status === 401) fatal(error);
  }
  confirm.disabled = false; // another fork from the same checkpoint is another execution
  view.refreshSoon();
}
