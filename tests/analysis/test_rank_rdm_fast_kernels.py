"""The compiled kernels of issue 16 against independent references: ranks from sorted keys
(key_rank_kernels) against scipy's rankdata and the numpy passes, the row products against
numpy, the threaded correlation / cosine RDMs (gram_kernels.unit_patterns and gram_rdms, BLAS
syrk called from compiled code) against scipy's pdist and the sequential path."""

from __future__ import annotations

import contextlib
import sys

import numpy as np
import pytest
from scipy import stats
from scipy.linalg import blas
from scipy.spatial.distance import pdist

from figureground.analysis import (
    fast_ranks,
    fresh_pages,
    gram_kernels,
    key_rank_kernels,
    rdm_calc,
    rdm_gram,
)
from figureground.analysis.fast_ranks import RankWorkspace, rank_rows
from figureground.analysis.rdm_calc import compute_rdms, iter_rdm_batches
from figureground.analysis.rdm_compare import compare_rdms
from figureground.errors import DataError


def _float32_rdm_rows() -> np.ndarray:
    """float32 correlation RDMs of 300 conditions (some pairs tie exactly), and the first
    rounded to float16 precision (most pairs tie)."""
    rng = np.random.default_rng(0)
    patterns = rng.standard_normal((300, 271, 3), dtype=np.float32)
    patterns += rng.standard_normal((300, 271, 1), dtype=np.float32)
    rdms = compute_rdms(patterns)
    return np.concatenate([rdms, rdms[:1].astype(np.float16).astype(np.float32)])


def _tricky(dtype: type) -> np.ndarray:
    """Heavy ties, signed zeros, infinities; float64 values equal in the key's high bits."""
    rng = np.random.default_rng(1)
    n = 2000
    rows = [
        np.where(rng.random(n) < 0.5, -0.0, 0.0) + rng.integers(-2, 3, n),
        np.where(rng.random(n) < 0.1, np.inf, rng.normal(size=n)) * rng.choice([-1, 1], n),
        np.full(n, -1.5),
    ]
    if dtype == np.float64:
        low_bits = 1 + rng.integers(0, 40, n) * 2.0**-50
        rows += [low_bits, -low_bits + rng.integers(0, 2, n) * 2.0**-45]
    return np.stack(rows).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_compiled_ranks_equal_rankdata_and_the_numpy_passes(
    dtype: type, n_jobs: int, monkeypatch
) -> None:
    rows = np.concatenate([_float32_rdm_rows()[:, :2000].astype(dtype), _tricky(dtype)])
    assert fast_ranks.compiled_kernels() is key_rank_kernels
    for row in _float32_rdm_rows()[[0, -1]]:
        assert np.unique(row).size < row.size  # the float32 rows do tie
    compiled = rank_rows(rows, n_jobs)
    np.testing.assert_array_equal(compiled, stats.rankdata(rows, axis=1))
    monkeypatch.setattr(fast_ranks, "compiled_kernels", lambda: None)
    np.testing.assert_array_equal(rank_rows(rows, n_jobs), compiled)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_ranks_of_rows_with_nan_are_as_before(dtype: type, monkeypatch) -> None:
    row = np.random.default_rng(2).integers(0, 30, 500).astype(dtype)
    row[[0, 17, 499]] = np.nan
    compiled = np.empty(row.size)
    RankWorkspace(row.size).rank(row, compiled)
    finite = ~np.isnan(row)
    np.testing.assert_array_equal(compiled[finite], stats.rankdata(row[finite]))
    assert sorted(compiled[~finite]) == [498.0, 499.0, 500.0]
    monkeypatch.setattr(fast_ranks, "compiled_kernels", lambda: None)
    numpy_path = np.empty(row.size)
    RankWorkspace(row.size).rank(row, numpy_path)
    np.testing.assert_array_equal(compiled, numpy_path)


def test_compiled_ranks_of_strided_rows_and_tiny_rows() -> None:
    rows = _tricky(np.float32)
    strided = rows[:, ::3]  # not contiguous
    np.testing.assert_array_equal(rank_rows(strided), stats.rankdata(strided, axis=1))
    for n in (1, 2, 3):
        np.testing.assert_array_equal(rank_rows(rows[0, :n]), stats.rankdata(rows[0, :n]))


