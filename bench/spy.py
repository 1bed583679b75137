"""py-spy on a `procengine serve` while a benchmark loads it (`python -m bench --only flat --profile`): what holds
its event loop. py-spy samples the process from outside (no change to what runs); it is not a dependency of
the project: `uv pip install py-spy` into the venv (or have it on PATH), else the profile is skipped."""

from __future__ import annotations

import collections
import shutil
import subprocess
import sys
from pathlib import Path


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


class Spy:
    """`with Spy(pid, out) as spy: ...` records the process's stacks (raw collapsed format) until the block ends;
    then `spy.top()` is the summary. Does nothing when py-spy is missing."""

    def __init__(self, pid: int, out: Path, rate: int = 100) -> None:
        self.pid, self.out, self.rate = pid, out, rate
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Spy:
        binary = py_spy()
        if binary is not None:
            args = [binary, "record", "-p", str(self.pid), "-r", str(self.rate), "--format", "raw", "-o", str(self.out)]
            self.process = subprocess.Popen(
                [*args, "--nonblocking"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.send_signal(2)  # SIGINT: py-spy writes what it has and exits
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def top(self, own: int = 15, inclusive: int = 25) -> str:
        """The functions with the most samples on the CPU: own (the frame on top) and inclusive, in %."""
        if self.process is None:
            return "(py-spy not installed: `uv pip install py-spy` into the venv)"
        if not self.out.exists():
            why = self.process.stderr.read().decode()[-300:] if self.process.stderr else ""
            return f"(py-spy wrote nothing: {why})"
        return summarize(self.out.read_text(errors="replace"), own, inclusive)


def summarize(raw: str, own: int = 15, inclusive: int = 25) -> str:
    on_top: collections.Counter[str] = collections.Counter()
    within: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        on_top[frames[-1]] += n
        for frame in set(frames):
            within[frame] += n
    if not total:
        return "(no samples)"
    lines = [f"{total} samples; own:"]
    lines += [f"  {100 * n / total:5.1f}% {frame}" for frame, n in on_top.most_common(own)]
    lines.append("inclusive:")
    lines += [f"  {100 * n / total:5.1f}% {frame}" for frame, n in within.most_common(inclusive)]
    return "\n".join(lines)
