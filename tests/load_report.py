"""Figures for the robustness suites: latency percentiles, a server's memory and file handles, and report files.

Reports go to ``tests/.reports/<name>.json``; the folder ignores itself (a ``.gitignore`` of ``*``), so nothing
there is ever committed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPORTS_DIR = Path(__file__).resolve().parent / ".reports"
MB = 1024 * 1024


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank ``q``-th percentile (0 < q <= 100) of ``values``; ``None`` when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_figures(seconds: Sequence[float]) -> dict[str, float | int | None]:
    """p50, p90, p99 and the maximum of request latencies, in seconds rounded to milliseconds."""

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 3)

    return {
        "count": len(seconds),
        "p50_s": rounded(percentile(seconds, 50)),
        "p90_s": rounded(percentile(seconds, 90)),
        "p99_s": rounded(percentile(seconds, 99)),
        "max_s": rounded(max(seconds) if seconds else None),
    }


def process_sample(pid: int) -> dict[str, float | int]:
    """Resident memory (MB) and open file descriptors of one process, as psutil sees them now."""
    import psutil

    process = psutil.Process(pid)
    return {"rss_mb": round(process.memory_info().rss / MB, 1), "fds": process.num_fds()}


def write_report(name: str, figures: dict[str, Any]) -> Path:
    """Write ``figures`` to ``tests/.reports/<name>.json`` and print them on one line; returns the path."""
    REPORTS_DIR.mkdir(exist_ok=True)
    ignore = REPORTS_DIR / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# written by the test suite; never committed\n*\n")
    path = REPORTS_DIR / f"{name}.json"
    path.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    print(f"\n[{name}] " + json.dumps(figures, sort_keys=True) + f" -> {path}")
    return path
