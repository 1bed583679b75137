"""`GET .../elements` keeps a record per branch and iteration (the console's fan-out view), read in pages: a for-each
of 100 items shows 100 records of its body element, not only the last iteration's."""

from __future__ import annotations

import base64

import pytest

from procengine.errors import ValidationFailed
from procengine.node.node import Node
from tests.support.nodes import CALLER, start, wait_status
from tests.support.processes import definition

LOOP = definition(
    {
        "key": "loop",
        "type": "for-each",
        "items": "lines",
        "as": "line",
        "maxConcurrency": 7,
        "body": {"elements": [{"key": "pack", "type": "set-variable", "set": {"packed": "line * 2"}}]},
        "output": "packed",
        "next": "done",
    },
    {"key": "done", "type": "end"},
    key="loop",
)


async def test_every_iteration_keeps_its_record(engine: Node) -> None:
    execution_id = await start(engine, LOOP, {"lines": list(range(100))})
    assert await wait_status(engine, execution_id, "completed") == "completed"

    items = (await engine.elements(CALLER, execution_id)).items

    packs = {record.path: record.status for record in items if record.key == "pack"}
    assert packs == {f"main/loop[{i}]": "completed" for i in range(100)}
    assert [(r.key, r.path) for r in items if r.key != "pack"] == [("loop", None), ("done", None)]


async def test_the_records_are_read_in_pages_with_a_cursor(engine: Node) -> None:
    execution_id = await start(engine, LOOP, {"lines": list(range(100))})
    assert await wait_status(engine, execution_id, "completed") == "completed"
    whole = (await engine.elements(CALLER, execution_id)).items

    seen = []
    cursor = None
    pages = 0
    while True:
        page = await engine.elements(CALLER, execution_id, limit=30, cursor=cursor)
        pages += 1
        assert len(page.items) <= 30
        seen += page.items
        cursor = page.nextCursor
        if cursor is None:
            break

    assert pages == 4  # 102 records
    assert [(r.key, r.path) for r in seen] == [(r.key, r.path) for r in whole]


async def test_a_cursor_the_api_did_not_give_is_refused(engine: Node) -> None:
    execution_id = await start(engine, LOOP, {"lines": [1]})
    deep = base64.urlsafe_b64encode(b"[" * 2990).decode()  # fits the 4,000 characters; too deep for json.loads
    for made_up in ("not-a-cursor", deep):
        with pytest.raises(ValidationFailed):
            await engine.elements(CALLER, execution_id, limit=10, cursor=made_up)
