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

At THINGS size (1.72 M pairs) each pass is what costs, so :func:`bootstrap_rsa` keeps them
few: each RDM's sort is kept as the two conditions of each sorted pair (int16) and the pair
index of each sorted position (:class:`RankPlan`), so a sample's weights in sorted order come
from its counts (a table of n entries) rather than from the pairs; ranks are kept as twice
their centred value, integers exact in float64; the weighted sum of squared data ranks has a
closed form (``(N**3 - sum g**3) / 3`` over tie groups); threads share the time points.

With numba, compiled kernels (:mod:`figureground.analysis.rank_kernels`) do each time point
of a batch of samples in one pass over its sorted pairs: every sample's weight, running
rank and co-moments with the models' ranks at once, tie groups summed before they are
ranked; the models' ranks of the batch are kept as int32 (pairs, models, samples). Without
numba (a warning, once) the numpy path below does the same in a few array passes per
sample, the co-moments as one batched matrix product.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import types
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from figureground import logs
from figureground.analysis.rsa_bootstrap_ranks import (
    RankPlan,
    SortedVector,
    bootstrap_draws,
    pair_weights,
    weighted_ranks,
)
from figureground.errors import UsageError

__all__ = [
    "MEMORY_BYTES",
    "METHODS",
    "RankPlan",
    "SortedVector",
    "bootstrap_draws",
    "bootstrap_rsa",
    "model_ranks",
    "pair_weights",
    "weighted_ranks",
]

log = logs.get_logger(__name__)

METHODS = ("spearman", "pearson")
MEMORY_BYTES = 2**31  # what one batch of samples holds (model side and per-thread buffers)


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


class _RankBuffers:
    """Per-thread work arrays of :func:`_doubled_ranks` (pairs long)."""

    def __init__(self, n_pairs: int, count_dtype: Any) -> None:
        self.weights = np.empty(n_pairs, dtype=count_dtype)
        self.second = np.empty(n_pairs, dtype=count_dtype)
        self.cumulative = np.empty(n_pairs + 1, dtype=count_dtype)
        self.sorted_ranks = np.empty(n_pairs)


def _doubled_ranks(
    plan: RankPlan, counts: np.ndarray, sample: _Sample, buffers: _RankBuffers, out: np.ndarray
) -> float:
    """Twice the centred weighted ranks of one RDM on one sample, in pair order, into ``out``.

    Twice the average rank of an entry is the weight before its tie group plus the weight
    through it, plus 1; the mean is ``(N + 1) / 2``. Returns the weighted sum of squares of
    ``out``, ``(N**3 - sum of g**3 over tie groups g) / 3``, each entry of weight ``w``
    being a tie group of its ``w`` copies.
    """
    weights, cumulative, sorted_ranks = buffers.weights, buffers.cumulative, buffers.sorted_ranks
    np.take(counts, plan.first, out=weights, mode="clip")  # clip: no buffered copy
    weights *= np.take(counts, plan.second, out=buffers.second, mode="clip")
    cumulative[0] = 0
    np.cumsum(weights, out=cumulative[1:])
    np.add(cumulative[:-1], cumulative[1:], out=sorted_ranks)
    cubes = sample.weight_cubes
    if plan.tied.size:
        sorted_ranks[plan.tied] = cumulative[plan.tie_start] + cumulative[plan.tie_stop]
        tied_weights = weights[plan.tied].astype(np.float64)
        totals = (cumulative[plan.group_stop] - cumulative[plan.group_start]).astype(np.float64)
        cubes += float(totals @ totals**2) - float(tied_weights**2 @ tied_weights)
    sorted_ranks -= sample.total
    out[plan.order] = sorted_ranks
    return (sample.total**3 - cubes) / 3.0


@dataclass(frozen=True)
class _Sample:
    """One bootstrap sample's pair-weight totals: sum of w, and of w**3."""

    total: float
    weight_cubes: float

    @classmethod
    def of(cls, counts: np.ndarray) -> _Sample:
        """From condition counts: w = c_i c_j over pairs i < j."""
        c = counts.astype(np.float64)
        total = (c.sum() ** 2 - (c**2).sum()) / 2
        cubes = ((c**3).sum() ** 2 - (c**6).sum()) / 2
        return cls(float(total), float(cubes))


