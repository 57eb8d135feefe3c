"""Images to activations: pooling, the device, the pruned graph, loading, one forward pass.

The batch-level half of the features stage, shared by the stored extraction
(:mod:`figureground.features.extract`), its Dask tasks
(:mod:`figureground.features.distributed`) and the fused seed method
(:mod:`figureground.analysis.seed_fused`).
"""

import dataclasses
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from figureground import logs
from figureground.errors import FigureGroundError, UsageError
from figureground.features import models, sources
from figureground.fsutil import sha256_bytes

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


def collate(
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


def loader_batches(
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
        collate_fn=collate,
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
    batches = loader_batches(
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


# ---- a network from a picklable spec (Dask workers) ----------------------------------------


@dataclasses.dataclass(frozen=True)
class ExtractorSpec:
    """What a worker needs to rebuild the network that the run's main process built.

    Attributes
    ----------
    model, weights, seed, resize, crop
        See :func:`figureground.features.models.load_model`.
    layers : tuple of str
        Graph node or module names (``figureground layers MODEL`` lists them).
    pool : str
        ``none`` (full activation), ``avg`` (global average) or ``avgK`` (K x K average).
    precision : str
        ``fp32``, or ``bf16``/``fp16`` autocast.
    channels_last : bool
        Run convolutions in channels-last memory format.
    device : str
        ``auto`` (cuda, mps, cpu), ``cpu``, ``cuda`` or ``mps``.
    """

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


def build_from_spec(spec: ExtractorSpec) -> tuple[models.LoadedModel, Any, Any]:
    """(loaded model, extractor on its device, device) of ``spec``, seeded as the run.

    The network a worker of the features stage or of the fused seed method rebuilds once.
    """
    import torch

    torch.manual_seed(spec.seed)
    loaded = models.load_model(
        spec.model, spec.weights, seed=spec.seed, resize=spec.resize, crop=spec.crop
    )
    extractor = build_extractor(loaded, spec.layers)
    if spec.channels_last:
        extractor = extractor.to(memory_format=torch.channels_last)
    device = resolve_device(spec.device)
    return loaded, extractor.to(device), device
