"""Representational dissimilarity matrices, fast: Gram matrices by BLAS, condensed output.

An RDM is returned *condensed*: the upper triangle without diagonal, pairs in the order of
``scipy.spatial.distance.squareform`` (row-major: (0,1), (0,2), ..., (1,2), ...), which is how
rsatoolbox stores them. Metric definitions follow rsatoolbox's ``calc_rdm``:

- ``correlation``: 1 - Pearson correlation of the two patterns (over features).
- ``euclidean``: rsatoolbox's convention, the *squared* Euclidean distance divided by the
  number of features.
- ``sqeuclidean``: the squared Euclidean distance (as ``scipy.spatial.distance.pdist``).
- ``cosine``: 1 - cosine similarity (as ``pdist(..., "cosine")``).
- ``crossnobis``: leave-one-fold-out cross-validated Mahalanobis distance (rsatoolbox's
  ``calc_rdm_crossnobis``): per fold f, the mean of the other folds (train) against fold f
  (test), ``(a_i - a_j)^T P (b_i - b_j) / channels``, averaged over folds, with P a noise
  precision (identity by default, or estimated from the fold residuals with shrinkage,
  :func:`noise_precision`, matching rsatoolbox's ``prec_from_residuals``).

Time-resolved data ``(conditions, channels, times)`` give one RDM per time point, shape
``(times, pairs)``, with the channels at that time point as features (rsatoolbox's
``calc_rdm_movie``). Time points are processed in batches so memory stays bounded; float32
input gives a float32 result (Gram matrices by float32 BLAS), float64 gives float64.

With numba and threadpoolctl (the default install), the correlation and cosine RDMs of the
numpy backend take :class:`~figureground.analysis.gram_kernels.UnitRdmThreads`: as many
threads as BLAS has first share the batch's conditions (centring and scaling their
patterns, checking on the way that the values are finite), then its time points
(single-threaded ``syrk``, condensing), so every step uses every core. BLAS is limited to
one thread while a batch runs (threadpoolctl, process-wide: BLAS calls of other threads
meanwhile run on one thread too). Large results are mapped fresh (:func:`fresh_array`); on
the threaded path each thread requests the pages of its rows before writing them
(:func:`~figureground.analysis.fresh_pages.populate_pages`).

This module holds the public entries and their plan; the parts live in
:mod:`~figureground.analysis.rdm_pairs` (condensed pair indices),
:mod:`~figureground.analysis.rdm_gram` (Gram backends, the threaded path),
:mod:`~figureground.analysis.rdm_metrics` (metrics of one batch, crossnobis included) and
:mod:`~figureground.analysis.rdm_noise` (noise covariance / precision, fold handling), whose
public names are re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from figureground.analysis.fresh_pages import FRESH_MAP_BYTES, fresh_array
from figureground.analysis.rdm_gram import NumpyGram, TorchGram, make_gram, unit_rdm_threads
from figureground.analysis.rdm_metrics import ALL_METRICS, METRICS, crossnobis_batch
from figureground.analysis.rdm_noise import (
    NOISE_METHODS,
    fold_residuals,
    group_folds,
    noise_covariance,
    noise_precision,
    whitener,
)
from figureground.analysis.rdm_pairs import cached_pairs, n_pairs, pair_indices
from figureground.errors import DataError, UsageError

if TYPE_CHECKING:
    from figureground.analysis.gram_kernels import UnitRdmThreads

__all__ = [
    "ALL_METRICS",
    "FRESH_MAP_BYTES",
    "METRICS",
    "NOISE_METHODS",
    "NumpyGram",
    "TorchGram",
    "compute_rdms",
    "fold_residuals",
    "fresh_array",
    "iter_rdm_batches",
    "n_pairs",
    "noise_covariance",
    "noise_precision",
    "pair_indices",
]


def _result_dtype(X: np.ndarray) -> np.dtype:
    return np.dtype(np.float64) if X.dtype == np.float64 else np.dtype(np.float32)


def _time_major(block: np.ndarray, out: np.ndarray, rows_per_copy: int = 64) -> np.ndarray:
    """(folds, conditions, channels, b) -> contiguous (b, folds, conditions, channels) in out.

    Copied a few conditions at a time: each piece of the input is then read while it is in
    cache, 2.5x faster than one ``ascontiguousarray(moveaxis(...))`` over the whole block.
    """
    for start in range(0, block.shape[1], rows_per_copy):
        piece = slice(start, start + rows_per_copy)
        out[:, :, piece] = np.moveaxis(block[:, piece], -1, 0)
    return out


@dataclass(frozen=True)
class _Plan:
    """Validated input and everything a batch needs, shared by the public entries."""

    fold_data: np.ndarray  # (folds, conditions, channels, times), result dtype
    metric: str
    gram: Callable
    n_conditions: int
    whiten: np.ndarray | None
    threads: UnitRdmThreads | None  # the threaded correlation / cosine path, where it applies

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(rows, cols) of the condensed pairs (built once per size, read-only)."""
        return cached_pairs(self.n_conditions)

    @property
    def n_times(self) -> int:
        return self.fold_data.shape[-1]

    @property
    def n_pairs(self) -> int:
        return n_pairs(self.n_conditions)