def _normalised(moments: np.ndarray) -> np.ndarray:
    """Correlation matrices (..., k, k) from weighted co-moment matrices."""
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.sqrt(np.einsum("...ii->...i", moments))
        return moments / scale[..., :, None] / scale[..., None, :]


def _batch_size(n_pairs: int, n_models: int, n_threads: int, compiled: bool) -> int:
    if compiled:  # the models' int32 ranks of each sample
        per_sample = n_pairs * 4 * max(1, n_models)
    else:
        per_sample = n_pairs * (4 + 16 * n_models + 16 * n_threads)
    return int(max(1, min(64, MEMORY_BYTES // per_sample)))


@functools.cache
def _kernels() -> types.ModuleType | None:
    """The compiled kernels (:mod:`figureground.analysis.rank_kernels`), None without numba."""
    try:
        from figureground.analysis import rank_kernels
    except ImportError as error:
        log.warning(
            "numba is not importable (%s): bootstrap RSA uses its numpy path, several times slower",
            error,
        )
        return None
    return rank_kernels


def _map(function: Any, items: Sequence[Any], n_threads: int) -> list[Any]:
    if n_threads <= 1 or len(items) <= 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(n_threads) as pool:
        return list(pool.map(function, items))


def bootstrap_rsa(
    data_rdms: np.ndarray,
    model_rdms: np.ndarray,
    draws: np.ndarray,
    method: str = "spearman",
    partials: Sequence[tuple[int, Sequence[int]]] = (),
    n_threads: int | None = None,
) -> np.ndarray:
    """RSA of every data RDM with every model RDM on each bootstrap sample of conditions.

    Parameters
    ----------
    data_rdms : condensed RDMs (times, pairs), e.g. one per time point (float32 is read
        as is, one time point at a time).
    model_rdms : condensed model RDMs (models, pairs).
    draws : condition indices of each sample (samples, n_conditions); the identity row gives
        the full-data statistic.
    method : ``spearman`` or ``pearson``.
    partials : (target model, given models) of each partial correlation to add.
    n_threads : threads over time points (None: every CPU).

    Returns
    -------
    (samples, times, models + len(partials)) float64; NaN for samples with fewer than 3
    distinct conditions, and where a correlation is undefined (a constant RDM).
    """
    if method not in METHODS:
        raise UsageError(f"bootstrap RSA method {method!r} is not one of {', '.join(METHODS)}")
    data = np.atleast_2d(np.asarray(data_rdms))
    models = np.atleast_2d(np.asarray(model_rdms, dtype=np.float64))
    draws = np.atleast_2d(draws)
    n_pairs = data.shape[1]
    n = (1 + math.isqrt(1 + 8 * n_pairs)) // 2
    if n * (n - 1) // 2 != n_pairs or models.shape[1] != n_pairs:
        raise UsageError(
            f"data RDMs {data.shape} and model RDMs {models.shape} are not condensed RDMs "
            "of the same conditions"
        )
    threads = max(1, n_threads or os.cpu_count() or 1)
    n_models = models.shape[0]
    out = np.full((draws.shape[0], data.shape[0], n_models + len(partials)), np.nan)
    rows, cols = (a.astype(np.int32) for a in np.triu_indices(n, 1))
    ranked = method == "spearman"
    plans = None
    if ranked:
        plans = _map(lambda row: RankPlan.of(np.asarray(row), rows, cols), list(data), threads)
    model_plans = [RankPlan.of(m, rows, cols) for m in models] if ranked else None
    kernels = _kernels()
    chunk = _batch_size(n_pairs, n_models, threads, kernels is not None)
    for start in logs.progress(range(0, draws.shape[0], chunk), None, "bootstrap batches"):
        block = draws[start : start + chunk]
        counts = np.zeros((len(block), n), dtype=np.int32 if n * n < 2**31 else np.int64)
        np.add.at(counts, (np.arange(len(block))[:, None], block), 1)
        samples = [_Sample.of(c) for c in counts]
        if kernels is not None:
            model_moments, cross = _compiled_batch(
                kernels, data, models, plans, model_plans, counts, samples, threads
            )
        else:
            moments = _model_moments(models, model_plans, counts, samples, rows, cols)
            model_moments = moments.model_moments
            if ranked:
                cross = _ranked_cross(plans, moments.weighted, counts, samples, threads)
            else:
                cross = _pearson_cross(data, moments, samples, threads)
        result = out[start : start + len(block)]
        _fill_correlations(result, cross, model_moments, partials)
        result[(counts > 0).sum(axis=1) < 3] = np.nan
    out[~np.isfinite(out)] = np.nan
    return out


def _fill_correlations(
    result: np.ndarray,
    cross: np.ndarray,
    model_moments: np.ndarray,
    partials: Sequence[tuple[int, Sequence[int]]],
) -> None:
    """A batch's correlations into ``result`` (samples, times, models + len(partials)).

    ``cross`` (times, samples, 1 + models) holds each time's data variance and data-model
    co-moments, ``model_moments`` (samples, models, models) the models' co-moments.
    """
    n_samples, n_times = result.shape[:2]
    n_models = model_moments.shape[-1]
    full = np.empty((n_times, n_samples, n_models + 1, n_models + 1))
    full[:, :, 1:, 1:] = model_moments[None]
    full[:, :, 0, :] = cross
    full[:, :, 1:, 0] = cross[:, :, 1:]
    normalised = _normalised(full).transpose(1, 0, 2, 3)  # (samples, times, ...)
    result[..., :n_models] = normalised[..., 0, 1:]
    for j, (target, given) in enumerate(partials):
        flat = normalised.reshape(-1, n_models + 1, n_models + 1)
        result[..., n_models + j] = _partial_from_corr(
            flat, target + 1, [g + 1 for g in given]
        ).reshape(n_samples, -1)


@dataclass(frozen=True)
class _ModelMoments:
    """A batch's model side: weights x centred models (samples, models, pairs) in float64,
    the pair weights (samples, pairs) and the models' weighted co-moments."""

    weighted: np.ndarray
    weights: np.ndarray
    model_moments: np.ndarray  # (samples, models, models)


def _model_moments(
    models: np.ndarray,
    plans: list[RankPlan] | None,
    counts: np.ndarray,
    samples: list[_Sample],
    rows: np.ndarray,
    cols: np.ndarray,
) -> _ModelMoments:
    n_samples, n_pairs = counts.shape[0], models.shape[1]
    weights = np.empty((n_samples, n_pairs))
    centred = np.empty((n_samples, models.shape[0], n_pairs))
    buffers = _RankBuffers(n_pairs, counts.dtype)
    for b, (c, sample) in enumerate(zip(counts, samples, strict=True)):
        np.multiply(c[rows], c[cols], out=weights[b], dtype=np.float64)
        for k, model in enumerate(models):
            if plans is not None:
                _doubled_ranks(plans[k], c, sample, buffers, centred[b, k])
            else:
                mean = (weights[b] @ model) / sample.total if sample.total else np.nan
                np.subtract(model, mean, out=centred[b, k])
    weighted = centred * weights[:, None, :]
    model_moments = np.matmul(weighted, centred.transpose(0, 2, 1))
    return _ModelMoments(weighted, weights, model_moments)


def _ranked_cross(
    plans: list[RankPlan],
    weighted_models: np.ndarray,
    counts: np.ndarray,
    samples: list[_Sample],
    threads: int,
) -> np.ndarray:
    """(times, samples, 1 + models): each time's rank variance and rank-model co-moments."""
    n_samples, n_models, n_pairs = weighted_models.shape

    def some_times(some: list[RankPlan]) -> np.ndarray:
        buffers = _RankBuffers(n_pairs, counts.dtype)
        ranks = np.empty((n_samples, n_pairs))
        out = np.empty((len(some), n_samples, 1 + n_models))
        for t, plan in enumerate(some):
            for b in range(n_samples):
                out[t, b, 0] = _doubled_ranks(plan, counts[b], samples[b], buffers, ranks[b])
            out[t, :, 1:] = np.matmul(weighted_models, ranks[:, :, None])[:, :, 0]
        return out

    return np.concatenate(_map(some_times, _split(plans, threads), threads))


def _split(items: Sequence[Any], parts: int) -> list[list[Any]]:
    """``items`` in ``parts`` contiguous runs of near-equal length (empty runs left out)."""
    bounds = np.linspace(0, len(items), parts + 1).round().astype(int)
    return [list(items[a:b]) for a, b in itertools.pairwise(bounds) if b > a]


def _pearson_cross(
    data: np.ndarray, moments: _ModelMoments, samples: list[_Sample], threads: int
) -> np.ndarray:
    """(times, samples, 1 + models): each time's weighted variance and co-moments."""
    totals = np.array([s.total for s in samples])
    weighted = moments.weighted.reshape(-1, data.shape[1])

    def one_time(t: int) -> np.ndarray:
        values = np.asarray(data[t], dtype=np.float64)
        values = values - values.mean()  # a smaller mean: less cancellation below
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = (moments.weights @ values) / totals
        variance = (moments.weights @ values**2) - totals * mean**2
        co = (weighted @ values).reshape(len(samples), -1)
        return np.concatenate([variance[:, None], co], axis=1)

    return np.stack(_map(one_time, range(data.shape[0]), threads))


def _plan_arrays(plan: RankPlan) -> tuple[np.ndarray, ...]:
    """What the compiled kernels read of a plan: the sorted pairs and the tie groups."""
    return plan.first, plan.second, plan.order, plan.group_start, plan.group_stop


def model_ranks(
    kernels: types.ModuleType, plans: list[RankPlan], table: np.ndarray, totals: np.ndarray
) -> np.ndarray:
    """Doubled centred ranks (pairs, models, samples) of each model in each sample.

    ``table`` holds the counts (conditions, samples) and ``totals`` the total pair weight of
    each sample, both float64.
    """
    n_pairs = plans[0].order.size if plans else 0
    dtype = np.int32 if n_pairs < 2**31 else np.int64
    ranks = np.empty((n_pairs, len(plans), table.shape[1]), dtype=dtype)
    for k, plan in enumerate(plans):
        kernels.doubled_ranks(*_plan_arrays(plan), table, totals, ranks[:, k, :])
    return ranks


def _compiled_batch(
    kernels: types.ModuleType,
    data: np.ndarray,
    models: np.ndarray,
    plans: list[RankPlan] | None,
    model_plans: list[RankPlan] | None,
    counts: np.ndarray,
    samples: list[_Sample],
    threads: int,
) -> tuple[np.ndarray, np.ndarray]:
    """A batch by the compiled kernels: the models' co-moments (samples, models, models) and
    each time's variance and co-moments with the models (times, samples, 1 + models)."""
    table = np.ascontiguousarray(counts.T, dtype=np.float64)
    totals = np.array([s.total for s in samples])
    if plans is None or model_plans is None:  # pearson
        means = kernels.weighted_means(table, models, totals)
        model_moments = kernels.pearson_moments(table, models, means)

        def one_time(t: int) -> np.ndarray:
            values = np.asarray(data[t])
            shift = float(values.mean(dtype=np.float64))
            return kernels.pearson_cross(table, values, shift, models, means, totals)

        return model_moments, np.stack(_map(one_time, range(data.shape[0]), threads))
    ranks = model_ranks(kernels, model_plans, table, totals)
    model_moments = kernels.ranked_moments(table, ranks)
    cubes = np.array([s.weight_cubes for s in samples])

    def one_plan(plan: RankPlan) -> np.ndarray:
        cross, tie_cubes = kernels.ranked_cross(*_plan_arrays(plan), table, totals, ranks)
        variance = (totals**3 - (cubes + tie_cubes)) / 3.0
        return np.concatenate([variance[:, None], cross.T], axis=1)

    return model_moments, np.stack(_map(one_plan, plans, threads))
