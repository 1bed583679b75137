"""Lanes: where an element runs. A thread is a lane named by its key; each branch of a parallel element and
each iteration of a for-each runs in a lane of its own below the lane of that element:

    main                      the thread `main`
    main/checks[credit]       branch `credit` of the parallel element `checks`
    main/ship[3]              the fourth item of the for-each `ship`
    main/ship[3]/pack[0]      a for-each nested in that iteration

Keys and branch names are identifiers (no `/`, `[` or `]`), so a path reads back without ambiguity.
"""

from __future__ import annotations


def child(parent: str, element_key: str, name: str) -> str:
    return f"{parent}/{element_key}[{name}]"


def is_branch(lane: str) -> bool:
    """A branch or an iteration (not a thread)."""
    return "/" in lane


def parent(lane: str) -> str:
    """The lane of the parallel or for-each a branch or iteration belongs to."""
    return lane.rsplit("/", 1)[0]


def name(lane: str) -> str:
    """A branch's key or an iteration's index, as written in its path."""
    return lane.rsplit("[", 1)[1].rstrip("]")


def thread(lane: str) -> str:
    return lane.split("/", 1)[0]


def ancestry(lane: str) -> list[str]:
    """The branch and iteration lanes from the outermost down to `lane` itself (none for a thread)."""
    parts = lane.split("/")
    return ["/".join(parts[: i + 1]) for i in range(1, len(parts))]


def below(lane: str, other: str) -> bool:
    """`other` runs inside a branch or iteration of `lane` (at any depth)."""
    return other.startswith(lane + "/")
