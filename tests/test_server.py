"""`serve --register FILE`: definitions registered at start, in every tenant."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from procengine.api.service import Caller
from procengine.cli.serve import register_files
from procengine.errors import BadRequest, ValidationFailed
from procengine.node.node import Node
from procengine.settings import Settings
from procengine.tasks import builtin_handlers

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


async def _charge(task_input: dict[str, Any]) -> dict[str, Any]:
    return {}


async def test_register_files_registers_the_examples_in_every_tenant(redis: Redis, settings: Settings) -> None:
    configured = settings.model_copy(
        update={"api_tokens": {"a": "ta", "b": "tb"}, "definitions": sorted(EXAMPLES.glob("*.yaml"))}
    )
    handlers = builtin_handlers()
    handlers.register("charge-card", _charge)  # order-approval's (examples/handlers.py, not imported: @task is global)
    for name in (
        "list-batches",
        "transform-batch",
        "load-batch",
        "summarise-import",
        "verify-identity",
        "screen-sanctions",
    ):
        handlers.register(name, _charge)  # the other examples' handlers: registration only checks their names
    async with Node(redis, configured, handlers) as engine:
        await register_files(engine, configured)
        await register_files(engine, configured)  # a restart registers nothing new
        for tenant in ("ta", "tb"):
            listed = await engine.list_processes(Caller(tenant, tenant, "r"))
            # account-opening calls kyc-check, which sorts after it: registered first all the same
            assert sorted((p.key, p.version) for p in listed.items) == [
                ("account-opening", 1),
                ("data-pipeline", 1),
                ("demo", 1),
                ("invoice", 1),
                ("kyc-check", 1),
                ("order-approval", 1),
                ("order-fulfilment", 1),
            ]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("key: [", BadRequest),
        ("key: x\nthreads: []", ValidationFailed),
        ("key: x\nthreads: [{key: m, elements: [{key: a, type: task, handler: nope}]}]", ValidationFailed),
    ],
)
async def test_a_bad_file_stops_the_start_with_its_name(
    redis: Redis, settings: Settings, tmp_path: Path, text: str, error: type[Exception]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    configured = settings.model_copy(update={"definitions": [bad]})
    async with Node(redis, configured, builtin_handlers()) as engine:
        with pytest.raises(error):
            await register_files(engine, configured)


def test_register_order_puts_every_version_of_a_called_process_first_in_file_order() -> None:
    from procengine.cli.serve import _callees_first

    account = {
        "key": "account",
        "threads": [{"key": "m", "elements": [{"key": "c", "type": "call-process", "process": "kyc"}]}],
    }
    kyc_v1 = {"key": "kyc", "name": "v1"}
    kyc_v2 = {"key": "kyc", "name": "v2"}
    given = [(Path("account.yaml"), account), (Path("kyc-1.yaml"), kyc_v1), (Path("kyc-2.yaml"), kyc_v2)]

    assert [path.name for path, _ in _callees_first(given)] == ["kyc-1.yaml", "kyc-2.yaml", "account.yaml"]
