"""Inputs of the readout: a layer's maps reduced, masks pooled, responses per time window.

The layer's maps are reduced before the fit (:func:`reduce_maps`): a PCA of the channels
fitted on a random subset of images (all cells), then every chunk of images projected and
area-pooled to a coarse grid; the masks are pooled the same way (:func:`pool_masks`). Maps
are read by slices of ``chunk`` images, never whole (a THINGS layer is up to 35 GB). The
responses are averaged in time windows and reduced to principal components
(:func:`response_components`). The model is in :mod:`figureground.analysis.readout`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from figureground import logs
from figureground.errors import DataError, UsageError

log = logs.get_logger(__name__)


# ----------------------------------------------------------------------------- pooling


def area_pool_matrix(size_in: int, size_out: int) -> np.ndarray:
    """(size_out, size_in) averaging matrix with torch's adaptive-pooling bins."""
    if size_out < 1 or size_in < size_out:
        raise UsageError(f"cannot pool {size_in} cells to {size_out}; expected 1 <= out <= in")
    matrix = np.zeros((size_out, size_in))
    for i in range(size_out):
        start, stop = i * size_in // size_out, -(-(i + 1) * size_in // size_out)
        matrix[i, start:stop] = 1.0 / (stop - start)
    return matrix


def area_pool(maps: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Area-average the last two axes of ``maps`` (..., H, W) onto ``grid`` (rows, cols)."""
    height, width = maps.shape[-2:]
    if (height, width) == tuple(grid):
        return maps
    rows = area_pool_matrix(height, grid[0]).astype(maps.dtype)
    cols = area_pool_matrix(width, grid[1]).astype(maps.dtype)
    return rows @ maps @ cols.T


def _check_grid(grid: tuple[int, int]) -> tuple[int, int]:
    if len(grid) != 2 or min(grid) < 1:
        raise UsageError(f"grid {grid!r}; expected (rows, cols) of positive integers")
    return int(grid[0]), int(grid[1])


def pool_masks(masks: Any, grid: tuple[int, int] = (14, 14), chunk: int = 256) -> np.ndarray:
    """Object masks (image, H, W) in [0, 1], area-pooled to ``grid``: float32 (image, rows, cols).

    ``masks`` may be any array-like that supports slicing along images (read ``chunk`` at a
    time).
    """
    grid = _check_grid(grid)
    if len(masks.shape) != 3:
        raise DataError(f"masks of shape {tuple(masks.shape)}; expected (image, rows, cols)")
    out = np.empty((masks.shape[0], *grid), dtype=np.float32)
    for start in range(0, masks.shape[0], chunk):
        block = np.asarray(masks[start : start + chunk], dtype=np.float32)
        if block.size and (np.nanmin(block) < 0 or np.nanmax(block) > 1 or np.isnan(block).any()):
            raise DataError(f"masks of images {start}.. are not in [0, 1]")
        out[start : start + len(block)] = area_pool(block, grid)
    return np.clip(out, 0.0, 1.0)


# ----------------------------------------------------------------------------- channel PCA


@dataclass(frozen=True)
class ChannelProjection:
    """PCA of a layer's channels: ``reduced = components @ (x - mean)`` at every cell."""

    mean: np.ndarray  # (channel,)
    components: np.ndarray  # (component, channel), unit rows
    explained_variance_ratio: np.ndarray  # (component,)
    fit_images: np.ndarray  # indices of the images the PCA was fitted on


def _fit_blocks(n_images: int, fit_images: int, fit_block: int, seed: int) -> np.ndarray:
    """Starts of random aligned blocks of ``fit_block`` images, >= ``fit_images`` in all."""
    starts = np.random.default_rng(seed).permutation(np.arange(0, n_images, fit_block))
    sizes = np.minimum(fit_block, n_images - starts)
    wanted = int(np.searchsorted(np.cumsum(sizes), min(fit_images, n_images))) + 1
    return np.sort(starts[:wanted])


def fit_channel_projection(
    maps: Any, n_components: int, fit_images: int = 2000, fit_block: int = 32, seed: int = 0
) -> ChannelProjection:
    """PCA of the channels of (image, channel, H, W) ``maps`` over all cells of a random subset.

    The subset is made of random aligned blocks of ``fit_block`` consecutive images (so a
    chunked store decompresses whole chunks once), at least ``fit_images`` images in all.
    Components are signed so that each one's largest loading is positive.
    """
    n_images, n_channels = maps.shape[:2]
    if not 1 <= n_components <= n_channels:
        raise UsageError(f"n_channel_components={n_components}; expected 1..{n_channels}")
    shift = cross = total = None
    count, used = 0, []
    for start in _fit_blocks(n_images, fit_images, fit_block, seed):
        block = np.asarray(maps[start : start + fit_block], dtype=np.float64)
        flat = np.moveaxis(block, 1, -1).reshape(-1, n_channels)
        if not np.isfinite(flat).all():
            raise DataError(f"maps of images {start}.. contain NaN or infinite values")
        if shift is None:  # shifted sums keep the covariance accurate for large means
            shift = flat.mean(axis=0)
            cross, total = np.zeros((n_channels, n_channels)), np.zeros(n_channels)
        flat -= shift
        cross += flat.T @ flat
        total += flat.sum(axis=0)
        count += len(flat)
        used.append(np.arange(start, start + len(block)))
    mean_shifted = total / count
    covariance = cross / count - np.outer(mean_shifted, mean_shifted)
    values, vectors = np.linalg.eigh(covariance)
    order = np.argsort(values)[::-1][:n_components]
    components = vectors[:, order].T
    signs = np.sign(components[np.arange(n_components), np.abs(components).argmax(axis=1)])
    components *= np.where(signs == 0, 1.0, signs)[:, None]
    total_variance = max(values.sum(), np.finfo(float).tiny)
    return ChannelProjection(
        mean=shift + mean_shifted,
        components=components,
        explained_variance_ratio=values[order] / total_variance,
        fit_images=np.concatenate(used),
    )


def reduce_maps(
    maps: Any,
    *,
    n_channel_components: int = 16,
    grid: tuple[int, int] = (14, 14),
    chunk: int = 256,
    seed: int = 0,
    fit_images: int = 2000,
    fit_block: int = 32,
) -> tuple[np.ndarray, ChannelProjection]:
    """Channel-PCA and area-pool a layer's maps, ``chunk`` images at a time.

    Parameters
    ----------
    maps : array-like (image, channel, H, W) supporting slices along images (numpy, zarr,
        dask, ...); read by slices only, never whole.
    n_channel_components : PCA components of the channels kept.
    grid : (rows, cols) the maps are area-pooled to (adaptive-pooling bins).
    chunk : images read and projected at a time (the result does not depend on it).
    seed, fit_images, fit_block : the random subset the PCA is fitted on
        (:func:`fit_channel_projection`).

    Returns
    -------
    reduced : float32 (image, component, rows, cols)
    projection : the fitted :class:`ChannelProjection`
    """
    grid = _check_grid(grid)
    if len(maps.shape) != 4:
        raise DataError(f"maps of shape {tuple(maps.shape)}; expected (image, channel, H, W)")
    if chunk < 1:
        raise UsageError(f"chunk={chunk}; expected a positive number of images")
    projection = fit_channel_projection(maps, n_channel_components, fit_images, fit_block, seed)
    components = projection.components.astype(np.float32)
    offset = (projection.components @ projection.mean).astype(np.float32)[:, None]
    n_images, _, height, width = maps.shape
    out = np.empty((n_images, n_channel_components, *grid), dtype=np.float32)
    for start in logs.progress(range(0, n_images, chunk), -(-n_images // chunk), "reduce maps"):
        block = np.asarray(maps[start : start + chunk], dtype=np.float32)
        flat = block.reshape(len(block), block.shape[1], height * width)
        projected = (components @ flat - offset).reshape(len(block), -1, height, width)
        out[start : start + len(block)] = area_pool(projected, grid)
    return out, projection


# ----------------------------------------------------------------------------- responses


def time_windows(times: np.ndarray, window_length: float) -> pd.DataFrame:
    """Consecutive windows of ``window_length`` s from the first time point.

    A sample belongs to a window when ``start <= t < stop``; a last window shorter than
    ``window_length`` (e.g. the single sample at 1.3 s of THINGS-MEG's -0.1..1.3 s) is
    dropped. Columns: ``start``, ``stop``, ``time`` (centre), ``first``, ``last`` (sample
    indices, ``last`` exclusive).
    """
    times = np.asarray(times, dtype=np.float64)
    if times.ndim != 1 or len(times) < 1 or np.any(np.diff(times) <= 0):
        raise DataError("times must be a non-empty increasing 1-D array")
    if not window_length > 0:
        raise UsageError(f"window_length={window_length}; expected a positive length in seconds")
    step = float(np.median(np.diff(times))) if len(times) > 1 else window_length
    eps = 1e-6 * step
    n_windows = int(np.floor((times[-1] - times[0] + step) / window_length + 1e-6))
    rows = []
    for j in range(n_windows):
        start = times[0] + j * window_length
        stop = start + window_length
        inside = np.flatnonzero((times >= start - eps) & (times < stop - eps))
        if len(inside):
            rows.append((start, stop, (start + stop) / 2, inside[0], inside[-1] + 1))
    if not rows:
        raise UsageError(f"window_length={window_length} s is longer than the recording")
    return pd.DataFrame(rows, columns=["start", "stop", "time", "first", "last"])


def window_means(
    responses: np.ndarray, times: np.ndarray, window_length: float
) -> tuple[pd.DataFrame, np.ndarray]:
    """Responses (image, channel, time) averaged in each window: float32 (window, image, channel).

    Divided by the responses' overall standard deviation (tesla-sized numbers would lose
    precision; one global scale changes no fit or correlation here).
    """
    responses = np.asarray(responses)
    if responses.ndim != 3 or responses.shape[2] != len(times):
        raise DataError(
            f"responses of shape {responses.shape}; expected (image, channel, {len(times)} times)"
        )
    windows = time_windows(times, window_length)
    means = np.stack(
        [
            responses[:, :, first:last].mean(axis=2, dtype=np.float64)
            for first, last in zip(windows["first"], windows["last"], strict=True)
        ]
    )
    if not np.isfinite(means).all():
        raise DataError("responses contain NaN or infinite values")
    scale = means.std()
    return windows, (means / scale if scale > 0 else means).astype(np.float32)


@dataclass(frozen=True)
class ComponentBasis:
    """PCA of window-averaged responses: ``scores = (x - mean) @ basis``."""

    mean: np.ndarray  # (channel,)
    basis: np.ndarray  # (channel, component)

    def transform(self, values: np.ndarray) -> np.ndarray:
        return (np.asarray(values, dtype=np.float64) - self.mean) @ self.basis


def fit_components(values: np.ndarray, n_components: int) -> ComponentBasis:
    """PCA (image, channel) -> ``n_components``, each signed so its largest loading is positive."""
    values = np.asarray(values, dtype=np.float64)
    n_keep = min(n_components, values.shape[0] - 1, values.shape[1])
    if n_keep < 1:
        raise DataError(f"cannot take {n_components} components of responses {values.shape}")
    mean = values.mean(axis=0)
    eigenvalues, vectors = np.linalg.eigh(np.cov(values - mean, rowvar=False))
    basis = vectors[:, np.argsort(eigenvalues)[::-1][:n_keep]]
    signs = np.sign(basis[np.abs(basis).argmax(axis=0), np.arange(n_keep)])
    return ComponentBasis(mean=mean, basis=basis * np.where(signs == 0, 1.0, signs))


def response_components(
    responses: np.ndarray,
    times: np.ndarray,
    window_length: float,
    n_components: int = 5,
    train: np.ndarray | None = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Per window, the window-averaged responses reduced to ``n_components`` PCs.

    The PCA of each window is fitted on the ``train`` images only (all images when None) and
    applied to all. :func:`figureground.analysis.readout_ratio.readout_table` fits it inside
    each cross-validation fold, on the training images.

    Returns
    -------
    windows : :func:`time_windows`
    scores : float64 (window, image, component)
    """
    windows, means = window_means(responses, times, window_length)
    rows = slice(None) if train is None else np.asarray(train)
    scores = np.stack([fit_components(m[rows], n_components).transform(m) for m in means])
    return windows, scores
