"""OpenCV GrabCut (``grabcut``): background removal that needs no model file."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from figureground.errors import ImageLoadError
from figureground.variants.segmenters.base import SegmenterSpec


@dataclass(frozen=True)
class GrabCutSegmenter:
    """OpenCV GrabCut started from a centred rectangle; deterministic for a given seed.

    The image is segmented at most ``max_side`` pixels on its long side and the mask brought
    back to full size by linear interpolation, which gives soft edges.
    """

    margin: float = 0.05
    iterations: int = 5
    max_side: int = 512
    seed: int = 0

    def __call__(self, rgb: np.ndarray, image_id: str) -> np.ndarray:
        """Soft alpha of ``rgb`` (H, W, 3 uint8) as float32 (H, W) in [0, 1]."""
        import cv2

        height, width = rgb.shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        small = (
            rgb
            if scale == 1.0
            else cv2.resize(
                rgb,
                (max(1, round(width * scale)), max(1, round(height * scale))),
                interpolation=cv2.INTER_AREA,
            )
        )
        h, w = small.shape[:2]
        dx, dy = max(1, round(w * self.margin)), max(1, round(h * self.margin))
        if w - 2 * dx < 2 or h - 2 * dy < 2:
            raise ImageLoadError(f"{image_id}: image of {width}x{height} is too small for GrabCut")
        mask = np.zeros((h, w), np.uint8)
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        cv2.setRNGSeed(self.seed)
        cv2.grabCut(
            cv2.cvtColor(small, cv2.COLOR_RGB2BGR),
            mask,
            (dx, dy, w - 2 * dx, h - 2 * dy),
            bgd,
            fgd,
            self.iterations,
            cv2.GC_INIT_WITH_RECT,
        )
        alpha = np.isin(mask, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.float32)
        if scale != 1.0:
            alpha = np.clip(
                cv2.resize(alpha, (width, height), interpolation=cv2.INTER_LINEAR), 0.0, 1.0
            )
        return alpha


def resolve_grabcut(_: str) -> SegmenterSpec:
    """GrabCut needs no file."""
    return SegmenterSpec(kind="grabcut", spec="grabcut")
