"""Mask-aligned features of the original images: a layer's map pooled over weighted regions.

The figure and ground *variants* of an image (no background / no foreground) change the
pixels the network sees. This module instead reads the network's response to the ORIGINAL
image and pools its spatial map (image, channel, rows, cols) over regions defined by the
object mask brought onto the same grid (:func:`figureground.analysis.views.mask_on_grid`:
the share of each cell the object covers, in [0, 1]). Every region is a non-negative weight
map (image, rows, cols); a region's feature is the weighted channel mean.

Regions (:func:`region_weights`):

- ``figure``: the mask itself (area weighting); ``ground``: ``1 - mask``.
- ``edge_in_<k>`` / ``edge_out_<k>``: cells inside / outside the object at a Euclidean
  distance to the other side of the edge in band ``k`` (grid cells; see
  :func:`region_weights`). The mask is thresholded at :data:`MASK_THRESHOLD` (a cell is
  "inside" when the object covers at least half of it) before the distance transform.
- ``ring_<i>``: equal-width eccentricity rings around the grid centre out to the corner,
  whatever the mask.
- ``centre``: a Gaussian weight at the grid centre (SD :data:`CENTRE_SD` of each side, as
  :mod:`figureground.stimuli.descriptors` uses for its centre region), whatever the mask.

Nuisance bands (:func:`nuisance_bands`) describe what a region code might be confused with:
object size, silhouette, centre bias and low-level image statistics
(:func:`image_statistics`).

The maps of a whole study do not fit in memory (THINGS, ResNet50 ``layer2``: 22,248 x 512 x
28 x 28 float32 = 35 GB): :func:`pooled_features` reads them in chunks of images from any
array-like that supports ``maps[i:j]`` (numpy, zarr, a lazy store).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from figureground import logs
from figureground.analysis.views import MIN_REGION_WEIGHT
from figureground.errors import DataError, UsageError
from figureground.stimuli.descriptors import CENTRE_SD

log = logs.get_logger(__name__)

MASK_THRESHOLD = 0.5  # a cell is inside the object when the object covers >= half of it
SPECTRUM_SIDE = 256  # luminance is resized to this square before the Fourier transform
# Radial spatial-frequency bands (cycles per image, upper edges inclusive); DC excluded.
FREQUENCY_BANDS = ((0.0, 8.0), (8.0, 32.0), (32.0, np.inf))
LOW_LEVEL_NAMES = ("mean_luminance", "rms_contrast", "energy_low", "energy_mid", "energy_high")
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601 luma of gamma-encoded RGB


# ----------------------------------------------------------------------------- regions


def _check_masks(mask_grid: np.ndarray) -> np.ndarray:
    masks = np.asarray(mask_grid, dtype=np.float32)
    if masks.ndim != 3:
        raise DataError(f"masks of shape {masks.shape}; expected (image, rows, cols)")
    if not np.isfinite(masks).all() or masks.min(initial=0) < 0 or masks.max(initial=0) > 1:
        raise DataError("masks must hold finite values in [0, 1] (cell coverage)")
    return masks


def centre_weight(grid: tuple[int, int], sd: float = CENTRE_SD) -> np.ndarray:
    """Gaussian weight (rows, cols) at the grid centre, peak 1, SD ``sd`` of each side.

    Cell centres are at ``(index + 0.5) / side - 0.5``; for a square grid this is
    :func:`figureground.stimuli.descriptors.centre_weight`.
    """
    rows, cols = grid
    y = (np.arange(rows) + 0.5) / rows - 0.5
    x = (np.arange(cols) + 0.5) / cols - 0.5
    return np.exp(-(y[:, None] ** 2 + x[None, :] ** 2) / (2 * sd**2))


def eccentricity_rings(grid: tuple[int, int], rings: int) -> np.ndarray:
    """(rings, rows, cols) 0/1 maps: equal-width rings of distance from the grid centre.

    Distances are in grid cells from each cell centre to the grid centre; ring ``i``
    (1-based) covers ``[(i - 1) R / rings, i R / rings)`` with ``R`` the distance from the
    centre to a corner of the grid, so the rings partition the grid.
    """
    if rings < 1:
        raise UsageError(f"rings={rings}; expected at least 1")
    rows, cols = grid
    y = np.arange(rows) + 0.5 - rows / 2
    x = np.arange(cols) + 0.5 - cols / 2
    distance = np.hypot(y[:, None], x[None, :])
    corner = np.hypot(rows / 2, cols / 2)
    index = np.minimum((distance / corner * rings).astype(int), rings - 1)
    return (index[None] == np.arange(rings)[:, None, None]).astype(np.float32)


def edge_distances(inside: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distances (rows, cols) of inside cells to the nearest outside cell and vice versa.

    Euclidean distance between cell centres (``scipy.ndimage.distance_transform_edt``); a
    4-neighbour across the edge is at 1, a diagonal one at sqrt(2). Cells on the wrong side
    get 0; when the other side is absent (empty or full mask) the distances are infinite.
    """
    from scipy.ndimage import distance_transform_edt

    inside = np.asarray(inside, dtype=bool)
    into = np.zeros(inside.shape)
    out = np.zeros(inside.shape)
    if inside.all():
        into[:] = np.inf
    elif inside.any():
        into = distance_transform_edt(inside)
    if not inside.any():
        out[:] = np.inf
    elif not inside.all():
        out = distance_transform_edt(~inside)
    return into, out


