"""Local Redis topologies: a real Redis Cluster and a real Sentinel set-up form on loopback, take writes through
redis-py's cluster and Sentinel clients, come back from a killed node or master, and leave no process behind."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.sentinel import Sentinel

from procengine.store.embedded import RedisServer
from procengine.testing.topologies import (
    BUS_PORT_OFFSET,
    LocalCluster,
    LocalSentinel,
    RedisTopologyError,
    SentinelProcess,
    pick_ports,
)

KEYS = [f"key-{n}" for n in range(30)]  # enough keys to land on every master's slots


def assert_gone(pids: Iterable[int | None]) -> None:
    """Every process is gone (stop() reaps what it starts, so not even a zombie is left)."""
    for pid in pids:
        assert pid is not None
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def pids_of(processes: Iterable[RedisServer | SentinelProcess]) -> list[int | None]:
    return [process.pid for process in processes]


async def wait_for(condition: Callable[[], bool], within_s: float = 15.0) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def cluster_client(cluster: LocalCluster) -> AsyncIterator[RedisCluster]:
    """A fresh cluster client (startup nodes: every node), closed after use."""
    client = RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", node.port) for node in cluster.nodes])
    try:
        yield client
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def sentinel_master(topology: LocalSentinel) -> AsyncIterator[Redis]:
    """A client of the master that the Sentinels name, found afresh; it and the Sentinel clients are closed."""
    sentinel = Sentinel([sentinel.address for sentinel in topology.sentinels], socket_timeout=2.0)
    master = sentinel.master_for(topology.master_name, socket_timeout=2.0)
    try:
        yield master
    finally:
        await master.aclose()
        for client in sentinel.sentinels:
            await client.aclose()


def test_picked_ports_are_free_distinct_and_leave_room_for_the_cluster_bus() -> None:
    ports = pick_ports(6, cluster_bus=True)

    everything = ports + [port + BUS_PORT_OFFSET for port in ports]
    assert len(set(everything)) == 12
    assert all(1024 < port < 32768 for port in everything)  # below the ephemeral range, bus included


def test_urls_need_a_started_topology(tmp_path: Path) -> None:
    with pytest.raises(RedisTopologyError):
        _ = LocalCluster(tmp_path).url
    with pytest.raises(RedisTopologyError):
        _ = LocalSentinel(tmp_path).url


def test_a_topology_refuses_a_directory_with_another_topologys_data(tmp_path: Path) -> None:
    (tmp_path / "node-1").mkdir()
    (tmp_path / "node-1" / "nodes.conf").write_text("someone else's cluster\n")

    with pytest.raises(RedisTopologyError, match="not empty"):
        LocalCluster(tmp_path).start()
    assert LocalCluster(tmp_path).nodes == []


def test_a_cluster_that_fails_to_form_stops_the_nodes_it_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[int | None] = []
    real_start = RedisServer.start

    def start(server: RedisServer) -> None:
        real_start(server)
        started.append(server.pid)

    def fail() -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(RedisServer, "start", start)
    cluster = LocalCluster(tmp_path)
    monkeypatch.setattr(cluster, "_assign_slots", fail)

    with pytest.raises(RuntimeError, match="boom"):
        cluster.start()

    assert len(started) == 3
    assert_gone(started)
    assert cluster.nodes == []


@pytest.mark.slow
async def test_a_cluster_forms_serves_and_takes_a_killed_node_back(tmp_path: Path) -> None:
    with LocalCluster(tmp_path) as cluster:
        ports = [node.port for node in cluster.nodes]
        assert cluster.url == "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in ports)
        assert cluster.master_indices() == [0, 1, 2]
        for index in range(3):
            info = cluster.cluster_info(index)
            assert (info["cluster_state"], info["cluster_slots_assigned"], info["cluster_size"]) == ("ok", "16384", "3")
            assert info["cluster_known_nodes"] == "3"
        async with cluster_client(cluster) as client:
            for key in KEYS:
                await client.set(key, key.encode())
            assert {node.port for node in client.get_primaries()} == set(ports)
            # everysec may hold a write() back while a background fsync runs; SIGKILL would lose it, and the
            # test is about the node coming back with its data, not about that second
            await client.config_set("appendfsync", "always", target_nodes=RedisCluster.ALL_NODES)
            await client.set("survivor", b"1")

        cluster.kill_node(1)
        await wait_for(lambda: cluster.cluster_info(0)["cluster_state"] == "fail")
        cluster.restart_node(1)
        cluster.wait_ok(timeout=20)

        assert [node.port for node in cluster.nodes] == ports
        async with cluster_client(cluster) as client:
            assert await client.get("survivor") == b"1"
            await client.set("after", b"2")
            assert await client.get("after") == b"2"
        pids = pids_of(cluster.nodes)
    assert_gone(pids)


@pytest.mark.slow
async def test_a_cluster_replica_takes_over_a_killed_master_which_comes_back_as_its_replica(tmp_path: Path) -> None:
    with LocalCluster(tmp_path, replicas=1) as cluster:
        assert len(cluster.nodes) == 6
        assert cluster.master_indices() == [0, 1, 2]

        cluster.kill_node(0)
        cluster.wait_ok(timeout=20)
        assert cluster.master_indices() == [1, 2, 3]  # node 3 replicated node 0

        cluster.restart_node(0)
        cluster.wait_ok(timeout=20)
        assert cluster.master_indices() == [1, 2, 3]
        async with cluster_client(cluster) as client:
            for key in KEYS:
                await client.set(key, b"v")
            assert [await client.get(key) for key in KEYS] == [b"v"] * len(KEYS)
        pids = pids_of(cluster.nodes)
    assert_gone(pids)


@pytest.mark.slow
async def test_sentinels_fail_over_to_the_replica_and_take_the_old_master_back_as_a_replica(tmp_path: Path) -> None:
    with LocalSentinel(tmp_path) as topology:
        first, second = ((server.data_dir, server.port) for server in topology.servers)
        assert (
            topology.url
            == "redis+sentinel://"
            + ",".join(f"127.0.0.1:{sentinel.port}" for sentinel in topology.sentinels)
            + "/mymaster"
        )
        assert topology.master_address() == ("127.0.0.1", first[1])
        async with sentinel_master(topology) as master:
            await master.set("k", b"v")
            assert await master.get("k") == b"v"
            assert await master.wait(1, 2000) == 1  # on the replica too before the master dies

        old = topology.kill_master()
        started = time.monotonic()
        new = topology.wait_failover(old, timeout=20)
        took = time.monotonic() - started

        assert (old, new) == (("127.0.0.1", first[1]), ("127.0.0.1", second[1]))
        assert took < 15
        async with sentinel_master(topology) as master:
            assert await master.get("k") == b"v"
            await master.set("k2", b"v2")

        topology.restart(old)

        assert topology.master_address() == new
        async with Redis(host="127.0.0.1", port=old[1], socket_timeout=2.0) as restarted:
            role = await restarted.execute_command("ROLE")
            assert [role[0], role[2], role[3]] == [b"slave", new[1], b"connected"]
            assert await restarted.get("k2") == b"v2"
        pids = pids_of([*topology.servers, *topology.sentinels])
    assert_gone(pids)
