"""Compare condensed RDMs: many data RDMs (e.g. time points) against a few model RDMs.

``compare_rdms(a, b, method)`` with ``a`` of shape (times, pairs) and ``b`` of shape
(models, pairs) returns (times, models). Definitions match ``rsatoolbox.rdm.compare``:

- ``cosine``: cosine similarity; 0 where either vector is all zeros (rsatoolbox's ``cosine``).
- ``pearson``: mean-subtracted cosine (rsatoolbox's ``corr``).
- ``spearman``: Pearson of the ranks, ties averaged (rsatoolbox's ``spearman``).
- ``kendall_tau_a``: (concordant - discordant) / all pairs, no tie correction
  (rsatoolbox's ``tau-a``); a loop over (time, model) on ``scipy.stats.kendalltau``.
- ``partial_pearson`` / ``partial_spearman``: the partial correlation of ``a`` with each model
  given all the *other* models in ``b`` (both residualised on the others and an intercept):
  the unique share of one model RDM.
- ``semipartial_pearson`` / ``semipartial_spearman``: as above, only the model residualised
  (the part correlation: the square is the variance in ``a`` that the model alone explains).

Pairs that are NaN in any RDM are left out of every comparison, as rsatoolbox does.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import stats

from figureground.analysis import fast_ranks
from figureground.errors import DataError, UsageError


def rank_rows(values: np.ndarray, n_jobs: int = 1) -> np.ndarray:
    """Ranks along the last axis, ties averaged (``scipy.stats.rankdata``), as float64.

    Rows are ranked by sorting int64 keys that pack each value's order with its position
    (:mod:`figureground.analysis.fast_ranks`, exact for float32 and float64; NaN ranked
    last, one rank each); ``n_jobs`` threads rank rows in parallel.
    """
    return fast_ranks.rank_rows(values, n_jobs)


def _nan_pairs(rdms: np.ndarray) -> np.ndarray:
    """Pairs (columns) that are NaN in any row: ``min`` propagates NaN, so one pass over the
    rows without a (rows, pairs) boolean temporary."""
    if rdms.shape[0] == 0:
        return np.zeros(rdms.shape[1], dtype=bool)
    return np.isnan(rdms.min(axis=0))


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of rows of ``a`` with rows of ``b``; 0 for zero-length rows."""
    norm_a = np.sqrt(np.einsum("ij,ij->i", a, a))
    norm_b = np.sqrt(np.einsum("ij,ij->i", b, b))
    dots = a @ b.T
    with np.errstate(invalid="ignore", divide="ignore"):
        sim = dots / norm_a[:, None] / norm_b[None, :]
    return np.where((norm_a[:, None] > 0) & (norm_b[None, :] > 0), sim, 0.0)


def _centred(x: np.ndarray) -> np.ndarray:
    return x - x.mean(axis=1, keepdims=True)


def _pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _cosine(_centred(a), _centred(b))


def _others_basis(b: np.ndarray, k: int) -> np.ndarray:
    """Orthonormal basis (pairs, m) of an intercept and every model but ``k``."""
    design = np.column_stack([np.ones(b.shape[1]), np.delete(b, k, axis=0).T])
    q, r = np.linalg.qr(design)
    keep = np.abs(np.diag(r)) > 1e-10 * np.abs(r).max()
    return q[:, keep]


# Residual norms below this share of the original norm count as zero (collinear inputs).
_DEGENERATE = 1e-6


def _partial(a: np.ndarray, b: np.ndarray, semi: bool) -> np.ndarray:
    """(Semi)partial correlation of each row of ``a`` with each model given the others."""
    if b.shape[0] < 2:
        raise UsageError(
            "partial and semipartial comparisons need at least 2 model RDMs "
            f"(each is taken given the others); got {b.shape[0]}"
        )
    out = np.empty((a.shape[0], b.shape[0]))
    a_centred = _centred(a)
    a_norm2 = np.einsum("ij,ij->i", a_centred, a_centred)
    for k in range(b.shape[0]):
        basis = _others_basis(b, k)
        model = b[k] - basis @ (basis.T @ b[k])
        model_norm = np.sqrt(model @ model)
        model_scale = np.linalg.norm(b[k] - b[k].mean())
        if not model_norm > _DEGENERATE * model_scale or model_scale == 0:
            # The model lies in the span of the others (e.g. few pairs), or is constant:
            # no unique share.
            out[:, k] = np.nan
            continue
        dots = a @ model  # the residual model is orthogonal to the basis
        if semi:
            denom = np.sqrt(a_norm2)
        else:
            proj = a @ basis
            denom = np.sqrt(
                np.maximum(np.einsum("ij,ij->i", a, a) - np.einsum("ij,ij->i", proj, proj), 0)
            )
        usable = denom > _DEGENERATE * np.sqrt(a_norm2)
        with np.errstate(invalid="ignore", divide="ignore"):
            value = np.clip(dots / denom / model_norm, -1.0, 1.0)
        out[:, k] = np.where(usable, value, np.nan)
    return out


