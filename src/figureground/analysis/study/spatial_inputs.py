"""Inputs of the analyses on the original images' layer grid: maps, masks and pixels.

The mask-aligned variance partitioning and the readout maps read a spatial layer of the
*original* images (no variant), the object masks of the variants stage on that layer's grid,
and (for the low-level nuisance band) the original photos. The maps are opened lazily:
slicing a chunk of images reads only that chunk from the feature store.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from figureground import logs
from figureground.conditions import ORIGINAL
from figureground.errors import DataError, UsageError
from figureground.features.store import FeatureStore

log = logs.get_logger(__name__)


class LazyMaps:
    """(image, channel, y, x) maps of a store's layer, read a slice of images at a time."""

    def __init__(self, array: Any) -> None:
        self._array = array
        self.shape = tuple(int(n) for n in array.shape)
        self.ndim = len(self.shape)
        self.dtype = np.dtype(array.dtype)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: Any) -> np.ndarray:
        return np.asarray(self._array[index])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        values = np.asarray(self._array)
        return values if dtype is None else values.astype(dtype)


@dataclass
class SpatialLayer:
    """One layer of the original images with its grid, ids, preprocessing and masks."""

    key: str
    model: str
    weights: str
    layer: str
    maps: LazyMaps
    image_ids: list[str]
    attrs: dict[str, Any]

    @property
    def grid(self) -> tuple[int, int]:
        """(rows, cols) of the layer's map."""
        return self.maps.shape[2], self.maps.shape[3]

    def descriptors(self) -> dict[str, str]:
        """Columns naming the model, weights and layer in result tables."""
        return {"model": self.model, "weights": self.weights, "layer": self.layer}


def spatial_layer(info: FeatureStore, wanted: str | None) -> SpatialLayer | None:
    """The ``wanted`` layer (None: the first with a map) of a store's original images.

    Returns None when the store has no layer with a spatial map; raises UsageError when
    ``wanted`` is not one of its layers or has no map.
    """
    from figureground.features.store import open_features, read_root_attrs

    dataset = open_features(info.path, ORIGINAL)
    layers = [str(name) for name in info.layers]
    if wanted is not None and wanted not in layers:
        raise UsageError(f"layer {wanted!r} is not analysed in {info.key}; it has {layers}")
    candidates = [wanted] if wanted is not None else layers
    for layer in candidates:
        array = dataset[layer]
        if array.ndim == 4:
            ids = [str(i) for i in array["image"].values]
            return SpatialLayer(
                key=str(info.key),
                model=str(info.model),
                weights=str(info.weights),
                layer=layer,
                maps=LazyMaps(array.data),
                image_ids=ids,
                attrs=read_root_attrs(info.path),
            )
        if wanted is not None:
            raise UsageError(
                f"layer {wanted!r} of {info.key} has no spatial map (shape {array.shape})"
            )
    return None


def aligned_rows(layer_ids: Sequence[str], meg_ids: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Rows of the layer (in MEG order) for the images both hold, and those ids.

    Raises DataError when fewer than 3 images are shared.
    """
    position = {image: i for i, image in enumerate(layer_ids)}
    shared = [str(i) for i in meg_ids if str(i) in position]
    if len(shared) < 3:
        raise DataError(
            f"only {len(shared)} images are both in the feature store and the MEG; expected >= 3"
        )
    return np.array([position[i] for i in shared], dtype=int), shared


def source_root(variants_csv: Path) -> Path | None:
    """The stimulus root a variants run read its images from (``variants.json``)."""
    meta = Path(variants_csv).parent / "variants.json"
    try:
        root = json.loads(meta.read_text()).get("source_root")
    except (OSError, ValueError):
        return None
    return Path(root) if root else None


def original_images(
    variants_csv: Path, image_ids: Sequence[str]
) -> Iterator[tuple[str, np.ndarray | None]]:
    """(image id, RGB uint8 or None when unreadable) of each original photo, in order.

    Paths come from ``variants.csv`` and are resolved inside the stimulus root; an image
    that cannot be read is logged and yields None (the caller leaves it out).
    """
    from figureground.errors import ImageLoadError
    from figureground.fsutil import resolve_inside
    from figureground.stimuli.loading import load_rgb

    root = source_root(variants_csv)
    if root is None:
        raise DataError(f"{Path(variants_csv).parent / 'variants.json'} names no source_root")
    table = pd.read_csv(variants_csv, dtype={"image_id": str, "path": str})
    paths = dict(zip(table["image_id"], table["path"], strict=True))
    for image in image_ids:
        if image not in paths:
            log.warning("%s is not in %s; left out of the low-level band", image, variants_csv)
            yield image, None
            continue
        try:
            yield image, load_rgb(resolve_inside(root, paths[image]))
        except (ImageLoadError, UsageError, OSError) as exc:
            log.warning("%s: %s; left out of the low-level band", image, exc)
            yield image, None
