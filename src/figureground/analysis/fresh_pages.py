"""Fresh memory for large results and work buffers: mapped without huge pages
(:func:`fresh_array`) and requested from the kernel before it is written
(:func:`populate_pages`).

A fresh mapping is backed page by page at its first writes, one fault per 4 KiB page.
``populate_pages`` asks for a range in one ``madvise(MADV_POPULATE_WRITE)`` call (Linux
5.14+) instead, from each thread for its own share. ``python bench/bench_rdm_memory.py``
on this project's 2-core machine: 1 GiB of a private mapping took 0.45 s to fill at first
(0.09 s when warm) and 0.34-0.37 s populated by two threads, then filled; the float64 RDMs
of 1,854 conditions x 281 time points took 3.00-3.04 s with it against 3.19 s without.
Elsewhere (another system, an older kernel, no libc) nothing is done and the writes fault
the pages in as before; the array's values are never read or changed.
"""

from __future__ import annotations

import contextlib
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

    numpy asks the kernel for transparent huge pages on every array from 4 MiB up. On this
    machine (``/sys/kernel/mm/transparent_hugepage/defrag``: ``madvise``) their first
    writes are fast while free 2 MiB blocks last (1 GiB: 0.18-0.19 s against 0.45 s here,
    ``bench/bench_rdm_memory.py``) and slow once the kernel compacts memory to find them (a
    1.9 GB float32 result: 11-15 s, ``bench/RESULTS.md``). A private mapping without huge
    pages costs the same every time (a shared one, ``mmap.mmap(-1, n)``, 0.53 s for 1 GiB).
    The threaded RDMs' work buffers are made here too. The mapping is freed with the array.
    """
    dtype = np.dtype(dtype)
    n_bytes = int(np.prod(shape)) * dtype.itemsize
    if n_bytes < FRESH_MAP_BYTES:
        return np.empty(shape, dtype=dtype)
    if hasattr(mmap, "MAP_PRIVATE"):  # POSIX
        mapping = mmap.mmap(-1, n_bytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        with contextlib.suppress(AttributeError, OSError):  # a kernel without huge pages
            mapping.madvise(mmap.MADV_NOHUGEPAGE)
    else:
        mapping = mmap.mmap(-1, n_bytes)
    return np.frombuffer(mapping, dtype=dtype).reshape(shape)


_MADV_POPULATE_WRITE = 23  # linux/mman.h, since Linux 5.14
_PAGE = mmap.PAGESIZE


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
    """Back the whole pages inside C-contiguous, writeable ``array`` before it is written
    (releases the GIL meanwhile). Returns whether the kernel did it; pages at the array's
    ends that it shares with other memory are left to be faulted by the writes. Meant for
    anonymous memory (results, buffers): on a writeable file mapping it would mark the
    pages written."""
    madvise = _madvise()
    if madvise is None or not (array.flags.c_contiguous and array.flags.writeable):
        return False
    if array.nbytes == 0:
        return False
    first = array.ctypes.data
    start = -(-first // _PAGE) * _PAGE
    stop = (first + array.nbytes) // _PAGE * _PAGE
    return stop > start and madvise(start, stop - start, _MADV_POPULATE_WRITE) == 0
