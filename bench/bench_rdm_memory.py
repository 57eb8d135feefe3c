"""The memory choices of the threaded RDMs, each against its alternative in the same run.

- First writes of 1 GiB: numpy's allocation (huge pages asked for), a shared anonymous map
  (``mmap.mmap(-1, n)``), ``fresh_array`` (private map, no huge pages), and ``fresh_array``
  whose pages two threads first request (``populate_pages``); a warm fill of the same
  array is the floor.
- Reading the patterns (``gram_kernels.unit_patterns``, one thread, 927 of 1,854
  conditions x 271 channels x 12 time points out of 281): rows prefetched ahead against
  none.
- ``compute_rdms`` of 1,854 x 271 x 281 float64 with each thread populating its output rows
  against without, and of x 12 with the work buffers from ``fresh_array`` against numpy's
  allocation.

Run: ``python bench/bench_rdm_memory.py`` (under a minute on 2 cores, 4 GB).
"""

from __future__ import annotations

import mmap
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np

from _common import best_time, report

GIB = 2**30
N_COND, N_CH, N_TIMES = 1854, 271, 281


def main() -> int:
    """Run the benchmark; return 1 if an alternative changed a value."""
    fills = first_fill_seconds()
    prefetch = prefetch_seconds()
    rdm = rdm_seconds()
    print(f"{'what':<58}{'ours s':>9}{'other s':>9}{'other/ours':>12}")
    rows = [
        ("1 GiB first fill: fresh_array vs numpy (huge pages)", fills["fresh"], fills["numpy"]),
        ("1 GiB first fill: fresh_array vs shared map", fills["fresh"], fills["shared"]),
        ("1 GiB: populated by 2 threads + fill vs fresh_array", fills["populated"], fills["fresh"]),
        ("unit_patterns float32: prefetch vs none", *prefetch["float32"]),
        ("unit_patterns float64: prefetch vs none", *prefetch["float64"]),
        ("RDMs float64 x281: populate vs none", *rdm["populate"]),
        ("RDMs float64 x12: buffers fresh_array vs numpy", *rdm["buffers"]),
    ]
    for name, ours, other in rows:
        print(f"{name:<58}{ours:>9.3f}{other:>9.3f}{other / ours:>12.2f}")
    print(f"{'(1 GiB warm fill)':<58}{fills['warm']:>9.3f}")
    summary = "; ".join(f"{name}: {ours:.3f} s vs {other:.3f} s" for name, ours, other in rows)
    summary += f"; warm fill of 1 GiB {fills['warm']:.3f} s"
    ok = prefetch["same"] and rdm["same"]
    report("bench_rdm_memory", summary + ("" if ok else " MISMATCH"), rows=rows, ok=ok, **fills)
    return 0 if ok else 1


def _fill_seconds(make: Callable[[], np.ndarray], populate: bool = False) -> float:
    from figureground.analysis.fresh_pages import populate_pages

    array = make()
    start = time.perf_counter()
    if populate:
        halves = np.array_split(array, 2)
        threads = [threading.Thread(target=populate_pages, args=(half,)) for half in halves]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    array.fill(1)
    return time.perf_counter() - start


def first_fill_seconds() -> dict[str, float]:
    """Seconds of the first fill of 1 GiB, allocated each way (best of 2 fresh arrays)."""
    from figureground.analysis.fresh_pages import fresh_array

    def shared() -> np.ndarray:
        return np.frombuffer(mmap.mmap(-1, GIB), dtype=np.uint8)

    def fresh() -> np.ndarray:
        return fresh_array((GIB,), np.uint8)

    figures = {
        "numpy": min(_fill_seconds(lambda: np.empty(GIB, np.uint8)) for _ in range(2)),
        "shared": min(_fill_seconds(shared) for _ in range(2)),
        "fresh": min(_fill_seconds(fresh) for _ in range(2)),
        "populated": min(_fill_seconds(fresh, populate=True) for _ in range(2)),
    }
    warm = fresh()
    warm.fill(0)
    figures["warm"] = best_time(lambda: warm.fill(1))
    return figures


def prefetch_seconds() -> dict:
    """(with, without) seconds of unit_patterns per dtype, and whether the values agree."""
    rng = np.random.default_rng(0)
    data32 = rng.standard_normal((N_COND, N_CH, N_TIMES), dtype=np.float32)
    figures: dict = {"same": True}
    for dtype in (np.float32, np.float64):
        with_s, without_s, same = _prefetch_cell(data32.astype(dtype))
        figures[np.dtype(dtype).name] = (with_s, without_s)
        figures["same"] &= same
    return figures


def _prefetch_cell(data: np.ndarray) -> tuple[float, float, bool]:
    from figureground.analysis import gram_kernels

    out = np.empty((12, N_COND, N_CH), dtype=data.dtype)
    plain = out.copy()
    half = N_COND // 2

    def run(target: np.ndarray, ahead: int) -> None:
        gram_kernels.unit_patterns(data, 100, True, target, 0, half, ahead)

    run(out, gram_kernels.PREFETCH_ROWS)  # load the compiled kernel
    with_s = best_time(lambda: run(out, gram_kernels.PREFETCH_ROWS), repeats=5)
    without_s = best_time(lambda: run(plain, 0), repeats=5)
    return with_s, without_s, bool(np.array_equal(out[:, :half], plain[:, :half]))


def rdm_seconds() -> dict:
    """compute_rdms with the choices made against without: two rounds, each timing both
    (results freed before the next call), best of the two per variant."""
    from figureground.analysis import gram_kernels
    from figureground.analysis.rsa import compute_rdms

    data = np.random.default_rng(1).standard_normal((N_COND, N_CH, N_TIMES))
    # name: (gram_kernels' function replaced for the alternative, its stand-in, time points)
    variants = {
        "populate": ("populate_pages", _never, N_TIMES),
        "buffers": ("fresh_array", _numpy_empty, 12),
    }
    compute_rdms(data[:, :, :2])  # load the compiled kernels
    figures: dict = {"same": True}
    for name, (function, stand_in, n_times) in variants.items():
        original = getattr(gram_kernels, function)
        times: dict[int, list[float]] = {0: [], 1: []}
        heads = []
        for _ in range(2):
            for k in (0, 1):  # ours, then the alternative
                setattr(gram_kernels, function, stand_in if k else original)
                try:
                    start = time.perf_counter()
                    rdms = compute_rdms(data[:, :, :n_times])
                    times[k].append(time.perf_counter() - start)
                finally:
                    setattr(gram_kernels, function, original)
                heads.append(rdms[:3].copy())
                del rdms
        figures[name] = (min(times[0]), min(times[1]))
        figures["same"] &= all(np.array_equal(heads[0], h, equal_nan=True) for h in heads)
    return figures


def _never(array: np.ndarray) -> bool:
    return False


def _numpy_empty(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    return np.empty(shape, dtype)


if __name__ == "__main__":
    raise SystemExit(main())
