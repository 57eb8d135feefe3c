"""Compiled (numba) kernels of :mod:`figureground.analysis.rsa_bootstrap`: one pass per RDM.

A bootstrap sample weighs the condensed pair ``(i, j)`` by ``c_i c_j`` (the counts of its two
conditions in the sample). Each kernel takes a batch of samples as a count table ``counts``
(conditions, samples) float64, small enough to stay in cache, and walks the pairs once,
computing the weight of every sample at each pair and accumulating the weighted sums there,
so that nothing of size (samples, pairs) is built for a data RDM:

- :func:`ranked_cross`: a data RDM's weighted tie-averaged ranks, walked in its sort order
  (a :class:`~figureground.analysis.rsa_bootstrap.RankPlan`), with their co-moments with the
  models' ranks of each sample; a tie group is summed first, then given its average rank.
- :func:`doubled_ranks`: the models' ranks of each sample, kept (pairs, models, samples).
- :func:`ranked_moments`, :func:`pearson_moments`, :func:`weighted_means`,
  :func:`pearson_cross`: the models' co-moments and the Pearson side, in pair order.

Ranks are kept as twice their centred value, ``W_before + W_through - N`` for an entry (or
tie group) preceded by weight ``W_before`` and ending at ``W_through`` in a sample of total
weight ``N``: integers, exact in int32 for fewer than 65,536 conditions. Weights and ranks
are computed in float64 (exact: integers below 2**53), which vectorises over the samples.
In sort order the models' rows of each pair are scattered in memory, so they are prefetched
:data:`AHEAD` positions early. The functions release the GIL (``nogil``), so threads can
share the time points.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

AHEAD = 16  # sorted positions between a prefetch and its use


@intrinsic
def _prefetch(typingctx: Any, array: Any, offset: Any) -> Any:
    """Hint the CPU to fetch ``array``'s element at flat ``offset`` into cache (no effect on
    results): the rows a kernel reads in a data RDM's sort order are scattered in memory."""
    signature = types.void(array, types.intp)

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        data = context.make_array(sig.args[0])(context, builder, args[0]).data
        address = builder.bitcast(builder.gep(data, [args[1]]), ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        kind = ir.FunctionType(ir.VoidType(), [address.type, i32, i32, i32])
        function = cgutils.get_or_insert_function(builder.module, kind, "llvm.prefetch.p0")
        flags = [ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)]  # read, keep
        builder.call(function, [address, *flags])
        return context.get_dummy_value()

    return signature, codegen