def region_weights(
    mask_grid: np.ndarray, *, edge_bands: Sequence[float] = (1, 2), rings: int = 3
) -> dict[str, np.ndarray]:
    """Non-negative weight maps (image, rows, cols) of the regions pooled by the features.

    Parameters
    ----------
    mask_grid : object coverage of each map cell, (image, rows, cols) in [0, 1]
        (:func:`figureground.analysis.views.mask_on_grid` of each image's mask).
    edge_bands : increasing upper edges of the distance bands, in grid cells. Band ``k``
        (1-based) holds the cells whose distance to the other side of the object edge is in
        ``(edge_bands[k-2], edge_bands[k-1]]`` (``(0, edge_bands[0]]`` for ``k = 1``):
        ``edge_in_<k>`` inside the object, ``edge_out_<k>`` outside. The mask is thresholded
        at :data:`MASK_THRESHOLD` first. With the default (1, 2), band 1 holds the cells
        with a 4-neighbour across the edge, band 2 the cells at sqrt(2) or 2 cells.
    rings : number of eccentricity rings (:func:`eccentricity_rings`).

    Returns
    -------
    ``figure`` (the mask), ``ground`` (1 - mask), ``edge_in_<k>`` / ``edge_out_<k>`` (0/1),
    ``ring_<i>`` (0/1, the same for every image) and ``centre`` (:func:`centre_weight`,
    the same for every image), all float32. Mask-independent maps are read-only broadcast
    views (no memory per image).
    """
    masks = _check_masks(mask_grid)
    bounds = np.asarray(edge_bands, dtype=np.float64)
    if bounds.ndim != 1 or bounds.size == 0 or (bounds <= 0).any() or (np.diff(bounds) <= 0).any():
        raise UsageError(f"edge_bands={tuple(edge_bands)}; expected increasing positive distances")
    n_images, n_rows, n_cols = masks.shape
    weights: dict[str, np.ndarray] = {"figure": masks, "ground": 1.0 - masks}
    inner = np.zeros((len(bounds), *masks.shape), dtype=np.float32)
    outer = np.zeros_like(inner)
    lower = np.concatenate([[0.0], bounds[:-1]])
    for i, mask in enumerate(masks):
        into, out = edge_distances(mask >= MASK_THRESHOLD)
        for k, (low, high) in enumerate(zip(lower, bounds, strict=True)):
            inner[k, i] = (into > low) & (into <= high)
            outer[k, i] = (out > low) & (out <= high)
    for k in range(len(bounds)):
        weights[f"edge_in_{k + 1}"] = inner[k]
        weights[f"edge_out_{k + 1}"] = outer[k]
    shape = (n_images, n_rows, n_cols)
    for i, ring in enumerate(eccentricity_rings((n_rows, n_cols), rings)):
        weights[f"ring_{i + 1}"] = np.broadcast_to(ring, shape)
    centre = centre_weight((n_rows, n_cols)).astype(np.float32)
    weights["centre"] = np.broadcast_to(centre, shape)
    return weights


