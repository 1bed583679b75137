"""Deep and long CEL, generated (issue 17): whatever a definition holds, the node lives. Each expression is
compiled and, when it compiles, evaluated; the verdict must be a value or an ExpressionError/LimitExceeded,
never a crash or a panic. The examples run in a child process, so that a crasher found kills the child and
fails this test, not the suite. Bounded in `make test`; `FUZZ_LONG=1` (`make fuzz`) runs many more."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from tests.support.paths import REPO

LONG = bool(os.environ.get("FUZZ_LONG"))

CHILD = textwrap.dedent(
    """
    import sys
    from hypothesis import HealthCheck, given, settings, strategies as st
    from procengine.engine.expressions import compile_expression
    from procengine.errors import ExpressionError, LimitExceeded
    from procengine.engine.scanner import scan

    ATOMS = ["1", "a", "l", "'s'", "true", "2.5", "m", "b'x'", "r'\\\\'", "null"]
    BINARY = ["+", "-", "*", "/", "%", "==", "!=", "<", ">=", "&&", "||", " in "]
    SUFFIXES = [".b", "[0]", ".size()", ".map(x, x)", ".filter(x, true)", ".all(x, true)", ".exists(x, x == 1)"]
    OPENERS = [("(", ")"), ("[", "]"), ("size(", ")"), ("{1: ", "}"), ("l.map(y, ", ")"), ("true ? ", " : 1")]
    TOKENS = ATOMS + BINARY + SUFFIXES + ["(", ")", "[", "]", "{", "}", ",", ":", "?", "!", "-", "'", '"', "`"]

    def chain(draw):
        return draw(st.sampled_from(BINARY)).join([draw(st.sampled_from(ATOMS))] * draw(st.integers(1, 30_000)))

    def nested(draw):
        opener, closer = draw(st.sampled_from(OPENERS))
        depth = draw(st.integers(1, 100_000))
        return opener * depth + draw(st.sampled_from(ATOMS)) + closer * depth

    def suffixes(draw):
        return draw(st.sampled_from(ATOMS)) + draw(st.sampled_from(SUFFIXES)) * draw(st.integers(1, 20_000))

    def soup(draw):
        return "".join(draw(st.lists(st.sampled_from(TOKENS), max_size=3_000)))

    def repeated(draw):
        inner = "".join(draw(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=12)))
        return inner * draw(st.integers(1, 20_000))

    @st.composite
    def sources(draw):
        return draw(st.sampled_from([chain, nested, suffixes, soup, repeated]))(draw)

    VARIABLES = {"a": 1, "l": [1, 2, 3], "m": {"b": 2}, "s": "x"}

    @settings(max_examples=int(sys.argv[1]), deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(sources())
    def check(source):
        scan(source)  # never raises, never recurses
        try:
            expression = compile_expression(source)
        except ExpressionError:
            return
        try:
            expression.evaluate(VARIABLES, max_cost=1_000_000)
        except (ExpressionError, LimitExceeded):
            pass

    check()
    print("alive")
    """
)


@pytest.mark.fuzz
def test_no_generated_expression_crashes_the_process() -> None:
    examples = 2_000 if LONG else 60
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(examples)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=900 if LONG else 120,
    )
    assert child.returncode == 0 and child.stdout.strip().endswith("alive"), (
        child.returncode,
        child.stdout[-2000:],
        child.stderr[-4000:],
    )
