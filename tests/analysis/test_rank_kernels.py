"""The compiled bootstrap kernels (rank_kernels) against scipy on repeated vectors and numpy.

A sample weighs pair (i, j) by ``c_i c_j``; each statistic must equal the plain one of the
vector in which every pair is repeated that many times. Samples here include the identity
draw, ordinary draws, and a draw that leaves half of the conditions out (weight 0); the RDMs
include float32 values with small tie groups and rounded values with tie groups longer than
the kernels' prefetch distance.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from scipy.stats import pearsonr, rankdata, spearmanr

from figureground.analysis import rank_kernels, rsa_bootstrap
from figureground.analysis.rsa_bootstrap import (
    RankPlan,
    bootstrap_draws,
    bootstrap_rsa,
    model_ranks,
    pair_weights,
)

N = 30
ROWS, COLS = (a.astype(np.int32) for a in np.triu_indices(N, 1))


def _vectors(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n_pairs = ROWS.size
    return {
        "distinct": rng.random(n_pairs),
        "float32 ties": np.round(rng.random(n_pairs), 2).astype(np.float32),
        "long ties": np.round(rng.random(n_pairs) * 4) / 4,  # 5 values: groups of ~100 pairs
    }


def _draws() -> np.ndarray:
    rng = np.random.default_rng(3)
    draws = [np.arange(N), *bootstrap_draws(N, 4, 8)]
    draws.append(rng.integers(0, N // 2, N))  # conditions N/2.. dropped: weight 0
    return np.stack(draws)


def _table(draws: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts (samples, conditions) int, the kernels' table (conditions, samples) float64,
    and the total pair weight of each sample."""
    counts = np.zeros((len(draws), N), dtype=np.int32)
    np.add.at(counts, (np.arange(len(draws))[:, None], draws), 1)
    totals = np.array([rsa_bootstrap._Sample.of(c).total for c in counts])
    return counts, np.ascontiguousarray(counts.T, dtype=np.float64), totals


