"""The features stage on Dask: one task per pending chunk of a store's variant.

Each worker rebuilds the run's network once (:func:`figureground.parallel.worker_cached`,
keyed by the :class:`ExtractorSpec`), embeds its chunk and writes it to the store by region;
the task returns a small status.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from figureground.features import embed, models, store
from figureground.parallel import map_batches, worker_cached


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


def build_from_spec(spec: ExtractorSpec) -> tuple[Any, Any, Any]:
    """(extractor on its device, preprocessing, device) of ``spec``, seeded as the run."""
    import torch

    torch.manual_seed(spec.seed)
    loaded = models.load_model(
        spec.model, spec.weights, seed=spec.seed, resize=spec.resize, crop=spec.crop
    )
    extractor = embed.build_extractor(loaded, spec.layers)
    if spec.channels_last:
        extractor = extractor.to(memory_format=torch.channels_last)
    device = embed.resolve_device(spec.device)
    return extractor.to(device), loaded.preprocessing, device


def features_chunk(job: dict[str, Any], spec: ExtractorSpec) -> dict[str, Any]:
    """Embed one chunk of one variant and write it to the store by region."""
    import torch

    extractor, preprocessing, device = worker_cached(
        ("extractor", spec), lambda: build_from_spec(spec)
    )
    paths = [Path(p) for p in job["paths"]]
    dataset = embed.ImageDataset(paths, preprocessing)
    _, batch, digests, ok = embed.collate([dataset[i] for i in range(len(paths))])
    batch = batch.to(device)
    if spec.channels_last:
        batch = batch.contiguous(memory_format=torch.channels_last)
    outputs = embed.forward(extractor, batch, embed.pooling(spec.pool), spec.precision)
    values = {name: outputs[name].numpy() for name in spec.layers}
    for array in values.values():
        array[~ok] = np.nan
    writer = store.GroupWriter(job["store"], job["variant"], spec.layers)
    writer.write(job["start"], values, digests, np.where(ok, store.DONE, store.FAILED))
    return {"variant": job["variant"], "start": job["start"], "n": len(paths), "ok": int(ok.sum())}


def extract_pending(out: Path, feature_source: Any, spec: ExtractorSpec, scheduler: Any) -> int:
    """Submit every pending chunk of every variant of the store at ``out``; images written."""
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
