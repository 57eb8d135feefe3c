"""Given masks (``masks:<dir>``): precomputed ``<image_id>.png`` files read as soft alpha."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from figureground.errors import ImageLoadError, UsageError
from figureground.fsutil import resolve_inside
from figureground.variants.segmenters.base import SegmenterSpec


@dataclass(frozen=True)
class MaskDirSegmenter:
    """Precomputed masks ``<mask_dir>/<image_id>.png`` (8- or 16-bit grey) as soft alpha."""

    mask_dir: Path

    def __call__(self, rgb: np.ndarray, image_id: str) -> np.ndarray:
        """The stored mask of ``image_id``, checked to match the image's size."""
        import cv2

        path = resolve_inside(self.mask_dir, f"{image_id}.png")
        mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED) if path.is_file() else None
        if mask is None:
            raise ImageLoadError(f"mask {path} is missing or not a readable PNG")
        if mask.ndim == 3:
            mask = mask[..., 3] if mask.shape[2] == 4 else cv2.cvtColor(mask, cv2.COLOR_BGR2GRAY)
        if mask.shape != rgb.shape[:2]:
            raise ImageLoadError(
                f"mask {path} is {mask.shape[1]}x{mask.shape[0]}, expected "
                f"{rgb.shape[1]}x{rgb.shape[0]} like its image"
            )
        return mask.astype(np.float32) / float(np.iinfo(mask.dtype).max)


def resolve_masks(directory: str) -> SegmenterSpec:
    """Check the mask folder exists."""
    if not directory or not Path(directory).is_dir():
        raise UsageError(
            f"mask folder {directory!r} does not exist; expected masks:<dir> with "
            "<image_id>.png files"
        )
    return SegmenterSpec(
        kind="masks", spec=f"masks:{directory}", mask_dir=str(Path(directory).resolve())
    )
