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
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from figureground import logs, provenance
from figureground.errors import FigureGroundError, UsageError
from figureground.features import models, sources, store
from figureground.fsutil import locked_output, params_hash, sha256_bytes
from figureground.scale.dask_run import parse_scheduler

log = logs.get_logger(__name__)

DTYPES = ("float32", "float16")
PRECISIONS = {"fp32": None, "bf16": "bfloat16", "fp16": "float16"}
DEVICES = ("auto", "cpu", "cuda", "mps")
_AVG_K = re.compile(r"^avg(\d+)$")


# ---- pooling -----------------------------------------------------------------------------


def _no_pool(tensor: Any) -> Any:
    return tensor


def _global_avg(tensor: Any) -> Any:
    return tensor.mean(dim=(2, 3)) if tensor.ndim == 4 else tensor


def _avg_k(k: int) -> Callable[[Any], Any]:
    def pool(tensor: Any) -> Any:
        from torch.nn import functional

        return functional.adaptive_avg_pool2d(tensor, k) if tensor.ndim == 4 else tensor

    return pool


POOLS: dict[str, Callable[[Any], Any]] = {"none": _no_pool, "avg": _global_avg}


def pooling(name: str) -> Callable[[Any], Any]:
    """The pooling function for ``none``, ``avg`` (global average) or ``avgK`` (K x K)."""
    if name in POOLS:
        return POOLS[name]
    match = _AVG_K.match(name)
    if match and int(match.group(1)) > 0:
        return _avg_k(int(match.group(1)))
    raise UsageError(f"unknown pooling {name!r}; expected none, avg or avgK (e.g. avg7)")


# ---- device and graph --------------------------------------------------------------------


def resolve_device(device: str = "auto") -> Any:
    """``auto`` picks cuda, then mps, then cpu; a named device must exist."""
    import torch

    if device not in DEVICES:
        raise UsageError(f"unknown device {device!r}; expected one of {', '.join(DEVICES)}")
    has = {
        "cuda": torch.cuda.is_available(),
        "mps": getattr(torch.backends, "mps", None) is not None
        and torch.backends.mps.is_available(),
        "cpu": True,
    }
    if device == "auto":
        device = next(name for name in ("cuda", "mps", "cpu") if has[name])
    if not has[device]:
        raise UsageError(f"device {device!r} is not available on this machine")
    return torch.device(device)


def build_extractor(loaded: models.LoadedModel, layers: Sequence[str]) -> Any:
    """A graph module returning ``{layer: activation}``, pruned after the deepest layer."""
    import warnings

    from torchvision.models.feature_extraction import create_feature_extractor

    models.check_layers(models.list_layers(loaded), layers, loaded.name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        extractor = create_feature_extractor(
            loaded.module, return_nodes=list(layers), tracer_kwargs=loaded.tracer_kwargs or None
        )
    return extractor.eval()


def forward(
    extractor: Any,
    batch: Any,
    pool: Callable[[Any], Any],
    precision: str = "fp32",
    on_device: bool = False,
) -> dict[str, Any]:
    """Run one batch under ``inference_mode`` (autocast for bf16/fp16); float32 CPU outputs.

    ``on_device=True`` leaves the float32 outputs on the batch's device (for consumers that
    reduce them there, e.g. :mod:`figureground.analysis.seed_fused`).
    """
    import contextlib

    import torch

    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}; expected fp32, bf16 or fp16")
    autocast = (
        contextlib.nullcontext()
        if PRECISIONS[precision] is None
        else torch.autocast(batch.device.type, dtype=getattr(torch, PRECISIONS[precision]))
    )
    with torch.inference_mode(), autocast:
        outputs = extractor(batch)
        outputs = {name: pool(value).float().contiguous() for name, value in outputs.items()}
        return outputs if on_device else {name: value.cpu() for name, value in outputs.items()}


# ---- data loading ------------------------------------------------------------------------


