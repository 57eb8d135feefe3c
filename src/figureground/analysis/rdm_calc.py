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
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from figureground.errors import DataError, UsageError

NOISE_METHODS = ("shrinkage_diag", "shrinkage_eye", "diag", "full")


def pair_indices(n_conditions: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column index of every condensed pair (squareform order)."""
    return np.triu_indices(n_conditions, k=1)


def n_pairs(n_conditions: int) -> int:
    """Number of condition pairs."""
    return n_conditions * (n_conditions - 1) // 2


# ---------------------------------------------------------------------------------------------
# Backends: Gram matrices (Y Y^T + w Z Z^T) of a batch, returned condensed with their diagonal
# ---------------------------------------------------------------------------------------------


class NumpyGram:
    """Gram matrices by BLAS ``syrk`` (half the work of a product), one time point at a time."""

    def __init__(self, n_conditions: int) -> None:
        rows, cols = pair_indices(n_conditions)
        # syrk(lower=1) returns a Fortran-ordered matrix with the lower triangle filled:
        # pair (i, j), i < j, is element (j, i) at i * n + j in memory, so the pairs of one
        # row i are contiguous and the gather streams through memory (4x faster than the
        # upper triangle, whose pairs lie n elements apart).
        self._flat = (rows * n_conditions + cols).astype(np.intp)
        self._n = n_conditions
        self._buffer: np.ndarray | None = None

    def __call__(
        self, Y: np.ndarray, Z: np.ndarray | None = None, z_weight: float = 0.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Condensed ``Y Y^T + z_weight Z Z^T`` and its diagonal for a batch (b, n, f)."""
        from scipy.linalg import blas

        syrk = blas.dsyrk if Y.dtype == np.float64 else blas.ssyrk
        # One output buffer reused batch after batch: a fresh 100 MB array per batch costs
        # more in page faults than the gather itself. Callers use a batch before the next.
        if self._buffer is None or self._buffer.dtype != Y.dtype or len(self._buffer) < len(Y):
            self._buffer = np.empty((Y.shape[0], self._flat.size), dtype=Y.dtype)
        condensed = self._buffer[: Y.shape[0]]
        diag = np.empty((Y.shape[0], self._n), dtype=Y.dtype)
        for k in range(Y.shape[0]):
            # a^T a with a = Y[k]^T, which is Fortran-contiguous: no copy
            gram = syrk(1.0, Y[k].T, trans=1, lower=1)
            if Z is not None:
                gram = syrk(z_weight, Z[k].T, trans=1, beta=1.0, c=gram, overwrite_c=1, lower=1)
            np.take(gram.reshape(-1, order="F"), self._flat, out=condensed[k])
            diag[k] = np.diagonal(gram)
        return condensed, diag


class TorchGram:
    """Gram matrices by batched torch matrix products, e.g. on a GPU."""

    def __init__(self, n_conditions: int, device: str | None = None) -> None:
        import torch

        self._torch = torch
        self._device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        rows, cols = pair_indices(n_conditions)
        self._flat = torch.from_numpy((rows * n_conditions + cols).astype(np.int64)).to(
            self._device
        )

    def __call__(
        self, Y: np.ndarray, Z: np.ndarray | None = None, z_weight: float = 0.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Condensed ``Y Y^T + z_weight Z Z^T`` and its diagonal for a batch (b, n, f)."""
        torch = self._torch
        y = torch.from_numpy(np.ascontiguousarray(Y)).to(self._device)
        gram = torch.bmm(y, y.transpose(1, 2))
        if Z is not None:
            z = torch.from_numpy(np.ascontiguousarray(Z)).to(self._device)
            gram.baddbmm_(z, z.transpose(1, 2), alpha=z_weight)
        condensed = gram.reshape(gram.shape[0], -1)[:, self._flat]
        diag = torch.diagonal(gram, dim1=1, dim2=2)
        return condensed.cpu().numpy(), diag.cpu().numpy()


def _make_gram(backend: str, n_conditions: int, device: str | None) -> Callable:
    """The Gram routine of ``backend`` (registry, no if-chain on names downstream)."""
    makers: dict[str, Callable[[], Callable]] = {
        "numpy": lambda: NumpyGram(n_conditions),
        "torch": lambda: TorchGram(n_conditions, device),
    }
    if backend not in makers:
        raise UsageError(f"backend must be one of {sorted(makers)}; got {backend!r}")
    return makers[backend]()


# ---------------------------------------------------------------------------------------------
# Metrics: prepare a batch (b, n, f), take its Gram, finish the distances
# ---------------------------------------------------------------------------------------------


def _unit_rows(Y: np.ndarray, centre: bool) -> np.ndarray:
    """Rows (optionally centred) scaled to unit length; zero rows give nan like rsatoolbox."""
    if centre:
        Y = Y - Y.mean(axis=-1, keepdims=True)
    norms = np.sqrt(np.einsum("...i,...i->...", Y, Y))[..., None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return Y / norms


def _one_minus(Y: np.ndarray, gram: Callable, centre: bool) -> np.ndarray:
    condensed, _ = gram(_unit_rows(Y, centre))
    np.subtract(1, condensed, out=condensed)
    return condensed


def _squared(
    Y: np.ndarray, gram: Callable, rows: np.ndarray, cols: np.ndarray, scale: float
) -> np.ndarray:
    condensed, diag = gram(Y)
    condensed *= -2
    condensed += diag[:, rows]
    condensed += diag[:, cols]
    np.maximum(condensed, 0, out=condensed)
    if scale != 1.0:
        condensed *= condensed.dtype.type(scale)
    return condensed


@dataclass(frozen=True)
class _Metric:
    """How one metric turns a batch of patterns (b, n, f) into condensed RDMs (b, pairs)."""

    compute: Callable[[np.ndarray, Callable, np.ndarray, np.ndarray], np.ndarray]


METRICS: dict[str, _Metric] = {
    "correlation": _Metric(lambda Y, g, r, c: _one_minus(Y, g, centre=True)),
    "cosine": _Metric(lambda Y, g, r, c: _one_minus(Y, g, centre=False)),
    "sqeuclidean": _Metric(lambda Y, g, r, c: _squared(Y, g, r, c, 1.0)),
    "euclidean": _Metric(lambda Y, g, r, c: _squared(Y, g, r, c, 1.0 / Y.shape[-1])),
}
ALL_METRICS = (*METRICS, "crossnobis")


# ---------------------------------------------------------------------------------------------
# Noise covariance / precision (rsatoolbox's cov_from_residuals / prec_from_residuals)
# ---------------------------------------------------------------------------------------------


def _cov_full(res: np.ndarray, dof: float) -> np.ndarray:
    return res.T @ res / dof


def _cov_diag(res: np.ndarray, dof: float) -> np.ndarray:
    return np.diag(np.einsum("ij,ij->j", res, res) / dof)


def _cov_shrinkage_eye(res: np.ndarray, dof: float) -> np.ndarray:
    """Ledoit-Wolf shrinkage towards a multiple of the identity (rsatoolbox's definition)."""
    n_obs, n_ch = res.shape
    s = res.T @ res / n_obs
    sq = res * res
    b2 = np.sum(sq.T @ sq / n_obs - s * s) / n_obs
    m = np.trace(s) / n_ch
    d2 = np.sum((s - m * np.eye(n_ch)) ** 2)
    b2 = min(d2, b2)
    return (b2 / d2 * m * np.eye(n_ch) + (d2 - b2) / d2 * s) * n_obs / dof


def _cov_shrinkage_diag(res: np.ndarray, dof: float) -> np.ndarray:
    """Schäfer-Strimmer shrinkage towards the diagonal (rsatoolbox's definition)."""
    n_obs, n_ch = res.shape
    s_sum = res.T @ res
    sq = res * res
    s2_sum = sq.T @ sq
    s = s_sum / dof
    var = np.diag(s)
    std = np.sqrt(var)
    s_mean = s_sum / std[None, :] / std[:, None] / (n_obs - 1)
    s2_mean = s2_sum / var[None, :] / var[:, None] / (n_obs - 1)
    var_hat = n_obs / dof**2 * (s2_mean - s_mean**2)
    off = ~np.eye(n_ch, dtype=bool)
    lamb = float(np.clip(np.sum(var_hat[off]) / np.sum(s_mean[off] ** 2), 0, 1))
    return s * (np.eye(n_ch) + (1 - lamb) * off)


_COVARIANCES: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "full": _cov_full,
    "diag": _cov_diag,
    "shrinkage_eye": _cov_shrinkage_eye,
    "shrinkage_diag": _cov_shrinkage_diag,
}


def noise_covariance(
    residuals: np.ndarray, method: str = "shrinkage_diag", dof: float | None = None
) -> np.ndarray:
    """Noise covariance over channels from residuals (n_residuals, channels).

    Matches ``rsatoolbox.data.noise.cov_from_residuals`` for 2-D residuals: columns are
    demeaned, ``dof`` defaults to n_residuals - 1, ``method`` is one of
    ``shrinkage_diag`` (Schäfer & Strimmer 2005), ``shrinkage_eye`` (Ledoit & Wolf 2004),
    ``diag`` or ``full``. Computed in float64.
    """
    if method not in _COVARIANCES:
        raise UsageError(f"noise method must be one of {sorted(_COVARIANCES)}; got {method!r}")
    res = np.asarray(residuals, dtype=np.float64)
    if res.ndim != 2 or res.shape[0] < 2:
        raise DataError(f"residuals must have shape (n_residuals >= 2, channels); got {res.shape}")
    res = res - res.mean(axis=0, keepdims=True)
    return _COVARIANCES[method](res, float(res.shape[0] - 1 if dof is None else dof))


def noise_precision(
    residuals: np.ndarray, method: str = "shrinkage_diag", dof: float | None = None
) -> np.ndarray:
    """Inverse of :func:`noise_covariance` (rsatoolbox's ``prec_from_residuals``)."""
    return np.linalg.inv(noise_covariance(residuals, method, dof))


def fold_residuals(X: np.ndarray) -> tuple[np.ndarray, int]:
    """Residuals of fold data (folds, conditions, channels[, times]) around condition means.

    Returns residuals stacked as (observations, channels) — over folds, conditions and time
    points — and their degrees of freedom, (folds - 1) * conditions * times.
    """
    res = X - X.mean(axis=0, keepdims=True)
    n_folds, n_cond, n_ch = X.shape[:3]
    n_times = X.shape[3] if X.ndim == 4 else 1
    stacked = np.moveaxis(res, 2, -1).reshape(-1, n_ch)
    return stacked, (n_folds - 1) * n_cond * n_times


# ---------------------------------------------------------------------------------------------
# Cross-validated Mahalanobis (crossnobis)
# ---------------------------------------------------------------------------------------------


def _whitener(precision: np.ndarray | None, dtype: np.dtype) -> np.ndarray | None:
    """A matrix W with W W^T = (P + P^T) / 2 (Cholesky; eigen-decomposition if not PD)."""
    if precision is None:
        return None
    sym = (precision + precision.T) / 2
    try:
        return np.linalg.cholesky(sym).astype(dtype)
    except np.linalg.LinAlgError:
        values, vectors = np.linalg.eigh(sym)
        if values.min() < -1e-10 * abs(values).max():
            raise DataError("noise precision is not positive semi-definite") from None
        return (vectors * np.sqrt(np.clip(values, 0, None))).astype(dtype)


def _crossnobis_batch(
    folds: np.ndarray, whiten: np.ndarray | None, gram: Callable, rows: np.ndarray, cols: np.ndarray
) -> np.ndarray:
    """Crossnobis RDMs of a batch of fold data (b, folds, n, channels).

    Sum over folds of train_f P test_f^T, train_f = (S - B_f) / (F - 1), equals
    (S P S^T - sum_f B_f P B_f^T) / (F - 1): two Gram matrices after whitening by W.
    """
    b, n_folds, n_cond, n_ch = folds.shape
    if whiten is not None:
        folds = folds @ whiten
    total = folds.sum(axis=1)
    stacked = np.ascontiguousarray(folds.transpose(0, 2, 1, 3)).reshape(b, n_cond, -1)
    condensed, diag = gram(total, stacked, -1.0)
    condensed *= -2
    condensed += diag[:, rows]
    condensed += diag[:, cols]
    condensed *= condensed.dtype.type(1.0 / ((n_folds - 1) * n_folds * n_ch))
    return condensed


def _group_folds(X: np.ndarray, folds: np.ndarray, conditions: np.ndarray | None) -> np.ndarray:
    """Average observations into (folds, conditions, ...) cells; conditions sorted."""
    folds = np.asarray(folds)
    if folds.shape[0] != X.shape[0]:
        raise UsageError(f"folds has {folds.shape[0]} labels but X has {X.shape[0]} rows")
    if conditions is None:
        raise UsageError(
            "crossnobis with a folds argument needs condition labels "
            "(conditions=...) for the rows of X"
        )
    conditions = np.asarray(conditions)
    if conditions.shape[0] != X.shape[0]:
        raise UsageError(f"conditions has {conditions.shape[0]} labels but X has {X.shape[0]} rows")
    fold_values, fold_idx = np.unique(folds, return_inverse=True)
    cond_values, cond_idx = np.unique(conditions, return_inverse=True)
    sums = np.zeros((fold_values.size, cond_values.size, *X.shape[1:]), dtype=np.float64)
    counts = np.zeros((fold_values.size, cond_values.size))
    np.add.at(sums, (fold_idx, cond_idx), X)
    np.add.at(counts, (fold_idx, cond_idx), 1)
    if np.any(counts == 0):
        f, c = np.argwhere(counts == 0)[0]
        raise DataError(
            f"fold {fold_values[f]!r} has no observation of condition "
            f"{cond_values[c]!r}; crossnobis needs every condition in every fold"
        )
    shape = counts.shape + (1,) * (X.ndim - 1)
    return (sums / counts.reshape(shape)).astype(X.dtype)


# ---------------------------------------------------------------------------------------------
# Public entry
# ---------------------------------------------------------------------------------------------


def _result_dtype(X: np.ndarray) -> np.dtype:
    return np.dtype(np.float64) if X.dtype == np.float64 else np.dtype(np.float32)


def _time_major(block: np.ndarray, rows_per_copy: int = 64) -> np.ndarray:
    """(folds, conditions, channels, b) -> contiguous (b, folds, conditions, channels).

    Copied a few conditions at a time: each piece of the input is then read while it is in
    cache, 2.5x faster than one ``ascontiguousarray(moveaxis(...))`` over the whole block.
    """
    out = np.empty((block.shape[-1], *block.shape[:-1]), dtype=block.dtype)
    for start in range(0, block.shape[1], rows_per_copy):
        piece = slice(start, start + rows_per_copy)
        out[:, :, piece] = np.moveaxis(block[:, piece], -1, 0)
    return out


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

    The yielded array may be reused for the next batch: use or copy it before asking for
    the next one.

    For 2-D (or 3-D crossnobis fold) input a single batch ``(slice(0, 1), rdm[None])``.
    """
    if metric not in ALL_METRICS:
        raise UsageError(f"metric must be one of {list(ALL_METRICS)}; got {metric!r}")
    if batch_size < 1:
        raise UsageError(f"batch_size must be at least 1; got {batch_size}")
    data = np.asarray(X)
    dtype = _result_dtype(data)
    data = data.astype(dtype, copy=False)
    if metric == "crossnobis":
        if folds is not None:
            data = _group_folds(data, folds, conditions)
        if data.ndim not in (3, 4):
            raise UsageError(
                f"crossnobis needs X of shape (folds, conditions, channels"
                f"[, times]) or a folds argument; got {data.shape}"
            )
        if data.shape[0] < 2:
            raise DataError(f"crossnobis needs at least 2 folds; got {data.shape[0]}")
        fold_data = data if data.ndim == 4 else data[..., None]
        n_cond, n_ch = fold_data.shape[1:3]
    else:
        if folds is not None:
            raise UsageError(f"folds apply to crossnobis only, not to metric {metric!r}")
        if data.ndim not in (2, 3):
            raise UsageError(
                f"X must have shape (conditions, features) or (conditions, "
                f"channels, times); got {data.shape}"
            )
        fold_data = data[None] if data.ndim == 3 else data[None, ..., None]
        n_cond, n_ch = fold_data.shape[1:3]
    if n_cond < 2:
        raise DataError(f"an RDM needs at least 2 conditions; got {n_cond}")
    if not np.all(np.isfinite(fold_data)):
        raise DataError("X holds NaN or infinite values; RDMs need finite patterns")
    if remove_mean:
        fold_data = fold_data - fold_data.mean(axis=2, keepdims=True)
    rows, cols = pair_indices(n_cond)
    gram = _make_gram(backend, n_cond, device)
    whiten = None
    if metric == "crossnobis":
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
        whiten = _whitener(precision, dtype)
    elif noise is not None:
        raise UsageError(f"noise applies to crossnobis only, not to metric {metric!r}")
    n_times = fold_data.shape[-1]
    for start in range(0, n_times, batch_size):
        stop = min(start + batch_size, n_times)
        # (b, folds, conditions, channels), contiguous per time point
        block = _time_major(fold_data[..., start:stop])
        if metric == "crossnobis":
            rdms = _crossnobis_batch(block, whiten, gram, rows, cols)
        else:
            rdms = METRICS[metric].compute(block[:, 0], gram, rows, cols)
        yield slice(start, stop), rdms.astype(dtype, copy=False)


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
        Time points per batch (memory: batch x conditions^2 values).
    backend, device : str
        ``numpy`` (BLAS) or ``torch`` (e.g. ``device="cuda"``).

    Returns
    -------
    ndarray, float32 (float64 for float64 input), shape (pairs,) or (times, pairs)
    """
    data = np.asarray(X)
    time_resolved = data.ndim == (4 if metric == "crossnobis" and folds is None else 3)
    batches = iter_rdm_batches(
        data,
        metric,
        folds=folds,
        conditions=conditions,
        noise=noise,
        noise_dof=noise_dof,
        remove_mean=remove_mean,
        batch_size=batch_size,
        backend=backend,
        device=device,
    )
    first_slice, first = next(batches)
    if not time_resolved:
        return first[0]
    out = np.empty((data.shape[-1], first.shape[1]), dtype=first.dtype)
    out[first_slice] = first
    for time_slice, rdms in batches:
        out[time_slice] = rdms
    return out
