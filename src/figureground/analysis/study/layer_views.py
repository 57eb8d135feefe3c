"""A layer's features as a view reads them (``analyses.views``), with the region masks, and the
patterns of the image or concept level that RSA compares."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from figureground.errors import DataError
from figureground.features.store import FeatureStore


def viewed_features(
    features: Mapping[str, Any], view: str, masks: np.ndarray | None
) -> dict[str, Any]:
    """Each condition's features as (image, feature) DataArrays in ``view``."""
    import xarray as xr

    from figureground.analysis.views import view_values

    values = view_values({c: a.values for c, a in features.items()}, view, masks)
    out = {}
    for condition, array in features.items():
        coords: dict[str, Any] = {"image": array["image"].values}
        if "concept" in array.coords:
            coords["concept"] = ("image", array["concept"].values)
        out[condition] = xr.DataArray(
            values[condition], dims=("image", "feature"), coords=coords, attrs=array.attrs
        )
    return out


def region_masks(
    view: str, features: Mapping[str, Any], info: FeatureStore, mask_grids: Any
) -> np.ndarray | None:
    """Each image's object mask on the layer's grid for the ``region`` view (else None)."""
    if view != "region":
        return None
    array = next(iter(features.values()))
    grid = tuple(array.shape[2:4]) if array.ndim >= 4 else (1, 1)
    ids = [str(i) for i in array["image"].values]
    from figureground.features.store import read_root_attrs

    return mask_grids.on_grid(read_root_attrs(info.path), ids, grid)


def level_patterns(
    meg: Any, features: Mapping[str, Any], level: str, image_ids: Sequence[str] | None = None
) -> tuple[np.ndarray, dict[str, np.ndarray], list[str]]:
    """MEG patterns (n, channel, time) and flattened model patterns (n, features) of a level.

    Images are those in the MEG data, every condition and ``image_ids`` (when given), in MEG
    order; the concept level averages them per concept (concepts in sorted order), as
    :func:`figureground.analysis.rsa.rsa_timecourse` does.
    """
    meg_ids = [str(i) for i in meg["image"].values]
    keep = set(meg_ids) if image_ids is None else {str(i) for i in image_ids}
    for array in features.values():
        keep &= {str(i) for i in array["image"].values}
    ids = [i for i in meg_ids if i in keep]
    if len(ids) < 3:
        raise DataError(f"{len(ids)} images have both responses and features; RSA needs 3")
    same = ids == meg_ids  # then no copy of (possibly 7 GB of) responses
    meg_values = (meg if same else meg.sel(image=ids)).transpose("image", "channel", "time").values
    models = {
        name: np.asarray(array.sel(image=ids).values).reshape(len(ids), -1)
        for name, array in features.items()
    }
    if level == "image":
        return meg_values, models, ids
    concepts = np.asarray(meg["concept"].sel(image=ids).values).astype(str)
    labels, index = np.unique(concepts, return_inverse=True)
    if labels.size < 3:
        raise DataError(f"{labels.size} concepts; concept-level RSA needs 3")

    def group_mean(values: np.ndarray) -> np.ndarray:
        sums = np.zeros((labels.size, *values.shape[1:]), dtype=np.float64)
        np.add.at(sums, index, values)
        counts = np.bincount(index).reshape(-1, *([1] * (values.ndim - 1)))
        return sums / counts

    return (
        group_mean(meg_values).astype(meg_values.dtype),
        {name: group_mean(values) for name, values in models.items()},
        [str(label) for label in labels],
    )
