"""CEL expressions, compiled once per definition, evaluated over an execution's variables.

CEL (through the `common-expression-language` bindings) cannot run arbitrary code: no eval, no imports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cel


class ExpressionError(Exception):
    """An expression failed to compile or to evaluate."""


@dataclass(frozen=True, slots=True)
class Expression:
    source: str
    _program: Any

    def evaluate(self, variables: dict[str, Any]) -> Any:
        try:
            return self._program.execute(variables)
        except Exception as exc:  # the bindings raise RuntimeError/ValueError/TypeError
            raise ExpressionError(f"{self.source!r}: {exc}") from None

    def evaluate_bool(self, variables: dict[str, Any]) -> bool:
        value = self.evaluate(variables)
        if not isinstance(value, bool):
            raise ExpressionError(f"{self.source!r} must give a bool, gave {type(value).__name__}")
        return value


def compile_expression(source: str) -> Expression:
    try:
        program = cel.compile(source)
    except Exception as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ExpressionError(f"bad CEL {source!r}: {first_line}") from None
    return Expression(source, program)
