"""The fused seed method (full ResNet50 layer2 maps, never stored) against extraction alone.

THINGS size is 22,248 images x 3 conditions (original, no_background, no_foreground). Both
sides run the same untrained ResNet50 pruned after ``layer2`` (512 x 28 x 28), fp32,
channels-last, the same batch size and decoding, on the same synthetic 500 x 375 images
(JPEG originals, PNG variants, as the variants stage writes them):

- ``extract``: the images embedded batch by batch, the maps dropped (the floor any consumer
  of full maps pays);
- ``fused``: :func:`figureground.analysis.seed_fused.fused_seed_distances` for one
  participant whose responses (271 sensors x 281 samples per image) are a lazy Zarr-backed
  array, read one batch of rows at a time.

Targets: fused time <= 1.3 x extraction alone; fused peak RSS < 4 GB. Each side runs in its
own child process, so its peak RSS is its own. ``--fraction`` times that share of the
images (default: 1.0, the full size, where CUDA is present; 0.02 otherwise, 1,335 images
per side: on an idle 2-core CPU ResNet50 layer2 runs at most about 20 images/s, about a
minute per side, several when the cores are shared). Full-size times are extrapolated
linearly (both sides are a fixed cost plus a per-image cost; the fixed part, a few seconds
of start-up, is not subtracted). CPU seconds are reported beside wall seconds: on shared
cores the CPU-time ratio is the steadier figure.

Usage: python bench/bench_seed_fused.py [--fraction 0.02] [--device cpu] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import peak_rss_mb, report

THINGS_IMAGES, N_CH, N_T = 22_248, 271, 281
CONDITIONS = ("original", "no_background", "no_foreground")
LAYER = "layer2"
NET = {"model": "resnet50", "weights": "none", "seed": 0}


def generate(folder: Path, n_images: int) -> None:
    """A variants folder of ``n_images`` smooth 500 x 375 photos and a Zarr MEG file."""
    import numpy as np
    from PIL import Image

    from figureground.features import store

    rng = np.random.default_rng(0)
    stimuli, variants = folder / "stimuli", folder / "variants"
    rows, ids = [], []
    for i in range(n_images):
        concept = f"c{i // 12:04d}"
        rel = f"object_images/{concept}/{concept}_{i % 12 + 1:02d}b.jpg"
        coarse = rng.integers(0, 256, size=(19, 25, 3), dtype=np.uint8)
        photo = Image.fromarray(coarse).resize((500, 375), Image.BICUBIC)
        (stimuli / rel).parent.mkdir(parents=True, exist_ok=True)
        photo.save(stimuli / rel, quality=90)
        for variant in CONDITIONS[1:]:
            target = variants / variant / rel.replace(".jpg", ".png")
            target.parent.mkdir(parents=True, exist_ok=True)
            photo.save(target)
        ids.append(Path(rel).stem)
        rows.append(f"{ids[-1]},{concept},{i % 12 + 1},{rel},ok,")
    (variants / "variants.csv").write_text(
        "image_id,concept,exemplar,path,status,error\n" + "\n".join(rows) + "\n"
    )
    (variants / "variants.json").write_text(json.dumps({"source_root": str(stimuli)}))
    meg_path = folder / "meg.zarr"
    with store.quiet_zarr(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr: text ids have no v3 specification yet
        _write_meg(meg_path, ids, rng)


def _write_meg(meg_path: Path, ids: list[str], rng: Any) -> None:
    """Random responses (image, channel, time) in Zarr, written 512 images at a time."""
    import numpy as np
    import xarray as xr

    for start in range(0, len(ids), 512):  # written in blocks: never the whole array at once
        part = ids[start : start + 512]
        data = rng.normal(size=(len(part), N_CH, N_T)).astype(np.float32)
        block = xr.DataArray(
            data,
            dims=("image", "channel", "time"),
            coords={"image": part, "time": np.arange(N_T) / 200},
        )
        block = block.to_dataset(name="meg").chunk({"image": 64})
        if start == 0:
            block.to_zarr(meg_path, mode="w", zarr_format=3)
        else:
            block.to_zarr(meg_path, append_dim="image", zarr_format=3)


def measure(folder: Path, mode: str, device: str, batch_size: int) -> dict:
    """Run one side in this process; return its time, images and peak RSS."""
    import xarray as xr

    from figureground import logs
    from figureground.features import embed, models, sources, store

    logs.setup(quiet=True)
    source = sources.open_source(folder / "variants")
    n = len(source.image_ids) * len(CONDITIONS)
    cpu_start, start = _cpu_seconds(), time.perf_counter()
    if mode == "extract":
        import torch

        target = embed.resolve_device(device)
        loaded = models.load_model(**NET)
        extractor = embed.build_extractor(loaded, [LAYER])
        extractor = extractor.to(memory_format=torch.channels_last).to(target)
        for condition in CONDITIONS:
            for _, outputs, _ in embed.embedded_batches(
                source.paths[condition], loaded, extractor, target, batch_size=batch_size
            ):
                del outputs
        if target.type == "cuda":
            torch.cuda.synchronize()
    else:
        from figureground.analysis.seed_fused import fused_seed_distances

        with store.quiet_zarr():
            meg = xr.open_zarr(folder / "meg.zarr", zarr_format=3)["meg"]
        table = fused_seed_distances(
            {"P1": meg}, source, layers=(LAYER,), batch_size=batch_size, device=device, **NET
        )
        assert len(table) == n and table["distance"].notna().all()
    return {
        "seconds": time.perf_counter() - start,
        "cpu_seconds": _cpu_seconds() - cpu_start,
        "images": n,
        "peak_rss_mb": peak_rss_mb(),
    }


def _cpu_seconds() -> float:
    """User + system CPU time of this process (all its threads) so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _child(folder: Path, mode: str, device: str, batch_size: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--measure", mode, str(folder), "--device", device,
         "--batch-size", str(batch_size)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--fraction", type=float, default=None, help="share of 22,248 images (1 on CUDA, else 0.02)"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--keep", type=Path, default=None, help="folder to write/reuse data in")
    parser.add_argument("--measure", nargs=2, metavar=("MODE", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        mode, folder = args.measure
        print(json.dumps(measure(Path(folder), mode, args.device, args.batch_size)))
        return
    if args.fraction is None:
        import torch

        args.fraction = 1.0 if torch.cuda.is_available() else 0.02
    if not 0 < args.fraction <= 1:
        parser.error(f"--fraction must be in (0, 1], got {args.fraction}")
    n_images = max(1, round(THINGS_IMAGES * args.fraction))
    with tempfile.TemporaryDirectory(prefix="bench_seed_fused_") as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / "meg.zarr").exists():
            generate(folder, n_images)
        results = {m: _child(folder, m, args.device, args.batch_size) for m in ("extract", "fused")}
    extract_s, fused_s = results["extract"]["seconds"], results["fused"]["seconds"]
    ratio = fused_s / extract_s
    cpu_ratio = results["fused"]["cpu_seconds"] / results["extract"]["cpu_seconds"]
    scale = THINGS_IMAGES / n_images
    figures = {
        "fraction": args.fraction,
        "images_per_condition": n_images,
        "images_timed": results["fused"]["images"],
        "device": args.device,
        "batch_size": args.batch_size,
        "extract_s": round(extract_s, 1),
        "fused_s": round(fused_s, 1),
        "time_ratio_fused_vs_extract": round(ratio, 3),
        "extract_cpu_s": round(results["extract"]["cpu_seconds"], 1),
        "fused_cpu_s": round(results["fused"]["cpu_seconds"], 1),
        "cpu_time_ratio_fused_vs_extract": round(cpu_ratio, 3),
        "fused_images_per_s": round(results["fused"]["images"] / fused_s, 1),
        "extract_images_per_s": round(results["extract"]["images"] / extract_s, 1),
        "extrapolated_full_extract_h": round(extract_s * scale / 3600, 2),
        "extrapolated_full_fused_h": round(fused_s * scale / 3600, 2),
        "extract_peak_rss_mb": round(results["extract"]["peak_rss_mb"]),
        "fused_peak_rss_mb": round(results["fused"]["peak_rss_mb"]),
        "targets": {"time_ratio_max": 1.3, "peak_rss_mb_max": 4096},
    }
    summary = (
        f"{n_images} x 3 images ({args.fraction:g} of THINGS), {args.device}: fused "
        f"{fused_s:.0f} s vs extraction alone {extract_s:.0f} s (ratio {ratio:.2f}, CPU-time "
        f"ratio {cpu_ratio:.2f}, target "
        f"<= 1.3); peak RSS fused {figures['fused_peak_rss_mb']} MB vs extraction "
        f"{figures['extract_peak_rss_mb']} MB (target < 4096); full size extrapolated "
        f"{figures['extrapolated_full_fused_h']} h fused"
    )
    report("seed_fused", summary, **figures)


if __name__ == "__main__":
    main()
