"""``preprocess-meg`` on one THINGS-size session: time per run and peak memory, against 4 GB.

A synthetic BIDS session of ``--runs`` runs (default 10, one real session), each
``--seconds`` long (default 340 s at 1200 Hz, about a real run) with a trial every 1.5 s
(226 trials), the real 272 sensor names plus references, eye tracker, photodiode and
trigger channels (the test fixture's raw, ``tests/neural/test_preprocess_meg.py``), written with
mne-bids as FIF. Then ``preprocess_participant`` runs in a child process, so that its peak
RSS is its own. Prints the time per run, the total, and the peak RSS against the issue's
4 GB (the ratio), and the size of one raw run for scale.

Run: ``python bench/bench_preprocess.py [--runs 10] [--seconds 340] [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "neural"))

from _common import report

LIMIT_MB = 4 * 1024
TRIAL_EVERY = 1800  # samples (1.5 s at 1200 Hz)


def write_session(root: Path, runs: int, seconds: float) -> int:
    """A BIDS session of ``runs`` runs; returns the bytes of one raw run file."""
    import numpy as np
    import pandas as pd
    import test_preprocess_meg as fixture
    from mne_bids import write_raw_bids

    fixture.N_SAMPLES = int(seconds * fixture.SFREQ)
    onsets = np.arange(2400, fixture.N_SAMPLES - 2400, TRIAL_EVERY)
    rng = np.random.default_rng(0)
    size = 0
    for run in range(1, runs + 1):
        path = fixture._bids_path(root, "01", f"{run:02d}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            write_raw_bids(
                fixture._raw(rng, onsets), path, format="FIF", allow_preload=True, verbose="error"
            )
        trials = pd.DataFrame(
            {
                "trial_type": "exp",
                "things_category_nr": np.arange(len(onsets)) + 1.0,
                "things_image_nr": np.arange(len(onsets)) + 1.0 + 1000 * run,
            }
        )
        fixture._write_events(
            path.copy().update(suffix="events", extension=".tsv").fpath, trials, onsets
        )
        size = max(size, sum(f.stat().st_size for f in path.fpath.parent.glob("*.fif")) // run)
        print(f"  wrote run {run} ({len(onsets)} trials)", flush=True)
    return size


CHILD = """
import json, resource, sys, time
from figureground.neural.preprocess_io import preprocess_participant
start = time.perf_counter()
result = preprocess_participant(sys.argv[1], "BIGMEG1", sys.argv[2])
print(json.dumps({"seconds": time.perf_counter() - start, "n_epochs": result.n_epochs,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> int:
    """Write the session, preprocess it in a child process, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=340.0)
    parser.add_argument("--keep", type=Path, default=None, help="folder to keep the data in")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench_preprocess_"))
    root, out = folder / "bids", folder / "out"
    print(f"bench_preprocess: {args.runs} runs x {args.seconds:.0f} s in {folder}", flush=True)
    run_bytes = write_session(root, args.runs, args.seconds)
    start = time.perf_counter()
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(root), str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    figures = json.loads(child.stdout.strip().splitlines()[-1])
    peak = figures["peak_mb"]
    summary = (
        f"{args.runs} runs x {args.seconds:.0f} s ({figures['n_epochs']} epochs): "
        f"{figures['seconds'] / args.runs:.1f} s per run, {wall:.0f} s in all; peak RSS "
        f"{peak / 1024:.2f} GB (limit 4 GB: ratio {peak / LIMIT_MB:.2f}); one raw run "
        f"{run_bytes / 2**30:.2f} GB"
    )
    report(
        "bench_preprocess",
        summary,
        runs=args.runs,
        seconds_per_run=figures["seconds"] / args.runs,
        peak_rss_mb=peak,
        raw_run_bytes=run_bytes,
    )
    if args.keep is None:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