class ImageDataset:
    """Decodes and preprocesses images by index; returns (index, tensor, sha256, ok)."""

    def __init__(
        self,
        paths: Sequence[Path],
        preprocessing: models.Preprocessing,
        decode_on_device: bool = False,
    ) -> None:
        self.paths = list(paths)
        self.preprocessing = preprocessing
        self.decode_on_device = decode_on_device

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, Any, str, bool]:
        import torch

        path = self.paths[index]
        blank = torch.zeros(3, self.preprocessing.crop, self.preprocessing.crop)
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            log.warning("cannot read %s: %s", path, exc)
            return index, blank, "", False
        digest = sha256_bytes(data)
        if self.decode_on_device:  # raw bytes; decoded on the GPU in the main process
            return index, torch.frombuffer(bytearray(data), dtype=torch.uint8), digest, True
        try:
            return index, self.preprocessing(sources.load_rgb(path)), digest, True
        except FigureGroundError as exc:
            log.warning("%s", exc)
            return index, blank, digest, False


def _collate(
    items: list[tuple[int, Any, str, bool]],
) -> tuple[list[int], Any, list[str], np.ndarray]:
    import torch

    indices, tensors, digests, ok = zip(*items, strict=True)
    stacked = torch.stack(tensors) if tensors[0].ndim == 3 else list(tensors)
    return list(indices), stacked, list(digests), np.asarray(ok, dtype=bool)


def _worker_init(_: int) -> None:
    import torch

    torch.set_num_threads(1)  # leave the cores to the forward pass


def _decode_on_gpu(raw: list[Any], preprocessing: models.Preprocessing, device: Any) -> Any:
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    images = decode_jpeg(raw, mode=ImageReadMode.RGB, device=device, apply_exif_orientation=True)
    return torch.stack([preprocessing.apply(image) for image in images])


def _loader_batches(
    paths: Sequence[Path],
    subset: Sequence[int] | None,
    loaded: models.LoadedModel,
    extractor: Any,
    target: Any,
    *,
    batch_size: int,
    pool: Callable[[Any], Any],
    precision: str,
    workers: int,
    channels_last: bool,
    gpu_decode: str,
    on_device: bool = False,
) -> Iterator[tuple[list[int], dict[str, Any], list[str], np.ndarray]]:
    """``(indices, {layer: float32 tensor}, digests, ok)`` of ``paths[subset]`` in batches.

    The one loading loop of the package: a DataLoader over the files, JPEG decoding on the
    GPU when it can (``gpu_decode``), the batch on ``target`` (channels-last if asked), one
    :func:`forward`.
    """
    import torch
    from torch.utils.data import DataLoader

    jpegs = all(Path(p).suffix.lower() in (".jpg", ".jpeg") for p in paths)
    on_gpu = target.type == "cuda" and (gpu_decode == "on" or (gpu_decode == "auto" and jpegs))
    dataset = ImageDataset(paths, loaded.preprocessing, decode_on_device=on_gpu)
    loader = DataLoader(
        dataset if subset is None else torch.utils.data.Subset(dataset, list(subset)),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=_collate,
        pin_memory=target.type == "cuda",
        worker_init_fn=_worker_init if workers else None,
        persistent_workers=False,
    )
    for indices, batch, digests, ok in loader:
        if on_gpu:
            batch = _decode_on_gpu(batch, loaded.preprocessing, target)
        batch = batch.to(target, non_blocking=True)
        if channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        outputs = forward(extractor, batch, pool, precision, on_device=on_device)
        yield indices, outputs, digests, ok


