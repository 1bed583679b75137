"""The shape of a CEL source, read in one pass that does not recurse, before the `cel` extension sees it.

The extension's parser, checker and evaluator recurse on the syntax tree, on the native stack, with no bound
of their own that holds: a flat chain of 12,500 `+` kills the process with SIGSEGV when it runs (21,000 when it
compiles), 65,000 nested parentheses make it panic (see docs/definitions.md for every shape measured). So the
shape is measured here, by a loop over the characters with an explicit stack, and bounded in `expressions.py`.

`depth` is an upper bound on the depth of the syntax tree: at each bracket level, the operators of one item
(between commas) add one level each, and whatever is nested in that item adds its own depth on top. A list or
map literal's items are siblings, so a literal of 10,000 items is shallow; `1 + 1 + ... + 1` is as deep as it
is long.
"""

from __future__ import annotations

from dataclasses import dataclass, field

COMPREHENSIONS = {"map": 2, "filter": 2, "exists_one": 1, "exists": 1, "all": 1}
"""The macros that loop, with what each multiplies the cost by, as a power of the data's size. CEL's `map` and
`filter` build their list by copying it at every item in the bindings we use (measured: a map over 1,000 items
106 ms, over 3,000 716 ms), so they count as n^2; `exists`, `exists_one` and `all` are linear."""

_TWO_CHARACTERS = frozenset(("==", "!=", "<=", ">=", "&&", "||"))
_OPENING = {"(": ")", "[": "]", "{": "}"}
_CLOSING = frozenset(_OPENING.values())
_QUOTES = ('"""', "'''", '"', "'")


@dataclass(slots=True)
class _Level:
    """One open bracket (or the whole source) while it is read."""

    opener: str
    comprehension: int = 0
    """The degree this bracket adds (a `.map(` and the like), 0 for any other."""
    literal: bool = False
    """A list or map literal: its items are counted."""
    operators: int = 0
    """Operators of the current item."""
    inner: int = 0
    """The deepest bracket nested in the current item."""
    deepest: int = 0
    """The deepest item so far."""
    items: int = 0
    """Items of a literal before the current one."""
    empty: bool = True
    """Nothing in the current item yet."""
    conditions: int = 0
    """`?` of the current item still waiting for their `:` (which is then no map literal's separator)."""

    def end_item(self) -> None:
        self.deepest = max(self.deepest, self.operators + self.inner)
        if self.literal and not self.empty:
            self.items += 1
        self.operators = self.inner = self.conditions = 0
        self.empty = True


@dataclass(frozen=True, slots=True)
class Shape:
    """What `scan` measured of a CEL source."""

    length: int
    depth: int
    """An upper bound on the depth of its syntax tree (see the module's docstring)."""
    nesting: int
    """The most brackets open at once: parentheses, list and map literals, calls, indexes."""
    comprehensions: int
    """The most comprehensions (`map`, `filter`, `all`, `exists`, `exists_one`) nested in one another."""
    degree: int
    """For each chain of comprehensions nested in one another, the sum of their degrees; the largest (0: none)."""
    literal_items: int
    """Items of the list literals and entries of the map literals written in it, nested ones included."""
    names: frozenset[str] | None = field(default=None)
    """Identifiers outside strings and not after a dot (function names and macro variables too); None when the
    source has backquoted names, which this reading does not resolve."""


