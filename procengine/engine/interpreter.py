"""The interpreter: given a compiled definition and an execution's state, what happens next.

Pure and synchronous. It never awaits, sleeps or touches Redis: the actor asks `begin` what a thread
must do now, carries out the waiting or the task, and reports back (`task_succeeded`, `task_failed`).
Every call that changes the state returns the element events to write in the checkpoint.

With a memory limit, the interpreter is also where the memory snapshot can grow, so it checks every value
before it stores it: a task output, a value or a signal that would take the snapshot over the limit fails
its element (type LimitExceeded) and is not stored. `MEMORY_RESERVE` of the limit is kept for the record of
that failure, so a snapshot never exceeds the limit.
"""

from __future__ import annotations

from typing import Any

from procengine.engine import lanes
from procengine.engine.attributes import value_problem
from procengine.engine.compiled import CompiledProcess
from procengine.engine.definitions import (
    CallProcessElement,
    CatchClause,
    DelayElement,
    EndElement,
    FailElement,
    FanOut,
    ForEachElement,
    IfConditionElement,
    OnExhausted,
    ParallelElement,
    SetVariableElement,
    SwitchElement,
    TaskElement,
    WaitSignalElement,
    catch_clauses,
)
from procengine.engine.expressions import DEFAULT_MAX_COST
from procengine.engine.outcomes import (
    AwaitChild,
    AwaitLanes,
    AwaitSignal,
    ElementEvent,
    ElementFailed,
    ElementHeld,
    EventName,
    LaneEnded,
    Outcome,
    Progressed,
    RunTask,
    Sleep,
    StartChild,
    ThreadEnded,
)
from procengine.engine.policy import retry_policy, timeout_ms
from procengine.engine.sizes import bounded_size
from procengine.engine.state import ExecutionState, FanOutProgress, Memory, StackEntry, ThreadProgress
from procengine.errors import ExpressionError, LimitExceeded

ERROR_MAX_CHARS = 1000
"""An error message is cut to this (a handler's exception can say anything, and at any length)."""
MEMORY_RESERVE = 8192
"""Bytes of the memory limit kept for the record of a failure (an error of ERROR_MAX_CHARS and its keys)."""
_ENTRY_SLACK = 64
"""What storing a value adds besides the value: its name, map headers growing, a node output's own keys."""
MAX_ITEMS = 10_000
"""The most items a for-each takes by default (more: the element fails with LimitExceeded)."""
CHILD_FAILED = "ChildFailed"
"""The error type of a call-process whose child failed, was cancelled or could not start."""


