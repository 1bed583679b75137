"""The exit codes of every `procengine` command, in one place."""

from __future__ import annotations

from typing import Final

__all__ = ["EXIT_CONFLICT", "EXIT_FAILED", "EXIT_NOT_FOUND", "EXIT_OK", "EXIT_USAGE"]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
"""An error: the server refused (422, 401, ...), could not be reached, stayed unavailable; an invalid file."""
EXIT_USAGE: Final = 2
EXIT_NOT_FOUND: Final = 3
EXIT_CONFLICT: Final = 4
"""409: the execution's status does not allow it (the current status is printed), or its state is corrupted."""
