"""Read the object masks a variants run wrote (``OUT/mask/<rel>.png``, 8-bit soft alpha)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from figureground.errors import DataError
from figureground.variants.image import variant_path


def read_mask(variants_dir: str | Path, rel_path: str) -> np.ndarray:
    """The soft alpha (H, W) in [0, 1] of the image at ``rel_path`` (relative to the stimuli)."""
    import cv2

    path = variant_path(Path(variants_dir), rel_path, "mask")
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED) if path.is_file() else None
    if mask is None:
        raise DataError(f"mask {path} is missing or unreadable; rerun the variants stage")
    if mask.ndim == 3:
        mask = mask[..., 0]
    return mask.astype(np.float32) / float(np.iinfo(mask.dtype).max)


def mask_paths(variants_dir: str | Path, image_ids: Sequence[str]) -> dict[str, str]:
    """Relative stimulus path of each of ``image_ids`` that the variants run made (status ok)."""
    csv = Path(variants_dir) / "variants.csv"
    table = pd.read_csv(
        csv, keep_default_na=False, dtype={"image_id": str, "path": str, "status": str}
    )
    missing_columns = {"image_id", "path", "status"} - set(table.columns)
    if missing_columns:
        raise DataError(f"{csv} lacks column(s) {', '.join(sorted(missing_columns))}")
    ok = table[table["status"] == "ok"].set_index("image_id")["path"]
    missing = [i for i in image_ids if i not in ok.index]
    if missing:
        raise DataError(
            f"{variants_dir}: no mask for {len(missing)} image(s) (e.g. {missing[:3]}); "
            "their variants failed or were never made"
        )
    return {i: str(ok[i]) for i in image_ids}


def mask_files(variants_dir: str | Path, image_ids: Sequence[str]) -> dict[str, Path]:
    """The mask file of each of ``image_ids`` that the variants run made."""
    paths = mask_paths(variants_dir, image_ids)
    return {i: variant_path(Path(variants_dir), rel, "mask") for i, rel in paths.items()}
