"""Banded ridge regression by random search over band weightings, in time linear in images.

himalaya's ``solve_group_ridge_random_search`` scores each inner fold as
``(X_test @ M) @ Y_train`` with ``M = (X'X + alpha I)^-1 X'`` (features x training images):
the middle product is test x training images, so its time grows with the square of the
images (the encoding stage's growth exponent of 1.4-1.6 from 1/8 to full THINGS size). This
module computes the same predictions as ``X_test @ (M @ Y_train)``, whose middle product is
features x targets: the same numbers up to rounding, time linear in the images (for a
THINGS fold, 14,000 training and 3,500 test images, 200 features: about 25 times fewer
operations).

Everything else follows himalaya's algorithm, so results agree with ``GroupRidgeCV`` to
rounding (``tests/analysis/test_banded_ridge.py``): band weightings from himalaya's
Dirichlet sampler (``random_state``) with the first one uniform; per target, the alpha with
the best mean fold score (ties go to the larger alpha); a weighting replaces a target's best
when its score is higher by more than the dtype's eps; weights refit on every training
image. The arithmetic runs on himalaya's current backend (numpy, torch or torch_cuda).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

Split = tuple[np.ndarray, np.ndarray]


def _neg_mse(y_true: Any, y_pred: Any) -> Any:
    """Negative mean squared error over images: (alphas, targets) (himalaya's l2_neg_loss)."""
    return -((y_true[None] - y_pred) ** 2).sum(1) / y_true.shape[0]


def fit_banded_ridge(
    Xs: Sequence[np.ndarray],
    Y: np.ndarray,
    alphas: np.ndarray,
    n_iter: int,
    splits: Sequence[Split],
    random_state: int,
    concentration: Sequence[float] = (0.1, 1.0),
    n_targets_batch: int | None = None,
) -> Any:
    """Primal weights (features of all bands, targets) of banded ridge on unscaled ``Xs``,
    as numpy: predictions are ``concatenate(Xs_test, axis=1) @ weights``.

    Parameters
    ----------
    Xs : one (images, features) array per band, centred.
    Y : (images, targets), centred.
    alphas : ridge penalties tried per target.
    n_iter : band weightings tried (the first is uniform).
    splits : inner cross-validation (train, validation) index pairs.
    random_state : seeds the band weightings.
    concentration : Dirichlet concentrations of the band weightings.
    n_targets_batch : targets scored together (memory); None for all.
    """
    from himalaya.backend import get_backend
    from himalaya.kernel_ridge import generate_dirichlet_samples

    backend = get_backend()
    n_spaces = len(Xs)
    gammas = generate_dirichlet_samples(
        n_samples=n_iter,
        n_kernels=n_spaces,
        concentration=list(concentration),
        random_state=random_state,
    )
    gammas[0] = 1.0 / n_spaces
    dtype = np.asarray(Xs[0]).dtype
    gammas = backend.to_numpy(gammas).astype(dtype)
    X = backend.asarray(np.concatenate([np.asarray(x, dtype=dtype) for x in Xs], axis=1))
    Y = backend.asarray(np.asarray(Y, dtype=dtype))
    alphas_ = backend.asarray(np.asarray(alphas, dtype=dtype))
    band = np.repeat(np.arange(n_spaces), [np.asarray(x).shape[1] for x in Xs])
    n_targets = Y.shape[1]
    batch = n_targets_batch or n_targets
    # Ties between penalties go to the larger one, as himalaya breaks them.
    slope = np.log(np.asarray(alphas, dtype=np.float64)) * 1e-10
    best_score = np.full(n_targets, -np.inf)
    best_alpha = np.ones(n_targets)
    weights = np.zeros((X.shape[1], n_targets), dtype=dtype)
    eps = np.finfo(dtype).eps
    for gamma in gammas:
        scale = backend.asarray(np.sqrt(gamma[band]).astype(dtype))
        Z = X * scale[None, :]
        scores = np.zeros((len(splits), len(alphas), n_targets))
        for k, (train, test) in enumerate(splits):
            U, s, Vt = backend.svd(Z[train], full_matrices=False)
            shrink = s[None, :] / (alphas_[:, None] + s[None, :] ** 2)  # (alphas, rank)
            for start in range(0, n_targets, batch):
                cols = slice(start, start + batch)
                projected = backend.matmul(U.T, Y[train][:, cols])  # (rank, targets)
                coef = backend.matmul(Vt.T, shrink[:, :, None] * projected[None])
                predicted = backend.matmul(Z[test][None], coef)  # (alphas, test, targets)
                scores[k, :, cols] = backend.to_numpy(_neg_mse(Y[test][:, cols], predicted))
        mean = scores.mean(axis=0) + slope[:, None]
        chosen = mean.argmax(axis=0)
        score = mean.max(axis=0)
        improved = np.flatnonzero(score > best_score + eps)
        if improved.size == 0:
            continue
        best_score[improved] = score[improved]
        best_alpha[improved] = np.asarray(alphas)[chosen[improved]]
        weights[:, improved] = _refit(backend, Z, Y, scale, alphas, chosen, improved, dtype)
    return weights


def _refit(
    backend: Any,
    Z: Any,
    Y: Any,
    scale: Any,
    alphas: np.ndarray,
    chosen: np.ndarray,
    targets: np.ndarray,
    dtype: np.dtype,
) -> np.ndarray:
    """Weights on the unscaled features of ``targets``, each with its chosen penalty."""
    U, s, Vt = backend.svd(Z, full_matrices=False)
    out = np.zeros((Z.shape[1], targets.size), dtype=dtype)
    for index in np.unique(chosen[targets]):
        columns = np.flatnonzero(chosen[targets] == index)
        picked = backend.asarray(targets[columns])
        shrink = s / (float(alphas[index]) + s**2)
        coef = backend.matmul(Vt.T, shrink[:, None] * backend.matmul(U.T, Y[:, picked]))
        out[:, columns] = backend.to_numpy(coef * scale[:, None])
    return out
