"""The comparison itself: procengine's rounds around each peer's driver, on one redis-server, and the table."""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.peers.procengine_side import run_chain, run_fanout
from bench.report import machine_info
from procengine.store.embedded import RedisServer

Driver = Callable[[Path, str, Path, int, str], list[dict[str, Any]]]


@dataclass
class Outcome:
    chain: int
    executions: int
    steps: int
    machine: dict[str, Any]
    procengine: list[dict[str, float]] = field(default_factory=list)
    peers: list[dict[str, Any]] = field(default_factory=list)

    def rates(self, rounds: list[dict[str, float]]) -> tuple[float, float]:
        """Median steps/s of the chain and of the fan-out over `rounds`."""
        chain = statistics.median(self.chain / r["chain_s"] for r in rounds)
        fanout = statistics.median(self.executions * self.steps / r["fanout_s"] for r in rounds)
        return chain, fanout

    def beside(self, peer: dict[str, Any]) -> list[dict[str, float]]:
        """procengine's rounds next to a peer's run: the round(s) just before its driver and the one just after
        (the machine drifts: a shared machine's load moved the chain by 2x over one run)."""
        return [self.procengine[i] for i in peer["procengine_rounds"]]

    def table(self) -> str:
        lines = [
            f"procengine vs peers: {self.machine.get('nproc')} cores ({self.machine.get('cpu_model')}), Python "
            f"{self.machine.get('python')}, redis-server {self.machine.get('redis_server')} (unix socket), "
            f"procengine rounds {len(self.procengine)}",
            "",
            f"{'peer':<44} | {'chain 1x' + str(self.chain):>14} | {'procengine':>10} | {'ratio':>6} | "
            f"{f'fan-out {self.executions}x{self.steps}':>14} | {'procengine':>10} | {'ratio':>6}",
            "-" * 125,
        ]
        skips = []
        for peer in self.peers:
            if "skip" in peer:
                skips.append(f"skip {peer['peer']}: {peer['skip']}")
                continue
            chain, fanout = self.rates(peer["rounds"])
            ours_chain, ours_fanout = self.rates(self.beside(peer))
            label = f"{peer['peer']} {peer['variant']}"[:44]
            lines.append(
                f"{label:<44} | {chain:>8,.0f} st/s | {ours_chain:>10,.0f} | {ours_chain / chain:>6.2f} | "
                f"{fanout:>8,.0f} st/s | {ours_fanout:>10,.0f} | {ours_fanout / fanout:>6.2f}"
            )
        lines.append("")
        lines.append(
            "steps/s, medians of the rounds; ratio = procengine ÷ peer (above 1: procengine is faster); procengine's "
            "column is the median of its rounds just before and just after that peer's run"
        )
        for peer in self.peers:
            if "skip" not in peer:
                lines.append(f"  {peer['peer']} {peer['variant']}: {peer['version']}; {peer['notes']}")
        return "\n".join(lines + skips)

    def to_json(self) -> dict[str, Any]:
        return {
            "workloads": {"chain": self.chain, "executions": self.executions, "steps": self.steps},
            "machine": self.machine,
            "procengine": self.procengine,
            "peers": self.peers,
        }


async def compare(workdir: Path, python: Path, names: list[str], rounds: int, driver: Driver) -> Outcome:
    from bench.peers.__main__ import CHAIN, EXECUTIONS, STEPS

    with RedisServer(workdir / "redis") as redis:
        assert redis.unix_url is not None
        outcome = Outcome(CHAIN, EXECUTIONS, STEPS, machine_info(_redis_version(redis.url)))
        url = redis.unix_url
        counter = 0

        async def ours(times: int) -> None:
            nonlocal counter
            for _ in range(times):
                counter += 1
                chain_s = await run_chain(url, f"peers-chain-{counter}", steps=CHAIN)
                fanout_s = await run_fanout(url, f"peers-fanout-{counter}", EXECUTIONS, STEPS)
                outcome.procengine.append({"chain_s": chain_s, "fanout_s": fanout_s})

        await run_chain(url, "peers-warm", steps=20)
        await ours(rounds)
        before = list(range(rounds))
        for name in names:
            print(f"- {name} ...", flush=True)
            found = await asyncio.to_thread(driver, python, name, workdir, rounds, url)
            await ours(1)
            for line in found:
                line["procengine_rounds"] = [*before, len(outcome.procengine) - 1]
                print(f"  {line.get('variant') or ''} {line.get('skip') or ''}".rstrip(), flush=True)
            outcome.peers += found
            before = [len(outcome.procengine) - 1]
        return outcome


def _redis_version(url: str) -> str:
    import redis

    client = redis.Redis.from_url(url)
    try:
        return str(client.info("server")["redis_version"])
    finally:
        client.close()
