"""Statistics: bootstrap, permutation tests, cluster tests over time, strata."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import pdist, squareform
from scipy.stats import pearsonr, spearmanr

from figureground.analysis import stats
from figureground.errors import DataError, UsageError

N_CONDITIONS = 12


def _rdm_pair(noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    patterns = rng.standard_normal((N_CONDITIONS, 6))
    model = pdist(patterns)
    data = pdist(patterns + noise * rng.standard_normal(patterns.shape))
    return data, model


@pytest.mark.parametrize("method", ["spearman", "pearson"])
def test_rdm_permutation_null_equals_a_naive_loop(method):
    data, model = _rdm_pair(noise=1.0, seed=0)
    data_rdms = np.stack([data, pdist(np.random.default_rng(9).random((N_CONDITIONS, 2)))])
    n_perm = 40
    result = stats.rdm_permutation_test(
        data_rdms, model, n_permutations=n_perm, method=method, seed=3, batch_size=16
    )
    correlate = spearmanr if method == "spearman" else pearsonr
    assert result.observed.shape == (2,)
    for t in range(2):
        assert result.observed[t] == pytest.approx(correlate(data_rdms[t], model)[0])
    # the same permutations, drawn the way the test draws them (batch by batch)
    rng = np.random.default_rng(3)
    perms = np.vstack(
        [rng.permuted(np.tile(np.arange(N_CONDITIONS), (size, 1)), axis=1) for size in (16, 16, 8)]
    )
    square = squareform(model)
    for k in (0, 17, 39):
        permuted = squareform(square[np.ix_(perms[k], perms[k])], checks=False)
        for t in range(2):
            expected = correlate(data_rdms[t], permuted)[0]
            assert result.null[k, t] == pytest.approx(expected, abs=1e-12)
    expected_p = (1 + (result.null >= result.observed).sum(axis=0)) / (1 + n_perm)
    np.testing.assert_allclose(result.p_value, expected_p)


def test_rdm_permutation_with_time_resolved_model_matches_fixed_model():
    data, model = _rdm_pair(noise=1.0, seed=1)
    data_rdms = np.stack([data, data[::-1]])
    fixed = stats.rdm_permutation_test(data_rdms, model, n_permutations=30, seed=2)
    per_time = stats.rdm_permutation_test(
        data_rdms, np.stack([model, model]), n_permutations=30, seed=2
    )
    np.testing.assert_allclose(per_time.null, fixed.null, atol=1e-12)


def test_rdm_permutation_p_value_detects_a_true_effect():
    data, model = _rdm_pair(noise=0.3, seed=2)
    result = stats.rdm_permutation_test(data, model, n_permutations=500, seed=0)
    assert np.ndim(result.observed) == 0
    assert result.p_value < 0.05
    assert result.p_value == pytest.approx(1 / 501)


def test_rdm_permutation_p_values_are_roughly_uniform_under_the_null():
    p_values = []
    for seed in range(50):
        rng = np.random.default_rng(1000 + seed)
        data = pdist(rng.standard_normal((N_CONDITIONS, 4)))
        model = pdist(rng.standard_normal((N_CONDITIONS, 4)))
        p_values.append(stats.rdm_permutation_test(data, model, 100, seed=seed).p_value)
    assert 0.35 <= np.mean(p_values) <= 0.65
    assert np.mean(np.array(p_values) < 0.05) < 0.2


def test_rdm_permutation_rejects_bad_shapes():
    with pytest.raises(DataError, match="condensed RDM"):
        stats.rdm_permutation_test(np.arange(11.0), np.arange(11.0)[::-1])
    with pytest.raises(DataError, match="do not match"):
        stats.rdm_permutation_test(np.arange(45.0), np.arange(66.0))
    with pytest.raises(DataError, match="constant"):
        stats.rdm_permutation_test(np.arange(45.0), np.ones(45))
    with pytest.raises(UsageError, match="kendall"):
        stats.rdm_permutation_test(*_rdm_pair(1.0, 0), method="kendall")


def test_permutation_p_value_plus_one_correction_by_hand():
    null = np.array([[0.1], [0.5], [0.9], [-0.7]])
    observed = np.array([0.5])
    assert stats.permutation_p_value(observed, null, "greater")[0] == pytest.approx(3 / 5)
    assert stats.permutation_p_value(observed, null, "less")[0] == pytest.approx(4 / 5)
    assert stats.permutation_p_value(observed, null, "two-sided")[0] == pytest.approx(4 / 5)
    with pytest.raises(UsageError, match="alternative"):
        stats.permutation_p_value(observed, null, "bigger")


def test_generic_permutation_null_shuffles_image_labels():
    rng = np.random.default_rng(4)
    x = rng.standard_normal(40)
    y = x + 0.5 * rng.standard_normal(40)

    def correlation(order: np.ndarray) -> float:
        return float(np.corrcoef(x, y[order])[0, 1])

    result = stats.permutation_null(correlation, 40, n_permutations=200, seed=1)
    assert result.observed == pytest.approx(pearsonr(x, y)[0])
    assert result.p_value == pytest.approx(1 / 201)
    assert abs(result.null.mean()) < 0.05
    again = stats.permutation_null(correlation, 40, n_permutations=200, seed=1)
    np.testing.assert_array_equal(again.null, result.null)


def test_bootstrap_interval_of_a_mean_matches_the_normal_theory():
    values = np.random.default_rng(5).normal(loc=2.0, scale=1.0, size=(200, 3))

    def column_means(index: np.ndarray) -> np.ndarray:
        return values[index].mean(axis=0)

    result = stats.bootstrap(column_means, 200, n_boot=400, ci=0.95, seed=0)
    np.testing.assert_allclose(result.estimate, values.mean(axis=0))
    assert result.distribution.shape == (400, 3)
    assert np.all(result.lower < result.estimate)
    assert np.all(result.estimate < result.upper)
    expected_width = 2 * 1.96 * values.std(axis=0, ddof=1) / np.sqrt(200)
    np.testing.assert_allclose(result.upper - result.lower, expected_width, rtol=0.25)
    again = stats.bootstrap(column_means, 200, n_boot=400, ci=0.95, seed=0)
    np.testing.assert_array_equal(again.distribution, result.distribution)
    with pytest.raises(UsageError, match="ci="):
        stats.bootstrap(column_means, 200, ci=95)


TIMES = np.round(np.arange(-0.1, 0.5, 0.01), 3)
WINDOW = (0.15, 0.3)


def _curves(effect: float, seed: int, n_participants: int = 12) -> np.ndarray:
    rng = np.random.default_rng(seed)
    curves = rng.standard_normal((n_participants, len(TIMES)))
    start, stop = WINDOW
    times = TIMES
    inside = (start <= times) & (times <= stop)
    curves[:, inside] += effect
    return curves


def test_cluster_test_finds_a_planted_effect():
    table = stats.cluster_test(_curves(1.5, seed=0), TIMES, seed=0, curve="fg")
    significant = table[table["p_value"] < 0.05]
    assert len(significant) == 1
    row = significant.iloc[0]
    assert row["start"] <= WINDOW[0] + 0.02
    assert row["stop"] >= WINDOW[1] - 0.02
    assert row["start"] >= WINDOW[0] - 0.03 and row["stop"] <= WINDOW[1] + 0.03
    assert row["t_sum"] > 0
    assert (table["curve"] == "fg").all()
    assert (table["n_participants"] == 12).all()


def test_cluster_test_without_effect_finds_nothing_significant():
    table = stats.cluster_test(_curves(0.0, seed=1), TIMES, seed=0)
    assert (table["p_value"] >= 0.05).all()
    again = stats.cluster_test(_curves(0.0, seed=1), TIMES, seed=0)
    pd.testing.assert_frame_equal(table, again)


def test_cluster_test_on_the_foreground_minus_background_difference():
    background = _curves(0.0, seed=2)
    foreground = background + _curves(1.5, seed=3) - _curves(0.0, seed=3)
    table = stats.cluster_test_difference(foreground, background, TIMES, seed=0)
    assert (table["contrast"] == "fg-bg").all()
    assert (table["tail"] == 0).all()
    significant = table[table["p_value"] < 0.05]
    assert len(significant) == 1
    assert significant.iloc[0]["start"] <= WINDOW[0] + 0.02
    reverse = stats.cluster_test_difference(background, foreground, TIMES, seed=0)
    assert reverse[reverse["p_value"] < 0.05].iloc[0]["t_sum"] < 0
    with pytest.raises(DataError, match="differ"):
        stats.cluster_test_difference(foreground[:5], background, TIMES)
    with pytest.raises(DataError, match="participants"):
        stats.cluster_test(foreground[:, :10], TIMES)


def test_stratify_splits_by_foreground_fraction():
    ids = ["a", "b", "c", "d", "e"]
    fractions = [0.2, 0.95, 0.9, np.nan, 0.89]
    strata = stats.stratify(ids, fractions, threshold=0.9)
    assert list(strata["with_background"]) == ["a", "e"]
    assert list(strata["little_background"]) == ["b", "c"]
    variants = pd.DataFrame(
        {"image_id": ids, "fg_fraction": fractions, "status": ["ok", "ok", "failed", "ok", "ok"]}
    )
    from_table = stats.strata_from_variants(variants, threshold=0.9)
    assert list(from_table["little_background"]) == ["b"]
    with pytest.raises(DataError, match="fg_fraction"):
        stats.strata_from_variants(variants.drop(columns="fg_fraction"))


def test_run_by_stratum_labels_rows_and_skips_empty_strata():
    strata = {"with_background": pd.Index(["a", "e"]), "little_background": pd.Index([])}

    def count(ids: pd.Index) -> pd.DataFrame:
        return pd.DataFrame({"metric": ["n"], "value": [len(ids)]})

    table = stats.run_by_stratum(count, strata)
    assert list(table["stratum"]) == ["with_background"]
    assert list(table["value"]) == [2]
    with pytest.raises(DataError, match="empty"):
        stats.run_by_stratum(count, {"little_background": pd.Index([])})
