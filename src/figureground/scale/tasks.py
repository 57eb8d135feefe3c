"""The work that Dask workers run: variants of a batch of images, features of a store chunk,
a block of permutations. Each function takes small picklable arguments, writes its results to
shared storage itself and returns a small status (or, for permutations, its null block).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from figureground import logs
from figureground.scale.dask_run import (
    SERIAL,
    batched,
    map_batches,
    parse_scheduler,
    worker_cached,
)

if TYPE_CHECKING:
    from figureground.analysis.stats import PermutationResult

log = logs.get_logger(__name__)


# ------------------------------------------------------------------------------ variants


def variants_batch(tasks: list[dict[str, Any]], spec: Any) -> list[dict[str, Any]]:
    """Variants of a batch of images with this worker's one segmenter (records returned)."""
    from figureground.variants.batched import is_batched, process_batches
    from figureground.variants.run import process_image
    from figureground.variants.segment import build_segmenter

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


# ------------------------------------------------------------------------------ features


@dataclasses.dataclass(frozen=True)
class ExtractorSpec:
    """What a worker needs to rebuild the network that the run's main process built."""

    model: str
    weights: str
    seed: int
    resize: int | None
    crop: int | None
    layers: tuple[str, ...]
    pool: str
    precision: str
    channels_last: bool
    device: str


def _build_extractor(spec: ExtractorSpec) -> tuple[Any, Any, Any]:
    import torch

    from figureground.features import extract, models

    torch.manual_seed(spec.seed)
    loaded = models.load_model(
        spec.model, spec.weights, seed=spec.seed, resize=spec.resize, crop=spec.crop
    )
    extractor = extract.build_extractor(loaded, spec.layers)
    if spec.channels_last:
        extractor = extractor.to(memory_format=torch.channels_last)
    device = extract.resolve_device(spec.device)
    return extractor.to(device), loaded.preprocessing, device


def features_chunk(job: dict[str, Any], spec: ExtractorSpec) -> dict[str, Any]:
    """Embed one chunk of one variant and write it to the store by region."""
    import torch

    from figureground.features import extract, store

    extractor, preprocessing, device = worker_cached(
        ("extractor", spec), lambda: _build_extractor(spec)
    )
    paths = [Path(p) for p in job["paths"]]
    dataset = extract.ImageDataset(paths, preprocessing)
    _, batch, digests, ok = extract._collate([dataset[i] for i in range(len(paths))])
    batch = batch.to(device)
    if spec.channels_last:
        batch = batch.contiguous(memory_format=torch.channels_last)
    outputs = extract.forward(extractor, batch, extract.pooling(spec.pool), spec.precision)
    values = {name: outputs[name].numpy() for name in spec.layers}
    for array in values.values():
        array[~ok] = np.nan
    writer = store.GroupWriter(job["store"], job["variant"], spec.layers)
    writer.write(job["start"], values, digests, np.where(ok, store.DONE, store.FAILED))
    return {"variant": job["variant"], "start": job["start"], "n": len(paths), "ok": int(ok.sum())}


def extract_pending(out: Path, feature_source: Any, spec: ExtractorSpec, scheduler: Any) -> int:
    """Submit every pending chunk of every variant of the store at ``out``; images written."""
    from figureground.features import store

    jobs = []
    for variant in feature_source.variants:
        writer = store.GroupWriter(out, variant, spec.layers)
        paths = feature_source.paths[variant]
        for chunk in writer.pending_chunks():
            start = chunk * writer.chunk
            stop = min(start + writer.chunk, writer.size)
            jobs.append(
                {
                    "store": str(out),
                    "variant": variant,
                    "start": start,
                    "paths": [str(p) for p in paths[start:stop]],
                }
            )
    written = 0
    for status in map_batches(features_chunk, jobs, scheduler, spec, desc="features"):
        written += status["n"]
    return written


# ------------------------------------------------------------------------------ statistics


def _null_block(
    block: tuple[int, np.ndarray], z_data: np.ndarray, z_model: np.ndarray
) -> tuple[int, np.ndarray]:
    from figureground.analysis.stats import null_correlations

    index, perms = block
    return index, null_correlations(z_data, z_model, perms)


def null_distribution(
    z_data: np.ndarray,
    z_model: np.ndarray,
    perms: np.ndarray,
    scheduler: Any = SERIAL,
    block_size: int = 256,
    device: str | None = None,
) -> np.ndarray:
    """:func:`figureground.analysis.stats.null_correlations`, in blocks of ``block_size``
    permutations on ``scheduler``; the rows are the same whatever the scheduler and block size.

    The standardised RDMs are sent to every worker once (1.9 GB at THINGS concept level:
    size the workers' memory for it). With a torch ``device`` every block runs here, on it:
    Dask workers need not have one.
    """
    from figureground.analysis.stats import null_correlations

    if device is not None or not parse_scheduler(scheduler).distributed:
        return null_correlations(z_data, z_model, perms, device)
    blocks = [
        (k, perms[s : s + block_size]) for k, s in enumerate(range(0, len(perms), block_size))
    ]
    parts = dict(map_batches(_null_block, blocks, scheduler, z_data, z_model, desc="permutations"))
    if not parts:
        return np.empty((0, z_data.shape[0]))
    return np.concatenate([parts[k] for k in sorted(parts)])


def rdm_permutation_test_blocks(
    data_rdms: np.ndarray,
    model_rdm: np.ndarray,
    n_permutations: int = 1000,
    method: str = "spearman",
    seed: int = 0,
    alternative: str = "greater",
    block_size: int = 256,
    scheduler: Any = SERIAL,
    device: str | None = None,
) -> PermutationResult:
    """:func:`figureground.analysis.stats.rdm_permutation_test` with its permutations in
    blocks on ``scheduler``: the same draws, the same null, the same p-values.

    The RDMs are ranked and standardised once, here; the blocks only gather and correlate.
    """
    from figureground.analysis.stats import rdm_permutation_test

    return rdm_permutation_test(
        data_rdms,
        model_rdm,
        n_permutations,
        method,
        seed,
        alternative,
        device=device,
        null_function=lambda z_data, z_model, perms: null_distribution(
            z_data, z_model, perms, scheduler, block_size, device
        ),
    )


__all__: Sequence[str] = (
    "ExtractorSpec",
    "extract_pending",
    "features_chunk",
    "null_distribution",
    "rdm_permutation_test_blocks",
    "run_variant_tasks",
    "variants_batch",
)
