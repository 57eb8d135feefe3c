"""The variants stage on Dask: batches of images, each task on a worker's one segmenter.

Each task gets small picklable arguments, writes its images and records to the shared
variants folder itself (atomically, as the serial run) and returns the records.
"""

from __future__ import annotations

from typing import Any

from figureground.parallel import batched, map_batches, worker_cached
from figureground.variants.batched import is_batched, process_batches
from figureground.variants.image import process_image
from figureground.variants.segmenters import build_segmenter


def variants_batch(tasks: list[dict[str, Any]], spec: Any) -> list[dict[str, Any]]:
    """Variants of a batch of images with this worker's one segmenter (records returned)."""
    segmenter = worker_cached(("segmenter", spec), lambda: build_segmenter(spec))
    if is_batched(segmenter):  # the whole task is one batch on the worker's device
        return list(process_batches(tasks, segmenter, len(tasks), len(tasks)))
    return [process_image(task, segmenter) for task in tasks]


def run_variant_tasks(
    tasks: list[dict[str, Any]], spec: Any, scheduler: Any, batch_size: int = 16
) -> list[dict[str, Any]]:
    """Records of every task, computed in batches on ``scheduler``."""
    records: list[dict[str, Any]] = []
    for batch in map_batches(
        variants_batch, batched(tasks, batch_size), scheduler, spec, desc="variants"
    ):
        records.extend(batch)
    return records
