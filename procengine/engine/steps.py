"""What the step controls need to know of a definition's shape (pure): which list of elements each element stands
in, so that a lane is moved only before an element of its own thread or branch (`actors/steps.py`, move)."""

from __future__ import annotations

from procengine.engine.compiled import CompiledProcess
from procengine.engine.definitions import Element, bodies

__all__ = ["containers", "same_list"]


def containers(process: CompiledProcess) -> dict[str, str]:
    """Each element's key → the list it stands in: its thread's key for an element of a thread itself, else
    `<fan-out key>[<branch key>]` for a parallel's branch, `<fan-out key>[*]` for a for-each's body."""
    found: dict[str, str] = {}

    def visit(elements: list[Element], where: str) -> None:
        for element in elements:
            found[element.key] = where
            for name, body in bodies(element):
                visit(body.elements, f"{element.key}[{name}]")

    for thread in process.definition.threads:
        visit(thread.elements, thread.key)
    return found


def same_list(process: CompiledProcess, one: str, other: str) -> bool:
    """Whether two elements stand in the same list (a lane on one can be put on the other)."""
    where = containers(process)
    return one in where and where.get(one) == where.get(other)
