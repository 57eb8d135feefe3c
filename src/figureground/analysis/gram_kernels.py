"""Compiled (numba) steps of the RDMs of :mod:`figureground.analysis.rdm_calc` (through
:mod:`figureground.analysis.rdm_gram`).

- :func:`condense_lower` copies a Gram matrix's lower triangle into a condensed RDM row.
  ``syrk(lower=1)`` leaves the Gram matrix of a time point in the lower triangle of a
  Fortran-ordered (n, n) buffer, where the pairs (i, j > i) of condition i are one
  contiguous run, as they are in the condensed output. Every run (or ``c - value``, fusing
  ``1 - gram`` of the correlation and cosine metrics) is copied in one compiled loop.
- :func:`unit_rdms` makes the correlation or cosine RDMs of a few time points in one call
  that releases the GIL: each time point's patterns are read from the (conditions,
  channels, times) input, centred and scaled to unit length into a small time-major
  buffer (sums in float64), multiplied by BLAS ``ssyrk`` / ``dsyrk`` (scipy's
  ``cython_blas``, called from compiled code) and condensed. Threads can then make time
  points in parallel, each with a single-threaded BLAS: :class:`UnitRdmThreads`.

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
from numba import types
from numba.extending import get_cython_function_address

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


@numba.njit(cache=True, nogil=True, error_model="numpy")
def unit_patterns(data: np.ndarray, start: int, centre: bool, out: np.ndarray) -> None:
    """Patterns of time points ``start ..`` of ``data`` (conditions, channels, times) into
    ``out`` (time points, conditions, channels), each row optionally centred, then scaled
    to unit length (a zero row gives NaN). Sums in float64."""
    n_times, n, n_channels = out.shape
    sums = np.empty(n_times)
    for i in range(n):
        sums[:] = 0.0
        if centre:
            for c in range(n_channels):
                for t in range(n_times):
                    sums[t] += data[i, c, start + t]
            for t in range(n_times):
                sums[t] /= n_channels
        means = sums.copy()
        sums[:] = 0.0
        for c in range(n_channels):
            for t in range(n_times):
                value = data[i, c, start + t] - means[t]
                sums[t] += value * value
        for t in range(n_times):
            sums[t] = np.sqrt(sums[t])
        for c in range(n_channels):
            for t in range(n_times):
                out[t, i, c] = (data[i, c, start + t] - means[t]) / sums[t]


@numba.njit(cache=True, nogil=True)
def unit_rdms(
    data: np.ndarray,
    start: int,
    centre: bool,
    patterns: np.ndarray,
    flat: np.ndarray,
    out: np.ndarray,
) -> None:
    """``1 - r`` RDMs (r: correlation with ``centre``, cosine without) of the time points
    ``start .. start + len(out)`` of ``data`` (conditions, channels, times) into ``out``
    (time points, pairs). ``patterns`` (>= len(out), conditions, channels) and ``flat``
    (conditions**2) are the caller's work buffers, of ``out``'s dtype."""
    n_times, n = out.shape[0], data.shape[0]
    block = patterns[:n_times]
    unit_patterns(data, start, centre, block)
    for t in range(n_times):
        syrk_lower(block[t], flat)
        condense_lower(flat, n, out[t], 1.0, True)


BLAS_LIMIT_LOCK = threading.Lock()

# Gram buffers of the threads of UnitRdmThreads stay under this many bytes in all.
GRAM_MEMORY = 512 * 2**20


class UnitRdmThreads:
    """Correlation or cosine RDMs of a batch of time points, the time points shared by threads.

    ``blas`` is threadpoolctl's controller of the BLAS libraries (``select(user_api="blas")``).

    As many threads as BLAS has (``OMP_NUM_THREADS``), each with its own Gram buffer, take a
    contiguous share of the batch's time points and make them in one compiled call
    (:func:`unit_rdms`: centre and scale, ``syrk``, condense) with BLAS limited to one
    thread meanwhile. So everything, not only the
    ``syrk``, runs on every core: normalising, condensing and the first writes of the output.
    """

    def __init__(self, data: np.ndarray, centre: bool, batch_size: int, blas: Any) -> None:
        n_conditions, n_channels, n_times = data.shape
        gram_bytes = n_conditions**2 * data.dtype.itemsize
        n_blas = max((info["num_threads"] for info in blas.info()), default=1)
        self.n_threads = max(1, min(n_blas, batch_size, n_times, GRAM_MEMORY // gram_bytes))
        share = -(-min(batch_size, n_times) // self.n_threads)
        self._data, self._centre, self._blas = data, centre, blas
        self._buffers = [
            (
                np.empty((share, n_conditions, n_channels), dtype=data.dtype),
                np.zeros(n_conditions**2, dtype=data.dtype),
            )
            for _ in range(self.n_threads)
        ]

    def __call__(self, time_slice: slice, out: np.ndarray) -> None:
        """RDMs of the time points of ``time_slice`` into ``out`` (time points, pairs)."""
        n = self.n_threads
        bounds = [k * out.shape[0] // n for k in range(n + 1)]  # shares of at most ceil(b / n)

        def share(k: int) -> None:
            patterns, gram = self._buffers[k]
            start, stop = bounds[k], bounds[k + 1]
            if stop > start:
                unit_rdms(
                    self._data,
                    time_slice.start + start,
                    self._centre,
                    patterns,
                    gram,
                    out[start:stop],
                )

        if n == 1:  # BLAS keeps its threads
            share(0)
            return
        # The BLAS limit is process-wide: one limited section at a time, so overlapping calls
        # cannot restore each other's limit as the 'original' thread count.
        with BLAS_LIMIT_LOCK, self._blas.limit(limits=1), ThreadPoolExecutor(n) as pool:
            list(pool.map(share, range(n)))
