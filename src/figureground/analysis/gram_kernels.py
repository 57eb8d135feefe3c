"""Compiled (numba) copy of a Gram matrix's lower triangle into a condensed RDM row.

``syrk(lower=1)`` leaves the Gram matrix of a time point in the lower triangle of a
Fortran-ordered (n, n) buffer, where the pairs (i, j > i) of condition i are one contiguous
run, as they are in the condensed output. :func:`condense_lower` copies every run (or
``c - value``, fusing ``1 - gram`` of the correlation and cosine metrics) in one compiled
loop, with no per-condition Python call. It runs on one thread: with numba's threads the
BLAS threads of the next ``syrk`` and the copy's threads competed for the 2 cores and the
RDMs took 1.5x longer (measured on this machine).
"""

from __future__ import annotations

import numba
import numpy as np


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
