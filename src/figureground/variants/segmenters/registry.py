"""The segmenter registry: spec strings to :class:`SegmenterKind` entries, resolve and build."""

from __future__ import annotations

from pathlib import Path

from figureground.errors import UsageError
from figureground.variants.segmenters.base import Segmenter, SegmenterKind, SegmenterSpec
from figureground.variants.segmenters.given import MaskDirSegmenter, resolve_masks
from figureground.variants.segmenters.grabcut import GrabCutSegmenter, resolve_grabcut
from figureground.variants.segmenters.rembg_isnet import (
    RembgSegmenter,
    resolve_isnet,
    resolve_rembg,
    resolve_u2net,
)
from figureground.variants.segmenters.torch_onnx import TorchIsnetSegmenter, resolve_isnet_torch

SEGMENTERS: dict[str, SegmenterKind] = {
    "isnet": SegmenterKind(
        resolve_isnet, RembgSegmenter, "DIS general-use network via rembg (fetch-models isnet)"
    ),
    "isnet-torch": SegmenterKind(
        resolve_isnet_torch,
        TorchIsnetSegmenter,
        "ISNet run by PyTorch in batches on a GPU (isnet-torch[:bf16|fp16|fp32])",
        batched=True,
    ),
    "u2net": SegmenterKind(resolve_u2net, RembgSegmenter, "rembg's U^2-Net"),
    "rembg": SegmenterKind(resolve_rembg, RembgSegmenter, "rembg:<model>, any local rembg model"),
    "grabcut": SegmenterKind(
        resolve_grabcut,
        lambda spec: GrabCutSegmenter(),
        "OpenCV GrabCut from a centred rectangle (no weights)",
    ),
    "masks": SegmenterKind(
        resolve_masks,
        lambda spec: MaskDirSegmenter(Path(spec.mask_dir)),
        "masks:<dir>, precomputed <image_id>.png masks",
    ),
}


def resolve_segmenter(spec: str) -> SegmenterSpec:
    """Resolve a spec string (``isnet``, ``rembg:u2netp``, ``masks:<dir>``...).

    Raises
    ------
    UsageError
        Unknown kind.
    ModelUnavailableError
        The model file is missing; the message says how to get it.
    """
    kind, _, argument = spec.partition(":")
    if kind not in SEGMENTERS:
        raise UsageError(
            f"unknown segmenter {spec!r}; expected one of "
            f"{', '.join(sorted(SEGMENTERS))} (rembg:<model>, masks:<dir>)"
        )
    return SEGMENTERS[kind].resolve(argument)


def is_batched_kind(spec: SegmenterSpec) -> bool:
    """Whether the segmenter runs batches on a device (one process, loader threads)."""
    return SEGMENTERS[spec.kind].batched


def build_segmenter(spec: SegmenterSpec) -> Segmenter:
    """Create the session of a resolved segmenter (once per worker process)."""
    return SEGMENTERS[spec.kind].build(spec)
