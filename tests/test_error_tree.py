"""The one error tree (errors.py), held by reading the code: a class added in the wrong place fails here.

- the engine's layers define no exception class of their own: errors.py draws them all (the client, the task
  handlers and the CLI's argument errors are trees of their own, for their own users);
- every error that answers 503 is an `Unavailable` (so `Retry-After` and the client's retries treat it as one);
- redis-py's exceptions are known only at the store's edge (store/, and testing/ which runs Redis servers):
  everything above catches what store/failures.py turns them into.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import procengine
from procengine import errors

PACKAGE = Path(procengine.__file__).parent
ENGINE_LAYERS = ("http", "api", "node", "actors", "engine", "store", "runtime")
REDIS_ALLOWED = ("store", "testing")


def _trees() -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text(), str(path))) for path in sorted(PACKAGE.rglob("*.py"))]


def test_the_engine_layers_define_no_exception_outside_errors_py() -> None:
    for name in ENGINE_LAYERS:
        importlib.import_module(f"procengine.{name}")
    defined_elsewhere = []
    for info in pkgutil.walk_packages(procengine.__path__, "procengine."):
        if info.name.split(".")[1] not in ENGINE_LAYERS:
            continue
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == info.name:
                defined_elsewhere.append(f"{info.name}.{value.__name__}")

    assert defined_elsewhere == []


def test_every_503_is_an_unavailable() -> None:
    classes = [value for value in vars(errors).values() if inspect.isclass(value)]
    tree = [cls for cls in classes if issubclass(cls, errors.ProcEngineError)]
    assert len(tree) > 20  # the walk sees the tree, not an empty module

    answering_503 = [cls.__name__ for cls in tree if cls.status == 503]
    not_unavailable = [name for name in answering_503 if not issubclass(getattr(errors, name), errors.Unavailable)]

    assert "StoreFailed" in answering_503 and "Fenced" in answering_503
    assert not_unavailable == []


def _redis_error_uses(tree: ast.Module) -> list[int]:
    """The lines that import redis-py's exceptions or name `redis.exceptions`."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.Attribute):
            names = [ast.unparse(node)]
        else:
            continue
        if any(name == "redis.exceptions" or name.startswith("redis.exceptions.") for name in names):
            lines.append(node.lineno)
    return sorted(set(lines))


def test_redis_errors_are_known_only_at_the_stores_edge() -> None:
    found = [
        f"{path.relative_to(PACKAGE)}:{line}"
        for path, tree in _trees()
        if path.relative_to(PACKAGE).parts[0] not in REDIS_ALLOWED
        for line in _redis_error_uses(tree)
    ]

    assert found == []


def test_the_check_sees_a_redis_catch() -> None:
    """The walk above finds what it forbids: it is not empty for want of looking."""
    catch = "import redis.exceptions\ntry:\n    pass\nexcept redis.exceptions.ConnectionError:\n    pass\n"
    assert _redis_error_uses(ast.parse(catch)) == [1, 4]
    failures = PACKAGE / "store" / "failures.py"
    assert _redis_error_uses(ast.parse(failures.read_text())) != []
