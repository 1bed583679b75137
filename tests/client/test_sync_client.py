"""The blocking Client against a real server: from plain code, in a script, and beside a running loop."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from procengine.client import Client, InvalidTransition, NotFound
from tests.support.processes import SHORT_PROCESS_YAML, WAIT_PROCESS


def test_every_call_blocks_and_answers_with_the_server_s_models(server_url: str) -> None:
    with Client(server_url, "tok-a") as client:
        process = client.register(WAIT_PROCESS)
        short = client.register(SHORT_PROCESS_YAML)
        assert client.process(short.processID).key == "short"
        assert {p.key for p in client.processes().items} == {"approval", "short"}

        with client.status_events() as changes:  # connected once entered
            waiting = client.start(process_id=process.processID, variables={"amount": 3})
            running = next(iter(changes))
        assert (running.executionID, running.status) == (waiting.executionID, "running")

        assert client.pause(waiting.executionID, "a look").status == "paused"
        client.resume(waiting.executionID)
        with pytest.raises(InvalidTransition) as conflict:
            client.resume(waiting.executionID)
        assert conflict.value.current_status == "running"
        assert client.signal(waiting.executionID, "approve", [1, 2]).accepted
        names = [entry.event for entry in client.events(waiting.executionID)]  # ends after the end
        assert names[0] == "started" and names[-1] == "completed"

        done = client.start("short")
        for entry in client.events(done.executionID):
            if entry.event == "completed":
                break
        assert client.log(done.executionID).items[-1].event == "completed"
        assert {e.key for e in client.elements(done.executionID).items} >= {"hello", "nap", "mark"}
        assert client.state(done.executionID).active is False
        assert client.executions(limit=1).items[0].executionID == done.executionID
        assert [e.executionID for e in client.iter_executions(page_size=1)] == [done.executionID, waiting.executionID]
        cancelled = client.start("approval", variables={"amount": 1})
        assert client.cancel(cancelled.executionID, "no").status == "cancelled"
        assert len(client.statuses().items) == 5
        assert (client.health(), client.ready()) == ("ok", "ready")
        assert client.openapi()["info"] and "procengine_" in client.metrics()
        with pytest.raises(NotFound):
            client.status(10_000)

    with pytest.raises(RuntimeError, match="closed"):
        client.statuses()


async def test_it_works_beside_a_running_event_loop(server_url: str) -> None:
    with Client(server_url, "tok-a") as client:  # blocks this loop, but runs on its own
        assert client.health() == "ok"


def test_a_plain_script_finds_the_server_in_the_environment(server_url: str) -> None:
    script = textwrap.dedent(
        """
        from procengine.client import Client

        with Client() as client:
            client.register({"key": "tiny", "threads": [{"key": "main", "elements": [{"key": "end", "type": "end"}]}]})
            started = client.start("tiny")
            print([entry.event for entry in client.events(started.executionID)][-1])
        """
    )
    env = {**os.environ, "PROCENGINE_URL": server_url, "PROCENGINE_TOKEN": "tok-b"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert (done.returncode, done.stdout.strip()) == (0, "completed"), done.stderr
