"""The features stage on Dask: one task per pending chunk of a store's variant.

Each worker rebuilds the run's network once (:func:`figureground.parallel.worker_cached`,
keyed by the :class:`ExtractorSpec`), embeds its chunk and writes it to the store by region;
the task returns a small status.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from figureground.features import embed, store
from figureground.features.embed import ExtractorSpec, build_from_spec
from figureground.parallel import map_batches, worker_cached


def features_chunk(job: dict[str, Any], spec: ExtractorSpec) -> dict[str, Any]:
    """Embed one chunk of one variant and write it to the store by region."""
    import torch

    loaded, extractor, device = worker_cached(("extractor", spec), lambda: build_from_spec(spec))
    preprocessing = loaded.preprocessing
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
