"""A procengine killed with SIGKILL leaves its embedded redis-server running, holding the data directory; the next
`procengine serve` on that directory takes its own orphan over and says so in its log, while it still refuses a
directory whose server belongs to a procengine that runs (issue 19, item 3)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from procengine.errors import RedisServerError
from procengine.store.embedded import LOCK_FILE, RedisServer, find_redis_server
from tests.support.api import BASE
from tests.support.paths import REPO
from tests.support.polling import until
from tests.support.servers import Server

pytestmark = pytest.mark.timeout(90)

ORPHAN_MAKER = """
import os, signal, sys
from procengine.store.embedded import RedisServer
server = RedisServer(sys.argv[1], executable=sys.argv[2])
server.start()
os.kill(os.getpid(), signal.SIGKILL)  # as a crash would: the redis-server lives on, holding the lock
"""


def _holder(data_dir: Path) -> int:
    found = re.match(r"pid (\d+) ", (data_dir / LOCK_FILE).read_text())
    assert found, (data_dir / LOCK_FILE).read_text()
    return int(found.group(1))


def _alive(pid: int) -> bool:
    """Running, not a zombie (an orphan that exited is one until init reaps it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _orphan(data_dir: Path, executable: str) -> int:
    """A redis-server on `data_dir` from `executable` whose starting process was killed: its pid."""
    subprocess.run([sys.executable, "-c", ORPHAN_MAKER, str(data_dir), executable], cwd=REPO, check=False)
    pid = _holder(data_dir)
    assert _alive(pid)
    return pid


@pytest.fixture
def no_orphans_left() -> Iterator[list[int]]:
    """Pids of redis-servers a test left behind on purpose, killed at the end whatever happened."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_an_orphan_of_the_same_binary_on_the_same_directory_is_taken_over(
    tmp_path: Path, no_orphans_left: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = tmp_path / "data"
    orphan = _orphan(data_dir, find_redis_server())
    no_orphans_left.append(orphan)

    with caplog.at_level("WARNING", logger="procengine.store.embedded"), RedisServer(data_dir) as server:
        assert not _alive(orphan) and server.pid != orphan
        assert f"held by an orphaned redis-server (pid {orphan} " in caplog.text
        assert f"took over {data_dir} from the orphaned redis-server pid {orphan}" in caplog.text


def test_an_orphan_of_another_binary_is_refused(tmp_path: Path, no_orphans_left: list[int]) -> None:
    data_dir = tmp_path / "data"
    other = tmp_path / "other-redis-server"
    shutil.copy2(find_redis_server(), other)
    orphan = _orphan(data_dir, str(other))
    no_orphans_left.append(orphan)

    with pytest.raises(RedisServerError, match=f"in use by another redis-server \\(pid {orphan} "):
        RedisServer(data_dir).start()
    assert _alive(orphan)


def test_a_server_whose_procengine_runs_is_refused(tmp_path: Path) -> None:
    with RedisServer(tmp_path / "data") as running:  # started by this process, which is alive
        with pytest.raises(RedisServerError, match="in use by another redis-server"):
            RedisServer(tmp_path / "data").start()
        assert running.running


async def _serve(data_dir: Path) -> tuple[Server, asyncio.subprocess.Process]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "procengine", "serve", "--data-dir", str(data_dir), "--port", "0",
        "--log-format", "text", "--log-level", "WARNING",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=REPO,
    )  # fmt: skip
    assert process.stdout is not None
    async with asyncio.timeout(30):
        line = (await process.stdout.readline()).decode()
    assert "serving on http://" in line, line + (await process.stderr.read()).decode()  # type: ignore[union-attr]
    return Server(process, line.strip().split("serving on ")[1]), process


@pytest.mark.slow
async def test_serve_after_a_kill_9_of_serve_takes_its_orphan_over(tmp_path: Path, no_orphans_left: list[int]) -> None:
    data_dir = tmp_path / "data"
    first, first_process = await _serve(data_dir)
    async with aiohttp.ClientSession() as session:
        registered = await session.post(
            first.url + BASE + "/processes", data=(REPO / "examples" / "demo.yaml").read_bytes(),
            headers={"Content-Type": "application/yaml"},
        )  # fmt: skip
        assert registered.status == 201
        orphan = _holder(data_dir)
        no_orphans_left.append(orphan)

        first.kill9()
        await first_process.wait()
        assert _alive(orphan)  # what the user finds after a kill -9 of make run

        # a second serve while the first one runs is refused: that server is not an orphan
        second, second_process = await _serve(data_dir)
        try:
            refused = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "procengine", "serve", "--data-dir", str(data_dir), "--port", "0",
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, cwd=REPO,
            )  # fmt: skip
            _, refusal = await asyncio.wait_for(refused.communicate(), 30)
            assert refused.returncode != 0 and b"in use by another redis-server" in refusal

            await until(lambda: not _alive(orphan))
            answer = await (await session.get(second.url + BASE + "/processes")).json()
            assert [p["key"] for p in answer["data"]["items"]] == ["demo"]  # the orphan's data, kept
        finally:
            second.terminate()
            _, log = await asyncio.wait_for(second_process.communicate(), 30)
    assert f"held by an orphaned redis-server (pid {orphan} " in log.decode()
    assert f"from the orphaned redis-server pid {orphan}" in log.decode()
    assert second_process.returncode == 0