def _tau_a(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-a from scipy's tau-b: con - dis over all pairs, without tie terms."""
    n = x.size
    total = n * (n - 1) // 2

    def tied(values: np.ndarray) -> int:
        counts = np.unique(values, return_counts=True)[1].astype(np.int64)
        return int((counts * (counts - 1) // 2).sum())

    x_ties, y_ties = tied(x), tied(y)
    if x_ties == total or y_ties == total:
        return 0.0
    tau_b = stats.kendalltau(x, y).statistic
    con_minus_dis = tau_b * np.sqrt(float(total - x_ties) * float(total - y_ties))
    return float(np.clip(con_minus_dis / total, -1.0, 1.0))


def _kendall_tau_a(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array([[_tau_a(row, model) for model in b] for row in a])


def _partial_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _partial(a, b, semi=False)


def _semipartial_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _partial(a, b, semi=True)


class _PearsonRows:
    """Pearson correlation of single data rows (or of their ranks) with fixed models.

    The models are centred once; each data row is copied (or ranked) into its thread's
    buffer, centred in place and compared by one matrix-vector product, so no (rows, pairs)
    float64 temporaries are made. Same definition as :func:`_pearson` (0 for constant rows).
    With numba the products run compiled on the row's thread
    (:func:`figureground.analysis.key_rank_kernels.row_products`), not by BLAS.
    """

    def __init__(self, models: np.ndarray, ranked: bool) -> None:
        self._ranked = ranked
        self._models = _centred(models)
        self._model_norms = np.sqrt(np.einsum("ij,ij->i", self._models, self._models))
        kernels = fast_ranks.compiled_kernels()
        self._products = (
            kernels.row_products
            if kernels is not None
            else lambda values, models: (values @ values, models @ values)
        )

    def __call__(self, row: np.ndarray, workspace: fast_ranks.RankWorkspace) -> np.ndarray:
        values = workspace.values
        if self._ranked:
            workspace.rank(row, values)
        else:
            values[...] = row
        values -= values.mean()
        squares, dots = self._products(values, self._models)
        norm = np.sqrt(squares)
        with np.errstate(invalid="ignore", divide="ignore"):
            sim = dots / norm / self._model_norms
        return np.where((norm > 0) & (self._model_norms > 0), sim, 0.0)


# name -> (compare ranks instead of values, function of (data rows, models))
METHODS: dict[str, tuple[bool, Callable[[np.ndarray, np.ndarray], np.ndarray]]] = {
    "cosine": (False, _cosine),
    "pearson": (False, _pearson),
    "spearman": (True, _pearson),
    "kendall_tau_a": (False, _kendall_tau_a),
    "partial_pearson": (False, _partial_corr),
    "partial_spearman": (True, _partial_corr),
    "semipartial_pearson": (False, _semipartial_corr),
    "semipartial_spearman": (True, _semipartial_corr),
}
# methods compared row by row, one rank transform per data row shared by every model
_ROW_KERNELS: dict[str, Callable[[np.ndarray], _PearsonRows]] = {
    "pearson": lambda models: _PearsonRows(models, ranked=False),
    "spearman": lambda models: _PearsonRows(models, ranked=True),
}
# rsatoolbox's names for the methods it shares
RSATOOLBOX_NAMES = {
    "cosine": "cosine",
    "pearson": "corr",
    "spearman": "spearman",
    "kendall_tau_a": "tau-a",
}


def compare_rdms(
    a: np.ndarray, b: np.ndarray, method: str = "spearman", *, batch_size: int = 32, n_jobs: int = 1
) -> np.ndarray:
    """Similarity of each data RDM with each model RDM.

    Parameters
    ----------
    a : ndarray, shape (pairs,) or (times, pairs)
        Data RDMs, condensed.
    b : ndarray, shape (pairs,) or (models, pairs)
        Model RDMs, condensed.
    method : str
        One of :data:`METHODS` (see the module docstring).
    batch_size : int
        Rows of ``a`` handled at a time (bounds the float64 working memory) by methods
        other than ``pearson`` and ``spearman``, which go row by row (one float64 row
        buffer per thread).
    n_jobs : int
        Threads that rank and compare rows in parallel. Each data row is ranked once for
        all models.

    Returns
    -------
    ndarray, float64, shape (times, models)
    """
    if method not in METHODS:
        raise UsageError(f"method must be one of {list(METHODS)}; got {method!r}")
    data = np.atleast_2d(np.asarray(a))
    models = np.atleast_2d(np.asarray(b))
    if data.ndim != 2 or models.ndim != 2 or data.shape[1] != models.shape[1]:
        raise UsageError(
            f"RDMs must be condensed with equal numbers of pairs; got "
            f"{np.shape(a)} and {np.shape(b)}"
        )
    keep = ~(_nan_pairs(data) | _nan_pairs(models))
    if not keep.all():
        if not keep.any():
            raise DataError("every pair is NaN in some RDM; nothing left to compare")
        data, models = data[:, keep], models[:, keep]
    ranked, func = METHODS[method]
    models = rank_rows(models, n_jobs) if ranked else models.astype(np.float64)
    out = np.empty((data.shape[0], models.shape[0]))
    if method in _ROW_KERNELS:
        compare_row = _ROW_KERNELS[method](models)

        def compare_one(i: int, workspace: fast_ranks.RankWorkspace) -> None:
            out[i] = compare_row(data[i], workspace)

        fast_ranks.for_each_row(data.shape[0], data.shape[1], compare_one, n_jobs)
        return out
    for start in range(0, data.shape[0], batch_size):
        block = data[start : start + batch_size]
        block = rank_rows(block, n_jobs) if ranked else block.astype(np.float64)
        out[start : start + batch_size] = func(block, models)
    return out
