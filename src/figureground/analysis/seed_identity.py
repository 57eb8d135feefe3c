"""The seed method's identity version: is an image's MEG closer to its own embedding?

The seed method (:mod:`figureground.analysis.seed`) compares each image's resampled MEG with
its embedding by Euclidean distance and averages the distances of a condition. Those averages
are dominated by terms every image shares (the embeddings' norms and mean activation maps,
the evoked field), so they cannot say whether the responses carry the *image's* information.
The identity version asks exactly that, within each condition:

- distance matrix ``D[i, j] = || resample(MEG_i) - E_j ||`` over the images;
- per image, ``a_i = mean_{j != i} D[i, j] - D[i, i]``: how much closer the MEG of image ``i``
  is to its own embedding than to the others' (positive: closer to its own);
- statistic: the mean of ``a_i``; null: the embeddings' image labels permuted
  (``D[i, perm(i)]``), ``p = (1 + #null >= observed) / (1 + n_permutations)``;
- conditions compared by a bootstrap over images of the mean of ``a_i(figure) -
  a_i(ground)`` (percentile interval; ``p`` as rsatoolbox's two-sided bootstrap test).

``D`` needs ``n^2`` inner products of ``channels x positions`` numbers, so studies with more
than ``max_images`` images use a seeded random subset (stated in the results).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from figureground.conditions import NO_BACKGROUND, NO_FOREGROUND
from figureground.errors import DataError


def distance_matrix(resampled: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
    """``D[i, j] = ||resampled[i] - embeddings[j]||`` (float64) of (n, ...) arrays."""
    r = np.asarray(resampled, dtype=np.float64).reshape(len(resampled), -1)
    e = np.asarray(embeddings, dtype=np.float64).reshape(len(embeddings), -1)
    if r.shape != e.shape:
        raise DataError(f"resampled MEG {r.shape} and embeddings {e.shape} differ in shape")
    squared = (r**2).sum(1)[:, None] + (e**2).sum(1)[None, :] - 2.0 * (r @ e.T)
    return np.sqrt(np.clip(squared, 0.0, None))


def identity_scores(distances: np.ndarray) -> np.ndarray:
    """Per image: mean distance to the other images' embeddings minus the own distance."""
    n = distances.shape[0]
    if n < 3:
        raise DataError(f"{n} images; the identity test needs at least 3")
    others = (distances.sum(axis=1) - np.diag(distances)) / (n - 1)
    return others - np.diag(distances)


def identity_test(
    distances: np.ndarray, n_permutations: int = 1000, seed: int = 0
) -> dict[str, float]:
    """Mean identity score and its image-label permutation p-value (one-sided, greater)."""
    n = distances.shape[0]
    observed = float(identity_scores(distances).mean())
    rng = np.random.default_rng(seed)
    row_sums = distances.sum(axis=1)
    null = np.empty(n_permutations)
    for k in range(n_permutations):
        own = distances[np.arange(n), rng.permutation(n)]
        null[k] = float(np.mean((row_sums - own) / (n - 1) - own))
    p = (1.0 + np.sum(null >= observed - 1e-12)) / (1.0 + n_permutations)
    return {"statistic": observed, "p_perm": float(p), "n_images": n}


def compare_conditions(
    scores: Mapping[str, np.ndarray],
    figure: str,
    ground: str,
    n_boot: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
) -> dict[str, float]:
    """Bootstrap over images of mean(a(figure) - a(ground))."""
    diff = np.asarray(scores[figure]) - np.asarray(scores[ground])
    rng = np.random.default_rng(seed)
    draws = np.stack([rng.integers(0, len(diff), len(diff)) for _ in range(n_boot)])
    samples = diff[draws].mean(axis=1)
    tail = (1 - ci) / 2 * 100
    below = float(np.mean(samples < 0))
    p = 2 * min(below, 1 - below)
    return {
        "estimate": float(diff.mean()),
        "ci_low": float(np.percentile(samples, tail)),
        "ci_high": float(np.percentile(samples, 100 - tail)),
        "p_boot": (n_boot - 1) / n_boot * p + 1 / n_boot,
    }


def seed_identity(
    meg: np.ndarray,
    embeddings: Mapping[str, np.ndarray],
    n_permutations: int = 1000,
    n_boot: int = 1000,
    seed: int = 0,
    figure: str = NO_BACKGROUND,
    ground: str = NO_FOREGROUND,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """The identity version for one participant: a row per condition, and figure vs ground.

    Parameters
    ----------
    meg : per-image responses (image, sensors, times), images in the embeddings' order.
    embeddings : condition -> (image, channels[, h, w]) activations.
    """
    from figureground.analysis.seed import embedding_matrices, resample_meg

    rows, scores = [], {}
    for condition, values in embeddings.items():
        matrices = embedding_matrices(np.asarray(values), batched=True)
        resampled = resample_meg(meg, *matrices.shape[1:])
        distances = distance_matrix(resampled, matrices)
        scores[condition] = identity_scores(distances)
        rows.append({"condition": condition, **identity_test(distances, n_permutations, seed)})
    comparison = (
        compare_conditions(scores, figure, ground, n_boot, seed)
        if figure in scores and ground in scores
        else {}
    )
    return pd.DataFrame(rows), comparison