def embedded_batches(
    paths: Sequence[Path],
    loaded: models.LoadedModel,
    extractor: Any,
    target: Any,
    *,
    batch_size: int,
    pool: Callable[[Any], Any] = _no_pool,
    precision: str = "fp32",
    workers: int = 0,
    channels_last: bool = True,
    gpu_decode: str = "auto",
    on_device: bool = False,
) -> Iterator[tuple[list[int], dict[str, Any], np.ndarray]]:
    """Activations of ``paths`` in consecutive batches, for consumers that do not store them.

    ``extractor`` must already be on ``target`` (in channels-last format if
    ``channels_last``). Yields ``(indices, {layer: float32 tensor}, ok)``: ``ok`` is False
    where an image could not be read (its rows hold a blank image's activations). Tensors
    are on the CPU, or on ``target`` with ``on_device=True``.
    """
    if batch_size < 1:
        raise UsageError(f"batch size must be at least 1, got {batch_size}")
    batches = _loader_batches(
        paths,
        None,
        loaded,
        extractor,
        target,
        batch_size=batch_size,
        pool=pool,
        precision=precision,
        workers=workers,
        channels_last=channels_last,
        gpu_decode=gpu_decode,
        on_device=on_device,
    )
    for indices, outputs, _, ok in batches:
        yield indices, outputs, ok


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
    model, weights, seed, resize, crop
        See :func:`figureground.features.models.load_model`.
    layers : sequence of str
        Graph node or module names (``figureground layers MODEL`` lists them).
    pool : str
        ``none`` (full activation), ``avg`` (global average) or ``avgK`` (K x K average).
    dtype : str
        Stored dtype, ``float32`` or ``float16``.
    batch_size : int
        Images per forward pass and per chunk along ``image``.
    device : str
        ``auto`` (cuda, mps, cpu), ``cpu``, ``cuda`` or ``mps``.
    workers : int
        DataLoader worker processes decoding images (0: in this process).
    precision : str
        ``fp32``, or ``bf16``/``fp16`` autocast.
    channels_last : bool
        Run convolutions in channels-last memory format.
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

    if dtype not in DTYPES:
        raise UsageError(f"unknown dtype {dtype!r}; expected float32 or float16")
    if batch_size < 1:
        raise UsageError(f"batch size must be at least 1, got {batch_size}")
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}; expected fp32, bf16 or fp16")
    pool_fn = pooling(pool)
    parse_scheduler(scheduler)
    target = torch.device(resolve_device(device))
    feature_source = sources.open_source(source)
    loaded = models.load_model(model, weights, seed=seed, resize=resize, crop=crop)
    extractor = build_extractor(loaded, layers)
    shapes = _probe_shapes(extractor, loaded, pool_fn, layers)
    settings = RunSettings(tuple(layers), pool, dtype, precision)
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
    out = Path(out)
    if out.exists():
        found = store.read_root_attrs(out).get("params_hash")
        if found != fingerprint:
            raise UsageError(
                f"feature store {out} was made from other inputs or parameters "
                f"(params_hash {found} != {fingerprint}); choose another --out "
                "or delete it"
            )
        removed = store.remove_partial_files(out)
        log.info("resuming %s%s", out, f" ({removed} partial files removed)" if removed else "")
        for variant in feature_source.variants:  # damaged chunks become pending again
            store.GroupWriter(out, variant, layers).verify_done()
    else:
        attrs = provenance.stamp(
            **fields, params_hash=fingerprint, skipped_failed_images=list(feature_source.failed)
        )
        store.create_store(
            out,
            feature_source.variants,
            feature_source.image_ids,
            feature_source.concepts,
            shapes,
            dtype,
            batch_size,
            attrs,
        )
    if parse_scheduler(scheduler).distributed:
        from figureground.scale.tasks import ExtractorSpec, extract_pending

        spec = ExtractorSpec(
            model, weights, seed, resize, crop, tuple(layers), pool, precision,
            channels_last, device,
        )  # fmt: skip
        log.info("stored %d images", extract_pending(out, feature_source, spec, scheduler))
        return out
    if channels_last:
        extractor = extractor.to(memory_format=torch.channels_last)
    extractor = extractor.to(target)
    with _BackgroundWriter() as background:
        _extract_variants(
            feature_source, out, layers, loaded, extractor, target, pool_fn, precision,
            workers, channels_last, gpu_decode, background,
        )  # fmt: skip
    return out


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


def _extract_variants(
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
    background: _BackgroundWriter,
) -> None:
    """The serial extraction loop over variants and pending chunks."""
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
        batches = _loader_batches(
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
