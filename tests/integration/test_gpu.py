"""GPU paths (features with GPU JPEG decoding and bf16, RSA on torch): run only with CUDA.

Skipped with a visible reason on machines without a GPU (see tests/conftest.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.gpu


def _jpegs(folder: Path, n: int = 6) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    for i in range(n):
        pixels = rng.integers(0, 256, size=(90, 120, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"thing_{i:02d}a.jpg", quality=95)
    return folder


def test_features_on_gpu_match_cpu(tmp_path: Path) -> None:
    from figureground.features.extract import extract_features
    from figureground.features.store import open_features

    images = _jpegs(tmp_path / "imgs")
    common = {
        "model": "resnet18",
        "weights": "none",
        "seed": 5,
        "layers": ("layer2",),
        "batch_size": 4,
    }
    cpu = extract_features(images, tmp_path / "cpu.zarr", device="cpu", **common)
    gpu = extract_features(images, tmp_path / "gpu.zarr", device="cuda", precision="bf16", **common)
    a = open_features(cpu)["layer2"].values
    b = open_features(gpu)["layer2"].values
    # GPU JPEG decoding and bf16 autocast: a few percent in relative L2 (docs/features.md).
    assert np.linalg.norm(a - b) / np.linalg.norm(a) < 0.08
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.99
