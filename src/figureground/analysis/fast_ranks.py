"""Ranks of long rows (the 1.7 M pairs of a 1,854-condition RDM), ties averaged.

Ranks equal ``scipy.stats.rankdata(row)`` (``method="average"``) exactly. Instead of an
``argsort``, every value becomes one int64 *key*: the IEEE bits of the value turned into an
integer of the same order (sign handled, -0.0 made +0.0) in the high bits, its position in
the low ``b`` bits (``b`` = bits needed for a position). Sorting keys (numpy's SIMD sort of
int64) is about 4x faster than ``np.argsort`` of the values; the positions come back from
the low bits, tie groups from the high bits.

- float32 values keep all their 32 bits (rows up to 2**32 values), so keys decide order and
  ties exactly.
- float64 values keep their top ``64 - b`` bits (43 bits for 1.7 M values: relative
  resolution ~5e-10). Values that differ only below that land next to each other with
  equal high bits; those few runs are re-sorted and tie-checked on the full values, so the
  result stays exact.
- Rows with NaN, and other dtypes, take ``np.argsort`` (NaN ranked last, one rank each,
  as before).

With numba, the keys are made and the sorted keys turned into ranks by one compiled pass
each (:mod:`figureground.analysis.key_rank_kernels`); the sort stays numpy's. Without numba
(a warning, once) the numpy passes below do the same.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from figureground import logs

log = logs.get_logger(__name__)

_KEY_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class RankWorkspace:
    """Buffers to rank rows of one length, reused row after row (one per thread)."""

    def __init__(self, n_values: int) -> None:
        self.n_values = n_values
        self.bits = max(1, (n_values - 1).bit_length())
        self._low = np.int64((1 << self.bits) - 1)
        self._keys = np.empty(n_values, dtype=np.int64)
        self.values = np.empty(n_values, dtype=np.float64)  # a row buffer for callers

    @functools.cached_property
    def _numpy_buffers(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Positions, scratch keys, group starts and 1 .. n of the numpy passes."""
        n = self.n_values
        return (
            np.arange(n, dtype=np.int64),
            np.empty(n, dtype=np.int64),
            np.empty(n, dtype=bool),
            np.arange(1, n + 1, dtype=np.float64),
        )

    def rank(self, row: np.ndarray, out: np.ndarray) -> None:
        """Average ranks (1 .. n, float64) of the 1-D ``row`` into ``out``."""
        if row.size != self.n_values:
            raise ValueError(f"row has {row.size} values; workspace is for {self.n_values}")
        if row.size == 0:
            return
        if row.dtype not in _KEY_DTYPES or (self.bits > 32 and row.dtype == np.float32):
            rank_by_argsort(row, out)
            return
        kernels = compiled_kernels()
        if kernels is not None:
            self._rank_compiled(kernels, np.ascontiguousarray(row), out)
        elif np.isnan(row.min()):  # min propagates NaN: one pass, no temporary
            rank_by_argsort(row, out)
        else:
            self._rank_numpy(row, out)

    def _rank_compiled(self, kernels: types.ModuleType, row: np.ndarray, out: np.ndarray) -> None:
        """:meth:`rank` by the compiled key and rank passes (``row`` contiguous)."""
        bits = row.view(np.int32 if row.dtype == np.float32 else np.int64)
        if not kernels.fill_keys(bits, self.bits, self._keys):  # NaN in the row
            rank_by_argsort(row, out)
            return
        self._keys.sort()
        kernels.ranks_from_keys(self._keys, self.bits, row, row.dtype == np.float32, out)

    def _rank_numpy(self, row: np.ndarray, out: np.ndarray) -> None:
        """:meth:`rank` by numpy passes over the keys (``row`` without NaN)."""
        _, scratch, new, first_ranks = self._numpy_buffers
        exact = self._sorted_keys(row)
        keys = self._keys
        high = np.right_shift(keys, self.bits, out=scratch)
        new[0] = True
        np.not_equal(high[1:], high[:-1], out=new[1:])
        order = np.bitwise_and(keys, self._low, out=keys)  # keys -> positions, sorted order
        tied = np.count_nonzero(new) < row.size
        if tied and not exact:
            _split_truncated_runs(row, order, new)
        out[order] = first_ranks
        if tied:
            _average_ties(order, new, out)

    def _sorted_keys(self, row: np.ndarray) -> bool:
        """Fill and sort the keys of ``row``; True when they hold the values' bits in full."""
        positions, scratch = self._numpy_buffers[:2]
        keys = self._keys
        if row.dtype == np.float32:
            halves = scratch.view(np.int32)  # 2 n int32: the values' bits, then their signs
            bits, flip = halves[: row.size], halves[row.size :]
            np.add(row, np.float32(0), out=bits.view(np.float32))  # -0.0 -> +0.0
            np.right_shift(bits, 31, out=flip)  # 0 or -1 (arithmetic shift)
            np.bitwise_and(flip, np.int32(0x7FFFFFFF), out=flip)
            np.bitwise_xor(bits, flip, out=bits)  # same order as the floats, as int32
            keys[...] = bits
            np.left_shift(keys, 32, out=keys)
            exact = True
        else:
            np.add(row, 0.0, out=keys.view(np.float64))  # -0.0 -> +0.0
            np.right_shift(keys, 63, out=scratch)
            np.bitwise_and(scratch, np.int64(0x7FFFFFFFFFFFFFFF), out=scratch)
            np.bitwise_xor(keys, scratch, out=keys)  # same order as the floats, as int64
            np.bitwise_and(keys, ~self._low, out=keys)
            exact = False
        np.bitwise_or(keys, positions, out=keys)
        keys.sort()
        return exact


