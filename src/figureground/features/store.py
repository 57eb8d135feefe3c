"""The feature store: a Zarr v3 store, one group per variant, one array per layer.

Layout (readable with ``xarray.open_zarr(path, group=variant)``)::

    features.zarr/                    root attrs: provenance, params_hash, variants
      original/                       group attrs: provenance, failed (skipped) images
        <layer>   (image, channel, y, x) or (image, channel)   chunk = batch along image
        image     (image)  image ids            concept (image)  concept names
        sha256    (image)  SHA-256 of each input file, written with its batch
        checksum  (image)  SHA-256 of each image's stored values (all layers), written with it
        done      (image)  int8: 0 pending, 1 stored, -1 could not be decoded (NaN features)
      no_background/ ...   no_foreground/ ...   (for a variants folder)

Dimension names are ``channel``, ``y``, ``x`` when every layer agrees on their size, otherwise
``<layer>_channel`` etc. for every layer. The store is created whole, then renamed into place;
each batch is written by region (chunk-aligned, so chunk files are written once and atomically
by zarr) and ``done`` is written *after* the batch's data, so a killed run leaves a store that
opens and whose ``done`` images are complete; a rerun computes only the rest. On resume the
stored values of ``done`` images are checked against ``checksum``: a truncated, missing or
edited chunk file is named in a warning and its chunk computed again.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from figureground import logs
from figureground.conditions import ORIGINAL
from figureground.errors import DataError, UsageError
from figureground.features.store_format import (
    DONE,
    FAILED,
    PENDING,
    SPATIAL_DIMS,
    image_checksums,
    layer_dims,
    quiet_zarr,
    read_root_attrs,
    remove_partial_files,
)
from figureground.features.store_write import GroupWriter, create_store

__all__ = [
    "DONE",
    "FAILED",
    "PENDING",
    "SPATIAL_DIMS",
    "FeatureStore",
    "GroupWriter",
    "create_store",
    "image_checksums",
    "layer_dims",
    "open_features",
    "open_layer",
    "quiet_zarr",
    "read_layer",
    "read_root_attrs",
    "remove_partial_files",
]

log = logs.get_logger(__name__)


@dataclass(frozen=True)
class FeatureStore:
    """A run's feature store and what made it: the features stage's hand-off to the analyses.

    ``key`` names it (``resnet50__IMAGENET1K_V1``); ``replaces`` / ``replaced_because`` say
    which model it stands in for when that model's weights could not be had.
    """

    path: Path
    model: str
    weights: str
    layers: tuple[str, ...]
    key: str
    replaces: str = ""
    replaced_because: str = ""

    def record(self) -> dict[str, str]:
        """Its provenance record (the text of each field; the replacement only when set)."""
        fields = {
            "store": str(self.path),
            "model": self.model,
            "weights": self.weights,
            "layers": str(list(self.layers)),
            "key": self.key,
        }
        if self.replaces:
            fields.update(replaces=self.replaces, replaced_because=self.replaced_because)
        return fields


def open_features(
    path: str | os.PathLike, variant: str = ORIGINAL, allow_partial: bool = False
) -> Any:
    """Open one variant group as an ``xarray.Dataset`` holding only stored (``done``) images.

    Raises
    ------
    UsageError
        The store or the variant group does not exist.
    DataError
        Some images are still pending (the run was interrupted) unless ``allow_partial``.
    """
    import xarray as xr

    path = Path(path)
    variants = read_root_attrs(path).get("variants", [])
    if variant not in variants:
        raise UsageError(
            f"feature store {path} has no variant {variant!r}; it holds "
            f"{', '.join(variants) or 'none'}"
        )
    with quiet_zarr():
        dataset = xr.open_zarr(path, group=variant, zarr_format=3)
    status = np.asarray(dataset["done"].values)
    pending = int((status == PENDING).sum())
    if pending and not allow_partial:
        raise DataError(
            f"feature store {path} ({variant}) is incomplete: {pending} of "
            f"{status.size} images pending; rerun the features command to finish "
            "it, or pass allow_partial=True"
        )
    failed = int((status == FAILED).sum())
    if failed:
        log.warning(
            "%s (%s): %d images could not be decoded and are left out", path, variant, failed
        )
    dataset = dataset.isel(image=np.flatnonzero(status == DONE))
    # Zarr v3 returns numpy's variable-width StringDType; give readers plain unicode ids
    # (StringDType cannot be cast with .astype(str) and surprises pandas/xarray joins).
    text_coords = {
        name: np.array([str(v) for v in dataset[name].values], dtype=str)
        for name in dataset.coords
        if dataset[name].dtype.kind == "T"
    }
    return dataset.assign_coords(text_coords)


def open_layer(
    path: str | os.PathLike, variant: str, layer: str, allow_partial: bool = False
) -> Any:
    """One layer of one variant group as a lazy ``xarray.DataArray`` of the stored images.

    Coordinates as :func:`open_features` (``image``, ``concept``, ...); values are read from
    the store only when used, so slicing a chunk of images reads only that chunk.

    Raises
    ------
    UsageError
        The store, the variant group or the layer does not exist.
    DataError
        Some images are still pending, unless ``allow_partial``.
    """
    dataset = open_features(path, variant, allow_partial)
    if layer not in dataset.data_vars:
        raise UsageError(
            f"feature store {path} ({variant}) has no layer {layer!r}; it holds "
            f"{', '.join(sorted(map(str, dataset.data_vars))) or 'none'}"
        )
    return dataset[layer]


def read_layer(
    path: str | os.PathLike, variant: str, layer: str, image_ids: Sequence[str] | None = None
) -> np.ndarray:
    """Values of one layer of one variant group, for ``image_ids`` in that order (default all).

    Raises
    ------
    UsageError
        As :func:`open_layer`.
    DataError
        Some of ``image_ids`` are not stored images of the group.
    """
    array = open_layer(path, variant, layer)
    if image_ids is not None:
        wanted = [str(i) for i in image_ids]
        missing = sorted(set(wanted) - {str(i) for i in array["image"].values})
        if missing:
            raise DataError(
                f"feature store {path} ({variant}) lacks {len(missing)} of the requested "
                f"images (e.g. {missing[:3]})"
            )
        array = array.sel(image=wanted)
    return np.asarray(array.values)
