"""The whole study on synthetic THINGS-size data: time, peak RSS and growth of each stage.

For each fraction of THINGS-MEG (full size: 1,854 concepts, 22,248 experiment images,
27,048 epochs of 271 x 281 per participant) a child process writes the synthetic data
(:func:`figureground.synth.data.make_synth`), then :func:`figureground.synth.study.measure`
runs the study's stages with the project's own functions, each group of stages in a fresh
process (peak RSS = VmHWM, reset before each stage): MEG load (exp, test), features, concept-
level time-resolved RSA, permutations, bootstrap, noise ceilings, encoding + variance
partitioning. See ``figureground.synth.study`` for what each stage holds.

Growth between consecutive sizes is printed as time ratio against work ratio and as an
exponent (log time ratio / log work ratio; 1 = time grows as the work, < 1 = slower). Work:
epochs / images for loading, concept pairs x times (x permutations, x samples) for RSA,
images x times for encoding, test trials x times for ceilings.

Usage: python bench/bench_scale.py [--fractions 1/8,1/4,1/2,1] [--keep DIR]
       The default is the issue's ladder, 1/8 to full size: 16 GB of disk (deleted as it
       goes) and about 20 minutes on 2 cores. A quick check of the same code:
       FIGUREGROUND_BENCH_FRACTIONS=1/64,1/32,1/16 python bench/bench_scale.py (~3 min).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import report

DEFAULT_FRACTIONS = "1/8,1/4,1/2,1"
SYNTH = """
import json, sys
from figureground.synth.study import StageClock
from figureground.synth.data import SynthSize, make_synth
clock = StageClock()
fraction = float(sys.argv[2])
clock("synth", SynthSize.scaled(fraction).epochs, lambda: make_synth(sys.argv[1], fraction))
print(json.dumps(clock.records))
"""


def one_fraction(fraction: float, folder: Path, settings: dict) -> list[dict]:
    """Synthetic data at ``fraction``, then every stage of the study; the stage records."""
    from figureground.synth.study import StudySettings, measure

    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    proc = subprocess.run(
        [sys.executable, "-c", SYNTH, str(folder), str(fraction)],
        check=True, capture_output=True, text=True, env=env,
    )  # fmt: skip
    records = [{**r, "group": "synth"} for r in json.loads(proc.stdout.strip().splitlines()[-1])]
    return records + measure(folder, StudySettings(**settings))


def growth_lines(runs: list[dict]) -> tuple[list[str], dict[str, list[float]]]:
    """Time ratio vs work ratio and exponent per stage between consecutive fractions."""
    lines, exponents = [], {}
    for a, b in itertools.pairwise(runs):
        stages_a = {(r["group"], r["stage"]): r for r in a["stages"]}
        for r in b["stages"]:
            name = f"{r['group']}/{r['stage']}"
            old = stages_a.get((r["group"], r["stage"]))
            if old is None or old["work"] <= 0 or r["work"] == old["work"]:
                continue
            time_ratio = r["seconds"] / old["seconds"]
            work_ratio = r["work"] / old["work"]
            exponent = math.log(time_ratio) / math.log(work_ratio)
            exponents.setdefault(name, []).append(exponent)
            lines.append(
                f"{name:26s} {a['fraction']:g} -> {b['fraction']:g}: time x{time_ratio:.2f}"
                f" for work x{work_ratio:.2f} (exponent {exponent:.2f})"
            )
    return lines, exponents


def main() -> None:
    """Run each fraction; print per-stage figures and growth exponents."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--fractions", default=os.environ.get("FIGUREGROUND_BENCH_FRACTIONS", DEFAULT_FRACTIONS)
    )
    parser.add_argument("--settings", default="{}", help="StudySettings fields as JSON")
    parser.add_argument("--keep", type=Path, default=None, help="put the data in this folder")
    args = parser.parse_args()
    settings = json.loads(args.settings)
    fractions = [float(Fraction(f)) for f in args.fractions.split(",")]
    runs = []
    with tempfile.TemporaryDirectory(dir=args.keep) as tmp:
        for fraction in fractions:
            folder = Path(tmp) / f"f{fraction:g}"
            stages = one_fraction(fraction, folder, settings)
            shutil.rmtree(folder, ignore_errors=True)  # the full size is 8.2 GB
            runs.append({"fraction": fraction, "stages": stages})
            print(f"fraction {fraction:g}")
            for s in stages:
                print(
                    f"  {s['group']:9s} {s['stage']:17s} {s['seconds']:8.2f} s  "
                    f"peak RSS {s['peak_rss_mb']:8.0f} MiB"
                )
    lines, exponents = growth_lines(runs)
    print("\n".join(lines))
    worst = max((max(v) for v in exponents.values()), default=float("nan"))
    peak = max(s["peak_rss_mb"] for s in runs[-1]["stages"])
    report(
        "bench_scale",
        f"largest growth exponent {worst:.2f} (1 = time grows as the work); "
        f"peak RSS {peak:.0f} MiB at fraction {runs[-1]['fraction']:g}",
        runs=runs,
        exponents=exponents,
    )


if __name__ == "__main__":
    main()
