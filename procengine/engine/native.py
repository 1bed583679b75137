"""The compiled `cel` extension module, loaded without its package.

The `cel` package's `__init__` also imports its command line (typer, rich, prompt_toolkit): 1.7 s of every
`procengine` start here, and of every start of the sandbox's child, which is started again after each kill.
The extension module itself loads in milliseconds. Only `expressions.py` and the sandbox's child use it.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
from typing import Any


def load() -> Any:
    """The extension module `cel.cel` (what `import cel` re-exports); the package, slowly, if its layout is
    not the one this knows."""
    try:
        spec = importlib.util.find_spec("cel")  # finds the package without running its __init__
        assert spec is not None and spec.submodule_search_locations
        folder = spec.submodule_search_locations[0]
        suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
        name = next(f for f in os.listdir(folder) if f.startswith("cel.") and f.endswith(suffixes))
        native = importlib.util.spec_from_file_location("cel.cel", os.path.join(folder, name))
        assert native is not None and native.loader is not None
        module = importlib.util.module_from_spec(native)
        native.loader.exec_module(module)
        return module
    except (AssertionError, ImportError, OSError, StopIteration):
        import cel

        return cel