@functools.cache
def compiled_kernels() -> types.ModuleType | None:
    """The compiled passes (:mod:`figureground.analysis.key_rank_kernels`), None without numba."""
    try:
        from figureground.analysis import key_rank_kernels
    except ImportError as error:
        log.warning("numba is not importable (%s): ranks use their numpy passes", error)
        return None
    return key_rank_kernels


def _tie_runs(new: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of sorted places equal to the one before (``new`` False), as
    (places, run of each place, (start, end) of each run with end exclusive)."""
    places = np.flatnonzero(~new)
    first = np.empty(places.size, dtype=bool)
    first[:1] = True
    np.not_equal(np.diff(places), 1, out=first[1:])
    last = np.empty_like(first)
    last[:-1] = first[1:]
    last[-1:] = True
    run = np.cumsum(first) - 1
    return places, run, np.stack([places[first] - 1, places[last] + 1])


def _average_ties(order: np.ndarray, new: np.ndarray, out: np.ndarray) -> None:
    """Give each group of equal values (sorted places start .. end) the mean of its ranks."""
    places, run, (starts, ends) = _tie_runs(new)
    if places.size == 0:
        return
    mean_rank = 0.5 * (starts + ends + 1)
    out[order[places]] = mean_rank[run]
    out[order[starts]] = mean_rank


def _split_truncated_runs(row: np.ndarray, order: np.ndarray, new: np.ndarray) -> None:
    """Order runs of equal truncated keys by their full values and mark real ties only.

    ``order`` (positions in key order) and ``new`` (True where a group of equal high bits
    starts) are updated in place, ``new`` then True where a group of equal values starts.
    """
    places, _, (starts, ends) = _tie_runs(new)
    sizes = ends - starts
    offsets = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    members = np.repeat(starts, sizes) + offsets
    positions = order[members]
    run = np.repeat(np.arange(sizes.size), sizes)
    order[members] = positions[np.lexsort((row[positions], run))]
    new[places] = row[order[places]] != row[order[places - 1]]


def rank_by_argsort(row: np.ndarray, out: np.ndarray) -> None:
    """Average ranks of ``row`` into ``out`` via ``np.argsort`` (any dtype; NaN ranked last)."""
    order = np.argsort(row)
    ordered = row[order]
    new = np.empty(row.size, dtype=bool)
    new[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
    if new.all():
        out[order] = np.arange(1, row.size + 1, dtype=np.float64)
        return
    dense = np.cumsum(new)
    bounds = np.append(np.flatnonzero(new), row.size)
    out[order] = 0.5 * (bounds[dense] + bounds[dense - 1] + 1)


def for_each_row(
    n_rows: int,
    n_values: int,
    work: Callable[[int, RankWorkspace], None],
    n_jobs: int = 1,
) -> None:
    """Call ``work(i, workspace)`` for rows 0 .. n_rows - 1 on ``n_jobs`` threads.

    Each thread owns one :class:`RankWorkspace` and takes the next row as it gets free
    (numpy's sort and ufuncs release the GIL, so threads rank rows in parallel).
    """
    n_threads = max(1, min(n_jobs, n_rows))
    rows = iter(range(n_rows))  # shared: next() on a range iterator is atomic

    def worker() -> None:
        workspace = RankWorkspace(n_values)
        for i in rows:
            work(i, workspace)

    if n_threads == 1:
        worker()
        return
    with ThreadPoolExecutor(n_threads) as pool:
        for future in [pool.submit(worker) for _ in range(n_threads)]:
            future.result()


def rank_rows(values: np.ndarray, n_jobs: int = 1) -> np.ndarray:
    """Ranks along the last axis, ties averaged (``scipy.stats.rankdata``), as float64.

    ``n_jobs`` threads rank rows in parallel. 1-D input gives 1-D ranks.
    """
    data = np.atleast_2d(np.asarray(values))
    if data.ndim != 2:
        data = data.reshape(-1, data.shape[-1])
    ranks = np.empty(data.shape, dtype=np.float64)
    for_each_row(
        data.shape[0],
        data.shape[1],
        lambda i, workspace: workspace.rank(data[i], ranks[i]),
        n_jobs,
    )
    return ranks.reshape(np.shape(values))
