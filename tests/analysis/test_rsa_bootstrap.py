"""Bootstrap RSA by re-weighting pairs equals re-ranking each sample and rsatoolbox."""

from __future__ import annotations

import numpy as np
import pytest
from rsatoolbox.rdm import RDMs, compare

from figureground.analysis.rdm_calc import compute_rdms
from figureground.analysis.rsa_bootstrap import (
    SortedVector,
    bootstrap_draws,
    bootstrap_rsa,
    pair_weights,
    weighted_ranks,
)
from figureground.analysis.stats import bootstrap
from figureground.analysis.study.rsa_inference import _rsa_statistic, _square

N, TIMES = 24, 3


def _rdms(seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    patterns = rng.standard_normal((N, 20, TIMES))
    data = np.stack([compute_rdms(patterns[:, :, t], "correlation") for t in range(TIMES)])
    models = np.stack([compute_rdms(rng.standard_normal((N, 8)), "correlation") for _ in range(3)])
    models[2] = np.round(models[2], 1)  # a model with many ties
    return data, models


def test_weighted_ranks_equal_ranks_of_the_repeated_vector() -> None:
    from scipy.stats import rankdata

    rng = np.random.default_rng(0)
    values = np.round(rng.standard_normal(50), 1)  # ties
    weights = rng.integers(0, 4, (5, 50)).astype(float)
    ranks = weighted_ranks(SortedVector.of(values), weights)
    for row in range(5):
        repeated = np.repeat(values, weights[row].astype(int))
        expected = rankdata(repeated)
        got = np.repeat(ranks[row], weights[row].astype(int))
        np.testing.assert_allclose(got, expected)


def test_pair_weights_count_copies_and_drop_self_pairs() -> None:
    draws = np.array([[0, 0, 1, 3]])
    weights = pair_weights(draws, 4)[0]
    rows, cols = np.triu_indices(4, 1)
    expected = {(0, 1): 2, (0, 3): 2, (1, 3): 1}
    for (i, j), w in zip(zip(rows, cols, strict=True), weights, strict=True):
        assert w == expected.get((int(i), int(j)), 0)


def test_draws_are_those_of_the_generic_bootstrap() -> None:
    seen = []
    bootstrap(lambda index: seen.append(index.copy()) or 0.0, N, n_boot=7, seed=5)
    np.testing.assert_array_equal(np.stack(seen[1:]), bootstrap_draws(N, 7, 5))


@pytest.mark.parametrize("method", ["spearman", "pearson"])
def test_equals_ranking_every_sample(method: str) -> None:
    data, models = _rdms()
    draws = bootstrap_draws(N, 30, 2)
    ours = bootstrap_rsa(data, models, draws, method, partials=[(1, [2]), (2, [1])])
    statistic = _rsa_statistic(_square(data, N), _square(models, N), method, [(1, 2), (2, 1)])
    reference = np.stack([statistic(d) for d in draws])
    finite = np.isfinite(reference)
    assert finite.mean() > 0.9
    np.testing.assert_allclose(ours[finite], reference[finite], atol=1e-12)


@pytest.mark.parametrize(("method", "name"), [("spearman", "spearman"), ("pearson", "corr")])
def test_equals_rsatoolbox_subsample_and_compare(method: str, name: str) -> None:
    data, models = _rdms(3)
    descriptors = {"index": list(range(N))}
    for draw in bootstrap_draws(N, 5, 9):
        sample = RDMs(data, pattern_descriptors=descriptors).subsample_pattern("index", draw)
        model = RDMs(models, pattern_descriptors=descriptors).subsample_pattern("index", draw)
        expected = compare(model, sample, name).T  # (times, models)
        got = bootstrap_rsa(data, models, draw[None], method)[0]
        np.testing.assert_allclose(got, expected, atol=1e-12)


def test_samples_with_fewer_than_three_conditions_are_nan() -> None:
    data, models = _rdms()
    draws = np.vstack([np.zeros(N, int), np.r_[np.zeros(N - 1, int), 1], np.arange(N)])
    out = bootstrap_rsa(data, models, draws)
    assert np.isnan(out[:2]).all() and np.isfinite(out[2]).all()
