"""The table printed at the end, and bench/results.json (figures + the machine they were measured on)."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import Figure


def machine_info(redis_version: str) -> dict[str, Any]:
    cpu = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        cpu = platform.processor()
    try:
        load = os.getloadavg()
    except OSError:
        load = (math.nan, math.nan, math.nan)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "redis_server": redis_version,
        "platform": platform.platform(),
        "loadavg_at_start": load,
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
    }


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent, check=False
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def _number(value: float | None, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    magnitude = abs(value)
    if magnitude >= 100_000 or magnitude >= 100:
        text = f"{value:,.0f}"
    elif magnitude >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def _ratio(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.2f}" if value < 100 else f"{value:,.0f}"


def render(figures: list[Figure], failures: dict[str, str]) -> str:
    header = ("figure", "procengine", "baseline", "ratio", "target", "pass")
    rows = [
        (
            f.name,
            _number(f.value, f.unit),
            f"{_number(f.baseline, f.unit if f.baseline_unit is None else f.baseline_unit)}  [{f.baseline_label}]",
            _ratio(f.ratio),
            f.target,
            {True: "PASS", False: "FAIL", None: ""}[f.passed],
        )
        for f in figures
    ]
    for name, why in failures.items():
        rows.append((f"{name}: benchmark failed", "-", "-", "-", why[:60], "FAIL"))
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        return " | ".join(str(c).ljust(widths[i]) for i, c in enumerate(cells)).rstrip()

    out = [line(header), "-+-".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    notes = [f"  {f.name}: {f.notes}" for f in figures if f.notes]
    if notes:
        out += ["", "notes:", *notes]
    return "\n".join(out)


def write_json(path: Path, machine: dict[str, Any], figures: list[Figure], failures: dict[str, str],
               timings: dict[str, float], args: dict[str, Any]) -> None:  # fmt: skip
    document = {
        "machine": machine,
        "args": args,
        "timings_s": timings,
        "figures": [f.to_json() for f in figures],
        "failures": failures,
        "passed": all(f.passed is not False for f in figures) and not failures,
    }
    path.write_text(json.dumps(document, indent=2, default=_default) + "\n", encoding="utf-8")


def _default(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(value)
    if isinstance(value, Path):
        return str(value)
    return repr(value)
