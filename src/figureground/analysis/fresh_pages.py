"""Fresh memory for large results and work buffers: mapped without huge pages
(:func:`fresh_array`) and requested from the kernel before it is written
(:func:`populate_pages`).

A fresh mapping is backed page by page at its first writes, one fault per 4 KiB page.
``populate_pages`` asks for a range in one ``madvise(MADV_POPULATE_WRITE)`` call (Linux
5.14+) instead, from each thread for its own share: on this project's 2-core machine, 1 GiB
of a private mapping took 0.46 s to fill at first (0.10 s when warm) and 0.35-0.38 s
populated by two threads, then filled; the RDMs of 1,854 conditions x 281 time points took
3.06-3.12 s with it against 3.31-3.36 s without (float64; float32 1.68-1.76 s against
1.80-1.84 s). Elsewhere (another system, an older kernel, no libc) nothing is done and the
writes fault the pages in as before; the array's values are never read or changed.
"""

from __future__ import annotations

import ctypes
import functools
import mmap
import sys
from collections.abc import Callable

import numpy as np

# Arrays from this many bytes up are mapped by fresh_array.
FRESH_MAP_BYTES = 4 * 2**20  # numpy asks for huge pages from 4 MiB up


def fresh_array(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An uninitialised array, large ones in their own private anonymous memory map.

    numpy asks the kernel for transparent huge pages on every large array; where the kernel
    then compacts memory to find them (``/sys/kernel/mm/transparent_hugepage/defrag`` set to
    ``madvise``, as on this machine), the first writes of a 1.9 GB result took 3-5 s of
    system time, against 0.8-1.0 s in an anonymous mapping (measured here, float32 RDMs of
    1,854 conditions x 281 time points; 1 GiB: 2.7 s against 0.46 s). The mapping is private
    (a shared one, what ``mmap.mmap(-1, n)`` gives, took 0.55-0.59 s for 1 GiB) and asks for
    no huge pages. It is freed with the array. The threaded RDMs' work buffers are made here
    too: in numpy's huge-page allocation, the 103 MB of them for a float64 batch of 12 time
    points (1,854 conditions x 271 channels) made that batch take 0.22 s instead of 0.15 s.
    """
    dtype = np.dtype(dtype)
    n_bytes = int(np.prod(shape)) * dtype.itemsize
    if n_bytes < FRESH_MAP_BYTES:
        return np.empty(shape, dtype=dtype)
    if hasattr(mmap, "MAP_PRIVATE"):  # POSIX
        mapping = mmap.mmap(-1, n_bytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        if hasattr(mmap, "MADV_NOHUGEPAGE"):
            mapping.madvise(mmap.MADV_NOHUGEPAGE)
    else:
        mapping = mmap.mmap(-1, n_bytes)
    return np.frombuffer(mapping, dtype=dtype).reshape(shape)


_MADV_POPULATE_WRITE = 23  # linux/mman.h, since Linux 5.14
_PAGE = 4096


@functools.lru_cache(maxsize=1)
def _madvise() -> Callable[[int, int, int], int] | None:
    """libc's ``madvise``, or None off Linux or without it."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    return madvise


def populate_pages(array: np.ndarray) -> bool:
    """Back the whole pages inside C-contiguous ``array`` before it is written (releases the
    GIL meanwhile). Returns whether the kernel did it; pages at the array's ends that it
    shares with other memory are left to be faulted by the writes."""
    madvise = _madvise()
    if madvise is None or not array.flags.c_contiguous or array.nbytes == 0:
        return False
    first = array.ctypes.data
    start = -(-first // _PAGE) * _PAGE
    stop = (first + array.nbytes) // _PAGE * _PAGE
    return stop > start and madvise(start, stop - start, _MADV_POPULATE_WRITE) == 0
