"""Mask-aligned features and readout maps at THINGS size, against the 30-minute budget.

One THINGS-MEG participant: 22,248 images, ResNet50 ``layer2`` maps (512 channels x 28 x 28
float32, 35 GB in all: never held whole; they are made chunk by chunk from a fixed 16-
dimensional latent per image, as a feature store would yield them), object masks (discs of
varying position and size on the grid), and responses of 272 sensors x 141 time points
(pure noise: every window's readout then runs its full number of alternations, the slow
case). Stages, each timed: the mask-aligned features (``pooled_features`` over every
region of ``region_weights``), the channel PCA and pooling of ``reduce_maps``, the masks'
pooling, and ``readout_table`` with the default settings (14 windows of 0.1 s, 5 session
folds, 20 refits with shuffled masks). Prints each stage's time, the total against the
issue's budget of 30 minutes on this machine (the ratio), and the peak resident memory
against 24 GB.

Run: ``python bench/bench_where.py [--images N] [--device cuda]`` (smaller N for a quick
look; the figure to quote is the default, full size).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np

from _common import peak_rss_mb, report

THINGS_IMAGES, CHANNELS, SIDE, SENSORS, TIMES = 22_248, 512, 28, 272, 141
LATENT = 16
BUDGET_S = 30 * 60
MEMORY_MB = 24 * 1024


class SyntheticMaps:
    """(image, 512, 28, 28) float32 maps made on demand: latent (image, 16) @ basis."""

    def __init__(self, n_images: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.latent = rng.standard_normal((n_images, LATENT), dtype=np.float32)
        self.basis = rng.standard_normal((LATENT, CHANNELS * SIDE * SIDE), dtype=np.float32)
        self.shape = (n_images, CHANNELS, SIDE, SIDE)
        self.ndim = 4
        self.dtype = np.dtype(np.float32)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: slice) -> np.ndarray:
        rows = self.latent[index]
        return (rows @ self.basis).reshape(len(rows), CHANNELS, SIDE, SIDE)


def disc_masks(n_images: int, seed: int = 1) -> np.ndarray:
    """(image, 28, 28) soft discs near the centre, radius 4-11 cells (THINGS-like objects)."""
    rng = np.random.default_rng(seed)
    centre = rng.normal(SIDE / 2 - 0.5, 3.0, (n_images, 2))
    radius = rng.uniform(4.0, 11.0, n_images)
    yy, xx = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32)
    masks = np.empty((n_images, SIDE, SIDE), dtype=np.float32)
    for start in range(0, n_images, 4096):
        stop = min(start + 4096, n_images)
        dy = yy[None] - centre[start:stop, 0, None, None]
        dx = xx[None] - centre[start:stop, 1, None, None]
        distance = np.sqrt(dy**2 + dx**2)
        masks[start:stop] = np.clip(radius[start:stop, None, None] - distance + 0.5, 0, 1)
    return masks


def main() -> int:
    """Run every stage once; print the times and the ratio to the budget."""
    from figureground.analysis.mask_aligned import pooled_features, region_weights
    from figureground.analysis.readout_inputs import pool_masks, reduce_maps
    from figureground.analysis.readout_ratio import ReadoutSettings, readout_table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=THINGS_IMAGES)
    parser.add_argument("--device", default=None, help="torch device of the readout's s-step")
    args = parser.parse_args()
    n_images = args.images
    stages: dict[str, float] = {}

    def timed(name: str, func: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        value = func()
        stages[name] = time.perf_counter() - start
        print(f"  {name}: {stages[name]:.1f} s (peak RSS {peak_rss_mb():.0f} MB)", flush=True)
        return value

    print(f"bench_where: {n_images} images x {CHANNELS} x {SIDE} x {SIDE}", flush=True)
    maps = SyntheticMaps(n_images)
    masks = disc_masks(n_images)
    rng = np.random.default_rng(2)
    responses = rng.standard_normal((n_images, SENSORS, TIMES), dtype=np.float32)
    times = np.round(np.linspace(-0.1, 1.3, TIMES), 6)
    sessions = np.arange(n_images) % 12
    print(f"  inputs made (peak RSS {peak_rss_mb():.0f} MB)", flush=True)

    def one_pass() -> None:
        for start in range(0, n_images, 256):
            maps[start : start + 256]

    timed("make maps (one pass over the layer: part of each next two stages)", one_pass)
    weights = region_weights(masks)
    timed("mask-aligned features", lambda: pooled_features(maps, weights))
    reduced, _ = timed("reduce maps (channel PCA, 14 x 14)", lambda: reduce_maps(maps))
    pooled_masks = timed("pool masks", lambda: pool_masks(masks))
    timed(
        "readout (14 windows, 5 folds, 20 shuffles)",
        lambda: readout_table(
            reduced, pooled_masks, responses, times, sessions, ReadoutSettings(), args.device
        ),
    )
    total = sum(value for name, value in stages.items() if not name.startswith("make maps"))
    peak = peak_rss_mb()
    budget = (
        f"budget 30 min: ratio {total / BUDGET_S:.2f}"
        if n_images == THINGS_IMAGES
        else "not THINGS size, so no ratio to the 30-min budget (time is not linear in images)"
    )
    summary = (
        f"{n_images} images: {total / 60:.1f} min in all ({budget}), peak RSS "
        f"{peak / 1024:.1f} GB (limit 24 GB: ratio {peak / MEMORY_MB:.2f})"
    )
    report(
        "bench_where",
        summary,
        images=n_images,
        stages_s=stages,
        total_s=total,
        peak_rss_mb=peak,
        device=args.device or "cpu",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
