"""`procengine inspect`: one execution's keys decoded (text and JSON), the overview, and clear errors."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from procengine.api.service import Caller
from procengine.api.views import ControlRequest, StartRequest
from procengine.cli import main
from procengine.cli.inspect import (
    _elements,
    _newest_first,
    _store,
    inspect_execution,
    list_executions,
    render_execution,
    to_json,
)
from procengine.node.node import Node
from procengine.settings import Settings
from procengine.store.codec import encode
from procengine.store.embedded import RedisServer
from procengine.store.keys import Keys
from procengine.tasks import builtin_handlers
from tests.support.polling import poll

CALLER = Caller("default", "default", "r")
OTHER = Caller("other", "other", "r")
APPROVAL: dict[str, Any] = {
    "key": "approval",
    "threads": [
        {
            "key": "main",
            "elements": [
                {"key": "mark", "type": "set-variable", "set": {"stage": "'waiting'"}, "next": "approve"},
                {"key": "approve", "type": "wait-signal", "signal": "approval", "into": "approval", "next": "done"},
                {"key": "done", "type": "end"},
            ],
        }
    ],
}


@dataclass
class Running:
    engine: Node
    url: str
    prefix: str

    async def start(self, caller: Caller = CALLER, **variables: Any) -> int:
        summary, _ = await self.engine.register_process(caller, APPROVAL)
        result, _ = await self.engine.start_execution(
            caller, StartRequest(processID=summary.processID, variables=variables)
        )
        await self.until(caller, result.executionID, "approve")
        return result.executionID

    async def until(self, caller: Caller, execution_id: int, element: str) -> None:
        """Wait until `element` runs: the execution has settled on its wait."""
        # polling what the engine has stored: there is no event to wait on
        await poll(
            lambda: self.engine.elements(caller, execution_id), lambda found: element in {e.key for e in found.items}
        )

    async def paused(self, **variables: Any) -> int:
        execution_id = await self.start(**variables)
        await self.engine.pause(CALLER, execution_id, ControlRequest(reason="look"))
        return execution_id

    async def cli(self, *argv: str) -> int:
        """`procengine inspect ...` in-process (it runs its own event loop, so in a thread)."""
        return await asyncio.to_thread(main, ["inspect", *argv, "--redis-url", self.url, "--prefix", self.prefix])


@pytest.fixture
async def running(redis: Redis, settings: Settings) -> AsyncIterator[Running]:
    assert settings.redis_url is not None
    async with Node(redis, settings, builtin_handlers()) as engine:
        yield Running(engine, settings.redis_url, settings.prefix)


async def test_a_paused_execution_shows_every_key_decoded(running: Running, redis: Redis) -> None:
    execution_id = await running.paused(order_id="ORD-1", total=599.99)

    view = await inspect_execution(redis, Keys(running.prefix), execution_id, log_count=20)

    assert view["execution"]["status"] == "paused"
    assert view["execution"]["processKey"] == "approval"
    [entry] = view["state"]["stack"]["execution_stack"]
    assert (entry["element_key"], entry["element_type"], entry["thread_key"]) == ("approve", "wait-signal", "main")
    assert view["state"]["memory"]["variables"] == {"order_id": "ORD-1", "total": 599.99, "stage": "waiting"}
    assert view["state"]["active"] == "1"
    assert view["threads"]["main"]["status"] == "running"
    assert set(view["elements"]) == {"mark", "approve"}
    assert view["log"][0]["event"] == "started" and view["log"][-1]["event"] == "paused"
    assert view["log"][-1]["detail"]["reason"] == "look"
    base = f"{running.prefix}:exec:{{{execution_id}}}"
    assert view["keys"] == {
        base: "hash",
        f"{base}:state": "hash",
        f"{base}:elements": "hash",
        f"{base}:threads": "hash",
        f"{base}:log": "stream",
        f"{base}:history": "list",
    }
    # the checkpoint history, each entry decoded; the last is the pause's, holding the state inspect shows
    history = view["history"]
    assert [item["seq"] for item in history] == list(range(1, len(history) + 1))
    assert history[-1]["memory"]["variables"] == view["state"]["memory"]["variables"]
    assert "checkpoints kept, seq 1.." in render_execution(view)
    tenant = f"{running.prefix}:tenant:{{default}}"
    owner = view["execution"]["owner"]  # passivated (no owner) or still held by its node
    owned = {f"{running.prefix}:node:{{{owner}}}:owned": True} if owner else {}
    assert view["indexes"] == {
        f"{running.prefix}:active": True,
        **owned,
        f"{tenant}:executions": True,
        f"{tenant}:executions:status:paused": True,
        f"{tenant}:executions:process:1": True,
        f"{tenant}:executions:process:1:status:paused": True,
    }


async def test_the_text_report_reads_like_a_report(running: Running, capsys: pytest.CaptureFixture[str]) -> None:
    execution_id = await running.paused(order_id="ORD-1")

    assert await running.cli(str(execution_id)) == 0

    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith(f"execution {execution_id}  paused  approval v1 ")
    assert "tenant default" in lines[0]
    stack_line = next(line for line in lines if line.startswith("  #"))
    assert "approve (node" in stack_line and "wait-signal" in stack_line and "thread main" in stack_line
    assert '  order_id = "ORD-1"' in lines
    assert '  stage = "waiting"' in lines
    thread_row = next(line for line in lines if line.startswith("  main "))
    assert thread_row.split() == ["main", thread_row.split()[1], "running", "1/3", "0"]
    log_rows = out.split("\nlog  ")[1].splitlines()
    assert log_rows[0] == "(last 4 of 4)"
    assert log_rows[-1].split()[1:3] == ["paused", "-"]
    assert '"reason": "look"' in log_rows[-1]


async def test_json_carries_the_whole_view(running: Running, capsys: pytest.CaptureFixture[str]) -> None:
    execution_id = await running.paused(order_id="ORD-1")

    assert await running.cli(str(execution_id), "--json", "--log", "1") == 0

    view = json.loads(capsys.readouterr().out)
    assert view["executionID"] == execution_id
    assert view["state"]["stack"]["execution_stack"][0]["element_key"] == "approve"
    assert view["state"]["memory"]["variables"]["order_id"] == "ORD-1"
    assert view["threads"]["main"]["threadKey"] == "main"
    assert [entry["event"] for entry in view["log"]] == ["paused"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", view["log"][0]["at"])  # stored as epoch ms
    assert view["logLength"] == 4


def test_an_error_shows_its_type_once() -> None:
    """A handler's error already starts with its class (as Python prints it): the type is not put in front again."""
    elements = {
        "charge": {"type": "task", "status": "failed", "error": "TaskFailed: card declined", "errorType": "TaskFailed"},
        "slow": {"type": "task", "status": "failed", "error": "timed out after 50 ms", "errorType": "Timeout"},
    }

    text = "\n".join(_elements(elements))

    assert 'error "TaskFailed: card declined"' in text and "TaskFailed: TaskFailed" not in text
    assert 'error "Timeout: timed out after 50 ms"' in text