# ----------------------------------------------------------------------------- pooling


def _check_maps(maps: Any) -> tuple[int, ...]:
    shape = getattr(maps, "shape", None)
    if shape is None or len(shape) != 4:
        raise DataError(f"maps of shape {shape}; expected (image, channel, rows, cols)")
    return tuple(int(s) for s in shape)


def pooled_features(
    maps: Any, weights: Mapping[str, np.ndarray], chunk: int = 256
) -> dict[str, np.ndarray]:
    """Weighted channel means of each region: ``sum(w * x) / sum(w)`` over the grid.

    Parameters
    ----------
    maps : (image, channel, rows, cols) activations of the original images: any array-like
        with ``.shape`` that supports ``maps[i:j]`` along images (numpy, zarr, a lazy
        store). It is read ``chunk`` images at a time, so peak memory is O(chunk) maps
        (each chunk is held once as float64).
    weights : region -> (image, rows, cols) non-negative weights (:func:`region_weights`).
    chunk : images read per step.

    Returns
    -------
    region -> (image, channel) float64. An image whose weights for a region sum to under
    :data:`figureground.analysis.views.MIN_REGION_WEIGHT` (the region is absent, e.g. no
    ground around an object that fills the map) gets 0 for every channel of that region,
    and the count is logged as a warning (unlike ``views.weighted_pool``, which falls back
    to uniform pooling, that would give the absent region the whole image's features).
    """
    n_images, n_channels, n_rows, n_cols = _check_maps(maps)
    if chunk < 1:
        raise UsageError(f"chunk={chunk}; expected at least 1 image")
    if not weights:
        raise UsageError("no region weights given")
    names = list(weights)
    for name in names:
        shape = tuple(np.shape(weights[name]))
        if shape != (n_images, n_rows, n_cols):
            raise DataError(
                f"weights {name!r} of shape {shape}; expected {(n_images, n_rows, n_cols)}"
            )
    out = {name: np.zeros((n_images, n_channels)) for name in names}
    absent = dict.fromkeys(names, 0)
    starts = range(0, n_images, chunk)
    for start in logs.progress(starts, len(starts), "pooling regions"):
        stop = min(start + chunk, n_images)
        block = np.asarray(maps[start:stop], dtype=np.float64)
        if block.shape != (stop - start, n_channels, n_rows, n_cols):
            raise DataError(f"maps[{start}:{stop}] has shape {block.shape}")
        flat = block.reshape(stop - start, n_channels, n_rows * n_cols)
        w = np.stack(
            [np.asarray(weights[n][start:stop], dtype=np.float64) for n in names], axis=-1
        ).reshape(stop - start, n_rows * n_cols, len(names))
        if not np.isfinite(w).all() or (w < 0).any():
            raise DataError(f"region weights of images {start}-{stop - 1} are negative or NaN")
        total = w.sum(axis=1)  # (images, regions)
        present = total >= MIN_REGION_WEIGHT
        sums = np.matmul(flat, w)  # (images, channels, regions)
        means = np.where(present[:, None, :], sums / np.where(present, total, 1.0)[:, None], 0.0)
        for r, name in enumerate(names):
            out[name][start:stop] = means[:, :, r]
            absent[name] += int((~present[:, r]).sum())
    for name, count in absent.items():
        if count:
            log.warning(
                "region %r is absent (weight < %g) in %d of %d images: features set to 0",
                name,
                MIN_REGION_WEIGHT,
                count,
                n_images,
            )
    return out


