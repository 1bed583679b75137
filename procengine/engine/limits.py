"""The one failure of going over a limit, whatever the limit: its element fails with the error type LimitExceeded
(which `catch` can take), and nothing over the limit is stored or run."""

from __future__ import annotations


class LimitExceeded(Exception):
    """A value would take the memory snapshot over its limit, a for-each's list is too long, or an expression
    would cost too much; also the error type of the element it fails."""
