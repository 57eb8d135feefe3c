"""Chunked THINGS-MEG loading: peak memory vs file size, time vs a raw read of the same bytes.

A THINGS-MEG participant file is 27,048 epochs x 271 sensors x 281 samples float32 (8.2 GB).
By default this benchmark writes 1/8 of that (3,381 epochs, the real trial mix scaled: exp
images seen once, 25 test images x 12 sessions, catch trials) and extrapolates. Each
measurement runs in its own child process so that its peak RSS is its own.

Usage: python bench/bench_meg_load.py [--fraction 0.125] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import peak_rss_mb, report

FULL_EPOCHS, N_CH, N_T = 27_048, 271, 281


def generate(folder: Path, fraction: float) -> Path:
    """Write a THINGS-MEG-shaped epochs file + attributes CSV (random data) into ``folder``."""
    import mne
    import numpy as np
    import pandas as pd

    from figureground.neural.sensors import things_meg_info

    n_epochs = round(FULL_EPOCHS * fraction)
    n_test, n_catch = max(1, round(200 * fraction)), round(2400 * fraction)
    n_exp = n_epochs - n_test * 12 - n_catch
    rng = np.random.default_rng(0)
    rows = [
        ("exp", f"images_meg/c{i // 12}/c{i // 12}_{i % 12 + 1:02d}b.jpg", 1 + i % 12)
        for i in range(n_exp)
    ]
    rows += [
        ("test", f"images_test_meg/t{j}_13s.jpg", s) for j in range(n_test) for s in range(1, 13)
    ]
    rows += [
        ("catch", f"images_catch_meg/catch{k % 100 + 1:03d}.jpg", 1 + k % 12)
        for k in range(n_catch)
    ]
    meta = pd.DataFrame(rows, columns=["trial_type", "image_path", "session_nr"])
    meta = meta.iloc[rng.permutation(len(meta))].reset_index(drop=True)
    data = rng.standard_normal((len(meta), N_CH, N_T), dtype=np.float32) * 1e-13
    epochs = mne.EpochsArray(
        data, things_meg_info(200.0), tmin=-0.1, metadata=meta, verbose="error"
    )
    path = folder / "preprocessed_P1-epo.fif"
    epochs.save(path, fmt="single", overwrite=True, verbose="error")
    meta.to_csv(folder / "sample_attributes_P1.csv", index=False)
    return path


def raw_read(path: Path) -> float:
    """Seconds to read every byte of ``path`` in 64 MiB blocks (the baseline)."""
    start = time.perf_counter()
    with open(path, "rb") as handle:
        while handle.read(64 << 20):
            pass
    return time.perf_counter() - start


def measure(path: Path, mode: str) -> dict:
    """Load in this process; return its time and peak RSS."""
    from figureground import logs
    from figureground.neural import things_meg

    logs.setup(quiet=True)
    start = time.perf_counter()
    if mode == "raw":
        seconds = raw_read(path)
        shape = []
    else:
        kwargs = {"exp": {}, "concept": {"average": "concept"}, "test": {"trial_type": "test"}}
        result = things_meg.load(path, path.parent / "sample_attributes_P1.csv", **kwargs[mode])
        seconds, shape = time.perf_counter() - start, list(result.shape)
    return {"seconds": seconds, "peak_rss_mb": peak_rss_mb(), "shape": shape}


def _child(path: Path, mode: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--measure", mode, str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fraction", type=float, default=0.125)
    parser.add_argument("--keep", type=Path, default=None, help="folder to write/reuse the file")
    parser.add_argument("--measure", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure[1]), args.measure[0])))
        return
    with tempfile.TemporaryDirectory(prefix="bench_meg_") as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "preprocessed_P1-epo.fif"
        if not path.exists():
            subprocess.run(
                [
                    sys.executable,
                    "-c",
                    f"import sys; sys.path.insert(0, "
                    f"{str(Path(__file__).parent)!r}); import bench_meg_load as b; "
                    f"from pathlib import Path; b.generate(Path({str(folder)!r}), "
                    f"{args.fraction})",
                ],
                check=True,
            )
        size_mb = path.stat().st_size / 2**20
        raw_read(path)  # warm the page cache so both sides read from memory
        results = {mode: _child(path, mode) for mode in ("raw", "exp", "concept", "test")}
    raw = results["raw"]["seconds"]
    figures = {
        "fraction_of_real_file": args.fraction,
        "file_mb": round(size_mb, 1),
        "raw_read_s": round(raw, 3),
    }
    for mode in ("exp", "concept", "test"):
        item = results[mode]
        figures[mode] = {
            "seconds": round(item["seconds"], 2),
            "time_vs_raw_read": round(item["seconds"] / raw, 1),
            "peak_rss_mb": round(item["peak_rss_mb"]),
            "peak_rss_vs_file": round(item["peak_rss_mb"] / size_mb, 2),
            "output_shape": item["shape"],
            "extrapolated_full_file_s": round(item["seconds"] / args.fraction),
        }
    figures["raw_process_peak_rss_mb"] = round(results["raw"]["peak_rss_mb"])
    summary = (
        f"{size_mb:.0f} MB file ({args.fraction:g} of real): exp load "
        f"{figures['exp']['seconds']} s = {figures['exp']['time_vs_raw_read']}x raw read, "
        f"peak RSS {figures['exp']['peak_rss_vs_file']}x file (output itself "
        f"{figures['exp']['output_shape'][0] / round(FULL_EPOCHS * args.fraction):.2f}x);"
        f" concept average peak RSS {figures['concept']['peak_rss_vs_file']}x file"
    )
    report("bench_meg_load", summary, **figures)


if __name__ == "__main__":
    main()
