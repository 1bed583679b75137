"""Deleting and deprecating process versions on a real Redis Cluster (three masters): the scripts find every key they
touch in the tenant's slot, and a deleted version's number is not given again (issue 23, point 4)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from procengine.store.connection import connect
from procengine.store.keys import Keys
from procengine.store.processes import ProcessStore
from procengine.store.scripts import Scripts
from procengine.testing.topologies import LocalCluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with LocalCluster(tmp_path_factory.mktemp("cluster")) as cluster:
        yield cluster.url


async def test_delete_and_deprecate_on_a_cluster(cluster_url: str, prefix: str) -> None:
    redis = connect(cluster_url, timeout_s=5, retries=2)
    try:
        store = ProcessStore(redis, Keys(prefix), Scripts.register(redis), ids_in_script=False)
        v1, _, _ = await store.register("acme", "orders", "Orders", {"v": 1}, "2026-01-01T00:00:00Z")
        v2, _, _ = await store.register("acme", "orders", "Orders", {"v": 2}, "2026-01-01T00:00:00Z")

        assert await store.set_deprecated("acme", v1, True)
        assert await store.startable_many("acme", [v1, v2]) == [False, True]
        deleted = await store.delete("acme", v2)
        again, version, created = await store.register("acme", "orders", "Orders", {"v": 3}, "2026-01-01T00:00:00Z")

        assert (deleted.outcome, deleted.latest_id) == ("deleted", v1)
        assert (version, created) == (3, True) and again not in (v1, v2)
        assert (await store.delete("acme", v2)).outcome == "missing"
        assert not await store.set_deprecated("acme", v2, True)
        assert await store.counts("acme", [v1]) == {
            v1: dict.fromkeys(("running", "paused", "completed", "failed", "cancelled"), 0)
        }
    finally:
        await redis.aclose()
