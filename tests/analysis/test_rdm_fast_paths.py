"""The fast paths of RDMs (row-run copy, float64 via dsyrk) and of ranks (sorted int64 keys,
row-wise Pearson) against independent references: scipy pdist, rankdata, spearmanr and
rsatoolbox's compare."""

from __future__ import annotations

import numpy as np
import pytest
from rsatoolbox.rdm import RDMs, compare
from scipy import stats
from scipy.spatial.distance import pdist

from figureground.analysis.fast_ranks import RankWorkspace, rank_rows
from figureground.analysis.rdm_calc import compute_rdms, iter_rdm_batches
from figureground.analysis.rdm_compare import compare_rdms

TOL = {np.float32: 1e-5, np.float64: 1e-12}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    ("metric", "scipy_metric"),
    [("correlation", "correlation"), ("cosine", "cosine"), ("sqeuclidean", "sqeuclidean")],
)
def test_time_resolved_rdms_equal_pdist(dtype: type, metric: str, scipy_metric: str) -> None:
    X = np.random.default_rng(0).normal(size=(40, 13, 5)).astype(dtype)
    rdms = compute_rdms(X, metric, batch_size=2)
    assert rdms.dtype == dtype and rdms.shape == (5, 40 * 39 // 2)
    for t in range(5):
        expected = pdist(X[:, :, t].astype(np.float64), scipy_metric)
        np.testing.assert_allclose(rdms[t], expected, rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_batches_equal_whole_and_single_rdm(dtype: type, batch_size: int) -> None:
    X = np.random.default_rng(1).normal(size=(17, 6, 7)).astype(dtype)
    whole = compute_rdms(X)
    for time_slice, rdms in iter_rdm_batches(X, batch_size=batch_size):
        np.testing.assert_array_equal(rdms, whole[time_slice])
    # A single RDM takes the plain path (bit-exact with earlier versions, e.g. model RDMs);
    # a movie's time points the threaded one, whose normalisation sums in float64: the two
    # agree to the input's rounding, not bit for bit.
    single = compute_rdms(X[:, :, 2])
    np.testing.assert_allclose(single, whole[2], rtol=0, atol=4 * np.finfo(dtype).eps)
    plain = compute_rdms(X[:, :, 2:3], batch_size=batch_size)[0]  # one time point: plain too
    np.testing.assert_array_equal(single, plain)


def _tricky_rows(dtype: type) -> np.ndarray:
    """Rows with heavy ties, signed zeros, infinities and (float64) values that differ only
    in their lowest bits, below what the packed sort key keeps."""
    rng = np.random.default_rng(2)
    n = 3000
    rows = [
        rng.normal(size=n),
        rng.integers(0, 4, n) * 0.25,
        np.where(rng.random(n) < 0.5, -0.0, 0.0) + rng.integers(0, 3, n),
        np.where(rng.random(n) < 0.1, np.inf, rng.normal(size=n)) * rng.choice([-1, 1], n),
        np.full(n, 0.7),
    ]
    if dtype == np.float64:
        low_bits = 1 + rng.integers(0, 50, n) * 2.0**-50  # collide in the key's high bits
        rows += [low_bits, low_bits + rng.integers(0, 2, n) * 2.0**-20]
    return np.stack(rows).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_rank_rows_equal_rankdata(dtype: type, n_jobs: int) -> None:
    rows = _tricky_rows(dtype)
    np.testing.assert_array_equal(rank_rows(rows, n_jobs), stats.rankdata(rows, axis=1))
    np.testing.assert_array_equal(rank_rows(rows[0]), stats.rankdata(rows[0]))
    for n in (1, 2, 3):  # tiny rows
        np.testing.assert_array_equal(rank_rows(rows[1, :n]), stats.rankdata(rows[1, :n]))


def test_rank_rows_other_dtypes_and_nan() -> None:
    ints = np.random.default_rng(3).integers(-5, 5, size=(2, 200))
    np.testing.assert_array_equal(rank_rows(ints), stats.rankdata(ints, axis=1))
    row = np.random.default_rng(4).integers(0, 20, 100).astype(np.float32)
    row[[3, 50, 97]] = np.nan
    ranks = np.empty(row.size)
    RankWorkspace(row.size).rank(row, ranks)
    finite = ~np.isnan(row)
    # as before: the other values ranked among themselves, NaN last with one rank each
    np.testing.assert_array_equal(ranks[finite], stats.rankdata(row[finite]))
    assert sorted(ranks[~finite]) == [98.0, 99.0, 100.0]


def _rdms_with_ties(dtype: type) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    patterns = rng.normal(size=(30, 8, 6))
    data = compute_rdms(patterns).astype(dtype)
    data[:, ::7] = np.round(data[:, ::7], 1)  # ties in the data
    models = np.stack(
        [
            compute_rdms(rng.normal(size=(30, 4))),
            np.round(compute_rdms(rng.normal(size=(30, 4))), 1),  # a model with many ties
            (rng.random(435) < 0.5).astype(np.float64),  # a categorical model
        ]
    ).astype(dtype)
    return data, models


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_spearman_and_pearson_equal_references(dtype: type, n_jobs: int) -> None:
    data, models = _rdms_with_ties(dtype)
    ours = compare_rdms(data, models, "spearman", n_jobs=n_jobs)
    reference = compare(RDMs(data.astype(np.float64)), RDMs(models.astype(np.float64)), "spearman")
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-12)
    scipy_rho = [[stats.spearmanr(row, model).statistic for model in models] for row in data]
    np.testing.assert_allclose(ours, scipy_rho, rtol=0, atol=1e-12)
    pearson = compare_rdms(data, models, "pearson", n_jobs=n_jobs)
    reference = compare(RDMs(data.astype(np.float64)), RDMs(models.astype(np.float64)), "corr")
    np.testing.assert_allclose(pearson, reference, rtol=0, atol=1e-12)


def test_spearman_drops_nan_pairs_and_constant_rows_give_zero() -> None:
    data, models = _rdms_with_ties(np.float64)
    data[:, [4, 40]] = models[:, [4, 40]] = np.nan  # rsatoolbox wants the same NaN pairs
    reference = compare(RDMs(data), RDMs(models), "spearman")
    np.testing.assert_allclose(compare_rdms(data, models, "spearman"), reference, atol=1e-12)
    data[2, 9] = np.nan  # a NaN in one data RDM: that pair is left out of every comparison
    keep = ~np.isnan(data).any(axis=0) & ~np.isnan(models).any(axis=0)
    scipy_rho = [[stats.spearmanr(r[keep], m[keep]).statistic for m in models] for r in data]
    np.testing.assert_allclose(compare_rdms(data, models, "spearman"), scipy_rho, atol=1e-12)
    constant = np.vstack([np.full(data.shape[1], 0.5), data[:1]])
    assert np.all(compare_rdms(constant, models, "spearman", n_jobs=2)[0] == 0.0)