class Interpreter:
    def __init__(
        self,
        process: CompiledProcess,
        memory_limit: int | None = None,
        max_items: int = MAX_ITEMS,
        max_expression_cost: int = DEFAULT_MAX_COST,
        on_exhausted: OnExhausted = "fail",
    ) -> None:
        self.process = process
        self.memory_limit = memory_limit
        """The most the memory snapshot may take, encoded (None: no limit)."""
        self.max_items = max_items
        """The most items one for-each takes."""
        self.max_expression_cost = max_expression_cost
        """The most one CEL evaluation may cost (`Expression.context`); more fails its element (LimitExceeded)."""
        self.on_exhausted = on_exhausted
        """What a task's or call's failure for good does when its element has no `onExhausted` (the server's or
        the tenant's default): `fail`, or `pause` with the element held."""

    def _value(self, source: str, variables: dict[str, Any]) -> Any:
        """The value of one of the definition's expressions over `variables` (LimitExceeded past its cost)."""
        return self.process.expression(source).evaluate(variables, self.max_expression_cost)

    def _test(self, source: str, variables: dict[str, Any]) -> bool:
        return self.process.expression(source).evaluate_bool(variables, self.max_expression_cost)

    # --- creating and resuming ---------------------------------------------------------------

    def initial_state(self, variables: dict[str, Any], thread_execution_ids: dict[str, int]) -> ExecutionState:
        state = ExecutionState(stack=[], memory=Memory(variables=dict(variables)), threads={})
        for thread in self.process.threads:
            state.threads[thread.key] = ThreadProgress(
                thread_key=thread.key,
                thread_execution_id=thread_execution_ids[thread.key],
                process_thread_id=thread.process_thread_id,
                total_nodes=thread.total_nodes,
            )
            self._push(state, thread.key, thread.start)
        return state

    def freeze_timers(self, state: ExecutionState, now_ms: int) -> None:
        """Pause: every running timer keeps what is left of it."""
        for entry in state.stack:
            if entry.due_at_ms is not None:
                entry.remaining_ms = max(0, entry.due_at_ms - now_ms)
                entry.due_at_ms = None

    def thaw_timers(self, state: ExecutionState, now_ms: int) -> None:
        """Resume: frozen timers run again for the time they had left."""
        for entry in state.stack:
            if entry.remaining_ms is not None:
                entry.due_at_ms = now_ms + entry.remaining_ms
                entry.remaining_ms = None

    def requeue(self, state: ExecutionState, lane: str) -> None:
        """A task cut short (pause past its grace, a crash, a stopped actor) runs again, same attempt: a re-run."""
        entry = state.entry(lane)
        if entry is not None and entry.element_type == "task" and entry.started_at_ms is not None:
            entry.started_at_ms = None
            entry.rerun = True

    def signal_arrived(self, state: ExecutionState, name: str, payload: Any) -> None:
        """Keep the signal until a wait for it consumes it; LimitExceeded (nothing kept) if it does not fit."""
        self._fit(state, f"signal {name!r}", [payload])
        state.memory.signals.setdefault(name, []).append(payload)

    # --- driving one thread ------------------------------------------------------------------

    def begin(self, state: ExecutionState, lane: str, now_ms: int) -> Outcome:
        """What the lane (a thread, or a branch or iteration of one) must do now."""
        entry = state.entry(lane)
        if entry is None:
            if lanes.is_branch(lane):
                return Outcome(LaneEnded())
            state.threads[lane].status = "completed"
            return Outcome(ThreadEnded())
        if entry.held is not None:  # a failure held on the stack: nothing runs until resume (or a step) settles it
            held = entry.held
            return Outcome(ElementHeld(entry, str(held.get("error", "")), str(held.get("type", "Error"))))
        element = self.process.elements[entry.element_key]
        if entry.remaining_ms is not None:  # a timer frozen by pause that nobody thawed: it goes on from there
            entry.due_at_ms = now_ms + entry.remaining_ms
            entry.remaining_ms = None
        if isinstance(element, TaskElement) and entry.due_at_ms is not None and now_ms >= entry.due_at_ms:
            entry.due_at_ms = None  # the backoff before a retry is over: the next attempt starts now
        # a re-run of a timer cut short (a lane a retry put back) starts again with the time it had left
        starting = entry.started_at_ms is None and (entry.due_at_ms is None or entry.rerun)
        if starting:
            entry.started_at_ms = now_ms
        try:
            outcome = self._begin_element(state, entry, element, now_ms)
        except ExpressionError as exc:
            outcome = self._fail(state, entry, str(exc), now_ms, "ExpressionError")
        except LimitExceeded as exc:
            outcome = self._fail(state, entry, str(exc), now_ms, "LimitExceeded")
        if starting and not outcome.events:
            # still going after this call: its start is news; an element that ended at once reports only its
            # end (which carries the start time), one log entry instead of two
            task_input = self._kept(outcome.step.input) if isinstance(outcome.step, RunTask) else None
            outcome.events.append(self._event("element-started", entry, now_ms, rerun=entry.rerun, input=task_input))
            entry.rerun = False
        return outcome

    def task_succeeded(
        self, state: ExecutionState, lane: str, output: Any, now_ms: int, output_bytes: int | None = None
    ) -> Outcome:
        """Store the output and move on; `output_bytes` is its encoded size if the caller measured it (at least
        that much: anything over the limit says it cannot fit). An output that does not fit fails the element."""
        entry = self._current(state, lane)
        element = self.process.elements[entry.element_key]
        assert isinstance(element, TaskElement)
        try:
            copies = _copies(output, element.output, lane)
            self._fit(state, f"the output of task {entry.element_key!r}", copies, sizes=output_bytes)
        except LimitExceeded as exc:
            return self._fail(state, entry, str(exc), now_ms, "LimitExceeded")
        if element.output is not None:
            self._assign(state, lane, element.output, output)
        return self._complete(state, entry, output, element.next, now_ms)

    def task_failed(
        self, state: ExecutionState, lane: str, error: str, now_ms: int, error_type: str, *, retry: bool = True
    ) -> Outcome:
        """Retry with backoff while attempts remain (Sleep), else (or with `retry` False) the element fails for
        good. `error_type` names the kind of failure: the handler's exception class, Timeout, LimitExceeded, ..."""
        entry = self._current(state, lane)
        element = self.process.elements[entry.element_key]
        assert isinstance(element, TaskElement)
        error = _cut(error)
        policy = retry_policy(entry, element)
        if not retry or entry.attempt >= policy.maxAttempts:
            return self._fail(state, entry, error, now_ms, error_type)
        retry_at = now_ms + policy.delay_before(entry.attempt + 1)
        # the event is of the attempt that failed: during the backoff, one attempt has run, not two
        event = self._event("element-retry", entry, now_ms, error=error, error_type=error_type, retry_at_ms=retry_at)
        entry.attempt += 1
        entry.started_at_ms = None
        entry.due_at_ms = retry_at
        return Outcome(Sleep(entry, retry_at), [event])

    def child_started(self, state: ExecutionState, lane: str, child_id: int) -> None:
        """The call-process of `lane` has its child execution now: wait for it."""
        self._current(state, lane).child_id = child_id

    def child_ended(
        self,
        state: ExecutionState,
        lane: str,
        status: str,
        variables: dict[str, Any] | None,
        error: str | None,
        now_ms: int,
    ) -> Outcome:
        """The child ended (or could not start: `status` "refused"): a completed child's variables, or what
        `result` makes of them, go into `output`; anything else fails the element (ChildFailed)."""
        entry = self._current(state, lane)
        element = self.process.elements[entry.element_key]
        assert isinstance(element, CallProcessElement)
        if status != "completed":
            child = f"child execution {entry.child_id}" if entry.child_id is not None else "the child execution"
            return self._fail(
                state, entry, f"{child} {status}: {error}" if error else f"{child} {status}", now_ms, CHILD_FAILED
            )
        value: Any = variables or {}
        try:
            if element.result is not None:
                value = self._value(element.result, value)
            if element.output is not None:
                self._fit(state, f"the output of {entry.element_key!r}", _copies(value, element.output, lane))
        except ExpressionError as exc:
            return self._fail(state, entry, str(exc), now_ms, "ExpressionError")
        except LimitExceeded as exc:
            return self._fail(state, entry, str(exc), now_ms, "LimitExceeded")
        if element.output is not None:
            self._assign(state, lane, element.output, value)
        return self._complete(state, entry, value, element.next, now_ms)

    # --- step controls (an operator's, on a paused or failed execution: actors/steps.py) ------------

    def skip(
        self, state: ExecutionState, lane: str, now_ms: int, output: Any = None, *, stored: bool = False
    ) -> Outcome:
        """The lane's element is recorded skipped (node output status `skipped`) and its `next` followed, as if it
        had completed; with `stored`, `output` is kept as if it had run (its node output's `data`, and its output
        variable where it has one). ValueError for an element with no single `next` (if-condition, switch)."""
        entry = self._current(state, lane)
        element = self.process.elements[entry.element_key]
        if isinstance(element, IfConditionElement | SwitchElement):
            raise ValueError(f"a {element.type} has no single next element to go on with")
        variable = getattr(element, "output", None) or getattr(element, "into", None)
        if stored:
            self._fit(state, f"the output given for {entry.element_key!r}", _copies(output, variable, lane))
            if isinstance(variable, str):
                self._assign(state, lane, variable, output)
        outcome = self._complete(state, entry, output if stored else None, getattr(element, "next", None), now_ms)
        skipped: dict[str, Any] = {"status": "skipped", "counted": True}  # progress counted it, once
        if stored:
            skipped["data"] = output
        state.memory.node_outputs[entry.element_key] = skipped
        return outcome

    def move_lane(self, state: ExecutionState, lane: str, element_key: str) -> StackEntry:
        """The lane's pending element is replaced by a fresh entry for `element_key` (attempt 1, a new execution
        order); the caller checked that it stands in the lane's list (`engine/steps.py`)."""
        state.stack.remove(self._current(state, lane))
        self._push(state, lane, element_key)
        return self._current(state, lane)

    def fail_fan_out(self, state: ExecutionState, lane: str, now_ms: int) -> Outcome:
        """A fan-out one of whose lanes failed for good takes the failure now (its catch, or it fails in turn)."""
        entry = self._current(state, lane)
        element = self.process.elements[entry.element_key]
        assert isinstance(element, ParallelElement | ForEachElement)
        return self._fan_out(state, entry, element, now_ms)

    # --- internals ---------------------------------------------------------------------------

    def _begin_element(self, state: ExecutionState, entry: StackEntry, element: Any, now_ms: int) -> Outcome:
        if type(element) is SetVariableElement:  # the commonest element first (a pure run is mostly these)
            return self._set_variables(state, entry, element, now_ms)
        variables = self.variables(state, entry.path)
        if isinstance(element, TaskElement):
            if entry.due_at_ms is not None:  # still in the backoff before a retry
                return Outcome(Sleep(entry, entry.due_at_ms))
            return Outcome(self._run_task(entry, element, variables))
        if isinstance(element, DelayElement):
            if entry.due_at_ms is None:
                entry.due_at_ms = self._due(element.durationMs, element.until, variables, now_ms)
            if now_ms < entry.due_at_ms:
                return Outcome(Sleep(entry, entry.due_at_ms))
            delayed = element.durationMs if element.durationMs is not None else _waited(entry, now_ms)
            return self._complete(state, entry, {"delayedMs": delayed}, element.next, now_ms)
        if isinstance(element, WaitSignalElement):
            waiting = state.memory.signals.get(element.signal)
            if not waiting:
                return self._await_signal(state, entry, element, now_ms)
            payload = waiting[0]
            # it leaves the waiting signals for the node output (and the variable `into`)
            copies = _copies(payload, element.into, entry.path)
            self._fit(state, f"signal {element.signal!r}", copies, freed=payload)
            waiting.pop(0)
            if not waiting:
                del state.memory.signals[element.signal]
            if element.into is not None:
                self._assign(state, entry.path, element.into, payload)
            return self._complete(state, entry, payload, element.next, now_ms)
        if isinstance(element, IfConditionElement):
            result = self._test(element.condition, variables)
            target = element.then if result else element.else_
            return self._complete(state, entry, {"result": result, "next": target}, target, now_ms)
        if isinstance(element, SwitchElement):
            for index, case in enumerate(element.cases):
                if self._test(case.when, variables):
                    return self._complete(state, entry, {"case": index, "next": case.next}, case.next, now_ms)
            return self._complete(state, entry, {"case": None, "next": element.default}, element.default, now_ms)
        if isinstance(element, FailElement):
            message = self._value(element.message, variables)
            return self._fail(state, entry, message if isinstance(message, str) else str(message), now_ms, "Fail")
        if isinstance(element, SetVariableElement):
            return self._set_variables(state, entry, element, now_ms)
        if isinstance(element, ParallelElement | ForEachElement):
            return self._fan_out(state, entry, element, now_ms)
        if isinstance(element, CallProcessElement):
            if entry.child_id is not None:
                return Outcome(AwaitChild(entry, entry.child_id))
            child_input = {name: self._value(src, variables) for name, src in element.input.items()}
            return Outcome(StartChild(entry, element.process, element.version, child_input))
        assert isinstance(element, EndElement)
        return self._complete(state, entry, None, None, now_ms)

    def _set_variables(
        self, state: ExecutionState, entry: StackEntry, element: SetVariableElement, now_ms: int
    ) -> Outcome:
        variables = self.variables(state, entry.path)
        expressions, cost = self.process.expressions, self.max_expression_cost
        values = {name: expressions[source].evaluate(variables, cost) for name, source in element.set.items()}
        attributes = self._attributes(element, variables, now_ms) if element.attributes else {}
        if self.memory_limit is not None:
            self._fit(state, f"the values of {entry.element_key!r}", [*values.values(), *attributes.values()])
        for name, value in values.items():
            self._assign(state, entry.path, name, value)
        state.memory.attributes.update(attributes)
        return self._complete(state, entry, None, element.next, now_ms)  # its values are the variables

    def _attributes(self, element: SetVariableElement, variables: dict[str, Any], now_ms: int) -> dict[str, list[Any]]:
        """A set-variable's attributes, each its CEL value checked against the declared type: a value of the wrong
        type fails the element (ExpressionError) as an expression's error does. A time takes what a delay's `until`
        takes (a timestamp, an RFC 3339 string, a duration from now)."""
        declared, cost = self.process.definition.attributes, self.max_expression_cost
        stored: dict[str, list[Any]] = {}
        for name, source in element.attributes.items():
            kind = declared[name]  # registration refused an undeclared one
            expression = self.process.expression(source)
            if kind == "time":
                value: Any = expression.evaluate_due(variables, now_ms, cost)
            else:
                value = expression.evaluate(variables, cost)
            converted, problem = value_problem(kind, value)
            if problem is not None:
                raise ExpressionError(f"attribute {name!r} ({kind}): {source!r} gave {value!r:.100}, which {problem}")
            stored[name] = [kind, converted]
        return stored

    def _await_signal(
        self, state: ExecutionState, entry: StackEntry, element: WaitSignalElement, now_ms: int
    ) -> Outcome:
        if element.timeoutMs is None and element.timeoutAt is None:
            return Outcome(AwaitSignal(entry, element.signal))
        if entry.due_at_ms is None:  # a timer like a delay's: frozen by pause, kept across restarts
            variables = self.variables(state, entry.path)
            entry.due_at_ms = self._due(element.timeoutMs, element.timeoutAt, variables, now_ms)
        if now_ms < entry.due_at_ms:
            return Outcome(AwaitSignal(entry, element.signal, entry.due_at_ms))
        if element.onTimeout is None:
            return self._fail(state, entry, f"no signal {element.signal!r} in time", now_ms, "Timeout")
        return self._complete(state, entry, {"timedOut": True}, element.onTimeout, now_ms)

    def _due(self, after_ms: int | None, at: str | None, variables: dict[str, Any], now_ms: int) -> int:
        """When a timer set by a number of milliseconds or by a CEL time (one of the two) is due."""
        if after_ms is not None:
            return now_ms + after_ms
        assert at is not None
        return self.process.expression(at).evaluate_due(variables, now_ms, self.max_expression_cost)

    def _fit(
        self, state: ExecutionState, what: str, values: list[Any], *, sizes: int | None = None, freed: Any = None
    ) -> None:
        """LimitExceeded unless storing `values` (each once; `sizes`: the encoded size of each, if known) keeps the
        memory snapshot within the limit, less the reserve for a failure. `freed` leaves memory as they come in.
        Nothing is stored here; the walk over a value stops once it cannot fit, so a huge one costs little."""
        if self.memory_limit is None:
            return
        room = self.memory_limit - MEMORY_RESERVE - state.memory_bytes
        if freed is not None:
            room += bounded_size(freed, self.memory_limit) or 0
        needed = 0
        for value in values:
            size = sizes if sizes is not None else bounded_size(value, max(room - needed, 0))
            needed += (room + 1 if size is None else size) + _ENTRY_SLACK
            if needed > room:
                raise LimitExceeded(
                    f"{what} does not fit in the execution's memory: the snapshot may take {self.memory_limit} bytes "
                    f"and holds {state.memory_bytes}"
                )

    def _kept(self, task_input: dict[str, Any]) -> Any:
        """A task's input as its element record keeps it: whole, unless it is over the memory limit."""
        if self.memory_limit is None or bounded_size(task_input, self.memory_limit) is not None:
            return task_input
        return f"(not kept: the input is over the {self.memory_limit} bytes an execution's memory may take)"

    def _run_task(self, entry: StackEntry, element: TaskElement, variables: dict[str, Any]) -> RunTask:
        task_input = {name: self._value(src, variables) for name, src in element.input.items()}
        return RunTask(entry, element.handler, task_input, timeout_ms(entry, element), element.queue)

    def _complete(
        self, state: ExecutionState, entry: StackEntry, output: Any, next_key: str | None, now_ms: int
    ) -> Outcome:
        # An element run again (a loop, an iteration) completes once for progress: completed never passes total.
        if not _counted(state.memory.node_outputs.get(entry.element_key)):
            state.threads[entry.thread_key].completed_nodes += 1
        state.memory.node_outputs[entry.element_key] = (
            {"status": "success"} if output is None else {"status": "success", "data": output}
        )
        state.stack.remove(entry)
        outcome = Outcome(Progressed(), [self._event("element-completed", entry, now_ms, output=output)])
        if next_key is not None:
            self._push(state, entry.path, next_key)
        elif lanes.is_branch(entry.path):  # the branch or iteration ends: its fan-out takes its result
            self._lane_ended(state, entry.path, outcome, now_ms)
        else:  # the thread ends here, in the same checkpoint as its last element
            state.threads[entry.thread_key].status = "completed"
        return outcome

    def fail(
        self, state: ExecutionState, lane: str, error: str, now_ms: int, error_type: str, *, hold: bool = False
    ) -> Outcome:
        """Fail the lane's pending element for good, as if it had failed so (a step control's `fail`): a catch
        clause takes it first; `hold` False (the default) fails it even if its `onExhausted` is `pause`."""
        entry = self._current(state, lane)
        entry.held = None
        return self._fail(state, entry, error, now_ms, error_type, hold=hold)

    def holds(self, element: Any) -> bool:
        """Whether a failure for good of `element` (no catch taking it) is held rather than failed."""
        if not isinstance(element, TaskElement | CallProcessElement):
            return False
        return (element.onExhausted or self.on_exhausted) == "pause"

    def _fail(
        self, state: ExecutionState, entry: StackEntry, error: str, now_ms: int, error_type: str, *, hold: bool = True
    ) -> Outcome:
        """The element failed for good: a catch clause for its error type takes the lane on to its `next`; else, for
        an element whose `onExhausted` is `pause`, the failure is held on the stack (`_hold`); else a thread fails,
        and the entry stays on the stack so a retry can start from it; a branch or iteration fails its fan-out
        (which stops the others, and fails in turn unless a catch clause of its own takes it)."""
        error = _cut(error)
        element = self.process.elements[entry.element_key]
        clause = next((c for c in catch_clauses(element) if c.catches(error_type)), None)
        if clause is not None:
            try:
                return self._caught(state, entry, clause, error, error_type, now_ms)
            except LimitExceeded as exc:  # its description does not fit: the failure stands, uncaught
                error, error_type = _cut(f"{error} (not caught: {exc})"), "LimitExceeded"
        if hold and self.holds(element):
            return self._hold(state, entry, error, error_type, now_ms)
        state.memory.node_outputs[entry.element_key] = _failed_output(
            state.memory.node_outputs.get(entry.element_key), error, error_type
        )
        progress = state.threads[entry.thread_key]
        progress.failed_nodes += 1
        event = self._event("element-failed", entry, now_ms, error=error, error_type=error_type)
        if lanes.is_branch(entry.path):
            return self._lane_failed(state, entry, error, error_type, event)
        progress.status = "failed"
        return Outcome(ElementFailed(entry, error, error_type), [event])

    def _hold(self, state: ExecutionState, entry: StackEntry, error: str, error_type: str, now_ms: int) -> Outcome:
        """Keep the failure on the stack: the entry stays, `held`, its node output records the failure (`held`
        true), and its lane stops; the actor pauses the execution. Not counted as failed: resume retries it."""
        state.memory.node_outputs[entry.element_key] = {
            **_failed_output(state.memory.node_outputs.get(entry.element_key), error, error_type),
            "held": True,
        }
        event = self._event("element-failed", entry, now_ms, error=error, error_type=error_type, held=True)
        entry.held = {"error": error, "type": error_type, "atMs": now_ms}
        entry.started_at_ms = entry.due_at_ms = entry.remaining_ms = None
        entry.rerun = False
        return Outcome(ElementHeld(entry, error, error_type), [event])

    def _caught(
        self, state: ExecutionState, entry: StackEntry, clause: CatchClause, error: str, error_type: str, now_ms: int
    ) -> Outcome:
        caught = {"error": error, "type": error_type, "attempts": entry.attempt, "elementKey": entry.element_key}
        if clause.into is not None:
            self._fit(state, f"the failure of {entry.element_key!r}", [caught])
            self._assign(state, entry.path, clause.into, caught)
        state.memory.node_outputs[entry.element_key] = {
            **_failed_output(state.memory.node_outputs.get(entry.element_key), error, error_type),
            "caught": clause.next,
        }
        event = self._event("element-failed", entry, now_ms, error=error, error_type=error_type, caught=clause.next)
        state.stack.remove(entry)
        self._push(state, entry.path, clause.next)
        return Outcome(Progressed(), [event])

    # --- parallel and for-each ---------------------------------------------------------------

    def _fan_out(self, state: ExecutionState, entry: StackEntry, element: FanOut, now_ms: int) -> Outcome:
        """Open the lanes of a parallel or for-each, wait for them, and join them when all have ended."""
        fan = entry.fanout
        if fan is None:
            return self._open(state, entry, element, now_ms)
        if fan.failure is not None:  # a lane failed for good; the others were stopped then
            failure = fan.failure
            message = f"{failure.get('element')} in {failure.get('path')}: {failure.get('error')}"
            if fan.parked is None:  # nothing kept to go on from: a retry runs the whole fan-out again
                entry.fanout = None
                state.memory.fanouts.pop(entry.path, None)
                return self._fail(state, entry, message, now_ms, str(failure.get("type", "Error")))
            outcome = self._fail(state, entry, message, now_ms, str(failure.get("type", "Error")))
            if isinstance(outcome.step, Progressed):  # a catch took it: what was kept for a retry goes
                entry.fanout = None
                state.memory.fanouts.pop(entry.path, None)
                _drop_below(state, entry.path)
            return outcome
        if fan.ended < fan.total:
            return Outcome(AwaitLanes(entry))
        return self._join(state, entry, element, now_ms)

    def _open(self, state: ExecutionState, entry: StackEntry, element: FanOut, now_ms: int) -> Outcome:
        record: dict[str, Any]
        if isinstance(element, ParallelElement):
            total, record = len(element.branches), {"results": {}}
        else:
            items = self._value(element.items, self.variables(state, entry.path))
            if not isinstance(items, list):
                raise ExpressionError(f"{element.items!r} must give a list, gave {type(items).__name__}")
            if len(items) > self.max_items:
                raise LimitExceeded(f"{element.items!r} gave {len(items)} items; a for-each takes {self.max_items}")
            # the items, and room for as much again in results
            self._fit(state, f"the items of {entry.element_key!r}", [items, items])
            total, record = len(items), {"items": items, "results": [None] * len(items)}
        entry.fanout = FanOutProgress(total)
        state.memory.fanouts[entry.path] = record
        if total == 0:
            return self._join(state, entry, element, now_ms)
        return Outcome(AwaitLanes(entry), started=self._start_lanes(state, entry, element))

    def _start_lanes(self, state: ExecutionState, entry: StackEntry, element: FanOut) -> list[str]:
        """Push the first element of every branch, or of the next items up to maxConcurrency."""
        fan = entry.fanout
        assert fan is not None
        record = state.memory.fanouts[entry.path]
        limit = fan.total if isinstance(element, ParallelElement) else element.maxConcurrency
        started: list[str] = []
        while fan.started < fan.total and fan.started - fan.ended < limit:
            index = fan.started
            if isinstance(element, ParallelElement):
                branch = element.branches[index]
                lane, first, scope = lanes.child(entry.path, entry.element_key, branch.key), branch.start_key, {}
            else:
                lane, first = lanes.child(entry.path, entry.element_key, str(index)), element.body.start_key
                scope = {element.as_: record["items"][index]}
            state.memory.scopes[lane] = scope
            self._push(state, lane, first)
            fan.started += 1
            started.append(lane)
        return started

    def _lane_ended(self, state: ExecutionState, lane: str, outcome: Outcome, now_ms: int) -> None:
        """A branch or iteration has run its last element: keep its result, start the next item, wake the
        fan-out. A result that cannot be computed or stored fails the lane."""
        parent = self._current(state, lanes.parent(lane))
        element = self.process.elements[parent.element_key]
        assert isinstance(element, ParallelElement | ForEachElement) and parent.fanout is not None
        results = state.memory.fanouts[parent.path]["results"]
        try:
            if isinstance(element, ParallelElement):
                results[lanes.name(lane)] = state.memory.scopes.get(lane, {})
            else:
                scope = state.memory.scopes.get(lane, {})
                if element.result is not None:
                    value = self._value(element.result, self.variables(state, lane))
                    self._fit(state, f"the result of {lane!r}", [value])
                else:
                    value = {name: v for name, v in scope.items() if name != element.as_}
                results[int(lanes.name(lane))] = value
        except (ExpressionError, LimitExceeded) as exc:
            kind = "ExpressionError" if isinstance(exc, ExpressionError) else "LimitExceeded"
            parent.fanout.failure = {"error": _cut(str(exc)), "type": kind, "path": lane, "element": element.key}
            self._stop_lanes(state, parent.path, outcome)
        else:
            state.memory.scopes.pop(lane, None)
            parent.fanout.ended += 1
            if parent.fanout.failure is None:
                outcome.started.extend(self._start_lanes(state, parent, element))
        outcome.woken.append(parent.path)

    def _lane_failed(
        self, state: ExecutionState, entry: StackEntry, error: str, error_type: str, event: ElementEvent
    ) -> Outcome:
        """A branch or iteration failed for good: its fan-out fails with its error, and its other lanes stop."""
        parent = self._current(state, lanes.parent(entry.path))
        assert parent.fanout is not None
        parent.fanout.failure = {"error": error, "type": error_type, "path": entry.path, "element": entry.element_key}
        outcome = Outcome(LaneEnded(), [event], woken=[parent.path])
        parked = self._stop_lanes(state, parent.path, outcome, keep=True)
        for stopped in parked:  # kept for a retry: their timers frozen meanwhile
            if stopped.due_at_ms is not None:
                stopped.remaining_ms = max(0, stopped.due_at_ms - event.at_ms)
                stopped.due_at_ms = None
        parent.fanout.parked = parked
        outcome.stopped.remove(entry.path)
        outcome.interrupted = [stopped for stopped in outcome.interrupted if stopped is not entry]  # it failed
        return outcome

    def _stop_lanes(
        self, state: ExecutionState, lane: str, outcome: Outcome, *, keep: bool = False
    ) -> list[StackEntry]:
        """Take every branch and iteration below `lane` off the stack, with their variables unless `keep` (a failed
        lane's fan-out keeps them for a retry); the lanes stopped and the children they waited for go into
        `outcome`. The entries taken off."""
        removed = [entry for entry in state.stack if lanes.below(lane, entry.path)]
        state.stack[:] = [entry for entry in state.stack if not lanes.below(lane, entry.path)]
        if not keep:
            _drop_below(state, lane)
        outcome.stopped.extend(entry.path for entry in removed)
        outcome.orphaned.extend(entry.child_id for entry in removed if entry.child_id is not None)
        outcome.interrupted.extend(entry for entry in removed if entry.started_at_ms is not None)
        return removed

    def _join(self, state: ExecutionState, entry: StackEntry, element: FanOut, now_ms: int) -> Outcome:
        """Every lane ended: a parallel's branches merge their variables into the lane of the element (no two
        write one name: checked at registration), and `output` gets the results."""
        results = state.memory.fanouts[entry.path]["results"]
        if element.output is not None:
            self._fit(state, f"the output of {entry.element_key!r}", [results])
        state.memory.fanouts.pop(entry.path)
        entry.fanout = None
        if isinstance(element, ParallelElement):
            for branch in element.branches:
                for name, value in results.get(branch.key, {}).items():
                    self._assign(state, entry.path, name, value)
        if element.output is not None:
            self._assign(state, entry.path, element.output, results)
        return self._complete(state, entry, {"lanes": len(results)}, element.next, now_ms)

    # --- variables and the stack -------------------------------------------------------------

    @staticmethod
    def variables(state: ExecutionState, lane: str) -> dict[str, Any]:
        """What the elements of a lane see: the thread's variables, under those of each enclosing branch or
        iteration, under the lane's own."""
        if not lanes.is_branch(lane):
            return state.memory.variables
        seen = dict(state.memory.variables)
        for enclosing in lanes.ancestry(lane):
            seen.update(state.memory.scopes.get(enclosing, {}))
        return seen

    @staticmethod
    def _assign(state: ExecutionState, lane: str, name: str, value: Any) -> None:
        """A write: to the thread's variables, or in a branch or iteration to its own until the join."""
        if lanes.is_branch(lane):
            state.memory.scopes.setdefault(lane, {})[name] = value
        else:
            state.memory.variables[name] = value

    def _push(self, state: ExecutionState, lane: str, element_key: str) -> None:
        element = self.process.elements[element_key]
        state.stack.append(
            StackEntry(
                element_id=self.process.element_ids[element_key],
                element_key=element_key,
                element_type=element.type,
                execution_order=state.next_order,
                thread_key=lanes.thread(lane),
                path=lane,
            )
        )
        state.next_order += 1

    @staticmethod
    def _current(state: ExecutionState, lane: str) -> StackEntry:
        entry = state.entry(lane)
        if entry is None:
            raise LookupError(f"lane {lane!r} has no pending element")
        return entry

    @staticmethod
    def _event(name: EventName, entry: StackEntry, now_ms: int, **extra: Any) -> ElementEvent:
        return ElementEvent(
            name,
            entry.element_key,
            entry.element_type,
            entry.thread_key,
            entry.attempt,
            now_ms,
            started_at_ms=entry.started_at_ms,
            path=entry.path if lanes.is_branch(entry.path) else None,
            **extra,
        )


