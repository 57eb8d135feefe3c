"""Background removal: ISNet run by PyTorch in batches (``isnet-torch``) against rembg's
onnxruntime session (``isnet``), the same file and the same images, in the same run.

On the CPU both run in float32 (torch) / float16 weights (onnxruntime) on 2 threads, one image
at a time for rembg and one batch for torch; the figure is images/s and their ratio, and the
masks' mean absolute difference. With CUDA, isnet-torch is also timed in bf16 in batches of
``BENCH_SEGMENT_BATCH`` (default 32) over ``BENCH_SEGMENT_GPU_N`` images (default 512),
preparation and restoration on CPU threads, against the target of 100 images/s at 1024 x 1024.
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch

from _common import report

N_CPU = int(os.environ.get("BENCH_SEGMENT_N", "4"))
N_GPU = int(os.environ.get("BENCH_SEGMENT_GPU_N", "512"))
GPU_BATCH = int(os.environ.get("BENCH_SEGMENT_BATCH", "32"))
TARGET_GPU_RATE = 100.0


def photos(n: int) -> list[np.ndarray]:
    """``n`` different 640 x 480 crops of scikit-image photos (THINGS images are about this)."""
    import cv2
    import skimage.data

    sources = [skimage.data.chelsea(), skimage.data.coffee(), skimage.data.astronaut()]
    out = []
    for i in range(n):
        photo = cv2.resize(sources[i % 3], (800, 600))
        x, y = (37 * i) % 160, (23 * i) % 120
        out.append(np.ascontiguousarray(photo[y : y + 480, x : x + 640]))
    return out


def batched_rate(segmenter, images: list[np.ndarray], batch: int, threads: int) -> tuple:
    """Images/s of prepare (threads) -> infer (batches) -> restore (threads), and the alphas."""
    alphas: list[np.ndarray] = []
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for i in range(0, len(images), batch):
            chunk = images[i : i + batch]
            masks = segmenter.infer(list(pool.map(segmenter.prepare, chunk)))
            shapes = [image.shape[:2] for image in chunk]
            alphas.extend(pool.map(segmenter.restore, masks, shapes))
    if segmenter.device.type == "cuda":
        torch.cuda.synchronize()
    return len(images) / (time.perf_counter() - start), alphas


def main() -> None:
    from figureground.variants import segmenters
    from figureground.variants.segmenters import TorchIsnetSegmenter

    torch.set_num_threads(2)
    images = photos(N_CPU)
    rembg = segmenters.build_segmenter(segmenters.resolve_segmenter("isnet"))
    rembg(images[0], "warm-up")
    start = time.perf_counter()
    reference = [rembg(image, str(i)) for i, image in enumerate(images)]
    rembg_rate = len(images) / (time.perf_counter() - start)

    cpu = TorchIsnetSegmenter(segmenters.resolve_segmenter("isnet-torch:fp32"), device="cpu")
    cpu(images[0], "warm-up")
    torch_rate, alphas = batched_rate(cpu, images, len(images), 2)
    difference = float(
        np.mean([np.abs(a - r).mean() for a, r in zip(alphas, reference, strict=True)])
    )
    figures = {
        "cpu_images": len(images),
        "rembg_onnxruntime_images_per_s": round(rembg_rate, 3),
        "isnet_torch_fp32_cpu_images_per_s": round(torch_rate, 3),
        "ratio_torch_to_rembg_cpu": round(torch_rate / rembg_rate, 2),
        "mean_abs_alpha_difference": round(difference, 5),
    }
    summary = (
        f"CPU {torch_rate:.2f} images/s (isnet-torch fp32, one batch) vs rembg "
        f"{rembg_rate:.2f} images/s = {torch_rate / rembg_rate:.2f}x; masks differ by "
        f"{difference * 255:.2f}/255 on average"
    )
    if torch.cuda.is_available():
        gpu = TorchIsnetSegmenter(segmenters.resolve_segmenter("isnet-torch:bf16"), device="cuda")
        many = photos(N_GPU)
        batched_rate(gpu, many[: 2 * GPU_BATCH], GPU_BATCH, os.cpu_count() or 1)  # warm-up
        gpu_rate, gpu_alphas = batched_rate(gpu, many, GPU_BATCH, os.cpu_count() or 1)
        bf16_difference = float(
            np.mean(
                [
                    np.abs(a - r).mean()
                    for a, r in zip(gpu_alphas[: len(reference)], reference, strict=True)
                ]
            )
        )
        figures.update(
            gpu=torch.cuda.get_device_name(0),
            gpu_images=len(many),
            gpu_batch=GPU_BATCH,
            isnet_torch_bf16_gpu_images_per_s=round(gpu_rate, 1),
            ratio_to_target_100=round(gpu_rate / TARGET_GPU_RATE, 2),
            bf16_mean_abs_alpha_difference=round(bf16_difference, 5),
        )
        summary += (
            f"; {torch.cuda.get_device_name(0)} bf16 batch {GPU_BATCH}: {gpu_rate:.0f} "
            f"images/s = {gpu_rate / TARGET_GPU_RATE:.2f}x the 100 images/s target"
        )
    report("bench_segment", summary, **figures)


if __name__ == "__main__":
    main()