# ----------------------------------------------------------------------------- nuisance


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Luma (H, W) in [0, 1] of a uint8 RGB image (BT.601 weights on gamma-encoded values)."""
    image = np.asarray(rgb)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise DataError(f"image of shape {image.shape}, dtype {image.dtype}; expected uint8 RGB")
    return (image.astype(np.float64) / 255.0) @ LUMA_WEIGHTS


def image_statistics(rgb: np.ndarray) -> np.ndarray:
    """Low-level statistics of one image: ``LOW_LEVEL_NAMES`` (5 numbers).

    - mean luminance: mean luma in [0, 1] (:func:`luminance`);
    - RMS contrast: standard deviation of luma over the pixels (not divided by the mean);
    - spectral energy shares: luma minus its mean is resized (area averaging) to a
      :data:`SPECTRUM_SIDE` square, multiplied by a 2-D Hann window and Fourier
      transformed; the power at radial frequency ``f`` (cycles per image, each axis in
      cycles per its own side) is summed in :data:`FREQUENCY_BANDS` (low: 0 < f <= 8,
      mid: 8 < f <= 32, high: f > 32 up to the Nyquist corner) and divided by the total.
      The three shares sum to 1; a flat image has no energy and gets three zeros.

    Computed on the whole original image (not the network's centre crop).
    """
    import cv2

    light = luminance(rgb)
    mean = float(light.mean())
    contrast = float(light.std())
    centred = cv2.resize(
        (light - mean).astype(np.float32),
        (SPECTRUM_SIDE, SPECTRUM_SIDE),
        interpolation=cv2.INTER_AREA,
    ).astype(np.float64)
    hann = np.hanning(SPECTRUM_SIDE)
    power = np.abs(np.fft.fft2(centred * np.outer(hann, hann))) ** 2
    freq = np.fft.fftfreq(SPECTRUM_SIDE) * SPECTRUM_SIDE
    radius = np.hypot(freq[:, None], freq[None, :])
    power[0, 0] = 0.0
    energy = np.array(
        [power[(radius > low) & (radius <= high)].sum() for low, high in FREQUENCY_BANDS]
    )
    total = energy.sum()
    shares = energy / total if total > 1e-12 * SPECTRUM_SIDE**2 else np.zeros(len(energy))
    return np.concatenate([[mean, contrast], shares])


def nuisance_bands(
    mask_grid: np.ndarray,
    images: Iterable[np.ndarray] | None = None,
    *,
    pooled: Mapping[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Bands (image, k) of what a figure or ground code could be confused with.

    Parameters
    ----------
    mask_grid : (image, rows, cols) object coverage of each map cell.
    images : the ORIGINAL images as uint8 RGB (H, W, 3), in the same order (any iterable:
        they are read one at a time). Omitted: no ``low_level`` band.
    pooled : the output of :func:`pooled_features`; its ``centre`` region becomes the
        ``centre_bias`` band. Omitted: no ``centre_bias`` band.

    Returns
    -------
    ``size``: the object's share of the grid (1 column); ``silhouette``: the grid mask
    flattened (rows * cols columns); ``centre_bias``: the ``centre`` pooled feature (the
    layer's channels under a Gaussian centre weight, independent of the mask; from
    :func:`pooled_features`); ``low_level``: :func:`image_statistics` of each original
    image (:data:`LOW_LEVEL_NAMES`).
    """
    masks = _check_masks(mask_grid)
    n_images = len(masks)
    bands = {
        "size": masks.mean(axis=(1, 2), dtype=np.float64)[:, None],
        "silhouette": masks.reshape(n_images, -1).astype(np.float64),
    }
    if pooled is not None:
        if "centre" not in pooled:
            raise UsageError("pooled features have no 'centre' region for the centre_bias band")
        centre = np.asarray(pooled["centre"], dtype=np.float64)
        if len(centre) != n_images:
            raise DataError(f"{len(centre)} pooled images but {n_images} masks")
        bands["centre_bias"] = centre
    if images is not None:
        rows = [image_statistics(image) for image in logs.progress(images, n_images, "images")]
        if len(rows) != n_images:
            raise DataError(f"{len(rows)} images but {n_images} masks")
        bands["low_level"] = np.stack(rows)
    return bands
