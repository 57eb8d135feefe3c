"""Segmenters: an RGB image in, a soft alpha in [0, 1] at the image's own resolution out.

A segmenter is named by a spec string: ``isnet`` (default), ``isnet-torch`` (batched, GPU),
``u2net``, ``rembg:<model>``, ``grabcut`` or ``masks:<dir>``; :data:`SEGMENTERS` maps each
kind to its entry. Modules:

- :mod:`~figureground.variants.segmenters.base`: :class:`SegmenterSpec`, the
  :class:`Segmenter` protocol and the registry entry :class:`SegmenterKind`.
- :mod:`~figureground.variants.segmenters.rembg_isnet`: rembg sessions (``isnet``, ``u2net``,
  ``rembg:<model>``) and where their model files are.
- :mod:`~figureground.variants.segmenters.torch_onnx`: ISNet's ONNX file run by PyTorch in
  batches (``isnet-torch``).
- :mod:`~figureground.variants.segmenters.grabcut`: OpenCV GrabCut (``grabcut``).
- :mod:`~figureground.variants.segmenters.given`: precomputed masks (``masks:<dir>``).
- :mod:`~figureground.variants.segmenters.registry`: :data:`SEGMENTERS`,
  :func:`resolve_segmenter`, :func:`build_segmenter`, :func:`is_batched_kind`.
"""

from figureground.variants.segmenters.base import Segmenter, SegmenterKind, SegmenterSpec
from figureground.variants.segmenters.given import MaskDirSegmenter, resolve_masks
from figureground.variants.segmenters.grabcut import GrabCutSegmenter, resolve_grabcut
from figureground.variants.segmenters.registry import (
    SEGMENTERS,
    build_segmenter,
    is_batched_kind,
    resolve_segmenter,
)
from figureground.variants.segmenters.rembg_isnet import (
    REMBG_ISNET_MD5,
    RembgSegmenter,
    resolve_isnet,
    resolve_rembg,
    resolve_u2net,
)
from figureground.variants.segmenters.torch_onnx import TorchIsnetSegmenter, resolve_isnet_torch

__all__ = [
    "REMBG_ISNET_MD5",
    "SEGMENTERS",
    "GrabCutSegmenter",
    "MaskDirSegmenter",
    "RembgSegmenter",
    "Segmenter",
    "SegmenterKind",
    "SegmenterSpec",
    "TorchIsnetSegmenter",
    "build_segmenter",
    "is_batched_kind",
    "resolve_grabcut",
    "resolve_isnet",
    "resolve_isnet_torch",
    "resolve_masks",
    "resolve_rembg",
    "resolve_segmenter",
    "resolve_u2net",
]
