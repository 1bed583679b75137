// The procengine web console: plain JavaScript (an ES module), no build step, no third-party code.
//
// Everything comes from the REST API under BASE with the bearer token of the token field (kept in
// sessionStorage). Live updates come from the API's server-sent event streams, read with fetch() and a
// ReadableStream reader (EventSource cannot send an Authorization header) and parsed here; a stream that
// breaks is opened again with Last-Event-ID. Nothing is polled but a running bulk job (which has no stream): a view
// reads the API when it opens and again when an event says something changed.
//
// The page's Content-Security-Policy allows no inline script and no inline style, so the markup has neither:
// every element is built with the DOM API, every text goes in with textContent, and the only styles set from
// here are CSSOM properties (a progress bar's width).
//
// This module is the entry the page loads: it routes the hash to a view and wires the header's forms. The rest
// are modules beside it, one job each (static imports, same origin, served from /console/ like this one):
//
//   api.js        the REST API: fetch, the token, ApiError, the processes read once
//   streams.js    server-sent event streams over fetch, reopened with Last-Event-ID
//   page.js       the page around the views: crumbs, live indicator, error banner, badges, progress bars
//   list.js       the list of executions: counts, filters, pages, live rows
//   execution.js  one execution's page, kept live from its log stream
//   graph.js      the process graph as SVG, and its legend
//   zoom.js       the graph's zoom: fit to the width (the default when it is wider), steps, 100 %
//   details.js    one element's details: its record, input, output, attempts, stack entries, definition
//   panels.js     the execution page's tables: memory, outputs, stack, elements, log details
//   forms.js      the execution page's controls: pause, resume, cancel, the signal form
//   blocked.js    why each lane is not moving (the status's blockedOn)
//   repair.js     repair: the failure banner's Retry, the variables editor (a merge patch), the server's problems
//   timeline.js   the checkpoint timeline: the kept checkpoints, one's stack and memory, two compared
//   diff.js       a diff of two states (variables, node outputs, stack) shown readably, or computed here
//   rewind.js     rewind from a checkpoint: the confirmation with what changes, then POST …/rewind
//   steps.js      the step controls of the element picked in the graph: retry, skip, complete, fail, run now
//   move.js       the step controls' Move lane here: the lanes that can go on from the picked element
//   policy.js     the step controls' Change policy: a pending task's retry policy and timeout for this run
//   migrate.js    Migrate…: another version of the process, a plan (dry run) with its problems, then apply
//   util.js       DOM and SVG building, text, time and duration formatting
//   processes.js  the Processes page: definitions, versions, counts by status, graph, start, deprecate, delete
//   bulkbar.js    the list's selection and bulk action bar: a dry run's count, then the job
//   bulk.js       the Bulk operations page: the jobs, one job's progress (read every 500 ms while it runs), steering
//   queues.js     the Task queues page: each queue's waiting, oldest waiting, in flight, locks expired (not polled)
//   schedules.js  the Schedules page: the schedules, a create form, one schedule's next fire times and outcomes

import { ApiError, setToken, token } from './api.js';
import { BulkView } from './bulk.js';
import { ExecutionView } from './execution.js';
import { sendCommand, sendSignal } from './forms.js';
import { ListView, listHash } from './list.js';
import { openMigrate } from './migrate.js';
import { app, clearError, setLive, showError } from './page.js';
import { ProcessesView, wireProcesses } from './processes.js';
import { QueuesView } from './queues.js';
import { SchedulesView } from './schedules.js';
import { wireEditor } from './repair.js';
import { sendStep } from './step.js';
import { $ } from './util.js';
import { wireZoomControls } from './zoom.js';

function route() {
  if (app.view) app.view.stop();
  clearError();
  setLive('idle');
  const match = /^#\/executions\/([1-9][0-9]{0,18})$/.exec(location.hash);
  const processes = /^#\/processes(?:\/([1-9][0-9]{0,18}))?$/.exec(location.hash);
  const bulk = /^#\/bulk(?:\/([1-9][0-9]{0,18}))?$/.exec(location.hash);
  const schedules = /^#\/schedules(?:\/([1-9][0-9]{0,18}))?$/.exec(location.hash);
  const queues = location.hash === '#/queues';
  app.view = match
    ? new ExecutionView(match[1], route)
    : processes
      ? new ProcessesView(processes[1])
      : bulk
        ? new BulkView(bulk[1])
        : schedules
          ? new SchedulesView(schedules[1])
          : queues
            ? new QueuesView()
            : new ListView();
  app.view.start();
}

function boot() {
  const field = $('token');
  field.value = token();
  $('token-form').addEventListener('submit', (event) => {
    event.preventDefault();
    setToken(field.value.trim());
    route();
  });
  $('token-forget').addEventListener('click', () => {
    setToken('');
    field.value = '';
    route();
  });
  const applyFilters = () => {
    location.hash = listHash({
      status: $('filter-status').value,
      process: $('filter-process').value,
      limit: Number($('filter-limit').value),
      search: $('filter-search').value.trim(),
    });
  };
  $('filters').addEventListener('change', applyFilters);
  $('filters').addEventListener('submit', (event) => {
    event.preventDefault();
    applyFilters();
  });
  $('refresh').addEventListener('click', route);
  $('search').addEventListener('submit', (event) => {
    event.preventDefault();
    const id = $('search-id').value.trim().replace(/^#/, '');
    if (/^[1-9][0-9]{0,18}$/.test(id)) location.hash = `#/executions/${id}`;
    else showError(new ApiError(0, 'BAD_ID', `'${id}' is not an execution id (a positive integer)`));
  });
  $('page-older').addEventListener('click', () => app.view instanceof ListView && app.view.older());
  $('page-newer').addEventListener('click', () => app.view instanceof ListView && app.view.newer());
  for (const button of $('actions').querySelectorAll('button[data-command]')) {
    button.addEventListener('click', () => app.view instanceof ExecutionView && sendCommand(app.view, button.dataset.command));
  }
  $('do-step').addEventListener('click', () => app.view instanceof ExecutionView && sendStep(app.view));
  $('do-migrate').addEventListener('click', () => app.view instanceof ExecutionView && openMigrate(app.view));
  $('actions').addEventListener('submit', (event) => event.preventDefault());
  wireEditor(() => (app.view instanceof ExecutionView ? app.view : null), route);
  wireZoomControls(() => (app.view instanceof ExecutionView ? app.view.zoom : null));
  wireProcesses(() => (app.view instanceof ProcessesView ? app.view : null));
  $('signal-form').addEventListener('submit', (event) => {
    event.preventDefault();
    if (app.view instanceof ExecutionView) sendSignal(app.view);
  });
  window.addEventListener('hashchange', route);
  setInterval(() => app.view && app.view.tick && app.view.tick(), 1000); // ages and durations: the clock, not the API
  route();
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot);
else boot();
