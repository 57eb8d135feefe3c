"""Maps of the mask-gated readout: valid images, the object-centred mean and the Dataset.

The *object-centred map* resamples each image's ``|w_i|`` onto a grid centred on its mask's
centroid and scaled by its radius (``sqrt(area / pi)``, the radius of the disc of equal
area), ``+- span`` radii, and averages over images (cells outside the image do not count).
:func:`maps_dataset` gathers the per-window maps of
:func:`figureground.analysis.readout_ratio.readout_table`; :func:`write_readout_maps` stores
them.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import xarray as xr

from figureground.errors import DataError


def valid_images(masks: np.ndarray, min_share: float, max_share: float) -> np.ndarray:
    """Images whose mask covers between ``min_share`` and ``max_share`` of the grid."""
    share = masks.reshape(len(masks), -1).mean(axis=1)
    return (share >= min_share) & (share <= max_share)


def object_centred_mean(
    values: np.ndarray,
    masks: np.ndarray,
    span: float = 3.0,
    size: int = 25,
    min_share: float = 0.02,
    max_share: float = 0.98,
    chunk: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """Average of (image, rows, cols) ``values`` on an object-centred grid.

    Each image is sampled (bilinear, ``scipy.ndimage.map_coordinates``) at its mask's
    centroid ``+ offset * radius`` with ``radius = sqrt(area / pi)`` in cells and ``offset``
    in ``linspace(-span, span, size)`` along rows and columns. Points outside an image are
    left out of its average. Returns the (size, size) mean (NaN where no image reaches) and
    the offsets (in object radii).
    """
    from scipy.ndimage import map_coordinates

    if values.shape != masks.shape or values.ndim != 3:
        raise DataError(f"values {values.shape} and masks {masks.shape}; expected equal 3-D")
    offsets = np.linspace(-span, span, size)
    keep = np.flatnonzero(valid_images(masks, min_share, max_share))
    total = np.zeros((size, size))
    count = np.zeros((size, size))
    row_index = np.arange(masks.shape[1], dtype=np.float64)[:, None]
    col_index = np.arange(masks.shape[2], dtype=np.float64)[None, :]
    for start in range(0, len(keep), chunk):
        chosen = keep[start : start + chunk]
        m = masks[chosen].astype(np.float64)
        area = m.sum(axis=(1, 2))
        centre_row = (m * row_index).sum(axis=(1, 2)) / area
        centre_col = (m * col_index).sum(axis=(1, 2)) / area
        radius = np.sqrt(area / np.pi)
        shape = (len(chosen), size, size)
        coords = np.stack(
            [
                np.broadcast_to(np.arange(len(chosen))[:, None, None], shape),
                np.broadcast_to(
                    (centre_row[:, None] + radius[:, None] * offsets)[:, :, None], shape
                ),
                np.broadcast_to(
                    (centre_col[:, None] + radius[:, None] * offsets)[:, None, :], shape
                ),
            ]
        )
        sampled = map_coordinates(
            values[chosen].astype(np.float64), coords, order=1, mode="constant", cval=np.nan
        )
        inside = np.isfinite(sampled)
        total += np.where(inside, sampled, 0.0).sum(axis=0)
        count += inside.sum(axis=0)
    with np.errstate(invalid="ignore"):
        return np.where(count > 0, total / count, np.nan), offsets


def maps_dataset(
    maps: dict[str, list[np.ndarray]],
    masks: np.ndarray,
    windows: pd.DataFrame,
    settings: dict[str, object],
) -> xr.Dataset:
    """The per-window maps of :func:`readout_ratio.readout_table` as one Dataset.

    ``settings`` holds the readout settings as a dict (``dataclasses.asdict``); its ``span``,
    ``centred_size``, ``min_share`` and ``max_share`` shape the object-centred mask map and
    every entry becomes an attribute.
    """
    span, size = settings["span"], settings["centred_size"]
    min_share, max_share = settings["min_share"], settings["max_share"]
    object_mask, offsets = object_centred_mean(masks, masks, span, size, min_share, max_share)
    valid = valid_images(masks, min_share, max_share)
    image_dims, object_dims = ("time", "row", "col"), ("time", "object_y", "object_x")
    data = {
        name: (object_dims if name == "object_map" else image_dims, np.stack(values))
        for name, values in maps.items()
    }
    data["object_mask"] = (("object_y", "object_x"), object_mask)
    data["mask_mean"] = (("row", "col"), masks[valid].mean(axis=0))
    attrs = {k: (int(v) if isinstance(v, bool) else v) for k, v in settings.items()}
    return xr.Dataset(
        data,
        coords={
            "time": windows["time"].to_numpy(),
            "start": ("time", windows["start"].to_numpy()),
            "stop": ("time", windows["stop"].to_numpy()),
            "row": np.arange(masks.shape[1]),
            "col": np.arange(masks.shape[2]),
            "object_y": offsets,
            "object_x": offsets,
        },
        attrs={**attrs, "offsets_unit": "object radii (sqrt(area / pi))"},
    )


def write_readout_maps(dataset: xr.Dataset, path: str | os.PathLike) -> None:
    """Write the maps of :func:`readout_table` to a zarr store at ``path`` (replaced)."""
    from figureground.features.store import quiet_zarr

    with quiet_zarr():
        dataset.to_zarr(path, mode="w", zarr_format=3, consolidated=False)
