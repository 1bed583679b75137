"""The one failure of going over a limit, whatever the limit: its element fails with the error type LimitExceeded
(which `catch` can take), and nothing over the limit is stored or run."""

from __future__ import annotations

# The shape of a CEL expression, bounded before the `cel` extension sees it (see engine/scanner.py). The extension
# recurses on the native stack and crashes the process past these with no error it can raise (measured on
# common-expression-language 0.10.0, an 8 MiB main thread: a flat chain of `+`, `.` or `[]` SIGSEGV at 12,500
# when it runs and 21,000 when it compiles; nested brackets PanicException at 13,000 to 65,000; see
# docs/definitions.md). Constants, not settings: raising one can only bring a crash back.
MAX_EXPRESSION_LENGTH = 16_384
"""Characters one expression may have."""
MAX_EXPRESSION_DEPTH = 500
"""How deep its syntax tree may be, as `scan` bounds it: 25 times below the crash of an 8 MiB main thread, and
below it on a 1 MiB thread stack too."""
MAX_EXPRESSION_NESTING = 50
"""Brackets open at once (parentheses, calls, list and map literals, indexes); CEL's parser refuses 96."""
MAX_COMPREHENSION_NESTING = 3
"""Comprehensions (`map`, `filter`, `all`, `exists`, `exists_one`) nested in one another."""
EXPRESSION_DEADLINE_S = 0.5
"""The longest an expression with a comprehension may run; it runs in a child process that is killed then."""
