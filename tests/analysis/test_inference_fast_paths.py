"""The fast paths of RSA inference (issue 16) against independent references.

Bootstrap: re-weighted ranks (one sort per RDM, closed-form rank variance, ties averaged)
against rsatoolbox's subsample + compare, and against scipy on the repeated vectors.
Permutations: the square-form gather and one matrix product per block against a direct
loop over permutations with scipy.
"""

from __future__ import annotations

import numpy as np
import pytest
from rsatoolbox.rdm import RDMs, compare
from scipy.stats import pearsonr, rankdata, spearmanr

from figureground.analysis import rdm_permutation, rsa_bootstrap, stats
from figureground.analysis.rdm_calc import compute_rdms
from figureground.analysis.rsa_bootstrap import bootstrap_draws, bootstrap_rsa, pair_weights

N, TIMES = 21, 4


def _rdms(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """float32 data RDMs with ties at one time, and 3 model RDMs (one with many ties)."""
    rng = np.random.default_rng(seed)
    patterns = rng.standard_normal((N, 12, TIMES))
    data = np.stack([compute_rdms(patterns[:, :, t], "correlation") for t in range(TIMES)])
    data = data.astype(np.float32)
    data[1] = np.round(data[1], 1)  # a time point with tie groups
    models = np.stack([compute_rdms(rng.standard_normal((N, 6)), "correlation") for _ in range(3)])
    models[2] = np.round(models[2], 1)
    return data, models


def _repeated(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return np.repeat(values, weights.astype(int))


@pytest.mark.parametrize(("method", "name"), [("spearman", "spearman"), ("pearson", "corr")])
def test_bootstrap_equals_rsatoolbox_subsample_compare(method: str, name: str) -> None:
    data, models = _rdms(1)
    draws = bootstrap_draws(N, 6, 4)
    got = bootstrap_rsa(data, models, draws, method)
    descriptors = {"index": list(range(N))}
    for b, draw in enumerate(draws):
        sample = RDMs(data.astype(np.float64), pattern_descriptors=descriptors)
        model = RDMs(models, pattern_descriptors=descriptors).subsample_pattern("index", draw)
        expected = compare(model, sample.subsample_pattern("index", draw), name).T
        np.testing.assert_allclose(got[b], expected, atol=1e-9)


@pytest.mark.parametrize("method", ["spearman", "pearson"])
def test_bootstrap_equals_scipy_on_repeated_pairs_with_partials(method: str) -> None:
    data, models = _rdms(2)
    draws = bootstrap_draws(N, 5, 7)
    got = bootstrap_rsa(data, models, draws, method, partials=[(1, [2]), (0, [1, 2])])
    weights = pair_weights(draws, N)
    correlate = spearmanr if method == "spearman" else pearsonr
    for b in range(len(draws)):
        model_values = [_repeated(m, weights[b]) for m in models]
        if method == "spearman":
            model_values = [rankdata(m) for m in model_values]
        for t in range(TIMES):
            x = _repeated(data[t].astype(np.float64), weights[b])
            for k in range(3):
                expected = correlate(x, _repeated(models[k], weights[b]))[0]
                assert abs(got[b, t, k] - expected) < 1e-9
            x = rankdata(x) if method == "spearman" else x
            for j, (target, given) in enumerate([(1, [2]), (0, [1, 2])]):
                design = np.column_stack([np.ones(x.size), *(model_values[g] for g in given)])
                residual_x = x - design @ np.linalg.lstsq(design, x, rcond=None)[0]
                y = model_values[target]
                residual_y = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
                expected = pearsonr(residual_x, residual_y)[0]
                assert abs(got[b, t, 3 + j] - expected) < 1e-9


def test_bootstrap_same_result_whatever_threads_and_batches(monkeypatch) -> None:
    data, models = _rdms(3)
    draws = bootstrap_draws(N, 9, 1)
    one = bootstrap_rsa(data, models, draws, "spearman", [(1, [2])], n_threads=1)
    monkeypatch.setattr(rsa_bootstrap, "MEMORY_BYTES", 1)  # one sample per batch
    many = bootstrap_rsa(data, models, draws, "spearman", [(1, [2])], n_threads=3)
    np.testing.assert_array_equal(one, many)
    assert np.isfinite(one).all()


def _direct_null(data: np.ndarray, model: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """Spearman of each data RDM with the model permuted by each row, by scipy, in a loop."""
    rows, cols = np.triu_indices(N, 1)
    square = np.zeros((N, N))
    square[rows, cols] = square[cols, rows] = model
    null = np.empty((len(perms), len(data)))
    for r, perm in enumerate(perms):
        permuted = square[np.ix_(perm, perm)][rows, cols]
        null[r] = [spearmanr(row, permuted)[0] for row in data]
    return null


def test_null_correlations_equal_a_direct_loop(monkeypatch) -> None:
    data, models = _rdms(4)
    perms = stats.permutation_draws(N, 40, 3)
    z_data = stats.standardised_rdms(data, "spearman")
    z_model = stats.standardised_rdms(models[0], "spearman")[0]
    expected = _direct_null(data, models[0], perms)
    np.testing.assert_allclose(
        stats.null_correlations(z_data, z_model, perms), expected, atol=1e-12
    )
    monkeypatch.setattr(rdm_permutation, "NULL_BLOCK_BYTES", 1)  # one permutation per block
    np.testing.assert_allclose(
        stats.null_correlations(z_data, z_model, perms), expected, atol=1e-12
    )


def test_permutation_p_values_equal_those_of_a_direct_loop() -> None:
    data, models = _rdms(5)
    result = stats.rdm_permutation_test(data, models[1], n_permutations=60, seed=11)
    perms = stats.permutation_draws(N, 60, 11)
    null = _direct_null(data, models[1], perms)
    observed = np.array([spearmanr(row, models[1])[0] for row in data])
    expected = (1 + (null >= observed - 1e-12).sum(0)) / 61
    np.testing.assert_array_equal(result.p_value, expected)
    np.testing.assert_allclose(result.observed, observed, atol=1e-12)
