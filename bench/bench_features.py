"""End-to-end feature extraction (JPEG files -> Zarr store) against the raw forward pass.

Same model (torchvision ResNet50, *untrained* weights: speed does not depend on the weights),
layer2, fp32, channels_last, same batch size, 2 threads, in the same run. The raw figure is
the forward pass alone on tensors already in memory; the end-to-end figure includes decoding
(1 DataLoader worker), preprocessing, the pruned forward pass, compression and writing, plus
fixed costs (model build, manifest, store creation). Goal on a 2-core CPU: ratio >= 0.85.
With CUDA, the GPU path (decode_jpeg on the GPU, bf16 autocast) is measured too (target
5,000 images/s) together with bf16's relative difference to float32.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch

from _common import best_time, peak_rss_mb, report

# 12 batches; the end-to-end time includes start-up (model build, about 1.3 s here).
N_IMAGES = int(os.environ.get("BENCH_FEATURES_N", "384"))
BATCH = 32
LAYER = "layer2"


def _write_jpegs(folder: Path, n: int) -> None:
    import skimage.data
    from PIL import Image

    photo = skimage.data.chelsea()  # 300 x 451, cropped to small JPEGs like THINGS thumbnails
    out = folder / "photos"
    out.mkdir(parents=True)
    for i in range(n):
        shift = (7 * i) % 150
        crop = np.ascontiguousarray(photo[:, shift : shift + 300])
        Image.fromarray(crop).save(out / f"photo_{i:04d}.jpg", quality=90)


def _raw_rate(source: Path, device: torch.device, precision: str) -> float:
    from figureground.features import extract, models, sources

    loaded = models.load_model("resnet50", "none", seed=0)
    extractor = extract.build_extractor(loaded, [LAYER]).to(device)
    extractor = extractor.to(memory_format=torch.channels_last)
    files = sorted((source / "photos").glob("*.jpg"))[:BATCH]
    images = [loaded.preprocessing(sources.load_rgb(f)) for f in files]  # the same inputs
    batch = torch.stack(images).to(device).contiguous(memory_format=torch.channels_last)
    pool = extract.pooling("none")
    batches = max(1, N_IMAGES // BATCH)

    def run() -> None:
        for _ in range(batches):
            extract.forward(extractor, batch, pool, precision)
        if device.type == "cuda":
            torch.cuda.synchronize()

    extract.forward(extractor, batch[:2], pool, precision)  # warm-up
    return batches * BATCH / best_time(run, repeats=1)


def _end_to_end_rate(source: Path, device: str, precision: str, workers: int) -> float:
    from figureground.features import extract, store

    stored: list[int] = []

    def run() -> None:
        with tempfile.TemporaryDirectory() as out:
            path = extract.extract_features(
                source,
                Path(out) / "f.zarr",
                model="resnet50",
                weights="none",
                layers=[LAYER],
                batch_size=BATCH,
                device=device,
                workers=workers,
                precision=precision,
            )
            stored.append(store.open_features(path).sizes["image"])

    seconds = best_time(run, repeats=1)
    if stored != [N_IMAGES]:  # every image must really go through
        raise RuntimeError(f"stored {stored} images, expected {N_IMAGES}")
    return N_IMAGES / seconds


def _bf16_difference(device: torch.device) -> float:
    from figureground.features import extract, models

    loaded = models.load_model("resnet50", "none", seed=0)
    extractor = extract.build_extractor(loaded, [LAYER]).to(device)
    batch = torch.randn(8, 3, 224, 224, device=device, generator=None)
    pool = extract.pooling("none")
    full = extract.forward(extractor, batch, pool, "fp32")[LAYER]
    half = extract.forward(extractor, batch, pool, "bf16")[LAYER]
    return float((half - full).norm() / full.norm())


def main() -> int:
    """Measure both rates and print their ratio."""
    from figureground import logs

    logs.setup(quiet=True)
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp)
        _write_jpegs(source, N_IMAGES)
        start = time.perf_counter()
        # Alternate the two measurements and keep the best of each, so that load from other
        # processes on the shared cores biases neither figure.
        raws, e2es = [], []
        for _ in range(2):
            raws.append(_raw_rate(source, torch.device("cpu"), "fp32"))
            e2es.append(_end_to_end_rate(source, "cpu", "fp32", workers=1))
        raw, e2e = max(raws), max(e2es)
        ratio = e2e / raw
        figures = {
            "cpu_raw_images_per_s": raw,
            "cpu_end_to_end_images_per_s": e2e,
            "cpu_ratio": ratio,
            "cpu_raw_runs": raws,
            "cpu_end_to_end_runs": e2es,
            "n_images": N_IMAGES,
            "batch": BATCH,
            "bf16_relative_difference_cpu": _bf16_difference(torch.device("cpu")),
            "peak_rss_mb": peak_rss_mb(),
            "peak_rss_children_mb": peak_rss_mb(True),
        }
        summary = (
            f"CPU resnet50 {LAYER} fp32 batch {BATCH}: end-to-end {e2e:.1f} images/s vs "
            f"raw forward {raw:.1f} images/s, ratio {ratio:.2f} (goal >= 0.85)"
        )
        if torch.cuda.is_available():
            gpu = torch.device("cuda")
            gpu_raw = _raw_rate(source, gpu, "bf16")
            gpu_e2e = _end_to_end_rate(source, "cuda", "bf16", workers=4)
            figures.update(
                gpu_raw_bf16_images_per_s=gpu_raw,
                gpu_end_to_end_bf16=gpu_e2e,
                gpu_ratio=gpu_e2e / gpu_raw,
                bf16_relative_difference_gpu=_bf16_difference(gpu),
                gpu_name=torch.cuda.get_device_name(),
            )
            summary += (
                f"; GPU bf16: end-to-end {gpu_e2e:.0f} images/s vs raw {gpu_raw:.0f} (target 5,000)"
            )
        figures["wall_s"] = time.perf_counter() - start
    report("bench_features", summary, **figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