async def test_a_blob_that_does_not_decode_is_shown_not_fatal(running: Running, redis: Redis) -> None:
    execution_id = await running.paused()
    keys = Keys(running.prefix).execution(execution_id)
    await redis.hset(keys.elements, "mark", b"\xc1garbage")
    await redis.hset(keys.state, "memory", b"\xc1")
    await redis.hset(keys.execution, "note", b"\xff\xfe")

    view = await inspect_execution(redis, Keys(running.prefix), execution_id)

    assert view["elements"]["mark"]["error"].startswith("blob is not valid msgpack")
    assert view["state"]["memory"]["error"].startswith("blob is not valid msgpack")
    assert view["elements"]["approve"]["status"] == "running"
    assert json.loads(to_json(view))["execution"]["note"] == {"base64": "//4="}
    text = render_execution(view)
    assert "mark" in text and "blob is not valid msgpack" in text


async def test_a_cancelled_execution_has_no_stack_to_show(running: Running, redis: Redis) -> None:
    execution_id = await running.start()
    await running.engine.cancel(CALLER, execution_id, ControlRequest())

    view = await inspect_execution(redis, Keys(running.prefix), execution_id)

    assert view["execution"]["status"] == "cancelled"
    assert (view["state"]["stack"], view["state"]["memory"], view["state"]["active"]) == (None, None, "0")
    assert "\nstack  (none: " in render_execution(view)


async def test_the_list_is_newest_first_over_every_tenant_and_filters(
    running: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    first = await running.paused()
    second = await running.start(CALLER)
    third = await running.start(OTHER)

    assert await running.cli("--list", "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(row["id"], row["status"], row["tenant"]) for row in rows] == [
        (third, "running", "other"),
        (second, "running", "default"),
        (first, "paused", "default"),
    ]
    assert rows[0]["processKey"] == "approval" and rows[0]["version"] == "1" and rows[0]["owner"]

    assert await running.cli("--list", "--status", "paused") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "STATUS", "PROCESS", "VERSION", "TENANT", "STARTED", "OWNER"]
    assert [line.split()[:2] for line in lines[1:]] == [[str(first), "paused"]]

    assert await running.cli("--list", "--limit", "2") == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]] == [str(third), str(second)]

    assert await running.cli("--list", "--status", "failed") == 0
    assert capsys.readouterr().out == "no executions\n"


async def test_tenant_scopes_inspect_to_one_tenant(running: Running, capsys: pytest.CaptureFixture[str]) -> None:
    """`--tenant`: another tenant's execution is not found (exit 1, as for an id never used), and the list
    shows only that tenant's executions, the running ones from the nodes' owned sets included."""
    mine = await running.start(CALLER)
    theirs = await running.start(OTHER)

    assert await running.cli("--list", "--json", "--tenant", "default") == 0
    assert [row["id"] for row in json.loads(capsys.readouterr().out)] == [mine]
    assert await running.cli(str(mine), "--tenant", "default") == 0
    capsys.readouterr()
    assert await running.cli(str(theirs), "--tenant", "default") == 1
    assert await running.cli("999999", "--tenant", "default") == 1
    refused, unknown = capsys.readouterr().err.splitlines()
    assert refused.replace(f"execution {theirs} ", "execution N ") == unknown.replace(" 999999 ", " N ")


