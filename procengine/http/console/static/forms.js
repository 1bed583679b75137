// The controls of the execution page: pause, resume and cancel (with a reason for the audit log; cancel asks
// twice), the signal form (a name from the definition's waits, a JSON payload), and the note that says how the
// last one went.

import { api } from './api.js';
import { fatal } from './page.js';
import { $ } from './util.js';

export function note(text, kind = 'ok') {
  const el = $('action-result');
  el.textContent = text;
  el.dataset.kind = kind;
}

/** Pause, resume or cancel the execution of `view` (an ExecutionView), then read it again. */
export async function sendCommand(view, name) {
  const button = $(`do-${name}`);
  if (name === 'cancel' && button.dataset.armed !== 'true') {
    // Cancel cannot be undone: the first press arms the button, the second one cancels.
    button.dataset.armed = 'true';
    button.textContent = 'Really cancel?';
    setTimeout(() => {
      button.dataset.armed = 'false';
      button.textContent = 'Cancel';
    }, 4000);
    return;
  }
  button.dataset.armed = 'false';
  button.textContent = name === 'cancel' ? 'Cancel' : button.textContent;
  const reason = $('reason').value.trim();
  for (const b of $('actions').querySelectorAll('button')) b.disabled = true;
  note(`${name}…`, 'busy');
  try {
    const result = await api('POST', view.path(`/${name}`), { body: reason ? { reason } : undefined });
    note(`${name}: the execution is ${result.status}`);
    $('reason').value = '';
  } catch (error) {
    const now = error.details && error.details.status ? ` (it is ${error.details.status})` : '';
    note(`${name} refused: ${error.text}${now}`, 'error');
    if (error.status === 401) fatal(error);
  }
  view.refreshSoon();
}

/** Send the signal of the form to the execution of `view`, its payload checked as JSON first. */
export async function sendSignal(view) {
  const name = $('signal-name').value.trim();
  const text = $('signal-payload').value.trim();
  if (!/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(name)) {
    note('a signal name is a letter or _ followed by letters, digits, _ . -', 'error');
    return;
  }
  if (text) {
    try {
      JSON.parse(text);
    } catch (error) {
      note(`the payload is not JSON: ${error.message}`, 'error');
      return;
    }
  }
  try {
    const result = await api('POST', view.path(`/signals/${encodeURIComponent(name)}`), { body: text || undefined });
    note(`signal '${result.signal}' accepted`);
  } catch (error) {
    note(`signal refused: ${error.text}`, 'error');
    if (error.status === 401) fatal(error);
  }
}

/** The signals the definition waits for, for the signal name's suggestions. */
export function signalNames(definition) {
  const names = new Set();
  const walk = (elements) => {
    for (const el of elements || []) {
      if (el.type === 'wait-signal') names.add(el.signal);
      if (el.type === 'parallel') for (const b of el.branches || []) walk(b.elements);
      if (el.type === 'for-each' && el.body) walk(el.body.elements);
    }
  };
  for (const thread of definition.threads || []) walk(thread.elements);
  return [...names].sort();
}