def _fold_data(
    data: np.ndarray, metric: str, folds: np.ndarray | None, conditions: np.ndarray | None
) -> np.ndarray:
    """Checked patterns as (folds, conditions, channels, times); one fold except crossnobis."""
    if metric == "crossnobis":
        if folds is not None:
            data = group_folds(data, folds, conditions)
        if data.ndim not in (3, 4):
            raise UsageError(
                f"crossnobis needs X of shape (folds, conditions, channels"
                f"[, times]) or a folds argument; got {data.shape}"
            )
        if data.shape[0] < 2:
            raise DataError(f"crossnobis needs at least 2 folds; got {data.shape[0]}")
        fold_data = data if data.ndim == 4 else data[..., None]
    else:
        if folds is not None:
            raise UsageError(f"folds apply to crossnobis only, not to metric {metric!r}")
        if data.ndim not in (2, 3):
            raise UsageError(
                f"X must have shape (conditions, features) or (conditions, "
                f"channels, times); got {data.shape}"
            )
        fold_data = data[None] if data.ndim == 3 else data[None, ..., None]
    n_cond = fold_data.shape[1]
    if n_cond < 2:
        raise DataError(f"an RDM needs at least 2 conditions; got {n_cond}")
    if fold_data.shape[2] == 0:
        raise DataError(f"an RDM needs at least 1 channel (feature); got X of shape {data.shape}")
    return fold_data


def _check_finite(fold_data: np.ndarray) -> None:
    """DataError if the patterns hold NaN or infinite values."""
    # min propagates NaN, min and max show infinities: no temporary of X's size
    if not (np.isfinite(fold_data.min()) and np.isfinite(fold_data.max())):
        raise DataError("X holds NaN or infinite values; RDMs need finite patterns")


def _noise_whitener(
    fold_data: np.ndarray,
    metric: str,
    noise: np.ndarray | str | None,
    noise_dof: float | None,
    dtype: np.dtype,
) -> np.ndarray | None:
    """The crossnobis whitener of ``noise`` (a precision, a method of
    :func:`noise_covariance` or None); None for the other metrics."""
    if metric != "crossnobis":
        if noise is not None:
            raise UsageError(f"noise applies to crossnobis only, not to metric {metric!r}")
        return None
    n_ch = fold_data.shape[2]
    precision = noise
    if isinstance(noise, str):
        residuals, dof = fold_residuals(fold_data.astype(np.float64))
        precision = noise_precision(residuals, noise, dof if noise_dof is None else noise_dof)
    elif noise is not None:
        precision = np.asarray(noise, dtype=np.float64)
        if precision.shape != (n_ch, n_ch):
            raise UsageError(
                f"noise precision must have shape ({n_ch}, {n_ch}); got {precision.shape}"
            )
    return whitener(precision, dtype)


def _plan(
    X: np.ndarray,
    metric: str,
    folds: np.ndarray | None,
    conditions: np.ndarray | None,
    noise: np.ndarray | str | None,
    noise_dof: float | None,
    remove_mean: bool,
    batch_size: int,
    backend: str,
    device: str | None,
) -> _Plan:
    """Check the arguments of :func:`compute_rdms` and prepare its computation."""
    if metric not in ALL_METRICS:
        raise UsageError(f"metric must be one of {list(ALL_METRICS)}; got {metric!r}")
    if batch_size < 1:
        raise UsageError(f"batch_size must be at least 1; got {batch_size}")
    data = np.asarray(X)
    dtype = _result_dtype(data)
    fold_data = _fold_data(data.astype(dtype, copy=False), metric, folds, conditions)
    if remove_mean:
        fold_data = fold_data - fold_data.mean(axis=2, keepdims=True)
    n_cond = fold_data.shape[1]
    gram = make_gram(backend, n_cond, device)
    threads = None
    if fold_data.shape[0] == 1:
        threads = unit_rdm_threads(metric, gram, fold_data[0], batch_size)
    if threads is None:  # the threaded path checks the values as it reads them
        _check_finite(fold_data)
    whiten = _noise_whitener(fold_data, metric, noise, noise_dof, dtype)
    return _Plan(fold_data, metric, gram, n_cond, whiten, threads)


