"""Run every benchmark in ``bench/`` (``make bench``).

Each ``bench/bench_*.py`` is a standalone script: it measures figureground against its peer
(or the raw limit) in the same run, prints both figures and their ratio, and writes
``bench/out/<name>.json``. This runner runs them one after another and prints a summary.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent


def main() -> int:
    """Run each benchmark script; return non-zero if any failed."""
    scripts = sorted(BENCH_DIR.glob("bench_*.py"))
    only = set(sys.argv[1:])
    failures = []
    for script in scripts:
        if only and script.stem not in only:
            continue
        print(f"=== {script.stem}", flush=True)
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, str(script)], check=False)
        print(
            f"--- {script.stem}: exit {proc.returncode} in {time.perf_counter() - start:.0f} s",
            flush=True,
        )
        if proc.returncode:
            failures.append(script.stem)
    out_dir = BENCH_DIR / "out"
    print("\n=== summary")
    for result in sorted(out_dir.glob("*.json")) if out_dir.exists() else []:
        data = json.loads(result.read_text())
        print(f"{result.stem}: {data.get('summary', data)}")
    if failures:
        print(f"failed: {', '.join(failures)}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
