"""Driving the pure interpreter (`engine/`) in tests: build a definition from plain dicts, drive a thread until
it must wait."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from procengine.engine.compiled import CompiledProcess, compile_process
from procengine.engine.definitions import ProcessDefinition
from procengine.engine.interpreter import Interpreter
from procengine.engine.outcomes import ElementEvent, Outcome, Progressed, Step
from procengine.engine.state import ExecutionState

__all__ = ["Run", "definition", "start"]


def definition(*elements: dict[str, Any], key: str = "p", **threads: list[dict[str, Any]]) -> ProcessDefinition:
    """One thread `main` made of `elements`, or several threads given as keyword arguments."""
    thread_list = [{"key": "main", "elements": list(elements)}] if elements else []
    thread_list += [{"key": name, "elements": elems} for name, elems in threads.items()]
    return ProcessDefinition.model_validate({"key": key, "threads": thread_list})


@dataclass
class Run:
    """An interpreter and the state of one execution, with the events of every call kept in order."""

    process: CompiledProcess
    interpreter: Interpreter
    state: ExecutionState
    events: list[ElementEvent] = field(default_factory=list)

    def _keep(self, outcome: Outcome) -> Outcome:
        self.events.extend(outcome.events)
        return outcome

    def begin(self, thread: str = "main", now: int = 0) -> Outcome:
        return self._keep(self.interpreter.begin(self.state, thread, now))

    def drive(self, thread: str = "main", now: int = 0) -> Step:
        """Call begin until the thread has to wait, run a task, has ended or has failed."""
        for _ in range(1000):
            step = self.begin(thread, now).step
            if not isinstance(step, Progressed):
                return step
        raise AssertionError("the thread never stopped progressing")

    def succeed(self, output: Any, thread: str = "main", now: int = 0) -> Outcome:
        return self._keep(self.interpreter.task_succeeded(self.state, thread, output, now))

    def fail(self, error: str, thread: str = "main", now: int = 0, error_type: str = "TaskFailed") -> Outcome:
        return self._keep(self.interpreter.task_failed(self.state, thread, error, now, error_type))

    def trail(self, thread: str | None = None) -> list[tuple[str, str]]:
        """(event, element key) pairs, oldest first."""
        return [(e.event, e.element_key) for e in self.events if thread is None or e.thread_key == thread]

    @property
    def variables(self) -> dict[str, Any]:
        return self.state.memory.variables


def start(process: ProcessDefinition | CompiledProcess, variables: dict[str, Any] | None = None) -> Run:
    compiled = process if isinstance(process, CompiledProcess) else compile_process(process)
    interpreter = Interpreter(compiled)
    ids = {thread.key: 100 + index for index, thread in enumerate(compiled.threads)}
    return Run(compiled, interpreter, interpreter.initial_state(variables or {}, ids))