def _scipy_doubled_ranks(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Twice the centred rank of each pair of weight > 0 in the repeated vector (NaN else)."""
    repeats = weights.astype(int)
    ranks = rankdata(np.repeat(values.astype(np.float64), repeats))
    first = np.r_[0, np.cumsum(repeats)[:-1]]
    out = np.full(values.size, np.nan)
    kept = repeats > 0
    out[kept] = 2 * ranks[first[kept]] - (repeats.sum() + 1)
    return out


@pytest.mark.parametrize("name", ["distinct", "float32 ties", "long ties"])
def test_doubled_ranks_equal_scipy_rankdata_of_the_repeated_vector(name: str) -> None:
    values = _vectors()[name]
    draws = _draws()
    _, table, totals = _table(draws)
    out = np.zeros((values.size, len(draws)), dtype=np.int32)
    plan = RankPlan.of(values, ROWS, COLS)
    rank_kernels.doubled_ranks(*rsa_bootstrap._plan_arrays(plan), table, totals, out)
    weights = pair_weights(draws, N)
    assert (weights[-1] == 0).sum() > values.size / 2  # the dropping sample drops
    for b in range(len(draws)):
        expected = _scipy_doubled_ranks(values, weights[b])
        kept = weights[b] > 0
        np.testing.assert_array_equal(out[kept, b], expected[kept])


def test_model_ranks_equal_the_numpy_path_exactly() -> None:
    vectors = _vectors(1)
    draws = _draws()
    counts, table, totals = _table(draws)
    plans = [RankPlan.of(v, ROWS, COLS) for v in vectors.values()]
    got = model_ranks(rank_kernels, plans, table, totals)
    assert got.shape == (ROWS.size, len(plans), len(draws)) and got.dtype == np.int32
    buffers = rsa_bootstrap._RankBuffers(ROWS.size, counts.dtype)
    for b, c in enumerate(counts):
        sample = rsa_bootstrap._Sample.of(c)
        for k, plan in enumerate(plans):
            expected = np.empty(ROWS.size)
            rsa_bootstrap._doubled_ranks(plan, c, sample, buffers, expected)
            np.testing.assert_array_equal(got[:, k, b], expected)


@pytest.mark.parametrize("name", ["distinct", "float32 ties", "long ties"])
def test_ranked_cross_equals_direct_sums_on_the_repeated_vectors(name: str) -> None:
    vectors = _vectors(2)
    data = vectors[name]
    models = [vectors["distinct"], vectors["long ties"]]
    draws = _draws()
    counts, table, totals = _table(draws)
    ranks = model_ranks(rank_kernels, [RankPlan.of(m, ROWS, COLS) for m in models], table, totals)
    plan = RankPlan.of(data, ROWS, COLS)
    cross, tie_cubes = rank_kernels.ranked_cross(
        *rsa_bootstrap._plan_arrays(plan), table, totals, ranks
    )
    weights = pair_weights(draws, N)
    for b in range(len(draws)):
        repeats = weights[b].astype(int)
        data_ranks = 2 * rankdata(np.repeat(data.astype(np.float64), repeats)) - (totals[b] + 1)
        for k, model in enumerate(models):
            model_ranks_b = 2 * rankdata(np.repeat(model, repeats)) - (totals[b] + 1)
            np.testing.assert_allclose(cross[k, b], data_ranks @ model_ranks_b, rtol=1e-12)
        cubes = rsa_bootstrap._Sample.of(counts[b]).weight_cubes + tie_cubes[b]
        np.testing.assert_allclose((totals[b] ** 3 - cubes) / 3, data_ranks @ data_ranks)


def test_spearman_from_the_kernels_equals_scipy_including_dropped_conditions() -> None:
    vectors = _vectors(4)
    data, model = vectors["float32 ties"], vectors["long ties"]
    draws = _draws()
    got = bootstrap_rsa(data[None], model[None], draws, "spearman")[:, 0, 0]
    weights = pair_weights(draws, N)
    for b in range(len(draws)):
        repeats = weights[b].astype(int)
        expected = spearmanr(np.repeat(data, repeats), np.repeat(model, repeats))[0]
        assert abs(got[b] - expected) < 1e-12


def test_pearson_kernels_equal_weighted_numpy_and_scipy() -> None:
    vectors = _vectors(5)
    data = vectors["float32 ties"]
    models = np.stack([vectors["distinct"], vectors["long ties"]])
    draws = _draws()
    _, table, totals = _table(draws)
    weights = pair_weights(draws, N)
    means = rank_kernels.weighted_means(table, models, totals)
    np.testing.assert_allclose(means, (models @ weights.T) / totals, rtol=1e-13)
    moments = rank_kernels.pearson_moments(table, models, means)
    shift = float(data.mean(dtype=np.float64))
    cross = rank_kernels.pearson_cross(table, data, shift, models, means, totals)
    for b in range(len(draws)):
        expected = np.cov(models, fweights=weights[b].astype(int), ddof=0) * totals[b]
        np.testing.assert_allclose(moments[b], expected, rtol=1e-10)
        x = data.astype(np.float64)
        variance = np.cov(x, fweights=weights[b].astype(int), ddof=0) * totals[b]
        np.testing.assert_allclose(cross[b, 0], variance, rtol=1e-10)
        repeats = weights[b].astype(int)
        for k in range(2):
            r = cross[b, 1 + k] / np.sqrt(cross[b, 0] * moments[b, k, k])
            expected_r = pearsonr(np.repeat(x, repeats), np.repeat(models[k], repeats))[0]
            assert abs(r - expected_r) < 1e-12


def test_a_batch_gives_each_sample_what_it_gives_alone() -> None:
    vectors = _vectors(6)
    draws = _draws()
    _, table, totals = _table(draws)
    plans = [RankPlan.of(v, ROWS, COLS) for v in vectors.values()]
    ranks = model_ranks(rank_kernels, plans[1:], table, totals)
    batch = rank_kernels.ranked_cross(*rsa_bootstrap._plan_arrays(plans[0]), table, totals, ranks)
    for b in range(len(draws)):
        alone = rank_kernels.ranked_cross(
            *rsa_bootstrap._plan_arrays(plans[0]),
            np.ascontiguousarray(table[:, b : b + 1]),
            totals[b : b + 1],
            np.ascontiguousarray(ranks[:, :, b : b + 1]),
        )
        assert batch[0][:, b].tolist() == alone[0][:, 0].tolist()
        assert batch[1][b] == alone[1][0]


@pytest.mark.parametrize("method", ["spearman", "pearson"])
def test_bootstrap_rsa_equals_its_numpy_path(method: str, monkeypatch) -> None:
    vectors = _vectors(7)
    data = np.stack([vectors["float32 ties"], _vectors(9)["distinct"].astype(np.float32)])
    models = np.stack([vectors["distinct"], vectors["long ties"], _vectors(8)["distinct"]])
    draws = _draws()
    partials = [(1, [2]), (0, [1, 2])]
    compiled = bootstrap_rsa(data, models, draws, method, partials)
    monkeypatch.setattr(rsa_bootstrap, "_kernels", lambda: None)
    numpy_path = bootstrap_rsa(data, models, draws, method, partials)
    assert np.isfinite(compiled).all()
    np.testing.assert_allclose(compiled, numpy_path, rtol=0, atol=1e-12)


def test_without_numba_the_numpy_path_is_announced(monkeypatch) -> None:
    import figureground.analysis

    monkeypatch.setitem(sys.modules, "figureground.analysis.rank_kernels", None)  # no numba
    monkeypatch.delattr(figureground.analysis, "rank_kernels")
    warnings: list[str] = []
    monkeypatch.setattr(rsa_bootstrap.log, "warning", lambda *a: warnings.append(a[0] % a[1:]))
    assert rsa_bootstrap._kernels.__wrapped__() is None
    assert len(warnings) == 1 and "numba" in warnings[0]
    assert rsa_bootstrap._kernels() is rank_kernels  # the cached answer is untouched
