"""Extraction: equality with a direct torchvision forward pass, pruning, seeds, resume."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import torchvision
import xarray as xr
from PIL import Image

from figureground import cli
from figureground.errors import UsageError
from figureground.features import extract, models, store
from figureground.fsutil import sha256_file


def _write_images(folder, n, size=(72, 60), fmt="png"):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(n):
        pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"thing_{i:02d}a.{fmt}")
    return folder


@pytest.fixture()
def resnet18_file(tmp_path):
    torch.manual_seed(7)
    path = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    return path


def _pixels(path):
    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy()).permute(2, 0, 1)


def _reference(weights_path, files, layers):
    """Direct torchvision forward with hooks, on torchvision's own preset transforms."""
    model = torchvision.models.resnet18()
    model.load_state_dict(torch.load(weights_path, weights_only=True))
    model.eval()
    captured = {}
    for name in layers:
        model.get_submodule(name).register_forward_hook(
            lambda mod, inp, out, name=name: captured.__setitem__(name, out)
        )
    preset = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.transforms()
    batch = torch.stack([preset(_pixels(f)) for f in files])
    with torch.no_grad():
        model(batch)
    return captured


def test_activations_equal_direct_forward(tmp_path, resnet18_file):
    source = _write_images(tmp_path / "imgs" / "thing", 3)
    files = sorted(source.iterdir())
    out = extract.extract_features(
        tmp_path / "imgs",
        tmp_path / "f.zarr",
        model="resnet18",
        weights=str(resnet18_file),
        layers=["layer2", "layer1.0.conv1"],
        batch_size=2,
        device="cpu",
    )
    expected = _reference(resnet18_file, files, ["layer2", "layer1.0.conv1"])
    dataset = store.open_features(out, "original")
    assert list(dataset["image"].values) == [f.stem for f in files]
    for layer in ("layer2", "layer1.0.conv1"):
        np.testing.assert_allclose(
            dataset[layer].values, expected[layer].numpy(), rtol=1e-4, atol=1e-4
        )
    attrs = dataset.attrs
    assert attrs["weights_sha256"] == sha256_file(resnet18_file) and attrs["pool"] == "none"
    assert attrs["preprocessing"]["resize"] == 256 and "versions" in attrs
    assert list(dataset["sha256"].values) == [sha256_file(f) for f in files]


def test_pooling_and_float16(tmp_path, resnet18_file):
    source = _write_images(tmp_path / "imgs" / "thing", 2)
    files = sorted(source.iterdir())
    expected = _reference(resnet18_file, files, ["layer3"])["layer3"]
    for pool, reference in (
        ("avg", expected.mean(dim=(2, 3))),
        ("avg2", torch.nn.functional.adaptive_avg_pool2d(expected, 2)),
    ):
        out = extract.extract_features(
            tmp_path / "imgs",
            tmp_path / f"{pool}.zarr",
            model="resnet18",
            weights=str(resnet18_file),
            layers=["layer3"],
            pool=pool,
            dtype="float16",
            device="cpu",
        )
        values = store.open_features(out)["layer3"]
        assert values.dtype == np.float16 and values.shape[1:] == reference.shape[1:]
        np.testing.assert_allclose(
            values.values.astype(np.float32), reference.numpy(), rtol=2e-3, atol=2e-3
        )
    with pytest.raises(UsageError, match="avgK"):
        extract.pooling("max")


def test_graph_is_pruned_after_deepest_layer():
    loaded = models.load_model("resnet50", "none")
    extractor = extract.build_extractor(loaded, ["layer1", "layer2"])
    names = {node.name for node in extractor.graph.nodes} | {
        name for name, _ in extractor.named_modules()
    }
    assert not any(n.startswith(("layer3", "layer4", "fc", "avgpool")) for n in names)
    shapes = extract._probe_shapes(extractor, loaded, extract.pooling("none"), ["layer2"])
    assert shapes == {"layer2": (512, 28, 28)}


def test_untrained_seed_reproducible(tmp_path):
    _write_images(tmp_path / "imgs" / "thing", 2, size=(40, 40))
    common = dict(
        model="resnet18",
        weights="none",
        layers=["layer1"],
        pool="avg",
        device="cpu",
        resize=64,
        crop=64,
    )
    a = extract.extract_features(tmp_path / "imgs", tmp_path / "a.zarr", seed=1, **common)
    b = extract.extract_features(tmp_path / "imgs", tmp_path / "b.zarr", seed=1, **common)
    c = extract.extract_features(tmp_path / "imgs", tmp_path / "c.zarr", seed=2, **common)
    va, vb, vc = (store.open_features(p)["layer1"].values for p in (a, b, c))
    np.testing.assert_array_equal(va, vb)
    assert not np.allclose(va, vc)
    assert store.open_features(a).attrs["seed"] == 1
    with pytest.raises(UsageError, match="other inputs or parameters"):
        extract.extract_features(tmp_path / "imgs", a, seed=2, **common)


