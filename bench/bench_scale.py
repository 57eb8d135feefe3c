"""The whole study at THINGS scale on one machine: time and peak memory per stage vs size.

For each fraction of the THINGS-MEG sizes (default 1/64, 1/32, 1/16, 1/8; full size is
22,248 images and 27,048 epochs of 271 x 281 per participant) a child process generates the
synthetic data (``figureground synth``), then runs the study's stages on it, measuring each
stage's wall time and peak resident set size (VmHWM, reset before each stage):

- ``meg_load``: THINGS-MEG loader, epochs read in chunks, averaged per image (work: epochs)
- ``features``: pooled features of three variants read from the Zarr store (work: images)
- ``rsa``: time-resolved RSA, float32 condensed RDMs, 3 conditions + partial RSA, on
  ``--times`` time points (work: pairs x times)
- ``permutations``: RSA permutation test in batches (work: pairs x permutations)

Growth between consecutive sizes is printed as time ratio vs work ratio and as an exponent
(log time ratio / log work ratio; 1 = time grows exactly as the work, < 1 = slower).

Usage: python bench/bench_scale.py [--fractions 1/64,1/32,1/16,1/8] [--times 8]
       [--permutations 100] [--keep DIR]
       FIGUREGROUND_BENCH_FRACTIONS=1/8,1/4,1/2,1 python bench/bench_scale.py   (larger runs)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import itertools

from _common import report

DEFAULT_FRACTIONS = "1/64,1/32,1/16,1/8"
STAGES = ("synth", "meg_load", "features", "rsa", "permutations")


def _reset_peak() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # Linux: reset VmHWM


def _peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def one_fraction(fraction: float, folder: Path, n_times: int, n_permutations: int) -> dict:
    """Run every stage on synthetic data at ``fraction``; seconds, peak MiB and work each."""
    import numpy as np

    from figureground.analysis.rdm_calc import compute_rdms
    from figureground.analysis.rsa import rsa_timecourse
    from figureground.analysis.stats import rdm_permutation_test
    from figureground.features.store import open_features
    from figureground.neural import things_meg
    from figureground.scale.synth import SynthSize, make_synth

    size = SynthSize.scaled(fraction)
    results: dict[str, dict] = {}

    def stage(name: str, work: float, func):
        _reset_peak()
        start = time.perf_counter()
        value = func()
        results[name] = {
            "seconds": time.perf_counter() - start,
            "peak_rss_mb": _peak_mb(),
            "work": work,
        }
        return value

    data = stage("synth", size.epochs, lambda: make_synth(folder, fraction=fraction))
    meg = stage(
        "meg_load",
        size.epochs,
        lambda: things_meg.load(
            data / "meg" / "preprocessed_P1-epo.fif", data / "meg" / "sample_attributes_P1.csv"
        ),
    )
    ids = [str(i) for i in meg["image"].values]
    features = stage(
        "features",
        len(ids),
        lambda: {
            v: open_features(data / "features.zarr", v)["layer2"].sel(image=ids).load()
            for v in ("original", "no_background", "no_foreground")
        },
    )
    n_pairs = len(ids) * (len(ids) - 1) // 2
    picks = np.linspace(20, meg.sizes["time"] - 1, n_times).astype(int)
    window = meg.isel(time=picks)
    stage(
        "rsa",
        n_pairs * n_times,
        lambda: rsa_timecourse(window, features, batch_size=2, participant="P1"),
    )
    model = compute_rdms(features["no_background"].values, "correlation")
    rdm = compute_rdms(meg.isel(time=[100]).values, "correlation")
    batch = max(1, int(2e7 // n_pairs))
    stage(
        "permutations",
        n_pairs * n_permutations,
        lambda: rdm_permutation_test(rdm, model, n_permutations, batch_size=batch),
    )
    return {"fraction": fraction, "images": len(ids), "epochs": size.epochs, "stages": results}


def main() -> None:
    """Run each fraction in a child process; print per-stage figures and growth exponents."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--fractions", default=os.environ.get("FIGUREGROUND_BENCH_FRACTIONS", DEFAULT_FRACTIONS)
    )
    parser.add_argument("--times", type=int, default=8, help="RSA time points")
    parser.add_argument("--permutations", type=int, default=100)
    parser.add_argument("--keep", type=Path, default=None, help="keep the data in this folder")
    parser.add_argument("--one", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(one_fraction(args.one, args.data, args.times, args.permutations)))
        return
    fractions = [float(Fraction(f)) for f in args.fractions.split(",")]
    runs = []
    with tempfile.TemporaryDirectory(dir=args.keep) as tmp:
        for fraction in fractions:
            proc = subprocess.run(
                [
                    sys.executable, __file__, "--one", str(fraction),
                    "--data", str(Path(tmp) / f"f{fraction:g}"),
                    "--times", str(args.times), "--permutations", str(args.permutations),
                ],
                check=True, capture_output=True, text=True,
                env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")},
            )  # fmt: skip
            run = json.loads(proc.stdout.strip().splitlines()[-1])
            runs.append(run)
            print(f"fraction {fraction:g}: {run['images']} images, {run['epochs']} epochs")
            for name in STAGES:
                s = run["stages"][name]
                print(f"  {name:13s} {s['seconds']:8.2f} s  peak RSS {s['peak_rss_mb']:8.0f} MiB")
    growth = {}
    for name in STAGES:
        exponents = []
        for a, b in itertools.pairwise(runs):
            ta, tb = a["stages"][name]["seconds"], b["stages"][name]["seconds"]
            wa, wb = a["stages"][name]["work"], b["stages"][name]["work"]
            exponents.append(math.log(tb / ta) / math.log(wb / wa))
            print(
                f"{name:13s} {a['fraction']:g} -> {b['fraction']:g}: time x{tb / ta:.2f} for "
                f"work x{wb / wa:.2f} (exponent {exponents[-1]:.2f})"
            )
        last = runs[-1]["stages"][name]
        full = 1.0 / runs[-1]["fraction"]
        scale = full**2 if name in ("rsa", "permutations") else full
        growth[name] = {
            "exponents": exponents,
            "peak_rss_mb_largest": last["peak_rss_mb"],
            "seconds_full_estimate": last["seconds"] * scale,
        }
    worst = max(max(g["exponents"], default=0.0) for g in growth.values())
    peak = max(g["peak_rss_mb_largest"] for g in growth.values())
    report(
        "bench_scale",
        f"largest growth exponent {worst:.2f} (time ratio vs work ratio, 1 = linear in work); "
        f"peak RSS {peak:.0f} MiB at fraction {runs[-1]['fraction']:g}",
        runs=runs,
        growth=growth,
    )


if __name__ == "__main__":
    main()
