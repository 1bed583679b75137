"""/metrics: Prometheus text a scraper reads, without a token, reflecting what the engine did."""

from __future__ import annotations

import gc
from typing import Any

from procengine.node.node import Node
from tests.support.api import Api, wait_for_status
from tests.support.processes import WAIT_PROCESS


def sample(text: str, name: str) -> float:
    """The value of one sample line `name value` (name with its labels, as exposed)."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split(" ")[-1])
    raise AssertionError(f"{name} not in the metrics:\n{text}")


async def test_a_scrape_shows_executions_elements_and_checkpoints(api_a: Api, client: Any, engine: Node) -> None:
    process = await api_a.ok("POST", "/processes", json=WAIT_PROCESS, expect=201)
    first = await api_a.ok(
        "POST",
        "/executions/processes",
        json={"processID": process["processID"], "variables": {"amount": 2}},
        expect=201,
    )
    second = await api_a.ok(
        "POST",
        "/executions/processes",
        json={"processID": process["processID"], "variables": {"amount": 3}},
        expect=201,
    )
    await api_a.ok("POST", f"/executions/processes/{first['executionID']}/signals/approve", json=1, expect=202)
    await wait_for_status(api_a, first["executionID"], "completed")
    await api_a.ok("POST", f"/executions/processes/{second['executionID']}/cancel")
    await engine.reconcile()

    response = await client.get("/metrics")
    assert response.status == 200 and response.headers["Content-Type"].startswith("text/plain")
    text = await response.text()

    assert sample(text, 'procengine_executions_started_total{process_key="approval"}') == 2
    assert sample(text, 'procengine_executions_finished_total{process_key="approval",status="completed"}') == 1
    assert sample(text, 'procengine_executions_finished_total{process_key="approval",status="cancelled"}') == 1
    assert sample(text, 'procengine_element_duration_seconds_count{outcome="completed",type="set-variable"}') == 2
    assert sample(text, 'procengine_element_duration_seconds_count{outcome="completed",type="wait-signal"}') == 1
    assert sample(text, "procengine_checkpoint_seconds_count") >= 6
    assert sample(text, 'procengine_executions{status="running"}') == 0
    assert sample(text, "procengine_active_actors") >= 0
    assert "procengine_redis_errors_total" in text and "procengine_control_messages_total" in text
    assert "procengine_event_loop_lag_seconds_bucket" in text  # the node's sampler runs from its start
    gc.collect(2)  # the node observes every collection while it runs
    text = await (await client.get("/metrics")).text()
    assert sample(text, 'procengine_gc_pause_seconds_count{generation="2"}') >= 1
