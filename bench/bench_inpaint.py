"""Inpainting at reduced resolution vs full resolution on a large photo.

figureground fills the object region of large images at a reduced long side and pastes the
fill back into the full-resolution image (object region only). This measures, in the same
run, the time of full-resolution ``cv2.inpaint`` (the peer: what the seed method does) and of
reduced-resolution filling, and how far the two fills differ inside the object region.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import skimage.data

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import best_time, report
from figureground.variants.inpaint import inpaint, object_mask

WIDTH, HEIGHT = 3000, 2000


def large_scene() -> tuple[np.ndarray, np.ndarray]:
    """A 3000x2000 upscaled photo and a dilated elliptical object mask (~25 % of pixels)."""
    rgb = cv2.resize(skimage.data.coffee(), (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)
    alpha = np.zeros((HEIGHT, WIDTH), np.float32)
    cv2.ellipse(alpha, (WIDTH // 2, HEIGHT // 2), (WIDTH // 5, HEIGHT // 3), 0, 0, 360, 1.0, -1)
    return rgb, object_mask(alpha, 0.5, 5)


def main() -> None:
    """Time full-resolution and reduced-resolution Telea filling; print ratios and errors."""
    cv2.setNumThreads(2)
    rgb, mask = large_scene()
    inside = mask > 0
    full = inpaint(rgb, mask, "telea", 3)
    full_s = best_time(lambda: inpaint(rgb, mask, "telea", 3), repeats=2)
    figures: dict[str, object] = {
        "image": f"{WIDTH}x{HEIGHT}",
        "mask_fraction": round(float(inside.mean()), 3),
        "full_resolution_s": round(full_s, 3),
    }
    # Context: how far two accepted full-resolution methods (Telea vs Navier-Stokes) differ.
    navier = inpaint(rgb, mask, "ns", 3)
    method_diff = float(np.abs(navier[inside].astype(np.int16) - full[inside]).mean())
    figures["telea_vs_ns_mean_abs_diff"] = round(method_diff, 2)
    parts = []
    for max_side in (1024, 512):
        reduced = inpaint(rgb, mask, "telea", 3, max_side=max_side)
        seconds = best_time(
            lambda m=max_side: inpaint(rgb, mask, "telea", 3, max_side=m), repeats=3
        )
        diff = np.abs(reduced[inside].astype(np.int16) - full[inside])
        outside_equal = bool((reduced[~inside] == rgb[~inside]).all())
        figures[f"max_side_{max_side}"] = {
            "seconds": round(seconds, 3),
            "speedup": round(full_s / seconds, 1),
            "mean_abs_diff": round(float(diff.mean()), 2),
            "p99_abs_diff": float(np.percentile(diff, 99)),
            "outside_unchanged": outside_equal,
        }
        parts.append(
            f"max side {max_side}: {seconds:.2f} s ({full_s / seconds:.1f}x faster), "
            f"fill differs by {diff.mean():.1f} grey levels on average"
        )
    summary = (
        f"full resolution {full_s:.2f} s; "
        + "; ".join(parts)
        + f" (Telea vs Navier-Stokes at full resolution: {method_diff:.1f})"
    )
    report("bench_inpaint", summary, **figures)


if __name__ == "__main__":
    main()
