"""DBOS Transact (`dbos` on PyPI), in this process, with SQLite as its system database (a file in the work dir).

A durable step is a `@DBOS.step()`: its result is written to the system database before the workflow goes on.
Workflows are `async` and started with `DBOS.start_workflow_async`, their results awaited through the handles.
"""

from __future__ import annotations

import asyncio
import shutil

from dbos import DBOS

from bench.peers.driver import Args, Result, now, parse_args, run_main, version

PEER = "dbos"


@DBOS.step()
async def step(value: int) -> int:
    return value + 1


@DBOS.workflow()
async def chain(steps: int) -> int:
    value = 0
    for _ in range(steps):
        value = await step(value)
    return value


async def _run_one(steps: int) -> int:
    handle = await DBOS.start_workflow_async(chain, steps)
    result: int = await handle.get_result()
    return result


async def _measure(args: Args) -> Result:
    result = Result(PEER, f"dbos {version('dbos')}", "steps, SQLite")
    assert await _run_one(3) == 3  # warm
    for _ in range(args.rounds):
        started = now()
        assert await _run_one(args.chain) == args.chain
        chain_s = now() - started
        started = now()
        done = await asyncio.gather(*(_run_one(args.steps) for _ in range(args.executions)))
        fanout_s = now() - started
        assert done == [args.steps] * args.executions
        result.rounds.append({"chain_s": chain_s, "fanout_s": fanout_s})
    result.notes = "system database SQLite (a file: sqlite:///…/dbos.sqlite), async workflow and steps, one process"
    return result


def main() -> None:
    args = parse_args()
    data = args.workdir / "dbos"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    DBOS(config={"name": "peers", "system_database_url": f"sqlite:///{data / 'dbos.sqlite'}", "log_level": "WARNING"})
    DBOS.launch()
    try:
        asyncio.run(_measure(args)).emit()
    finally:
        DBOS.destroy()


if __name__ == "__main__":
    raise SystemExit(run_main(PEER, main))
