"""Slow-loris against `procengine serve` (issue 17): N loopback connections that each send a request line and
then one header line every 2 s, never finishing the head; prints the server's RSS and the latency of /health
while they are open, and how the server closed them.

    python bench/slow_loris.py [N] [SOURCE_DIR]

SOURCE_DIR is the procengine checkout to run (default: this one), so that an older version can be measured with
the same client: `git archive <commit> procengine | tar -x -C /tmp/before && python bench/slow_loris.py 15000
/tmp/before`. Needs N file descriptors on each side (ulimit -n). Linux only (reads /proc for the RSS).
"""

from __future__ import annotations

import asyncio
import collections
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def rss_mib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) // 1024
    return -1


async def health(port: int) -> str:
    began = time.perf_counter()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 30)
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 30)
        writer.close()
        return f"{(time.perf_counter() - began) * 1000:.0f} ms ({answer[:12].decode(errors='replace')})"
    except (OSError, TimeoutError) as exc:
        return f"{(time.perf_counter() - began) * 1000:.0f} ms ({type(exc).__name__})"


async def slow(port: int, ends: list[str]) -> None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        ends.append("refused")
        return
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n")
    for line in range(1_000_000):
        try:
            answer = await asyncio.wait_for(reader.read(100), 2)
        except TimeoutError:
            writer.write(b"X-%d: y\r\n" % line)
            continue
        except OSError:
            ends.append("reset")
            return
        ends.append(answer[:12].decode(errors="replace") or "closed")
        writer.close()
        return


async def main(count: int, source: str) -> None:
    data_dir = tempfile.mkdtemp()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "procengine", "serve", "--port", str(port), "--data-dir", data_dir]
    env = {**os.environ, "PYTHONPATH": source, "PROCENGINE_LOG_LEVEL": "WARNING"}
    server = await asyncio.create_subprocess_exec(*command, env=env, cwd=data_dir, stdout=subprocess.DEVNULL)
    assert server.pid is not None
    try:
        for _ in range(300):
            if "200" in await health(port):
                break
            await asyncio.sleep(0.1)
        print(f"idle: RSS {rss_mib(server.pid)} MiB, /health {await health(port)}")
        ends: list[str] = []
        began = time.monotonic()
        tasks = []
        for index in range(count):
            tasks.append(asyncio.create_task(slow(port, ends)))
            if index % 200 == 0:
                await asyncio.sleep(0.01)
        await asyncio.sleep(2)
        opened = time.monotonic() - began
        rss = rss_mib(server.pid)
        print(f"{count} slow sockets opened in {opened:.0f} s: RSS {rss} MiB, /health {await health(port)}")
        for after in (8, 16):
            await asyncio.sleep(8)
            print(f"t+{after} s: RSS {rss_mib(server.pid)} MiB, /health {await health(port)}, ended {len(ends)}")
        print("how they ended:", dict(collections.Counter(ends).most_common()))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(2)
        print(f"after: RSS {rss_mib(server.pid)} MiB, /health {await health(port)}")
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), 30)


if __name__ == "__main__":
    source = str(Path(sys.argv[2] if len(sys.argv) > 2 else ".").resolve())  # serve runs in a tmp dir
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 15_000, source))
