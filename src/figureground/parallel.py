"""Run batches of work serially or on Dask's distributed scheduler.

Scheduler strings (``--scheduler``):

- ``serial`` (default): a plain loop in this process, no cluster.
- ``local`` / ``local:N``: a ``LocalCluster`` on this machine, N worker processes (default:
  the CPU count) with one thread each.
- ``tcp://host:port`` (or ``tls://``, ``ucx://``, ``inproc://``): an existing Dask scheduler,
  e.g. one started by dask-jobqueue on SLURM (see docs/scale.md).

Workers receive batches and write their results to shared storage themselves (the Zarr store
by region, the variants folder); tasks return only small status dicts. A worker process that
dies is replaced by its nanny and its task is run again (``allowed_failures`` times), which is
safe because every write is atomic and idempotent.

Expensive objects (a segmenter session, a network) are built once per worker process through
:func:`worker_cached`, keyed by their full spec.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import uuid
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from figureground import logs
from figureground.errors import UsageError

log = logs.get_logger(__name__)

SERIAL = "serial"
_LOCAL = re.compile(r"^local(?::(\d+))?$")
_ADDRESS = re.compile(r"^(tcp|tls|ucx|inproc)://\S+$")
T = TypeVar("T")

# Per-process cache of expensive objects (one model per worker, not per task). It lives in
# each worker process and is never shared; keys are complete, immutable specs.
_PROCESS_CACHE: dict[Hashable, Any] = {}
_PROCESS_CACHE_LOCK = threading.Lock()  # a worker with several threads builds each once


@dataclass(frozen=True)
class SchedulerSpec:
    """A parsed ``--scheduler`` value: ``kind`` is serial, local or address."""

    kind: str
    n_workers: int | None = None
    address: str = ""

    @property
    def distributed(self) -> bool:
        """Whether work goes to Dask."""
        return self.kind != SERIAL


def parse_scheduler(text: str | Any | None) -> SchedulerSpec:
    """Parse ``serial``, ``local``, ``local:N`` or a scheduler address (or take a Client)."""
    if _is_client(text):
        return SchedulerSpec("client")
    text = (text or SERIAL).strip()
    if text == SERIAL:
        return SchedulerSpec(SERIAL)
    match = _LOCAL.match(text)
    if match:
        n = int(match.group(1)) if match.group(1) else None
        if n is not None and n < 1:
            raise UsageError(f"--scheduler {text}: expected at least 1 worker")
        return SchedulerSpec("local", n_workers=n)
    if _ADDRESS.match(text):
        return SchedulerSpec("address", address=text)
    raise UsageError(
        f"--scheduler {text!r}: expected serial, local, local:N or a scheduler address "
        "such as tcp://host:8786"
    )


@contextlib.contextmanager
def dask_client(scheduler: str | SchedulerSpec | Any) -> Iterator[Any]:
    """A ``distributed.Client`` for ``scheduler`` (None for serial); closed on exit.

    An existing ``Client`` may be passed and is used as is (and left open).
    """
    if _is_client(scheduler):
        yield scheduler
        return
    spec = scheduler if isinstance(scheduler, SchedulerSpec) else parse_scheduler(scheduler)
    if not spec.distributed:
        yield None
        return
    from distributed import Client, LocalCluster

    if spec.kind == "local":
        n = spec.n_workers or os.cpu_count() or 1
        with (
            LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0"
            ) as cluster,
            Client(cluster) as client,
        ):
            log.info("Dask LocalCluster with %d worker processes", n)
            yield client
        return
    try:
        client = Client(spec.address, timeout="30s")
    except OSError as exc:
        raise UsageError(f"cannot reach the Dask scheduler at {spec.address}: {exc}") from None
    with client:
        log.info("Dask scheduler %s", spec.address)
        yield client


def batched(items: Sequence[T], size: int) -> list[list[T]]:
    """Consecutive batches of at most ``size`` items."""
    if size < 1:
        raise UsageError(f"batch size must be at least 1, got {size}")
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def map_batches(
    function: Callable[..., T],
    batches: Iterable[Any],
    scheduler: str | SchedulerSpec | Any = SERIAL,
    *args: Any,
    desc: str = "batches",
) -> Iterator[T]:
    """``function(batch, *args)`` for every batch; results in completion order.

    Serial runs in this process, in order. Otherwise each batch is one Dask task (``args`` are
    scattered once to every worker); a task whose worker died is retried by Dask.
    """
    batches = list(batches)
    with dask_client(scheduler) as client:
        if client is None:
            for batch in logs.progress(batches, total=len(batches), desc=desc):
                yield function(batch, *args)
            return
        from distributed import as_completed

        token = uuid.uuid4().hex[:8]
        # Large arguments go to every worker once (broadcast: a copy survives a worker's death).
        shared = [client.scatter(a, broadcast=True) if _is_large(a) else a for a in args]
        futures = [
            client.submit(function, batch, *shared, pure=False, key=f"{desc}-{token}-{i}")
            for i, batch in enumerate(batches)
        ]
        for future in logs.progress(as_completed(futures), total=len(futures), desc=desc):
            yield future.result()
            future.release()


def _is_client(value: Any) -> bool:
    return type(value).__name__ == "Client" and hasattr(value, "submit")


def _is_large(value: Any) -> bool:
    nbytes = getattr(value, "nbytes", 0)
    return isinstance(nbytes, int) and nbytes > 1_000_000


def worker_cached(key: Hashable, factory: Callable[[], T]) -> T:
    """The object cached under ``key`` in this process, built by ``factory`` on first use."""
    with _PROCESS_CACHE_LOCK:
        if key not in _PROCESS_CACHE:
            _PROCESS_CACHE[key] = factory()
        return _PROCESS_CACHE[key]
