"""Helpers shared by the benchmark scripts: timing, peak memory and result files."""

from __future__ import annotations

import json
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

OUT_DIR = Path(__file__).resolve().parent / "out"


def best_time(func: Callable[[], Any], repeats: int = 3) -> float:
    """Best wall time in seconds of ``repeats`` calls of ``func``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def peak_rss_mb(children: bool = False) -> float:
    """Peak resident set size of this process (or of its finished children) in MiB."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024.0


def report(name: str, summary: str, **figures: Any) -> None:
    """Print the summary line and write ``bench/out/<name>.json``."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    print(f"{name}: {summary}", flush=True)
    (OUT_DIR / f"{name}.json").write_text(
        json.dumps({"summary": summary, **figures}, indent=2, default=str) + "\n"
    )
