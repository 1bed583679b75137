"""Restate: the `@restatedev/restate-server` npm package's server (bench/peers/node_modules) and a Python service
(`restate-sdk`, served by hypercorn in its own process), called through Restate's HTTP ingress.

A durable step is `ctx.run_typed`: Restate journals its result before the handler goes on. The service is a plain
`Service` handler; each call of it is one invocation (the ingress answers when it has finished).
"""

from __future__ import annotations

import concurrent.futures
import json
import shutil
import sys
import urllib.request
from pathlib import Path

import restate

from bench.peers.driver import Result, child, free_port, now, parse_args, run_main, tail, version, wait_port

PEER = "restate"
SERVER = Path(__file__).resolve().parent / "node_modules" / ".bin" / "restate-server"

chain_service = restate.Service("Chain")


def _step(value: int) -> int:
    return value + 1


@chain_service.handler()
async def run(ctx: restate.Context, steps: int) -> int:
    value = 0
    for i in range(steps):
        value = await ctx.run_typed(f"s{i}", _step, restate.RunOptions(), value)
    return value


app = restate.app([chain_service])


def _post(url: str, body: object, timeout_s: float = 120) -> object:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as answer:
        return json.loads(answer.read() or b"null")


def main() -> None:
    args = parse_args()
    if not SERVER.exists():
        raise RuntimeError(f"no {SERVER}: `npm install` in bench/peers (make bench ARGS=--peers does it)")
    ingress, admin, fabric, service = free_port(), free_port(), free_port(), free_port()
    base = args.workdir / "restate"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    env = {
        "RESTATE_INGRESS__BIND_ADDRESS": f"127.0.0.1:{ingress}",
        "RESTATE_ADMIN__BIND_ADDRESS": f"127.0.0.1:{admin}",
        "RESTATE_BIND_ADDRESS": f"127.0.0.1:{fabric}",
        "RESTATE_ADVERTISED_ADDRESS": f"http://127.0.0.1:{fabric}/",
        "RESTATE_ADMIN__QUERY_ENGINE__PGSQL_BIND_ADDRESS": f"127.0.0.1:{free_port()}",
        "RESTATE_LOG_FILTER": "warn",
    }
    server_log, service_log = args.workdir / "restate-server.log", args.workdir / "restate-service.log"
    hypercorn = [
        str(Path(sys.executable).parent / "hypercorn"),
        "bench.peers.restate_peer:app", "--bind", f"127.0.0.1:{service}", "--log-level", "warning",
    ]  # fmt: skip
    server_args = [str(SERVER), "--no-logo", "--base-dir", str(base), "--listen-mode", "tcp"]
    with child(server_args, server_log, env, cwd=base) as server, child(hypercorn, service_log) as endpoint:
        try:
            wait_port(admin, server, "restate-server")
            wait_port(ingress, server, "restate-server ingress")
            wait_port(service, endpoint, "the hypercorn service")
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}: {tail(server_log)} {tail(service_log)}") from None
        _post(f"http://127.0.0.1:{admin}/deployments", {"uri": f"http://127.0.0.1:{service}", "force": True})
        call = f"http://127.0.0.1:{ingress}/Chain/run"
        assert _post(call, 3) == 3  # warm: the deployment is live
        result = Result(PEER, f"server {_server_version()}, restate-sdk {version('restate-sdk')}", "ctx.run steps")
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.executions) as pool:
            for _ in range(args.rounds):
                started = now()
                assert _post(call, args.chain) == args.chain
                chain_s = now() - started
                started = now()
                answers = list(pool.map(lambda _: _post(call, args.steps), range(args.executions)))
                fanout_s = now() - started
                assert answers == [args.steps] * args.executions
                result.rounds.append({"chain_s": chain_s, "fanout_s": fanout_s})
        result.notes = (
            "restate-server defaults (RocksDB, WAL fsync on), one node; the service in one hypercorn process; "
            f"invoked through the HTTP ingress, {args.executions} concurrent requests for the fan-out"
        )
        result.emit()


def _server_version() -> str:
    import subprocess

    found = subprocess.run([str(SERVER), "--version"], capture_output=True, text=True, check=False).stdout.split()
    return found[-1] if found else "?"


if __name__ == "__main__":
    raise SystemExit(run_main(PEER, main))
