"""Noise covariance / precision and the fold handling of crossnobis RDMs.

:func:`noise_covariance` and :func:`noise_precision` match rsatoolbox's
``cov_from_residuals`` / ``prec_from_residuals``; :func:`fold_residuals` pools the residuals
of fold data, :func:`group_folds` averages labelled observations into fold cells and
:func:`whitener` turns a precision into the matrix the crossnobis Gram matrices are whitened
by (:mod:`figureground.analysis.rdm_calc`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from figureground.errors import DataError, UsageError

NOISE_METHODS = ("shrinkage_diag", "shrinkage_eye", "diag", "full")


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


def whitener(precision: np.ndarray | None, dtype: np.dtype) -> np.ndarray | None:
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


def group_folds(X: np.ndarray, folds: np.ndarray, conditions: np.ndarray | None) -> np.ndarray:
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
