"""Object masks on a layer's grid, for the ``region`` view (see ``analysis/views.py``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from figureground import logs
from figureground.analysis.views import mask_on_grid, preprocessing_of

log = logs.get_logger(__name__)


class MaskGrids:
    """Masks of a variants run, brought onto each feature store's grid (cached per grid)."""

    def __init__(self, variants_dir: str | Path) -> None:
        self.variants_dir = Path(variants_dir)
        self._cache: dict[tuple[Any, ...], np.ndarray] = {}

    def on_grid(
        self, attrs: Mapping[str, Any], image_ids: Sequence[str], grid: tuple[int, int]
    ) -> np.ndarray:
        """(image, rows, cols) object coverage of each cell, as the network saw the image."""
        from figureground.variants.masks import mask_paths, read_mask

        resize, crop = preprocessing_of(attrs)
        key = (resize, crop, tuple(grid), tuple(image_ids))
        if key not in self._cache:
            paths = mask_paths(self.variants_dir, list(image_ids))
            self._cache[key] = np.stack(
                [
                    mask_on_grid(read_mask(self.variants_dir, paths[i]), grid, resize, crop)
                    for i in image_ids
                ]
            )
        return self._cache[key]


def find_mask_grids(variants_csv: Path | None) -> MaskGrids | None:
    """Mask grids of the run's variants folder, or None when there is none."""
    if variants_csv is None or not Path(variants_csv).is_file():
        return None
    return MaskGrids(Path(variants_csv).parent)
