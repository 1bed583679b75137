"""What an execution actor's mailbox carries. Each request carries a future for its reply."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from procengine.service import Caller
from procengine.views import CancelResult, PauseResult, ResumeResult, SignalResult


@dataclass(frozen=True, slots=True)
class Pause:
    caller: Caller
    reason: str | None
    reply: asyncio.Future[PauseResult]


@dataclass(frozen=True, slots=True)
class Resume:
    caller: Caller
    reason: str | None
    reply: asyncio.Future[ResumeResult]


@dataclass(frozen=True, slots=True)
class Cancel:
    caller: Caller
    reason: str | None
    reply: asyncio.Future[CancelResult]


@dataclass(frozen=True, slots=True)
class Signal:
    caller: Caller
    name: str
    payload: Any
    reply: asyncio.Future[SignalResult]


@dataclass(frozen=True, slots=True)
class Wake:
    """From the actor's own thread runners: a thread ended, failed or crashed."""


Request = Pause | Resume | Cancel | Signal
Message = Request | Wake
