"""RDM metrics of :mod:`figureground.analysis.rdm_calc` on one batch of time points.

Each metric writes a batch (b, n, f) of time-major patterns (owned, changed in place) as
condensed RDMs into ``out`` (b, pairs) through a Gram backend of
:mod:`figureground.analysis.rdm_gram`; :func:`crossnobis_batch` does the same for fold data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


def _unit_rows(Y: np.ndarray, centre: bool) -> np.ndarray:
    """Rows (optionally centred) scaled to unit length in place; zero rows give nan."""
    if centre:
        Y -= Y.mean(axis=-1, keepdims=True)
    norms = np.sqrt(np.einsum("...i,...i->...", Y, Y))[..., None]
    with np.errstate(invalid="ignore", divide="ignore"):
        Y /= norms
    return Y


def _one_minus(Y: np.ndarray, gram: Callable, out: np.ndarray, centre: bool) -> None:
    gram(_unit_rows(Y, centre), out, subtract_from=1.0)


def _from_gram_diagonal(out: np.ndarray, diag: np.ndarray, rows: np.ndarray, cols: np.ndarray):
    """``d_i + d_j - 2 g_ij`` in place over condensed Gram values ``out``."""
    out *= -2
    out += diag[:, rows]
    out += diag[:, cols]


def _squared(
    Y: np.ndarray,
    gram: Callable,
    out: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    scale: float,
) -> None:
    _from_gram_diagonal(out, gram(Y, out), rows, cols)
    np.maximum(out, 0, out=out)
    if scale != 1.0:
        out *= out.dtype.type(scale)


@dataclass(frozen=True)
class _Metric:
    """How one metric writes a batch of patterns (b, n, f) as condensed RDMs into out."""

    # (patterns, gram, out, pairs): ``pairs()`` gives the (rows, cols) condition indices of the
    # condensed pairs, built only by the metrics that need them
    compute: Callable[[np.ndarray, Callable, np.ndarray, Callable], None]


METRICS: dict[str, _Metric] = {
    "correlation": _Metric(lambda Y, g, out, pairs: _one_minus(Y, g, out, centre=True)),
    "cosine": _Metric(lambda Y, g, out, pairs: _one_minus(Y, g, out, centre=False)),
    "sqeuclidean": _Metric(lambda Y, g, out, pairs: _squared(Y, g, out, *pairs(), 1.0)),
    "euclidean": _Metric(lambda Y, g, out, pairs: _squared(Y, g, out, *pairs(), 1.0 / Y.shape[-1])),
}
ALL_METRICS = (*METRICS, "crossnobis")


def crossnobis_batch(
    folds: np.ndarray,
    whiten: np.ndarray | None,
    gram: Callable,
    out: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
) -> None:
    """Crossnobis RDMs of a batch of fold data (b, folds, n, channels) into out (b, pairs).

    Sum over folds of train_f P test_f^T, train_f = (S - B_f) / (F - 1), equals
    (S P S^T - sum_f B_f P B_f^T) / (F - 1): two Gram matrices after whitening by W.
    """
    b, n_folds, n_cond, n_ch = folds.shape
    if whiten is not None:
        folds = folds @ whiten
    total = folds.sum(axis=1)
    stacked = np.ascontiguousarray(folds.transpose(0, 2, 1, 3)).reshape(b, n_cond, -1)
    _from_gram_diagonal(out, gram(total, out, stacked, -1.0), rows, cols)
    out *= out.dtype.type(1.0 / ((n_folds - 1) * n_folds * n_ch))