@numba.njit(cache=True, nogil=True, inline="always")
def _prefetch_row(array: np.ndarray, row: int, length: int) -> None:
    """Prefetch the first ``length`` elements of ``array[row]`` (contiguous in a row)."""
    step = max(1, 64 // array.itemsize)  # one per cache line
    base = row * (array.strides[0] // array.itemsize)
    for offset in range(0, length, step):
        _prefetch(array, base + offset)


@numba.njit(cache=True, nogil=True)
def _group_sums(p, stop, first, second, order, counts, model_ranks, group_sums):
    """Sums over the tie group at sorted positions ``p .. stop`` into ``group_sums``
    (weight, cubed weights, w * model rank), zeroed first (see :func:`ranked_cross`)."""
    group_weight, group_cubes, group_sum = group_sums
    n_models, n_samples = model_ranks.shape[1], model_ranks.shape[2]
    row_size = n_models * n_samples
    group_weight[:, :] = 0.0
    group_cubes[:, :] = 0.0
    group_sum[:, :] = 0.0
    for q in range(p, stop):
        if q > p and q + AHEAD < first.size:
            _prefetch_row(model_ranks, order[q + AHEAD], row_size)
        i, j, row = first[q], second[q], order[q]
        for b in range(n_samples):
            w = counts[i, b] * counts[j, b]
            group_weight[0, b] += w
            group_cubes[0, b] += w * w * w
        for k in range(n_models):
            for b in range(n_samples):
                group_sum[k, b] += counts[i, b] * counts[j, b] * model_ranks[row, k, b]


@numba.njit(cache=True, nogil=True)
def ranked_cross(
    first: np.ndarray,
    second: np.ndarray,
    order: np.ndarray,
    group_start: np.ndarray,
    group_stop: np.ndarray,
    counts: np.ndarray,
    totals: np.ndarray,
    model_ranks: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Co-moments of one RDM's doubled centred ranks with the models', for each sample.

    Parameters
    ----------
    first, second : the two conditions of each pair, in the RDM's sorted order.
    order : pair index of each sorted position.
    group_start, group_stop : sorted bounds of each tie group of more than one pair.
    counts : (conditions, samples) float64, each condition's count in each sample.
    totals : (samples,) float64, total pair weight ``N`` of each sample.
    model_ranks : (pairs, models, samples) int32, each model's doubled centred ranks.

    Returns
    -------
    cross : (models, samples) float64, ``sum over pairs of w * rank * model rank``.
    tie_cubes : (samples,) float64, ``sum over tie groups of G**3 - sum of w**3`` (G the
        group's total weight), what ties add to the sum of cubed weights.

    Weights, their running sums and the ranks are integers below 2**53, exact in float64.
    """
    n_sorted = first.size
    n_models, n_samples = model_ranks.shape[1], model_ranks.shape[2]
    row_size = n_models * n_samples
    cross = np.zeros((n_models, n_samples))
    tie_cubes = np.zeros(n_samples)
    before = np.zeros(n_samples)  # weight before the current position
    scaled = np.empty(n_samples)  # w * rank of a single pair
    # over a tie group: its weight, its sum of cubed weights, and sum of w * model rank
    group_sums = (
        np.zeros((1, n_samples)),
        np.zeros((1, n_samples)),
        np.zeros((n_models, n_samples)),
    )
    n_groups = group_start.size
    g = 0
    p = 0
    while p < n_sorted:
        if p + AHEAD < n_sorted:
            _prefetch_row(model_ranks, order[p + AHEAD], row_size)
            _prefetch_row(counts, first[p + AHEAD], n_samples)
            _prefetch_row(counts, second[p + AHEAD], n_samples)
        if g < n_groups and group_start[g] == p:
            stop = group_stop[g]
            g += 1
            _group_sums(p, stop, first, second, order, counts, model_ranks, group_sums)
            group_weight, group_cubes, group_sum = group_sums
            for b in range(n_samples):
                rank = 2.0 * before[b] + group_weight[0, b] - totals[b]
                for k in range(n_models):
                    cross[k, b] += rank * group_sum[k, b]
                weight = group_weight[0, b]
                tie_cubes[b] += weight * weight * weight - group_cubes[0, b]
                before[b] += weight
            p = stop
        else:
            i, j, row = first[p], second[p], order[p]
            for b in range(n_samples):
                w = counts[i, b] * counts[j, b]
                scaled[b] = (2.0 * before[b] + w - totals[b]) * w
                before[b] += w
            for k in range(n_models):
                for b in range(n_samples):
                    cross[k, b] += scaled[b] * model_ranks[row, k, b]
            p += 1
    return cross, tie_cubes


@numba.njit(cache=True, nogil=True)
def doubled_ranks(
    first: np.ndarray,
    second: np.ndarray,
    order: np.ndarray,
    group_start: np.ndarray,
    group_stop: np.ndarray,
    counts: np.ndarray,
    totals: np.ndarray,
    out: np.ndarray,
) -> None:
    """One RDM's doubled centred ranks of each sample into ``out`` (pairs, samples).

    Arguments as :func:`ranked_cross`; ``out`` (int32 or int64) may be a strided view, e.g.
    one model of a (pairs, models, samples) array.
    """
    n_sorted, n_samples = first.size, counts.shape[1]
    before = np.zeros(n_samples)
    group_weight = np.zeros(n_samples)
    n_groups = group_start.size
    g = 0
    p = 0
    while p < n_sorted:
        stop = p + 1
        if g < n_groups and group_start[g] == p:
            stop = group_stop[g]
            g += 1
        group_weight[:] = 0.0
        for q in range(p, stop):
            if q + AHEAD < n_sorted:
                _prefetch_row(out, order[q + AHEAD], n_samples)
            i, j = first[q], second[q]
            for b in range(n_samples):
                group_weight[b] += counts[i, b] * counts[j, b]
        for q in range(p, stop):
            row = order[q]
            for b in range(n_samples):
                out[row, b] = 2.0 * before[b] + group_weight[b] - totals[b]
        for b in range(n_samples):
            before[b] += group_weight[b]
        p = stop


@numba.njit(cache=True, nogil=True)
def ranked_moments(counts: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """Weighted co-moments (samples, models, models) of per-sample ranks (pairs, models,
    samples), pairs in condensed order (i < j, row by row)."""
    n, n_samples = counts.shape
    n_models = ranks.shape[1]
    sums = np.zeros((n_models, n_models, n_samples))
    weighted = np.empty((n_models, n_samples))
    pair = 0
    for i in range(n - 1):
        for j in range(i + 1, n):
            for k in range(n_models):
                for b in range(n_samples):
                    w = counts[i, b] * counts[j, b]
                    weighted[k, b] = w * ranks[pair, k, b]
            for k in range(n_models):
                for m in range(k + 1):
                    for b in range(n_samples):
                        sums[k, m, b] += weighted[k, b] * ranks[pair, m, b]
            pair += 1
    out = np.empty((n_samples, n_models, n_models))
    for k in range(n_models):
        for m in range(k + 1):
            for b in range(n_samples):
                out[b, k, m] = out[b, m, k] = sums[k, m, b]
    return out


@numba.njit(cache=True, nogil=True)
def weighted_means(counts: np.ndarray, values: np.ndarray, totals: np.ndarray) -> np.ndarray:
    """Weighted means (rows, samples) of condensed ``values`` (rows, pairs) in each sample."""
    n, n_samples = counts.shape
    n_rows = values.shape[0]
    sums = np.zeros((n_rows, n_samples))
    pair = 0
    for i in range(n - 1):
        for j in range(i + 1, n):
            for r in range(n_rows):
                value = values[r, pair]
                for b in range(n_samples):
                    sums[r, b] += counts[i, b] * counts[j, b] * value
            pair += 1
    for r in range(n_rows):
        for b in range(n_samples):
            sums[r, b] = sums[r, b] / totals[b] if totals[b] > 0 else np.nan
    return sums


@numba.njit(cache=True, nogil=True)
def pearson_moments(counts: np.ndarray, models: np.ndarray, means: np.ndarray) -> np.ndarray:
    """Weighted co-moments (samples, models, models) of condensed ``models`` (models, pairs)
    centred on each sample's weighted ``means`` (models, samples)."""
    n, n_samples = counts.shape
    n_models = models.shape[0]
    sums = np.zeros((n_models, n_models, n_samples))
    centred = np.empty((n_models, n_samples))
    pair = 0
    for i in range(n - 1):
        for j in range(i + 1, n):
            for k in range(n_models):
                value = models[k, pair]
                for b in range(n_samples):
                    centred[k, b] = value - means[k, b]
            for k in range(n_models):
                for m in range(k + 1):
                    for b in range(n_samples):
                        w = counts[i, b] * counts[j, b]
                        sums[k, m, b] += w * centred[k, b] * centred[m, b]
            pair += 1
    out = np.empty((n_samples, n_models, n_models))
    for k in range(n_models):
        for m in range(k + 1):
            for b in range(n_samples):
                out[b, k, m] = out[b, m, k] = sums[k, m, b]
    return out


@numba.njit(cache=True, nogil=True)
def pearson_cross(
    counts: np.ndarray,
    values: np.ndarray,
    shift: float,
    models: np.ndarray,
    means: np.ndarray,
    totals: np.ndarray,
) -> np.ndarray:
    """One RDM's weighted variance and co-moments with the centred models, each sample.

    Parameters
    ----------
    counts : (conditions, samples) float64.
    values : condensed RDM (pairs,), float32 or float64; ``shift`` is subtracted first (its
        mean: less cancellation in the variance).
    models : (models, pairs) float64; ``means`` (models, samples) their weighted means.
    totals : (samples,) float64 total pair weights.

    Returns
    -------
    (samples, 1 + models): variance ``sum w x**2 - N mean**2``, then
    ``sum w x (model - model mean)``.
    """
    n, n_samples = counts.shape
    n_models = models.shape[0]
    first = np.zeros(n_samples)
    second = np.zeros(n_samples)
    co = np.zeros((n_models, n_samples))
    scaled = np.empty(n_samples)
    pair = 0
    for i in range(n - 1):
        for j in range(i + 1, n):
            x = float(values[pair]) - shift
            for b in range(n_samples):
                wx = counts[i, b] * counts[j, b] * x
                scaled[b] = wx
                first[b] += wx
                second[b] += wx * x
            for k in range(n_models):
                value = models[k, pair]
                for b in range(n_samples):
                    co[k, b] += scaled[b] * (value - means[k, b])
            pair += 1
    out = np.empty((n_samples, 1 + n_models))
    for b in range(n_samples):
        mean = first[b] / totals[b] if totals[b] > 0 else np.nan
        out[b, 0] = second[b] - totals[b] * mean * mean
        for k in range(n_models):
            out[b, 1 + k] = co[k, b]
    return out
