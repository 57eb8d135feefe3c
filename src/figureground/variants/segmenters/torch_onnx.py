"""ISNet in PyTorch: background removal in batches on a GPU (``--segmenter isnet-torch``).

The network is the same file as ``isnet`` (rembg's DIS general-use ONNX), run by
:class:`~figureground.variants.onnx_torch.OnnxTorchGraph`. Pre- and post-processing copy
rembg's ``dis_custom`` session step for step, so on the CPU in float32 the masks match rembg's
(``tests/variants/test_segment_torch.py``):

1. ``prepare`` (CPU, any thread): RGB resized to 1024 x 1024 with Lanczos (PIL), uint8.
2. ``infer`` (the device, one batch): divided by the image's own maximum, minus 0.5; the
   network; its first output min-max scaled per image and truncated to uint8.
3. ``restore`` (CPU, any thread): the 1024 x 1024 mask resized back with Lanczos, / 255.

Precision is part of the segmenter spec (``isnet-torch:bf16``, ``:fp16``, ``:fp32``) and of
every image's rerun key; without it, the process that resolves the spec (the one running
``figureground variants`` / ``run``) picks bf16 when it sees a CUDA GPU and fp32 otherwise,
so name it when that process and the Dask workers differ. The device is chosen where the
segmenter is built (each worker: CUDA when present).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

import numpy as np

from figureground.errors import ImageLoadError, UsageError
from figureground.variants.segmenters.base import SegmenterSpec
from figureground.variants.segmenters.rembg_isnet import resolve_isnet

INPUT_SIDE = 1024
PRECISIONS = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def resolve_isnet_torch(precision: str) -> SegmenterSpec:
    """ISNet's file (as for ``isnet``) and the precision, chosen now if not given."""
    if precision and precision not in PRECISIONS:
        raise UsageError(
            f"isnet-torch precision {precision!r} is unknown; expected one of "
            f"{', '.join(PRECISIONS)} (isnet-torch:bf16)"
        )
    if not precision:
        import torch

        precision = "bf16" if torch.cuda.is_available() else "fp32"
    base = resolve_isnet("")
    return SegmenterSpec(
        **{
            **asdict(base),
            "kind": "isnet-torch",
            "spec": f"isnet-torch:{precision}",
            "precision": precision,
        }
    )


class TorchIsnetSegmenter:
    """A batched segmenter: :meth:`prepare` and :meth:`restore` on CPU threads, :meth:`infer`
    on the device. Calling it segments one image (the :class:`Segmenter` protocol).
    """

    def __init__(self, spec: SegmenterSpec, device: str | None = None) -> None:
        import torch

        from figureground.variants.onnx_torch import OnnxTorchGraph

        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        dtype = getattr(torch, PRECISIONS[spec.precision or "fp32"])
        self.network = OnnxTorchGraph(spec.model_path, dtype).to(self.device).eval()
        self.memory_format = (
            torch.channels_last if self.device.type == "cuda" else torch.contiguous_format
        )
        self.network.to(memory_format=self.memory_format)  # NHWC convolutions on the GPU
        self.precision = spec.precision or "fp32"

    @staticmethod
    def prepare(rgb: np.ndarray) -> np.ndarray:
        """The network's input size (1024, 1024, 3) uint8, resized as rembg does (Lanczos)."""
        from PIL import Image

        image = Image.fromarray(rgb).resize((INPUT_SIDE, INPUT_SIDE), Image.Resampling.LANCZOS)
        return np.asarray(image)

    def infer(self, prepared: Sequence[np.ndarray]) -> np.ndarray:
        """uint8 masks (N, 1024, 1024) of a batch of :meth:`prepare` outputs."""
        import torch

        batch = torch.from_numpy(np.stack(prepared)).to(self.device, non_blocking=True)
        with torch.inference_mode():
            x = batch.permute(0, 3, 1, 2).float().contiguous(memory_format=self.memory_format)
            peak = x.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)
            prediction = self.network(x / peak - 0.5)[:, 0]
            low = prediction.amin(dim=(1, 2), keepdim=True)
            high = prediction.amax(dim=(1, 2), keepdim=True)
            scaled = (prediction - low) / (high - low) * 255.0
            masks = scaled.nan_to_num(0.0).to(torch.uint8)  # truncation, like numpy astype
        return masks.cpu().numpy()

    @staticmethod
    def restore(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """Soft alpha (H, W) float32 in [0, 1] from a 1024 x 1024 uint8 mask."""
        from PIL import Image

        height, width = shape
        resized = Image.fromarray(mask).resize((width, height), Image.Resampling.LANCZOS)
        return np.asarray(resized, dtype=np.float32) / 255.0

    def __call__(self, rgb: np.ndarray, image_id: str) -> np.ndarray:
        """Soft alpha of one image (a batch of one)."""
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ImageLoadError(f"{image_id}: expected an RGB image, got shape {rgb.shape}")
        return self.restore(self.infer([self.prepare(rgb)])[0], rgb.shape[:2])
