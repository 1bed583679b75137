"""What makes a bulk operation fast without changing what it does (issue 23, point 2, the bench's 2 s): a filter whose
one index holds exactly its matches is resolved from that index alone, without reading a row."""

from __future__ import annotations

from typing import Any

import pytest

from procengine.api.bulk_views import BulkRequest
from procengine.node.node import Node
from tests.actors.test_bulk import OTHER, _waiting
from tests.support.nodes import CALLER


@pytest.fixture
def rows_read(engine: Node, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many executions' rows each `many_fields` call read."""
    counted: list[int] = []
    many_fields = engine.store.many_fields

    async def counting(execution_ids: list[int], names: list[str]) -> Any:
        counted.append(len(execution_ids))
        return await many_fields(execution_ids, names)

    monkeypatch.setattr(engine.store, "many_fields", counting)
    return counted


async def _matched(engine: Node, wanted: dict[str, Any]) -> list[int]:
    answer = await engine.bulk(CALLER, BulkRequest(action="pause", filter=wanted, dryRun=True))
    return list(answer.model_dump()["sample"])


async def test_a_filter_of_live_status_and_process_is_read_from_its_index_alone(
    engine: Node, rows_read: list[int]
) -> None:
    ids = await _waiting(engine, 3)
    await _waiting(engine, 1, OTHER)
    process_id = (await engine.status(CALLER, ids[0])).processID
    rows_read.clear()

    matched = await _matched(engine, {"processID": process_id, "status": "running"})

    assert matched == sorted(ids, reverse=True)
    assert rows_read == []  # before: the list query read each row


async def test_a_filter_the_index_does_not_hold_exactly_still_reads_the_rows(
    engine: Node, rows_read: list[int]
) -> None:
    ids = await _waiting(engine, 2)
    rows_read.clear()

    matched = await _matched(engine, {"status": "running", "processKey": "nope"})

    assert matched == [] and sum(rows_read) == len(ids)