def test_row_products_equal_numpy() -> None:
    rng = np.random.default_rng(3)
    values = rng.permutation(10_001) - 5000.0
    models = rng.normal(size=(3, values.size))
    squares, dots = key_rank_kernels.row_products(values, models)
    assert squares == pytest.approx(float(values @ values), rel=1e-13)
    np.testing.assert_allclose(dots, models @ values, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("method", ["spearman", "pearson"])
def test_compare_rdms_compiled_equals_numpy_path_and_spearmanr(
    dtype: type, method: str, monkeypatch
) -> None:
    data = _float32_rdm_rows().astype(dtype)
    rng = np.random.default_rng(4)
    models = np.stack([pdist(rng.normal(size=(300, 5))) for _ in range(3)])
    models[1] = np.round(models[1], 1)  # a model with ties
    compiled = compare_rdms(data, models, method, n_jobs=2)
    reference = stats.spearmanr if method == "spearman" else stats.pearsonr
    for t in range(data.shape[0]):
        for k in range(3):
            expected = reference(data[t].astype(np.float64), models[k]).statistic
            assert compiled[t, k] == pytest.approx(expected, abs=1e-12)
    monkeypatch.setattr(fast_ranks, "compiled_kernels", lambda: None)
    np.testing.assert_allclose(compare_rdms(data, models, method, n_jobs=1), compiled, atol=1e-13)


def test_compare_rdms_leaves_out_pairs_nan_in_any_rdm() -> None:
    rng = np.random.default_rng(5)
    data, models = rng.random((4, 300)), rng.random((2, 300))
    data[2, [3, 50]] = np.nan
    models[1, 7] = np.nan
    keep = np.ones(300, dtype=bool)
    keep[[3, 50, 7]] = False
    np.testing.assert_allclose(
        compare_rdms(data, models, "spearman"),
        compare_rdms(data[:, keep], models[:, keep], "spearman"),
        atol=0,
    )
    with pytest.raises(DataError):
        compare_rdms(np.full((2, 5), np.nan), models[:, :5])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_syrk_lower_equals_scipy_syrk(dtype: type) -> None:
    patterns = np.random.default_rng(6).normal(size=(70, 13)).astype(dtype)
    flat = np.zeros(70 * 70, dtype=dtype)
    gram_kernels.syrk_lower(patterns, flat)
    syrk = blas.ssyrk if dtype == np.float32 else blas.dsyrk
    expected = syrk(1.0, patterns.T, trans=1, lower=1)
    np.testing.assert_array_equal(np.tril(flat.reshape(70, 70, order="F")), np.tril(expected))


class _FakeBlas:
    """A threadpoolctl controller stand-in: ``n`` BLAS threads, limits recorded."""

    def __init__(self, n: int) -> None:
        self.n, self.limits = n, []

    def info(self) -> list[dict]:
        return [{"num_threads": self.n}]

    @contextlib.contextmanager
    def limit(self, limits: int):
        self.limits.append(limits)
        yield


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    ("metric", "scipy_metric"), [("correlation", "correlation"), ("cosine", "cosine")]
)
@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_threaded_rdms_equal_pdist_and_the_sequential_path(
    dtype: type, metric: str, scipy_metric: str, n_threads: int, monkeypatch
) -> None:
    X = np.random.default_rng(7).normal(size=(45, 11, 7)).astype(dtype)
    X[5, :, 2] = 0.0  # a zero pattern: NaN pairs, as on the sequential path
    fake = _FakeBlas(n_threads)
    monkeypatch.setattr(rdm_gram, "_blas_threads", lambda: fake)
    threaded = compute_rdms(X, metric, batch_size=3)
    assert threaded.dtype == dtype and threaded.shape == (7, 45 * 44 // 2)
    assert fake.limits == ([] if n_threads == 1 else [1, 1, 1])  # 3 batches, BLAS on 1 thread
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for t in (0, 4, 6):
        expected = pdist(X[:, :, t].astype(np.float64), scipy_metric)
        np.testing.assert_allclose(threaded[t], expected, rtol=tol, atol=tol)
    monkeypatch.setattr(rdm_gram, "_blas_threads", lambda: None)  # the sequential path
    sequential = compute_rdms(X, metric, batch_size=3)
    np.testing.assert_array_equal(np.isnan(threaded), np.isnan(sequential))
    assert np.isnan(threaded[2]).any()
    np.testing.assert_allclose(threaded, sequential, rtol=tol, atol=tol)
    monkeypatch.setattr(rdm_gram, "_blas_threads", lambda: fake)
    for time_slice, rdms in iter_rdm_batches(X, metric, batch_size=4):
        np.testing.assert_array_equal(rdms, threaded[time_slice])


def test_fresh_array_maps_large_results(monkeypatch) -> None:
    small = rdm_calc.fresh_array((3, 4), np.float32)
    assert small.shape == (3, 4) and small.dtype == np.float32 and small.flags.owndata
    monkeypatch.setattr(fresh_pages, "FRESH_MAP_BYTES", 1)
    mapped = rdm_calc.fresh_array((3, 5), np.float64)
    assert mapped.shape == (3, 5) and mapped.dtype == np.float64 and mapped.flags.writeable
    X = np.random.default_rng(8).normal(size=(20, 6, 4))
    np.testing.assert_allclose(compute_rdms(X)[1], pdist(X[:, :, 1], "correlation"), atol=1e-12)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_patterns_still_raise(bad: float) -> None:
    X = np.random.default_rng(9).normal(size=(10, 4, 3)).astype(np.float32)
    X[3, 2, 1] = bad
    with pytest.raises(DataError, match="NaN or infinite"):
        compute_rdms(X)


def test_without_numba_ranks_take_the_numpy_passes_and_say_so(monkeypatch) -> None:
    import figureground.analysis

    monkeypatch.setitem(sys.modules, "figureground.analysis.key_rank_kernels", None)  # no numba
    monkeypatch.delattr(figureground.analysis, "key_rank_kernels")
    warnings: list[str] = []
    monkeypatch.setattr(fast_ranks.log, "warning", lambda *a: warnings.append(a[0] % a[1:]))
    assert fast_ranks.compiled_kernels.__wrapped__() is None
    assert len(warnings) == 1 and "numba" in warnings[0]
    assert fast_ranks.compiled_kernels() is key_rank_kernels  # the cached answer is untouched
