"""Variants with a batched segmenter (``isnet-torch``): one process holds the network on its
device; threads load and prepare the next batch while the device segments this one, and
finish the one before (restore the mask, inpaint, encode, write).

A segmenter is batched when it has ``prepare`` (CPU, thread-safe), ``infer`` (a list of
prepared inputs to masks, on the device) and ``restore`` (CPU, thread-safe), like
:class:`figureground.variants.segmenters.TorchIsnetSegmenter`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, NamedTuple, Protocol

import numpy as np

from figureground import logs
from figureground.errors import FigureGroundError
from figureground.variants.image import failed_record, reused_record, write_image_variants

log = logs.get_logger(__name__)


class BatchSegmenter(Protocol):
    """What :func:`process_batches` needs of a segmenter."""

    def prepare(self, rgb: np.ndarray) -> np.ndarray: ...

    def infer(self, prepared: Sequence[np.ndarray]) -> np.ndarray: ...

    def restore(self, mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray: ...


class Loaded(NamedTuple):
    """One task after loading: already done or failed (``record``), or to segment."""

    record: dict[str, Any] | None
    rgb: np.ndarray | None = None
    prepared: np.ndarray | None = None


class DeviceError(FigureGroundError):
    """The segmenter failed on its device for a reason that is not one image's."""


def is_batched(segmenter: Any) -> bool:
    """Whether ``segmenter`` segments batches on a device (``prepare``/``infer``/``restore``)."""
    return all(hasattr(segmenter, name) for name in ("prepare", "infer", "restore"))


def _load_and_prepare(task: dict[str, Any], segmenter: BatchSegmenter) -> Loaded:
    """Reuse the task's finished record, or load and prepare its image (on a thread)."""
    from figureground.stimuli import load_rgb

    if reused := reused_record(task):
        return Loaded(reused)
    try:
        rgb = load_rgb(task["source"])
        return Loaded(None, rgb, segmenter.prepare(rgb))
    except Exception as exc:  # a bad image is reported and skipped
        return Loaded(failed_record(task, exc))


def _restore_and_write(
    task: dict[str, Any], segmenter: BatchSegmenter, rgb: np.ndarray, mask: np.ndarray
) -> dict[str, Any]:
    """The image's record after writing its variants from its device mask (on a thread)."""
    try:
        return write_image_variants(task, rgb, segmenter.restore(mask, rgb.shape[:2]))
    except Exception as exc:
        return failed_record(task, exc)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _out_of_memory(exc: BaseException) -> bool:
    return type(exc).__name__ == "OutOfMemoryError" or "out of memory" in str(exc).lower()


def _empty_device_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def infer_batch(segmenter: BatchSegmenter, prepared: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Masks of one batch.

    A batch that runs out of device memory is retried one image at a time (with a warning
    to lower ``--batch-size``). Any other failure, or one image alone running out of memory,
    is the device's or the network's, not an image's: it stops the run with one line
    (:class:`DeviceError`); images already finished keep their outputs and records.
    """
    try:
        return list(segmenter.infer(prepared))
    except Exception as exc:
        if not _out_of_memory(exc) or len(prepared) == 1:
            raise DeviceError(f"the segmenter failed on its device: {_first_line(exc)}") from None
        log.warning(
            "a batch of %d images ran out of device memory; retrying one at a time "
            "(a smaller --batch-size avoids this)",
            len(prepared),
        )
        _empty_device_cache()
    masks = []
    for item in prepared:
        try:
            masks.append(segmenter.infer([item])[0])
        except Exception as exc:
            raise DeviceError(f"the segmenter failed on its device: {_first_line(exc)}") from None
    return masks


def process_batches(
    tasks: list[dict[str, Any]], segmenter: BatchSegmenter, threads: int, batch_size: int
) -> Iterator[dict[str, Any]]:
    """Records of ``tasks`` (in order) with a batched segmenter.

    Threads load, resize and later finish (inpaint, encode, write) images while the device
    segments: the next batch is loaded while the current one is on the device, and the
    previous one finishes meanwhile. A bad image fails alone; a device failure stops the run
    (:func:`infer_batch`).
    """
    batches = [tasks[i : i + batch_size] for i in range(0, len(tasks), batch_size)]

    def load(batch: list[dict[str, Any]]) -> list[Future[Loaded]]:
        return [pool.submit(_load_and_prepare, task, segmenter) for task in batch]

    def results(loaded: list[Loaded], finishing: list[Future | None]) -> Iterator[dict[str, Any]]:
        for item, future in zip(loaded, finishing, strict=True):
            yield item.record if future is None else future.result()

    with ThreadPoolExecutor(max(1, threads)) as pool:
        loading = load(batches[0]) if batches else []
        previous: tuple[Any, ...] | None = None
        for index, batch in enumerate(batches):
            loaded = [future.result() for future in loading]
            if index + 1 < len(batches):
                loading = load(batches[index + 1])  # read ahead while the device works
            todo = [i for i, item in enumerate(loaded) if item.record is None]
            masks = infer_batch(segmenter, [loaded[i].prepared for i in todo]) if todo else []
            finishing: list[Future | None] = [None] * len(batch)
            for i, mask in zip(todo, masks, strict=True):
                finishing[i] = pool.submit(
                    _restore_and_write, batch[i], segmenter, loaded[i].rgb, mask
                )
            if previous is not None:  # the batch before finished while this one was inferred
                yield from results(*previous)
            previous = (loaded, finishing)
        if previous is not None:
            yield from results(*previous)
