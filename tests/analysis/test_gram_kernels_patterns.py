"""The patterns step of the threaded RDMs (gram_kernels.unit_patterns: a share of the
conditions, read with prefetching, finiteness noted on the way) against numpy, the NaN and
infinity check it replaces, and fresh_pages.populate_pages (pages requested, values kept)."""

from __future__ import annotations

import mmap
import os
import re
import sys

import numpy as np
import pytest
from scipy.spatial.distance import pdist

from figureground.analysis import fresh_pages, gram_kernels, rdm_calc
from figureground.analysis.rdm_calc import compute_rdms, iter_rdm_batches, pair_indices
from figureground.errors import DataError


def _numpy_unit(data: np.ndarray, centre: bool) -> np.ndarray:
    """(times, conditions, channels) unit patterns by numpy, in float64."""
    x = np.moveaxis(data.astype(np.float64), -1, 0)
    if centre:
        x = x - x.mean(axis=2, keepdims=True)
    return x / np.linalg.norm(x, axis=2, keepdims=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("centre", [True, False])
@pytest.mark.parametrize("layout", ["c", "strided", "fortran"])
def test_unit_patterns_of_a_share_equal_numpy(dtype: type, centre: bool, layout: str) -> None:
    full = np.random.default_rng(0).normal(2.0, 1.0, size=(40, 37, 30)).astype(dtype)
    data = {
        "c": full[:, :, :9],
        "strided": full[::2, 1::2, 3:21:2],  # no unit stride anywhere
        "fortran": np.asfortranarray(full[:, :, :9]),
    }[layout]
    out = np.full((data.shape[2], data.shape[0], data.shape[1]), -7.0, dtype=dtype)
    first, stop = 3, data.shape[0] - 2  # a share in the middle: the rest stays untouched
    assert gram_kernels.unit_patterns(data, 0, centre, out, first, stop)
    expected = _numpy_unit(data, centre)
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(out[:, first:stop], expected[:, first:stop], rtol=tol, atol=tol)
    assert (out[:, :first] == -7.0).all() and (out[:, stop:] == -7.0).all()
    later = out[:4].copy()
    assert gram_kernels.unit_patterns(data, 2, centre, later, first, stop)  # from time point 2
    np.testing.assert_allclose(later[:, first:stop], expected[2:6, first:stop], rtol=tol, atol=tol)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_unit_patterns_notes_non_finite_values(bad: float) -> None:
    data = np.random.default_rng(1).normal(size=(6, 5, 4))
    data[4, 2, 3] = bad
    out = np.empty((4, 6, 5))
    assert gram_kernels.unit_patterns(data, 0, True, out, 0, 4)  # condition 4 not in the share
    assert not gram_kernels.unit_patterns(data, 0, True, out, 0, 6)
    assert not gram_kernels.unit_patterns(data, 0, False, out, 4, 5)
    assert gram_kernels.unit_patterns(data, 0, True, out[:3], 0, 6)  # time point 3 not read


def test_threaded_rdms_raise_on_non_finite_values_of_a_later_batch() -> None:
    X = np.random.default_rng(2).normal(size=(30, 8, 10))
    X[7, 3, 8] = np.nan
    batches = iter_rdm_batches(X, batch_size=4)
    first_slice, first = next(batches)
    assert first_slice == slice(0, 4)
    np.testing.assert_allclose(first[1], pdist(X[:, :, 1], "correlation"), atol=1e-12)
    with pytest.raises(DataError, match="NaN or infinite"):
        list(batches)
    with pytest.raises(DataError, match="NaN or infinite"):
        compute_rdms(X, "cosine")


def test_huge_finite_values_are_not_taken_for_non_finite() -> None:
    """A float64 sum of squares can overflow from finite values: the input is then looked
    at, found finite, and the RDMs made as before (such a pattern scales to zeros)."""
    X = np.random.default_rng(3).normal(size=(12, 6, 3))
    X[2] *= 1e200
    rdms = compute_rdms(X)
    rows, cols = pair_indices(12)
    with_huge = (rows == 2) | (cols == 2)
    for t in range(3):
        np.testing.assert_allclose(rdms[t, with_huge], 1.0)  # zero pattern: 1 - 0
        expected = pdist(X[:, :, t], "correlation")[~with_huge]
        np.testing.assert_allclose(rdms[t, ~with_huge], expected, atol=1e-12)


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _kernel_at_least(major: int, minor: int) -> bool:
    release = re.match(r"(\d+)\.(\d+)", os.uname().release)
    return release is not None and tuple(map(int, release.groups())) >= (major, minor)


def test_populate_pages_keeps_values_and_skips_what_it_cannot(monkeypatch) -> None:
    monkeypatch.setattr(fresh_pages, "FRESH_MAP_BYTES", 1)
    written = rdm_calc.fresh_array((4, 3000), np.float64)
    written[:] = np.arange(written.size).reshape(written.shape)
    supported = sys.platform.startswith("linux") and _kernel_at_least(5, 14)
    assert fresh_pages.populate_pages(written[1:3]) == supported
    np.testing.assert_array_equal(written.ravel(), np.arange(written.size))
    assert not fresh_pages.populate_pages(written[:, ::2])  # not contiguous
    assert not fresh_pages.populate_pages(written[:0])
    assert not fresh_pages.populate_pages(written[0, :10])  # inside one page


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_populate_pages_backs_a_fresh_mapping_before_any_write(monkeypatch) -> None:
    fresh = rdm_calc.fresh_array((64, 2**17), np.float64)  # 64 MiB: mapped
    before = _resident_bytes()
    if not fresh_pages.populate_pages(fresh):
        pytest.skip("the kernel does not populate (before Linux 5.14)")
    assert _resident_bytes() - before > 0.9 * fresh.nbytes
    assert not fresh.any()  # fresh anonymous pages read as zeros


def test_prefetching_changes_no_value() -> None:
    data = np.random.default_rng(4).normal(size=(50, 9, 8)).astype(np.float32)
    with_prefetch, without = np.empty((8, 50, 9), np.float32), np.empty((8, 50, 9), np.float32)
    assert gram_kernels.unit_patterns(data, 0, True, with_prefetch, 0, 50)
    assert gram_kernels.unit_patterns(data, 0, True, without, 0, 50, 0)
    np.testing.assert_array_equal(with_prefetch, without)


def test_patterns_without_channels_are_refused() -> None:
    with pytest.raises(DataError, match="at least 1 channel"):
        compute_rdms(np.zeros((40, 0, 3)))
    with pytest.raises(DataError, match="at least 1 channel"):
        compute_rdms(np.zeros((40, 0)), "euclidean")


def test_kernels_refuse_arguments_out_of_range() -> None:
    data = np.random.default_rng(5).normal(size=(30, 7, 10))
    out = np.empty((4, 30, 7))
    for start, first, stop in [(7, 0, 30), (0, 0, 31), (0, 5, 4), (-1, 0, 30)]:
        with pytest.raises(ValueError, match="out of range"):
            gram_kernels.unit_patterns(data, start, True, out, first, stop)
    with pytest.raises(ValueError, match="do not match"):
        gram_kernels.gram_rdms(out[:2], np.empty(900), np.empty((3, 435)))
    threads = gram_kernels.UnitRdmThreads(data, True, 2, _OneBlasThread())
    for time_slice, rows in [(slice(0, 8), 8), (slice(9, 11), 2), (slice(0, 2), 3)]:
        with pytest.raises(ValueError, match="does not fit"):
            threads(time_slice, np.zeros((rows, 435)))
    rdms = np.zeros((2, 435))
    threads(slice(8, 10), rdms)
    np.testing.assert_allclose(rdms[1], pdist(data[:, :, 9], "correlation"), atol=1e-12)


class _OneBlasThread:
    """A threadpoolctl controller stand-in with one BLAS thread."""

    def info(self) -> list[dict]:
        return [{"num_threads": 1}]


def test_fresh_array_maps_where_the_kernel_has_no_huge_pages(monkeypatch) -> None:
    class _NoHugePages(mmap.mmap):
        def madvise(self, *args: int) -> None:
            raise OSError(22, "Invalid argument")

    monkeypatch.setattr(fresh_pages.mmap, "mmap", _NoHugePages)
    mapped = fresh_pages.fresh_array((1024, 1025), np.float32)  # 4.0 MiB: mapped
    owner = mapped
    while isinstance(owner, np.ndarray | memoryview):
        owner = owner.base if isinstance(owner, np.ndarray) else owner.obj
    assert isinstance(owner, _NoHugePages)
    mapped[:] = 1.5
    assert mapped.sum() == 1.5 * mapped.size


def test_populate_pages_leaves_read_only_arrays() -> None:
    frozen = np.zeros((8, 4096))
    frozen.flags.writeable = False
    assert not fresh_pages.populate_pages(frozen)