def test_bf16_autocast_close_to_fp32_on_cpu():
    loaded = models.load_model("resnet18", "none", seed=0)
    extractor = extract.build_extractor(loaded, ["layer2"])
    batch = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    pool = extract.pooling("none")
    full = extract.forward(extractor, batch, pool, "fp32")["layer2"]
    half = extract.forward(extractor, batch, pool, "bf16")["layer2"]
    relative = float((half - full).norm() / full.norm())
    assert 0 < relative < 0.05, relative


def _variants_folder(tmp_path):
    originals = _write_images(tmp_path / "stimuli" / "object_images" / "thing", 3, fmt="jpg")
    out = tmp_path / "variants"
    rows = []
    for i, path in enumerate(sorted(originals.iterdir())):
        rel = path.relative_to(tmp_path / "stimuli").as_posix()
        status = "failed" if i == 1 else "ok"
        rows.append(f"{path.stem},thing,{i + 1},{rel},{status},{'' if status == 'ok' else 'x'}")
        if status == "ok":
            for variant in ("no_background", "no_foreground", "mask"):
                target = out / variant / rel.replace(".jpg", ".png")
                target.parent.mkdir(parents=True, exist_ok=True)
                shade = 255 if variant == "no_background" else 30 * i
                Image.new("RGB", (50, 40), (shade, 100, 50)).save(target)
    (out / "variants.csv").write_text(
        "image_id,concept,exemplar,path,status,error\n" + "\n".join(rows) + "\n"
    )
    (out / "variants.json").write_text(
        json.dumps({"source_root": str(tmp_path / "stimuli"), "params": {}, "provenance": {}})
    )
    return out


def test_variants_folder_skips_failed_rows(tmp_path, capsys):
    source = _variants_folder(tmp_path)
    out = tmp_path / "f.zarr"
    code = cli.main(
        [
            "features",
            str(source),
            "--out",
            str(out),
            "--model",
            "resnet18",
            "--weights",
            "none",
            "--layers",
            "layer1",
            "--pool",
            "avg",
            "--resize",
            "32",
            "--crop",
            "32",
            "--workers",
            "0",
            "-q",
        ]
    )
    assert code == 3
    assert "1 images skipped" in capsys.readouterr().out
    for variant in ("original", "no_background", "no_foreground"):
        dataset = xr.open_zarr(out, group=variant)
        assert list(dataset["image"].values) == ["thing_00a", "thing_02a"]
        assert dataset.attrs["skipped_failed_images"] == ["thing_01a"]
    nobg = store.open_features(out, "no_background")["layer1"].values
    nofg = store.open_features(out, "no_foreground")["layer1"].values
    assert not np.allclose(nobg, nofg)


def _command(source, out):
    return [
        sys.executable,
        "-m",
        "figureground",
        "-q",
        "features",
        str(source),
        "--out",
        str(out),
        "--model",
        "resnet18",
        "--weights",
        "none",
        "--layers",
        "layer1",
        "layer2",
        "--resize",
        "48",
        "--crop",
        "48",
        "--batch-size",
        "1",
        "--workers",
        "0",
    ]


def test_kill_and_resume_equals_uninterrupted(tmp_path):
    source = _write_images(tmp_path / "imgs" / "thing", 16, size=(48, 48))
    killed, whole = tmp_path / "killed.zarr", tmp_path / "whole.zarr"
    proc = subprocess.Popen(_command(source.parent, killed), stderr=subprocess.DEVNULL)
    done_dir = killed / "original" / "done" / "c"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if done_dir.is_dir() and len(list(done_dir.iterdir())) >= 3:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    status = np.asarray(xr.open_zarr(killed, group="original")["done"].values)
    assert 0 < (status == 1).sum() < status.size, "the kill must land mid-run"
    partial = store.open_features(killed, allow_partial=True)
    assert partial.sizes["image"] == (status == 1).sum()
    assert np.isfinite(partial["layer2"].values).all()
    assert subprocess.run(_command(source.parent, killed), check=False).returncode == 0
    assert subprocess.run(_command(source.parent, whole), check=False).returncode == 0
    resumed, uninterrupted = store.open_features(killed), store.open_features(whole)
    for layer in ("layer1", "layer2"):
        np.testing.assert_array_equal(resumed[layer].values, uninterrupted[layer].values)
    for chunk in sorted((whole / "original" / "layer2").rglob("c/*/0/0/0")):
        twin = killed / chunk.relative_to(whole)
        assert twin.read_bytes() == chunk.read_bytes(), chunk
    assert not list(killed.rglob("*.partial"))