def scan(source: str) -> Shape:
    """The shape of `source`, in time linear in its length, on a constant native and Python stack."""
    stack = [_Level("")]
    names: set[str] | None = set()
    nesting = deepest_nesting = comprehensions = deepest_comprehension = 0
    degree = deepest_degree = literal_items = 0
    operand = False  # the previous token ends an operand: `[` after it is an index, `(` a call
    after_dot = False
    at, end = 0, len(source)
    while at < end:
        char = source[at]
        level = stack[-1]
        if char.isspace():
            at += 1
            continue
        if char.isalpha() or char == "_":
            start = at
            while at < end and (source[at].isalnum() or source[at] == "_"):
                at += 1
            word = source[start:at]
            level.empty = False
            if at < end and source[at] in "\"'" and len(word) <= 2 and set(word) <= set("rRbB"):
                at = _skip_string(source, at, raw="r" in word.lower())  # a prefixed string: r"..", b'..'
            elif after_dot and word in COMPREHENSIONS and _opens_next(source, at):
                at = source.index("(", at) + 1
                comprehension = COMPREHENSIONS[word]
                stack.append(_Level("(", comprehension=comprehension))
                nesting, comprehensions, degree = nesting + 1, comprehensions + 1, degree + comprehension
                deepest_nesting = max(deepest_nesting, nesting)
                deepest_comprehension = max(deepest_comprehension, comprehensions)
                deepest_degree = max(deepest_degree, degree)
                operand = after_dot = False
                continue
            elif word == "in" and not after_dot:  # the one operator that is a word
                level.operators += 1
                operand = False
                continue
            elif not after_dot and names is not None:
                names.add(word)
            operand, after_dot = True, False
            continue
        if char.isdigit():
            at += 1
            while at < end and (source[at].isalnum() or source[at] == "_" or _decimal_point(source, at)):
                at += 1
            level.empty = False
            operand, after_dot = True, False
            continue
        if char in "\"'":
            at = _skip_string(source, at, raw=False)
            level.empty = False
            operand, after_dot = True, False
            continue
        if char == "`":
            names = None  # a backquoted name: resolved by CEL, not here
            closing = source.find("`", at + 1)
            at = end if closing < 0 else closing + 1
            level.empty = False
            operand, after_dot = True, False
            continue
        at += 1
        if char in _OPENING:
            if char == "[" and operand:
                level.operators += 1  # an index
            level.empty = False
            stack.append(_Level(char, literal=char == "{" or (char == "[" and not operand)))
            nesting += 1
            deepest_nesting = max(deepest_nesting, nesting)
            operand = after_dot = False
        elif char in _CLOSING:
            if len(stack) > 1:
                closed = stack.pop()
                nesting -= 1
                if closed.comprehension:
                    comprehensions -= 1
                    degree -= closed.comprehension
                literal_items += _close(closed, stack[-1])
            operand, after_dot = True, False
        elif char == "," or (char == ":" and level.opener == "{" and not level.conditions):
            level.end_item()
            operand = after_dot = False
        else:  # an operator; anything else is CEL's to refuse, and counts as one to keep the bound an upper one
            if source[at - 1 : at + 1] in _TWO_CHARACTERS:
                at += 1
            elif char == "?":
                level.conditions += 1
            elif char == ":" and level.conditions:
                level.conditions -= 1
            level.operators += 1
            level.empty = False
            operand, after_dot = False, char == "."
    while len(stack) > 1:  # unclosed brackets: CEL refuses the source, the bound still holds
        closed = stack.pop()
        literal_items += _close(closed, stack[-1])
    stack[0].end_item()
    return Shape(
        length=end,
        depth=stack[0].deepest,
        nesting=deepest_nesting,
        comprehensions=deepest_comprehension,
        degree=deepest_degree,
        literal_items=literal_items,
        names=frozenset(names) if names is not None else None,
    )


def _close(closed: _Level, parent: _Level) -> int:
    """End a bracket's level inside its parent's; the items it counts if it is a literal."""
    closed.end_item()
    parent.inner = max(parent.inner, closed.deepest + 1)
    return closed.items if closed.literal else 0


def _opens_next(source: str, at: int) -> bool:
    """Whether the next character that is not a space is `(`."""
    while at < len(source) and source[at].isspace():
        at += 1
    return at < len(source) and source[at] == "("


def _decimal_point(source: str, at: int) -> bool:
    """A `.` inside a number (`1.5`, `2.0e3`), not a member access after one (`1.size()` is no CEL anyway)."""
    return source[at] == "." and at + 1 < len(source) and source[at + 1].isdigit()


def _skip_string(source: str, at: int, raw: bool) -> int:
    """The index just past the string literal that opens at `at` (the end of the source if it never closes)."""
    quote = next(q for q in _QUOTES if source.startswith(q, at))
    at += len(quote)
    while at < len(source):
        if not raw and source[at] == "\\":
            at += 2
        elif source.startswith(quote, at):
            return at + len(quote)
        elif len(quote) == 1 and source[at] == "\n":
            return at  # a one-line string does not go on past its line: CEL refuses it
        else:
            at += 1
    return len(source)
