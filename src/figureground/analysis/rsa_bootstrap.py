"""RSA on bootstrap samples of conditions, without re-sorting: resampling re-weights pairs.

A bootstrap sample draws ``n`` conditions with replacement. rsatoolbox
(``RDMs.subsample_pattern``) then builds the RDM of the drawn conditions: a condition drawn
``c_i`` times contributes ``c_i * c_j`` copies of each of its pairs, and the pairs between
copies of one condition are dropped (NaN). Every statistic of that RDM is therefore a
statistic of the original pairs with integer weights ``w_ij = c_i c_j``:

- Pearson correlation: weighted moments.
- Spearman correlation: Pearson of the ranks, ties averaged. The ranks of a weighted vector
  follow from one sort of the original values: an entry of weight ``w`` preceded (in sorted
  order) by total weight ``W`` takes ranks ``W + 1 .. W + w``, average ``W + (w + 1) / 2``;
  tied values share the average over their whole tie group. The sort is done once per RDM;
  each sample costs a cumulative sum.
- Partial correlations: from the weighted correlation matrix of data and models.

The results equal rsatoolbox's ``compare`` on the subsampled RDMs (tested), at the cost of a
few passes over the pairs per sample instead of a sort.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from figureground.errors import UsageError

METHODS = ("spearman", "pearson")
MEMORY_BYTES = 2**28  # (samples x pairs) float64 arrays held at once, per array


def bootstrap_draws(n_conditions: int, n_boot: int, seed: int) -> np.ndarray:
    """Condition indices of each bootstrap sample (n_boot, n), drawn with replacement.

    The same draws as :func:`figureground.analysis.stats.bootstrap` with this seed.
    """
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, n_conditions, n_conditions) for _ in range(n_boot)])


def pair_weights(draws: np.ndarray, n_conditions: int) -> np.ndarray:
    """Weights (samples, pairs) ``c_i c_j`` of the condensed pairs i < j for each draw."""
    draws = np.atleast_2d(draws)
    counts = np.zeros((draws.shape[0], n_conditions))
    np.add.at(counts, (np.arange(draws.shape[0])[:, None], draws), 1.0)
    rows, cols = np.triu_indices(n_conditions, 1)
    return counts[:, rows] * counts[:, cols]


@dataclass(frozen=True)
class SortedVector:
    """One RDM's sort order and tie groups, to rank it under any weights."""

    order: np.ndarray  # argsort of the values
    group_start: np.ndarray  # first sorted position of each tie group
    group_of: np.ndarray  # tie group of each sorted position
    ties: bool

    @classmethod
    def of(cls, values: np.ndarray) -> SortedVector:
        """Sort ``values`` once (NaN last)."""
        order = np.argsort(values, kind="stable")
        ordered = values[order]
        new = np.ones(ordered.size, dtype=bool)
        new[1:] = ordered[1:] != ordered[:-1]
        start = np.flatnonzero(new)
        return cls(order, start, np.cumsum(new) - 1, bool(start.size < ordered.size))


def weighted_ranks(sorted_vector: SortedVector, weights: np.ndarray) -> np.ndarray:
    """Average ranks (samples, pairs) of a vector repeated ``weights`` times, ties averaged.

    Entries of weight 0 get a rank too; it never counts.
    """
    ordered = weights[:, sorted_vector.order]
    cumulative = np.cumsum(ordered, axis=1)
    if not sorted_vector.ties:
        ranks_sorted = cumulative - (ordered - 1.0) / 2.0
    else:
        before = cumulative - ordered  # weight strictly before each position
        group_before = before[:, sorted_vector.group_start]
        group_total = np.add.reduceat(ordered, sorted_vector.group_start, axis=1)
        ranks_sorted = (group_before + (group_total + 1.0) / 2.0)[:, sorted_vector.group_of]
    ranks = np.empty_like(ranks_sorted)
    ranks[:, sorted_vector.order] = ranks_sorted
    return ranks


def _centred(values: np.ndarray, weights: np.ndarray, total: np.ndarray) -> np.ndarray:
    mean = np.einsum("bp,bp->b", values, weights) / total
    return values - mean[:, None]


def _transform(
    vector: np.ndarray, sorted_vector: SortedVector | None, weights: np.ndarray
) -> np.ndarray:
    if sorted_vector is None:
        return np.broadcast_to(vector, weights.shape)
    return weighted_ranks(sorted_vector, weights)