def _run(
    plan: _Plan, batch_size: int, target: Callable[[slice], np.ndarray]
) -> Iterator[tuple[slice, np.ndarray]]:
    """Compute batch after batch into ``target(time_slice)``; yield each filled target."""
    data = plan.fold_data
    if plan.threads is not None:
        for start in range(0, plan.n_times, batch_size):
            time_slice = slice(start, min(start + batch_size, plan.n_times))
            out = target(time_slice)
            plan.threads(time_slice, out)
            yield time_slice, out
        return
    block_buffer = np.empty((min(batch_size, plan.n_times), *data.shape[:-1]), dtype=data.dtype)
    for start in range(0, plan.n_times, batch_size):
        stop = min(start + batch_size, plan.n_times)
        time_slice = slice(start, stop)
        # (b, folds, conditions, channels), contiguous per time point, changed in place below
        block = _time_major(data[..., time_slice], block_buffer[: stop - start])
        out = target(time_slice)
        if plan.metric == "crossnobis":
            crossnobis_batch(block, plan.whiten, plan.gram, out, *plan.pairs())
        else:
            METRICS[plan.metric].compute(block[:, 0], plan.gram, out, plan.pairs)
        yield time_slice, out


def iter_rdm_batches(
    X: np.ndarray,
    metric: str = "correlation",
    *,
    folds: np.ndarray | None = None,
    conditions: np.ndarray | None = None,
    noise: np.ndarray | str | None = None,
    noise_dof: float | None = None,
    remove_mean: bool = False,
    batch_size: int = 16,
    backend: str = "numpy",
    device: str | None = None,
) -> Iterator[tuple[slice, np.ndarray]]:
    """Yield ``(time_slice, rdms)`` for batches of time points; see :func:`compute_rdms`.

    The yielded array is reused for the next batch: use or copy it before asking for
    the next one. On the threaded path (correlation and cosine, see the module docstring)
    NaN or infinite values raise :class:`DataError` when their batch is reached (batches
    before it are yielded, correct), not before the first batch.

    For 2-D (or 3-D crossnobis fold) input a single batch ``(slice(0, 1), rdm[None])``.
    """
    plan = _plan(
        X, metric, folds, conditions, noise, noise_dof, remove_mean, batch_size, backend, device
    )
    buffer = np.empty((min(batch_size, plan.n_times), plan.n_pairs), dtype=plan.fold_data.dtype)
    yield from _run(
        plan, batch_size, lambda time_slice: buffer[: time_slice.stop - time_slice.start]
    )


def compute_rdms(
    X: np.ndarray,
    metric: str = "correlation",
    *,
    folds: np.ndarray | None = None,
    conditions: np.ndarray | None = None,
    noise: np.ndarray | str | None = None,
    noise_dof: float | None = None,
    remove_mean: bool = False,
    batch_size: int = 16,
    backend: str = "numpy",
    device: str | None = None,
) -> np.ndarray:
    """Condensed RDMs of patterns, one per time point for time-resolved data.

    float32 and float64 input take the same path (BLAS ``ssyrk`` / ``dsyrk`` per time point,
    pairs copied straight into the result) and keep their precision: float64 input (what
    MNE's ``get_data()`` returns) gives float64 RDMs equal to ``scipy.spatial.distance.pdist``
    to ~1e-15; float32 input gives float32 RDMs (differences from float64 ~1e-6, at most
    ~1e-5 for 271 channels), half the memory and about twice as fast. Cast to float32 first
    to trade precision for speed. Correlation and cosine RDMs use all of BLAS's threads,
    sharing first the conditions, then the time points (see the module docstring); the
    patterns are centred and scaled with float64 sums for either dtype.

    Parameters
    ----------
    X : ndarray
        (conditions, features) -> one RDM (pairs,); (conditions, channels, times) -> (times,
        pairs). For ``crossnobis``: (folds, conditions, channels[, times]), or observations
        (rows, channels[, times]) with ``folds`` and ``conditions`` labels per row (cells
        averaged, conditions in sorted order as rsatoolbox sorts them).
    metric : str
        ``correlation``, ``euclidean`` (squared / n_features, rsatoolbox), ``sqeuclidean``,
        ``cosine`` or ``crossnobis``.
    noise : ndarray or str, optional
        Crossnobis only: a (channels, channels) precision matrix, or a method of
        :func:`noise_covariance` to estimate one from the fold residuals pooled over
        conditions and time points (dof (folds - 1) * conditions * times unless
        ``noise_dof``). None: identity (cross-validated Euclidean).
    remove_mean : bool
        Subtract each pattern's mean over channels first (rsatoolbox's ``remove_mean``).
    batch_size : int
        Time points per batch (working memory: batch x conditions x channels values).
    backend, device : str
        ``numpy`` (BLAS) or ``torch`` (e.g. ``device="cuda"``).

    Returns
    -------
    ndarray, float32 (float64 for float64 input), shape (pairs,) or (times, pairs)
    """
    data = np.asarray(X)
    time_resolved = data.ndim == (4 if metric == "crossnobis" and folds is None else 3)
    plan = _plan(
        data, metric, folds, conditions, noise, noise_dof, remove_mean, batch_size, backend, device
    )
    out = fresh_array((plan.n_times, plan.n_pairs), plan.fold_data.dtype)
    for _ in _run(plan, batch_size, out.__getitem__):
        pass
    return out if time_resolved else out[0]
