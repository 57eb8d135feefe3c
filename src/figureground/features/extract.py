"""Extract layer activations for every image of a source into the feature store.

One forward pass per batch returns every requested layer from a graph pruned after the deepest
of them (``create_feature_extractor``). Decoding and preprocessing run in DataLoader workers
(``workers=0``: in process); on CUDA, JPEGs can be decoded on the GPU instead
(``torchvision.io.decode_jpeg(device="cuda")``). Batches are written to the store as they
finish; a rerun skips images already stored.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from figureground import logs, provenance
from figureground.errors import UsageError
from figureground.features import models, sources, store
from figureground.features.embed import (
    DTYPES,
    PRECISIONS,
    ExtractorSpec,
    build_extractor,
    forward,
    loader_batches,
    pooling,
    resolve_device,
)
from figureground.fsutil import locked_output, params_hash
from figureground.parallel import parse_scheduler

log = logs.get_logger(__name__)

# ---- the run -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """Everything that determines the stored values (hashed to guard resumed stores)."""

    layers: tuple[str, ...]
    pool: str
    dtype: str
    precision: str


def _probe_shapes(
    extractor: Any, loaded: models.LoadedModel, pool: Callable[[Any], Any], layers: Sequence[str]
) -> dict[str, tuple[int, ...]]:
    import torch

    crop = loaded.preprocessing.crop
    outputs = forward(extractor, torch.zeros(1, 3, crop, crop), pool)
    return {layer: tuple(outputs[layer].shape[1:]) for layer in layers}


@locked_output("out", "feature store", beside=True)
def extract_features(
    source: str | os.PathLike,
    out: str | os.PathLike,
    model: str = models.DEFAULT_MODEL,
    weights: str = models.DEFAULT_WEIGHTS,
    layers: Sequence[str] = (models.DEFAULT_LAYER,),
    pool: str = "none",
    dtype: str = "float32",
    batch_size: int = 32,
    device: str = "auto",
    seed: int = 0,
    workers: int = 0,
    precision: str = "fp32",
    resize: int | None = None,
    crop: int | None = None,
    channels_last: bool = True,
    gpu_decode: str = "auto",
    scheduler: str = "serial",
) -> Path:
    """Embed every image of ``source`` and store the activations of ``layers`` at ``out``.

    Parameters
    ----------
    source : path
        A variants folder (variants ``original``, ``no_background``, ``no_foreground``) or a
        folder of images (variant ``original``).
    out : path
        The Zarr store; if it exists with the same parameters, only missing images are done.
    model, weights, seed, resize, crop, layers, pool, precision, channels_last, device
        The network and how it runs, each described in
        :class:`~figureground.features.embed.ExtractorSpec`.
    dtype : str
        Stored dtype, ``float32`` or ``float16``.
    batch_size : int
        Images per forward pass and per chunk along ``image``.
    workers : int
        DataLoader worker processes decoding images (0: in this process).
    gpu_decode : str
        ``auto`` (on CUDA when every file is a JPEG), ``on`` or ``off``.
    scheduler : str
        ``serial`` (default), ``local[:N]`` or a Dask scheduler address: chunks go to Dask
        workers (one network per worker process), which write them to the store by region.

    Returns
    -------
    pathlib.Path
        The store's path.
    """
    import torch

    pool_fn = _checked_pooling(dtype, batch_size, precision, pool, scheduler)
    target = torch.device(resolve_device(device))
    feature_source = sources.open_source(source)
    loaded = models.load_model(model, weights, seed=seed, resize=resize, crop=crop)
    extractor = build_extractor(loaded, layers)
    shapes = _probe_shapes(extractor, loaded, pool_fn, layers)
    settings = RunSettings(tuple(layers), pool, dtype, precision)
    out = Path(out)
    _open_store(out, feature_source, loaded, settings, layers, shapes, batch_size)
    if parse_scheduler(scheduler).distributed:
        spec = ExtractorSpec(
            model, weights, seed, resize, crop, tuple(layers), pool, precision,
            channels_last, device,
        )  # fmt: skip
        _extract_on_dask(out, feature_source, spec, scheduler)
        return out
    _extract_in_process(
        feature_source, out, layers, loaded, extractor, target, pool_fn, precision,
        workers, channels_last, gpu_decode,
    )  # fmt: skip
    return out


def _checked_pooling(
    dtype: str, batch_size: int, precision: str, pool: str, scheduler: str
) -> Callable[[Any], Any]:
    """The pooling function of ``pool``, after a one-line error for any bad run option."""
    if dtype not in DTYPES:
        raise UsageError(f"unknown dtype {dtype!r}; expected float32 or float16")
    if batch_size < 1:
        raise UsageError(f"batch size must be at least 1, got {batch_size}")
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}; expected fp32, bf16 or fp16")
    pool_fn = pooling(pool)
    parse_scheduler(scheduler)
    return pool_fn


def _open_store(
    out: Path,
    feature_source: Any,
    loaded: models.LoadedModel,
    settings: RunSettings,
    layers: Sequence[str],
    shapes: dict[str, tuple[int, ...]],
    batch_size: int,
) -> None:
    """Resume the store at ``out`` (same inputs and parameters only) or create it empty."""
    fields = {
        **loaded.describe(),
        **dataclasses.asdict(settings),
        "layers": list(layers),
        "source": str(feature_source.root),
        "source_kind": feature_source.kind,
        "source_listing_sha256": feature_source.listing_sha256,
        "n_images": len(feature_source.image_ids),
    }
    fingerprint = params_hash(
        {
            **fields,
            "image_ids": list(feature_source.image_ids),
            "variants": list(feature_source.variants),
        }
    )
    if out.exists():
        _resume_store(out, fingerprint, feature_source.variants, layers)
        return
    attrs = provenance.stamp(
        **fields, params_hash=fingerprint, skipped_failed_images=list(feature_source.failed)
    )
    store.create_store(
        out,
        feature_source.variants,
        feature_source.image_ids,
        feature_source.concepts,
        shapes,
        settings.dtype,
        batch_size,
        attrs,
    )


def _resume_store(
    out: Path, fingerprint: str, variants: Sequence[str], layers: Sequence[str]
) -> None:
    """Check that the store was made the same way; drop partial files and damaged chunks."""
    found = store.read_root_attrs(out).get("params_hash")
    if found != fingerprint:
        raise UsageError(
            f"feature store {out} was made from other inputs or parameters "
            f"(params_hash {found} != {fingerprint}); choose another --out "
            "or delete it"
        )
    removed = store.remove_partial_files(out)
    log.info("resuming %s%s", out, f" ({removed} partial files removed)" if removed else "")
    for variant in variants:  # damaged chunks become pending again
        store.GroupWriter(out, variant, layers).verify_done()


def _extract_on_dask(out: Path, feature_source: Any, spec: ExtractorSpec, scheduler: str) -> None:
    from figureground.features.distributed import extract_pending

    log.info("stored %d images", extract_pending(out, feature_source, spec, scheduler))


class _BackgroundWriter:
    """Writes batches to the store in one background thread, at most one batch behind.

    Compression and file writes of batch k overlap the forward pass of batch k + 1; a batch
    is handed over only after the previous one is written, so memory holds at most two
    batches and ``done`` flags still follow their data (a kill leaves only whole batches).
    """

    def __enter__(self) -> _BackgroundWriter:
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer")
        self._pending = None
        return self

    def submit(self, write: Any, *args: Any) -> None:
        """Wait for the previous batch (raising its error), then start writing this one."""
        self.wait()
        self._pending = self._pool.submit(write, *args)

    def wait(self) -> None:
        """Block until the batch in flight is written; re-raise its error."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                self.wait()
        finally:
            self._pool.shutdown(wait=True)