def _drop_below(state: ExecutionState, lane: str) -> None:
    """Forget the variables and fan-out records of every branch and iteration below `lane`."""
    for table in (state.memory.scopes, state.memory.fanouts):
        for key in [key for key in table if lanes.below(lane, key)]:
            del table[key]


def _copies(value: Any, variable: str | None, lane: str) -> list[Any]:
    """The copies of an element's output the memory snapshot stores: the node output's, and the variable's when it
    goes into one of a branch or iteration; a thread variable holds the same value, which is stored once
    (`ExecutionState.to_stored_memory_doc`)."""
    return [value, value] if variable is not None and lanes.is_branch(lane) else [value]


def _counted(output: Any) -> bool:
    """The element has completed before (its progress is counted): its node output says so, or, when a later run
    failed, the failure's output keeps `counted`."""
    return isinstance(output, dict) and (output.get("status") == "success" or output.get("counted") is True)


def _failed_output(previous: Any, error: str, error_type: str) -> dict[str, Any]:
    output: dict[str, Any] = {"status": "failed", "error": error, "type": error_type}
    if _counted(previous):  # a loop or an iteration ran it to completion before: that stays counted
        output["counted"] = True
    return output


def _waited(entry: StackEntry, now_ms: int) -> int:
    """How long a delay by `until` waited: from its start to now (0 for a time already past when it started)."""
    return max(0, now_ms - (entry.started_at_ms if entry.started_at_ms is not None else now_ms))


def _cut(error: str) -> str:
    return error if len(error) <= ERROR_MAX_CHARS else error[: ERROR_MAX_CHARS - 1] + "…"
