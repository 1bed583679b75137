"""Where the repository is: subprocesses run from its root (`--handlers examples.handlers`, `-m procengine`), and
some tests read its files."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