def _extract_in_process(
    feature_source: Any,
    out: Path,
    layers: Sequence[str],
    loaded: models.LoadedModel,
    extractor: Any,
    target: Any,
    pool_fn: Callable[[Any], Any],
    precision: str,
    workers: int,
    channels_last: bool,
    gpu_decode: str,
) -> None:
    """The serial loop over variants and pending chunks, the network on ``target`` and the
    store written by a background thread."""
    import torch

    if channels_last:
        extractor = extractor.to(memory_format=torch.channels_last)
    extractor = extractor.to(target)
    with _BackgroundWriter() as background:
        for variant in feature_source.variants:
            writer = store.GroupWriter(out, variant, layers)
            paths = feature_source.paths[variant]
            chunks = writer.pending_chunks()
            if not chunks:
                log.info("%s: all %d images already stored", variant, len(paths))
                continue
            indices = [
                i
                for c in chunks
                for i in range(c * writer.chunk, min((c + 1) * writer.chunk, writer.size))
            ]
            batches = loader_batches(
                paths,
                indices,
                loaded,
                extractor,
                target,
                batch_size=writer.chunk,
                pool=pool_fn,
                precision=precision,
                workers=workers,
                channels_last=channels_last,
                gpu_decode=gpu_decode,
            )
            for batch_indices, outputs, digests, ok in logs.progress(
                batches, total=len(chunks), desc=f"{variant} ({len(indices)} images)"
            ):
                values = {name: outputs[name].numpy() for name in layers}
                for array in values.values():
                    array[~ok] = np.nan
                status = np.where(ok, store.DONE, store.FAILED)
                background.submit(writer.write, batch_indices[0], values, digests, status)
            background.wait()
            log.info("%s: stored %d images", variant, len(indices))