def _partial_from_corr(corr: np.ndarray, target: int, given: Sequence[int]) -> np.ndarray:
    """Partial correlation of variable 0 with ``target`` given ``given`` (samples,)."""
    index = [0, target, *given]
    sub = corr[:, index][:, :, index]
    out = np.full(len(sub), np.nan)
    finite = np.isfinite(sub).all(axis=(1, 2))
    finite[finite] = np.abs(np.linalg.det(sub[finite])) > 1e-12  # collinear: undefined
    if finite.any():
        precision = np.linalg.inv(sub[finite])
        with np.errstate(invalid="ignore", divide="ignore"):
            out[finite] = -precision[:, 0, 1] / np.sqrt(precision[:, 0, 0] * precision[:, 1, 1])
    return out


def bootstrap_rsa(
    data_rdms: np.ndarray,
    model_rdms: np.ndarray,
    draws: np.ndarray,
    method: str = "spearman",
    partials: Sequence[tuple[int, Sequence[int]]] = (),
) -> np.ndarray:
    """RSA of every data RDM with every model RDM on each bootstrap sample of conditions.

    Parameters
    ----------
    data_rdms : condensed RDMs (times, pairs), e.g. one per time point.
    model_rdms : condensed model RDMs (models, pairs).
    draws : condition indices of each sample (samples, n_conditions); the identity row gives
        the full-data statistic.
    method : ``spearman`` or ``pearson``.
    partials : (target model, given models) of each partial correlation to add.

    Returns
    -------
    (samples, times, models + len(partials)) float64; NaN for samples with fewer than 3
    distinct conditions, and where a correlation is undefined (a constant RDM).
    """
    if method not in METHODS:
        raise UsageError(f"bootstrap RSA method {method!r} is not one of {', '.join(METHODS)}")
    data = np.atleast_2d(np.asarray(data_rdms, dtype=np.float64))
    models = np.atleast_2d(np.asarray(model_rdms, dtype=np.float64))
    draws = np.atleast_2d(draws)
    n_pairs = data.shape[1]
    n = (1 + math.isqrt(1 + 8 * n_pairs)) // 2
    if n * (n - 1) // 2 != n_pairs or models.shape[1] != n_pairs:
        raise UsageError(
            f"data RDMs {data.shape} and model RDMs {models.shape} are not condensed RDMs "
            "of the same conditions"
        )
    n_models = models.shape[0]
    out = np.full((draws.shape[0], data.shape[0], n_models + len(partials)), np.nan)
    ranked = method == "spearman"
    data_sorted = [SortedVector.of(row) if ranked else None for row in data]
    model_sorted = [SortedVector.of(row) if ranked else None for row in models]
    chunk = max(1, MEMORY_BYTES // (8 * n_pairs))
    for start in range(0, draws.shape[0], chunk):
        block = draws[start : start + chunk]
        weights = pair_weights(block, n)
        distinct = np.array([np.unique(row).size >= 3 for row in block])
        total = weights.sum(axis=1)
        total[total == 0] = np.nan
        centred_models = [
            _centred(_transform(models[k], model_sorted[k], weights), weights, total)
            for k in range(n_models)
        ]
        weighted_models = [weights * m for m in centred_models]
        corr = np.empty((len(block), n_models + 1, n_models + 1))
        for a in range(n_models):
            for b in range(a, n_models):
                corr[:, a + 1, b + 1] = corr[:, b + 1, a + 1] = np.einsum(
                    "bp,bp->b", weighted_models[a], centred_models[b]
                )
        for t in range(data.shape[0]):
            values = _centred(_transform(data[t], data_sorted[t], weights), weights, total)
            corr[:, 0, 0] = np.einsum("bp,bp->b", weights * values, values)
            for k in range(n_models):
                corr[:, 0, k + 1] = corr[:, k + 1, 0] = np.einsum(
                    "bp,bp->b", weighted_models[k], values
                )
            with np.errstate(invalid="ignore", divide="ignore"):
                scale = np.sqrt(np.einsum("bii->bi", corr))
                normalised = corr / scale[:, :, None] / scale[:, None, :]
            result = out[start : start + len(block), t]
            result[:, :n_models] = normalised[:, 0, 1:]
            for j, (target, given) in enumerate(partials):
                result[:, n_models + j] = _partial_from_corr(
                    normalised, target + 1, [g + 1 for g in given]
                )
            result[~distinct] = np.nan
    out[~np.isfinite(out)] = np.nan
    return out
