"""A child process that evaluates CEL with a deadline: for the expressions whose cost can grow past any estimate.

The `cel` extension holds the GIL while it runs (measured: a thread evaluating it stops every other thread) and
cannot be interrupted, so neither a thread nor a signal can take an evaluation off the event loop. A child
process can be killed: the loop waits for its answer at most the deadline, then kills it (the next evaluation
starts another). A crash of the extension in the child (a stack overflow, an allocation past its memory limit)
is an error of that evaluation, not the end of the node.

The parent and the child speak msgpack frames (a 4-byte length, then the body) over the child's stdin and
stdout: the request `[source, variables]`, the answer `[True, value]` or `[False, message]`. Run as
`python -m procengine.engine.sandbox` by `Sandbox`, never by hand.
"""

from __future__ import annotations

import atexit
import os
import select
import struct
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import IO, Any

import msgpack

from procengine.errors import SandboxError, SandboxTimeout

_HEADER = struct.Struct(">I")
_READY = b"R"
_TIMEDELTA, _DATETIME = 1, 2
"""msgpack extension codes: CEL durations and timestamps, which the expressions module turns into epoch ms."""
SPAWN_TIMEOUT_S = 30.0
"""How long a new child may take to import the extension (not counted in any evaluation's deadline)."""
CHILD_MEMORY_BYTES = 2 << 30
"""The child's address space: an evaluation that builds more fails in the child, not in the node."""


def _default(value: Any) -> Any:
    if isinstance(value, timedelta):
        return msgpack.ExtType(_TIMEDELTA, _HEADER_Q.pack((value // timedelta(microseconds=1)) & _U64))
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return msgpack.ExtType(_DATETIME, moment.isoformat().encode())
    raise TypeError(f"cannot be stored ({type(value).__name__})")


_HEADER_Q = struct.Struct(">Q")
_U64 = (1 << 64) - 1


def _ext(code: int, data: bytes) -> Any:
    if code == _TIMEDELTA:
        (raw,) = _HEADER_Q.unpack(data)
        return timedelta(microseconds=raw - (1 << 64) if raw >= 1 << 63 else raw)
    if code == _DATETIME:
        return datetime.fromisoformat(data.decode())
    return msgpack.ExtType(code, data)


def _pack(value: Any) -> bytes:
    body: bytes = msgpack.packb(value, default=_default, use_bin_type=True)
    return _HEADER.pack(len(body)) + body


def _unpack(body: bytes) -> Any:
    return msgpack.unpackb(body, ext_hook=_ext, raw=False, strict_map_key=False)


class Sandbox:
    """The parent's side: one child at a time, started when first needed, killed at a deadline."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._child: subprocess.Popen[bytes] | None = None
        self._owner = 0
        """The pid that started the child (a forked copy of this process must start its own)."""
        self._ready = False
        """The child has imported the extension and said so."""

    def execute(self, source: str, variables: dict[str, Any], deadline_s: float) -> Any:
        """The value of `source` over `variables`, computed in the child; SandboxTimeout after `deadline_s`,
        SandboxError if it fails. Blocks the calling thread (the event loop) for at most the deadline."""
        request = _pack([source, variables])
        with self._lock:
            child = self._started()
            assert child.stdin is not None and child.stdout is not None
            try:
                child.stdin.write(request)
                child.stdin.flush()
                body = _read_frame(child.stdout, time.monotonic() + deadline_s)
            except TimeoutError:
                self._kill()
                self._spawned()  # the next one imports the extension while the node goes on
                raise SandboxTimeout(f"ran past its deadline of {deadline_s:g} s and was stopped") from None
            except (OSError, EOFError):
                code = self._kill()
                raise SandboxError(f"the CEL evaluator died ({_death(code)})") from None
        ok, value = _unpack(body)
        if not ok:
            raise SandboxError(str(value))
        return value

    def close(self) -> None:
        with self._lock:
            self._kill()

    def prepare(self) -> None:
        """Start a child now, without waiting for it (it imports the extension while the node does other work):
        called when an expression that will need it is compiled, and after a child is killed."""
        with self._lock:
            self._spawned()

    def _spawned(self) -> subprocess.Popen[bytes]:
        if self._child is not None and self._owner == os.getpid() and self._child.poll() is None:
            return self._child
        self._child, self._ready = None, False
        self._child = subprocess.Popen(  # our own module, by the interpreter running us
            [sys.executable, "-m", "procengine.engine.sandbox"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        self._owner = os.getpid()
        return self._child

    def _started(self) -> subprocess.Popen[bytes]:
        """A child that has said it is ready (waiting for it, not counted in any deadline, if it is new)."""
        child = self._spawned()
        if self._ready:
            return child
        assert child.stdout is not None
        try:
            ready = _read_exactly(child.stdout, 1, time.monotonic() + SPAWN_TIMEOUT_S)
        except (TimeoutError, OSError, EOFError):
            ready = b""
        if ready != _READY:
            self._kill()
            raise SandboxError("the CEL evaluator did not start")
        self._ready = True
        return child

    def _kill(self) -> int | None:
        child, self._child, self._ready = self._child, None, False
        if child is None or self._owner != os.getpid():
            return None
        if child.poll() is None:
            child.kill()
        code = child.wait()
        for stream in (child.stdin, child.stdout):
            if stream is not None:
                stream.close()
        return code


def _death(code: int | None) -> str:
    return f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"


def _read_frame(stream: IO[bytes], deadline: float) -> bytes:
    (length,) = _HEADER.unpack(_read_exactly(stream, _HEADER.size, deadline))
    return _read_exactly(stream, length, deadline)


def _read_exactly(stream: IO[bytes], count: int, deadline: float) -> bytes:
    """`count` bytes from the pipe, TimeoutError past `deadline` (monotonic), EOFError if it closes first."""
    fd = stream.fileno()
    chunks: list[bytes] = []
    missing = count
    while missing:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            raise TimeoutError
        chunk = os.read(fd, min(missing, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)


SANDBOX = Sandbox()
"""This process's sandbox (no child until an expression needs one); its child is killed at exit."""
atexit.register(SANDBOX.close)


def _serve(incoming: IO[bytes], outgoing: IO[bytes]) -> None:
    """The child's loop: a request in, an answer out, until the parent closes the pipe."""
    from procengine.engine.native import load

    cel = load()
    programs: dict[str, Any] = {}
    outgoing.write(_READY)
    outgoing.flush()
    while True:
        header = incoming.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return
        (length,) = _HEADER.unpack(header)
        source, variables = _unpack(incoming.read(length))
        try:
            program = programs.get(source)
            if program is None:
                if len(programs) >= 1024:
                    programs.clear()
                program = programs[source] = cel.compile(source)
            answer = [True, program.execute(variables)]
        except Exception as exc:  # the bindings raise RuntimeError/ValueError/TypeError
            answer = [False, str(exc) or type(exc).__name__]
        except BaseException as exc:
            if type(exc).__name__ != "PanicException":  # pyo3's, a BaseException: the extension panicked
                raise
            answer = [False, f"the CEL extension panicked: {exc}"]
        try:
            frame = _pack(answer)
        except (TypeError, ValueError, OverflowError) as exc:
            frame = _pack([False, f"gave a value that {exc}"])
        outgoing.write(frame)
        outgoing.flush()


if __name__ == "__main__":
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY_BYTES, CHILD_MEMORY_BYTES))
    except (ImportError, ValueError, OSError):  # not on this platform, or a lower limit already
        pass
    _serve(sys.stdin.buffer, sys.stdout.buffer)
