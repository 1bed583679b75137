"""The expressions that killed a node (issue 17, item 1), run in a child process so that the suite survives if
they ever crash again: each must now be refused with an ExpressionError, and the process live on."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.support.paths import REPO

CHILD = textwrap.dedent(
    """
    from procengine.engine.expressions import compile_expression
    from procengine.errors import ExpressionError
    from procengine.engine.limits import MAX_EXPRESSION_DEPTH as D, MAX_EXPRESSION_NESTING as N

    crashers = {
        "chain-40000": "+".join(["1"] * 40_000),  # SIGSEGV in cel.compile
        "chain-20000": "+".join(["1"] * 20_000),  # compiled, then SIGSEGV when it ran
        "parens-100000": "(" * 100_000 + "1" + ")" * 100_000,  # PanicException
        "calls-13000": "size(" * 13_000 + "1" + ")" * 13_000,  # PanicException
        "members-6000": "a" + ".b" * 6_000,
        "indexes-5000": "l" + "[0]" * 5_000,
    }
    for name, source in crashers.items():
        try:
            compile_expression(source)
            print(name, "compiled")
        except ExpressionError as exc:
            print(name, "refused:", str(exc)[-60:])
    at_limits = {  # just inside every limit: compiled and run, in-process and in the sandbox
        "chain": "+".join(["1"] * (D + 1)),
        "members": "m" + ".b" * (D - 1) + " != null",
        "indexes": "+".join(["l[0]"] * (D // 2)),
        "parens": "(" * N + "1" + ")" * N,
        "methods": "'a'" + ".lowerAscii()" * (D - 1),
        "comprehension": "[1].map(x, " + "+".join(["x"] * (D - 3)) + ")",
    }
    variables = {"m": {"b": None}, "l": [1]}
    for name, source in at_limits.items():
        try:
            compile_expression(source).evaluate(variables)
            print(name, "ran")
        except ExpressionError as exc:
            print(name, "error:", str(exc)[-60:])
    print("alive")
    """
)


def test_the_crashers_are_refused_and_the_process_lives() -> None:
    child = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert child.returncode == 0, (child.returncode, child.stdout, child.stderr[-2000:])
    lines = dict(line.split(" ", 1) for line in child.stdout.splitlines() if " " in line)
    assert lines["chain-40000"].startswith("refused:") and "at most" in lines["chain-40000"]
    assert lines["chain-20000"].startswith("refused:")
    assert lines["parens-100000"].startswith("refused:")
    assert lines["calls-13000"].startswith("refused:")
    assert lines["members-6000"].startswith("refused:") and "operators deep; at most" in lines["members-6000"]
    assert lines["indexes-5000"].startswith("refused:")
    for name in ("chain", "indexes", "parens", "comprehension"):
        assert lines[name] == "ran", (name, lines[name])
    # null has no member b, lowerAscii is no built-in: errors found after descending the whole tree
    assert lines["members"].startswith("error:") and lines["methods"].startswith("error:")
    assert child.stdout.splitlines()[-1] == "alive"
