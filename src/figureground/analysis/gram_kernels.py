"""Compiled (numba) steps of the RDMs of :mod:`figureground.analysis.rdm_calc` (through
:mod:`figureground.analysis.rdm_gram`).

- :func:`condense_lower` copies a Gram matrix's lower triangle into a condensed RDM row.
  ``syrk(lower=1)`` leaves the Gram matrix of a time point in the lower triangle of a
  Fortran-ordered (n, n) buffer, where the pairs (i, j > i) of condition i are one
  contiguous run, as they are in the condensed output. Every run (or ``c - value``, fusing
  ``1 - gram`` of the correlation and cosine metrics) is copied in one compiled loop.
- :func:`unit_patterns` reads the patterns of some conditions at a batch of time points
  from the (conditions, channels, times) input and centres and scales them to unit length
  into a time-major buffer (sums in float64); :func:`gram_rdms` multiplies each time point's
  patterns by BLAS ``ssyrk`` / ``dsyrk`` (scipy's ``cython_blas``, called from compiled
  code) and condenses. Both release the GIL, so threads share the work, each with a
  single-threaded BLAS: :class:`UnitRdmThreads`.

With numba's own threads the BLAS threads of the next ``syrk`` and a parallel copy competed
for the 2 cores and the RDMs took 1.5x longer (measured on this machine): every function
here runs on its caller's thread.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import llvmlite.binding
import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import get_cython_function_address, intrinsic

from figureground.analysis.fresh_pages import fresh_array, populate_pages
from figureground.errors import DataError

# scipy's BLAS, linked by name so that the compiled functions can be cached on disk
for _name in ("ssyrk", "dsyrk"):
    llvmlite.binding.add_symbol(
        f"figureground_{_name}", get_cython_function_address("scipy.linalg.cython_blas", _name)
    )
_SYRK_SIGNATURE = types.void(*[types.voidptr] * 10)
_SSYRK = types.ExternalFunction("figureground_ssyrk", _SYRK_SIGNATURE)
_DSYRK = types.ExternalFunction("figureground_dsyrk", _SYRK_SIGNATURE)
_LOWER, _TRANSPOSED = 76, 84  # "L", "T"


@numba.njit(cache=True, nogil=True, inline="always")
def _copy_run(flat, n, out, constant, subtract, i):
    start = i * (2 * n - i - 1) // 2
    base = i * n + i + 1
    if subtract:
        for k in range(n - 1 - i):
            out[start + k] = constant - flat[base + k]
    else:
        for k in range(n - 1 - i):
            out[start + k] = flat[base + k]


@numba.njit(cache=True, nogil=True)
def condense_lower(flat: np.ndarray, n: int, out: np.ndarray, constant: float, subtract: bool):
    """Write the lower triangle of the Fortran (n, n) ``flat`` into condensed ``out``."""
    for i in range(n - 1):
        _copy_run(flat, n, out, constant, subtract, i)


@numba.njit(cache=True, nogil=True)
def syrk_lower(patterns: np.ndarray, flat: np.ndarray) -> None:
    """``patterns @ patterns.T`` of C-contiguous (n, k) float32 or float64 ``patterns``
    into the lower triangle of the Fortran (n, n) Gram matrix ``flat`` (n * n values)."""
    n, k = patterns.shape
    flags = np.array([_LOWER, _TRANSPOSED], dtype=np.uint8)
    sizes = np.array([n, k, k, n], dtype=np.int32)  # n, k, lda, ldc
    scalars = np.array([1.0, 0.0], dtype=patterns.dtype)  # alpha, beta
    uplo, trans = flags[0:].ctypes, flags[1:].ctypes
    n_ptr, k_ptr, lda, ldc = sizes[0:].ctypes, sizes[1:].ctypes, sizes[2:].ctypes, sizes[3:].ctypes
    alpha, beta = scalars[0:].ctypes, scalars[1:].ctypes
    if patterns.itemsize == 4:
        _SSYRK(uplo, trans, n_ptr, k_ptr, alpha, patterns.ctypes, lda, beta, flat.ctypes, ldc)
    else:
        _DSYRK(uplo, trans, n_ptr, k_ptr, alpha, patterns.ctypes, lda, beta, flat.ctypes, ldc)


@numba.njit(cache=True, nogil=True, inline="always")
def _row_sum(row: np.ndarray, shift: float, square: bool) -> float:
    """Sum of ``row - shift`` (or of its squares) in float64, in four interleaved partial
    sums: independent additions the core overlaps, in a fixed order (the same result on
    every call; the compiler does not reassociate them)."""
    s0 = s1 = s2 = s3 = 0.0
    n = row.shape[0]
    c = 0
    while c + 4 <= n:
        v0, v1, v2, v3 = row[c] - shift, row[c + 1] - shift, row[c + 2] - shift, row[c + 3] - shift
        if square:
            v0, v1, v2, v3 = v0 * v0, v1 * v1, v2 * v2, v3 * v3
        s0, s1, s2, s3 = s0 + v0, s1 + v1, s2 + v2, s3 + v3
        c += 4
    while c < n:
        v0 = row[c] - shift
        s0 += v0 * v0 if square else v0
        c += 1
    return (s0 + s1) + (s2 + s3)


@intrinsic
def _prefetch(typingctx, address):
    """Hint the core to fetch the cache line at ``address`` (an integer; never faults)."""

    def codegen(context, builder, signature, args):
        pointer = builder.inttoptr(args[0], ir.IntType(8).as_pointer())
        int32 = ir.IntType(32)
        function = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(ir.VoidType(), [pointer.type, int32, int32, int32]),
            "llvm.prefetch.p0",  # opaque pointers: LLVM 15+ (llvmlite 0.44+; pinned 0.50)
        )
        builder.call(function, [pointer, int32(0), int32(3), int32(1)])  # read, keep, data
        return context.get_dummy_value()

    return types.void(types.intp), codegen


# Rows (condition, channel) of the input whose first and last values are prefetched ahead
# of their reading: the rows lie a few hundred bytes apart, one or a few per page, and
# reading them in turn waited on the page walks (927 conditions x 271 channels x 12 time
# points on one core: float32 0.011 -> 0.008 s, float64 0.012-0.020 -> 0.010-0.012 s;
# ``python bench/bench_rdm_memory.py``).
PREFETCH_ROWS = 16


@numba.njit(cache=True, nogil=True, error_model="numpy")
def unit_patterns(
    data: np.ndarray,
    start: int,
    centre: bool,
    out: np.ndarray,
    first: int,
    stop: int,
    ahead: int = PREFETCH_ROWS,
) -> bool:
    """Patterns of conditions ``first .. stop`` at time points ``start ..`` of ``data``
    (conditions, channels, times) into ``out[:, first:stop]`` (``out``: time points,
    conditions, channels), each optionally centred, then scaled to unit length (a zero
    pattern gives NaN). Sums in float64. Returns False if a pattern's sum of squares is not
    finite (``data`` holds NaN or infinite values, or values near the float64 limit).

    Each condition's values at all of ``out``'s time points are read in one pass over its
    channels, so a cache line of ``data`` (times last) is fetched once for all of them;
    the rows ``ahead`` places on are prefetched meanwhile (0: none)."""
    n_times, n_channels = out.shape[0], out.shape[2]
    if not (
        0 <= first <= stop <= min(data.shape[0], out.shape[1])
        and start >= 0
        and start + n_times <= data.shape[2]
        and 0 < n_channels == data.shape[1]
        and ahead >= 0
    ):
        raise ValueError("unit_patterns: conditions, time points or channels out of range")
    block = np.empty((n_times, n_channels))
    finite = True
    base = data.ctypes.data
    stride_i, stride_c, stride_t = data.strides
    ahead_i, ahead_c = first + ahead // n_channels, ahead % n_channels
    for i in range(first, stop):
        for c in range(n_channels):
            if ahead > 0 and ahead_i < stop:
                row = base + ahead_i * stride_i + ahead_c * stride_c + start * stride_t
                _prefetch(row)
                _prefetch(row + (n_times - 1) * stride_t)
                ahead_c += 1
                if ahead_c == n_channels:
                    ahead_i, ahead_c = ahead_i + 1, 0
            for t in range(n_times):
                block[t, c] = data[i, c, start + t]
        for t in range(n_times):
            values = block[t]
            mean = _row_sum(values, 0.0, False) / n_channels if centre else 0.0
            squares = _row_sum(values, mean, True)
            finite = finite and np.isfinite(squares)
            norm = np.sqrt(squares)
            target = out[t, i]
            for c in range(n_channels):
                target[c] = (values[c] - mean) / norm
    return finite


@numba.njit(cache=True, nogil=True)
def gram_rdms(patterns: np.ndarray, flat: np.ndarray, out: np.ndarray) -> None:
    """``1 - patterns[t] @ patterns[t].T``, condensed, into ``out[t]`` for each time point
    of ``patterns`` (time points, conditions, channels; unit rows). ``flat`` (conditions**2)
    is the caller's Gram buffer, of ``out``'s dtype."""
    n = patterns.shape[1]
    if patterns.shape[0] < out.shape[0] or out.shape[1] != n * (n - 1) // 2 or flat.size < n * n:
        raise ValueError("gram_rdms: patterns, Gram buffer and output do not match")
    for t in range(out.shape[0]):
        syrk_lower(patterns[t], flat)
        condense_lower(flat, n, out[t], 1.0, True)


BLAS_LIMIT_LOCK = threading.Lock()

# Gram buffers of the threads of UnitRdmThreads stay under this many bytes in all.
GRAM_MEMORY = 512 * 2**20


class UnitRdmThreads:
    """Correlation or cosine RDMs of a batch of time points, made by threads in two steps.

    ``blas`` is threadpoolctl's controller of the BLAS libraries (``select(user_api="blas")``).

    As many threads as BLAS has (``OMP_NUM_THREADS``) first share the conditions: each
    centres and scales its conditions' patterns at all the batch's time points
    (:func:`unit_patterns`), reading every cache line of the input once. Then they share
    the time points: each backs its rows of the output (:func:`populate_pages`) and makes
    their RDMs (:func:`gram_rdms`: single-threaded ``syrk`` into its own Gram buffer,
    condense), BLAS limited to one thread meanwhile. So every step runs on every core.

    The input is checked for NaN and infinite values on the way (a pattern's sum of squares
    is then not finite), not by a pass of its own; :class:`DataError` if it holds any.
    """

    def __init__(self, data: np.ndarray, centre: bool, batch_size: int, blas: Any) -> None:
        n_conditions, n_channels, n_times = data.shape
        gram_bytes = n_conditions**2 * data.dtype.itemsize
        n_blas = max((info["num_threads"] for info in blas.info()), default=1)
        self.n_threads = max(1, min(n_blas, batch_size, n_times, GRAM_MEMORY // gram_bytes))
        self._data, self._centre, self._blas = data, centre, blas
        # work buffers mapped without huge pages (fresh_array); syrk (beta 0) writes the
        # Gram buffers' lower triangles before anything reads them
        self._patterns = fresh_array(
            (min(batch_size, n_times), n_conditions, n_channels), data.dtype
        )
        self._grams = [fresh_array((n_conditions**2,), data.dtype) for _ in range(self.n_threads)]
        self._rows = [k * n_conditions // self.n_threads for k in range(self.n_threads + 1)]

    def __call__(self, time_slice: slice, out: np.ndarray) -> None:
        """RDMs of the time points of ``time_slice`` into ``out`` (time points, pairs)."""
        n_rows, n_conditions = self._patterns.shape[:2]
        if not (
            out.ndim == 2
            and out.shape[0] == len(range(*time_slice.indices(self._data.shape[2])))
            and out.shape[0] <= n_rows
            and time_slice.step in (None, 1)
            and out.shape[1] == n_conditions * (n_conditions - 1) // 2
        ):
            raise ValueError(
                f"UnitRdmThreads: output {out.shape} does not fit time points {time_slice} "
                f"of at most {n_rows} in a batch"
            )
        n = self.n_threads
        patterns = self._patterns[: out.shape[0]]
        times = [k * out.shape[0] // n for k in range(n + 1)]  # shares of at most ceil(b / n)

        def normalise(k: int) -> bool:
            rows = self._rows
            return unit_patterns(
                self._data, time_slice.start, self._centre, patterns, rows[k], rows[k + 1]
            )

        def multiply(k: int) -> None:
            share = slice(times[k], times[k + 1])
            populate_pages(out[share])
            gram_rdms(patterns[share], self._grams[k], out[share])

        if n == 1:  # BLAS keeps its threads
            self._check(normalise(0), time_slice)
            multiply(0)
            return
        # The BLAS limit is process-wide: one limited section at a time, so overlapping calls
        # cannot restore each other's limit as the 'original' thread count.
        with BLAS_LIMIT_LOCK, self._blas.limit(limits=1), ThreadPoolExecutor(n) as pool:
            self._check(all(list(pool.map(normalise, range(n)))), time_slice)
            list(pool.map(multiply, range(n)))

    def _check(self, finite: bool, time_slice: slice) -> None:
        """:class:`DataError` if the input at ``time_slice`` holds NaN or infinite values
        (looked at only when a sum of squares was not finite)."""
        if not finite and not np.isfinite(self._data[..., time_slice]).all():
            raise DataError("X holds NaN or infinite values; RDMs need finite patterns")