async def test_ids_from_several_tenants_merge_in_order_across_pages(redis: Redis, prefix: str) -> None:
    keys = Keys(prefix)
    tenants = {"a": [9, 7, 6, 1], "b": [8, 5, 4, 3, 2], "c": []}
    for tenant, ids in tenants.items():
        for execution_id in ids:
            await redis.zadd(keys.executions(tenant), {str(execution_id): execution_id})

    batches = [batch async for batch in _newest_first(_store(redis, keys), sorted(tenants), {10, 4}, batch=2)]

    assert [i for batch in batches for i in batch] == list(range(10, 0, -1))
    assert len(batches) > 1


async def test_the_list_finds_tenants_by_scan(redis: Redis, prefix: str) -> None:
    keys = Keys(prefix)
    for execution_id, tenant in ((1, "a"), (2, "b"), (3, "a")):
        await redis.zadd(keys.executions(tenant), {str(execution_id): execution_id})
        await redis.hset(keys.execution(execution_id).execution, mapping={"status": "completed", "tenant": tenant})
    await redis.zadd(keys.executions("b"), {"4": 4})  # an index entry whose execution was never written

    rows = await list_executions(redis, keys, limit=10)

    assert [(row["id"], row["tenant"]) for row in rows] == [(3, "a"), (2, "b"), (1, "a")]


def test_the_embedded_redis_of_the_data_dir_is_found(
    redis_server: RedisServer, prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Given no --redis-url, the lock file of the data directory's redis-server says where it listens."""
    asyncio.run(_write_execution(redis_server.url, prefix, 7))

    assert main(["inspect", "7", "--data-dir", str(redis_server.data_dir), "--prefix", prefix]) == 0

    assert capsys.readouterr().out.startswith("execution 7  completed  ")


def test_the_url_from_the_environment_wins_over_the_data_dir(
    redis_server: RedisServer, prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asyncio.run(_write_execution(redis_server.url, prefix, 7))
    monkeypatch.setenv("PROCENGINE_REDIS_URL", redis_server.url)
    monkeypatch.setenv("PROCENGINE_PREFIX", prefix)

    assert main(["inspect", "7", "--data-dir", str(tmp_path)]) == 0


def test_an_unknown_id_exits_1_with_the_message(redis_server: RedisServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "42", "--redis-url", redis_server.url, "--prefix", "nothing-here"]) == 1

    captured = capsys.readouterr()
    assert captured.err == "procengine: error: execution 42 not found under prefix 'nothing-here'\n"
    assert captured.out == ""


def test_an_unreachable_redis_exits_1_quickly(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"redis://:secret@127.0.0.1:{port}/0"

    began = time.monotonic()
    code = main(["inspect", "1", "--redis-url", url])

    assert code == 1
    assert time.monotonic() - began < 3
    err = capsys.readouterr().err
    assert err.startswith(f"procengine: error: cannot reach Redis at redis://:***@127.0.0.1:{port}/0: ")
    assert "secret" not in err and "Traceback" not in err


def test_a_redis_that_does_not_answer_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROCENGINE_REDIS_TIMEOUT_S", "0.3")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"

        began = time.monotonic()
        assert main(["inspect", "1", "--redis-url", url]) == 1
        assert time.monotonic() - began < 3


def test_no_redis_at_all_says_how_to_give_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "1", "--data-dir", str(tmp_path)]) == 1

    err = capsys.readouterr().err
    assert err.startswith(
        f"procengine: error: no Redis to inspect: no embedded redis-server is running under {tmp_path}"
    )
    assert "--redis-url" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "one of the arguments ID --list is required"),
        (["3", "--list"], "not allowed with argument ID"),
        (["3", "--status", "paused"], "--status and --limit go with --list"),
        (["--list", "--log", "3"], "--log goes with an ID"),
        (["--list", "--status", "sleeping"], "invalid choice: 'sleeping'"),
        (["0"], "argument ID: must be 1 or more"),
        (["abc"], "argument ID: not a whole number: 'abc'"),
        (["3", "--prefix", "a b"], "--prefix: String should match pattern"),
        (["3", "--redis-url", "http://example"], "--redis-url: unknown Redis URL scheme 'http'"),
    ],
)
def test_usage_errors_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", *argv]) == 2
    assert message in capsys.readouterr().err


async def _write_execution(url: str, prefix: str, execution_id: int) -> None:
    """The keys of a finished execution, written by hand (no engine needed to read them)."""
    client = Redis.from_url(url)
    try:
        keys = Keys(prefix).execution(execution_id)
        await client.hset(keys.execution, mapping={"status": "completed", "processKey": "k", "tenant": "default"})
        await client.hset(keys.state, mapping={"stack": encode({"execution_stack": []}), "active": "0"})
    finally:
        await client.aclose()
