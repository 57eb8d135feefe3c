"""The fused seed method (distances while embedding) against the stored path and OpenCV."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from PIL import Image

from figureground.analysis import seed_fused
from figureground.analysis.seed import seed_analysis, seed_distance
from figureground.analysis.seed_fused import (
    fused_seed_distances,
    lanczos_matrices,
    prepare_responses,
    seed_batch_distances,
)
from figureground.errors import DataError, UsageError

NET = {"model": "resnet18", "weights": "none", "seed": 3, "resize": 64, "crop": 64}
LAYERS = ("layer1", "layer2")
CONCEPTS = ("cat", "dog", "fern")


def _variants_folder(root: Path, n_per_concept: int = 4) -> Path:
    """12 random photos (JPEG) with PNG variants; one no_foreground file is corrupt."""
    rng = np.random.default_rng(11)
    stimuli, out = root / "stimuli", root / "variants"
    rows = []
    for concept in CONCEPTS:
        for k in range(n_per_concept):
            rel = f"object_images/{concept}/{concept}_{k + 1:02d}b.jpg"
            (stimuli / rel).parent.mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 256, size=(60, 80, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(stimuli / rel, quality=92)
            for variant in ("no_background", "no_foreground"):
                target = out / variant / rel.replace(".jpg", ".png")
                target.parent.mkdir(parents=True, exist_ok=True)
                shade = pixels // 2 + (127 if variant == "no_background" else 0)
                Image.fromarray(shade.astype(np.uint8)).save(target)
            rows.append(f"{concept}_{k + 1:02d}b,{concept},{k + 1},{rel},ok,")
    (out / "no_foreground/object_images/dog/dog_02b.png").write_bytes(b"not a png")
    (out / "variants.csv").write_text(
        "image_id,concept,exemplar,path,status,error\n" + "\n".join(rows) + "\n"
    )
    (out / "variants.json").write_text(json.dumps({"source_root": str(stimuli), "params": {}}))
    return out


def _meg(ids: list[str], seed: int, sensors: int = 20, times: int = 30) -> xr.DataArray:
    rng = np.random.default_rng(seed)
    data = rng.normal(size=(len(ids), sensors, times)).astype(np.float32)
    data += np.sin(np.linspace(0, 3, times, dtype=np.float32))  # a shared "evoked" part
    return xr.DataArray(
        data,
        dims=("image", "channel", "time"),
        coords={
            "image": ids,
            "concept": ("image", [i.rsplit("_", 1)[0] for i in ids]),
            "channel": [f"MEG{c:03d}" for c in range(sensors)],
            "time": np.linspace(-0.1, 0.5, times),
        },
    )


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A variants folder, its feature store (full maps) and two participants' MEG."""
    from figureground.features.extract import extract_features

    root = tmp_path_factory.mktemp("seed_fused")
    source = _variants_folder(root)
    ids = [f"{c}_{k:02d}b" for c in CONCEPTS for k in range(1, 5)]
    order = list(np.random.default_rng(0).permutation(ids))
    meg = {
        # P1: 11 of the 12 images (shuffled) and one image the source does not have
        "P1": _meg([*order[:11], "moth_01b"], seed=1),
        "P2": _meg(list(reversed(ids)), seed=2),
    }
    store = extract_features(
        source, root / "f.zarr", layers=LAYERS, batch_size=5, device="cpu", **NET
    )
    return {"source": source, "store": store, "meg": meg}


def _stored_table(study: dict, **options) -> pd.DataFrame:
    """The stored path, layer by layer (as analysis/study/seed_results.py calls it)."""
    from figureground.features.store import open_features

    groups = {c: open_features(study["store"], c) for c in seed_fused.CONDITIONS}
    tables = [
        seed_analysis(
            study["meg"], groups, layer=layer, model="resnet18", weights="none", **options
        )
        for layer in LAYERS
    ]
    return pd.concat(tables, ignore_index=True)


def _assert_same(fused: pd.DataFrame, stored: pd.DataFrame) -> None:
    assert list(fused.columns) == list(stored.columns)
    pd.testing.assert_frame_equal(fused.drop(columns="distance"), stored.drop(columns="distance"))
    np.testing.assert_allclose(fused["distance"], stored["distance"], rtol=1e-6)


@pytest.mark.parametrize(
    "options",
    [{}, {"response": "concept", "tmin": 0.0, "tmax": 0.3, "zscore": True}],
    ids=["faithful", "concept-window-zscore"],
)
def test_fused_equals_stored_serial(study: dict, options: dict) -> None:
    stored = _stored_table(study, **options)
    fused = fused_seed_distances(
        study["meg"], study["source"], layers=LAYERS, batch_size=4, device="cpu", **NET, **options
    )
    _assert_same(fused, stored)
    # 3 conditions x (11 + 12 images) per layer, less the corrupt no_foreground image twice
    assert len(fused) == len(LAYERS) * (3 * 23 - 2)
    dropped = fused.query("condition == 'no_foreground'")["image_id"]
    assert "dog_02b" not in set(dropped) and "moth_01b" not in set(fused["image_id"])
    assert fused["distance"].gt(0).all() and fused["distance"].nunique() == len(fused)


def test_fused_equals_stored_on_dask(study: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    distributed = pytest.importorskip("distributed")
    monkeypatch.setattr(seed_fused, "_DASK_WAVE", 4)  # several waves of tasks
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        fused = fused_seed_distances(
            study["meg"], study["source"], layers=LAYERS, batch_size=5, scheduler=client, **NET
        )
    _assert_same(fused, _stored_table(study))


def test_batch_function_matches_seed_distance_at_real_shapes() -> None:
    import torch

    rng = np.random.default_rng(4)
    meg = rng.normal(size=(3, 271, 281)).astype(np.float32)
    maps = (rng.normal(size=(3, 512, 28, 28)) + 0.5).astype(np.float32)
    stored = seed_distance(meg, maps)
    np.testing.assert_allclose(seed_batch_distances(torch.from_numpy(maps), meg), stored, rtol=1e-6)
    np.testing.assert_allclose(
        seed_batch_distances(maps, meg, zscore=True),
        seed_distance(meg, maps, zscore=True),
        rtol=1e-6,
    )
    pooled = maps.mean(axis=(2, 3))  # (images, channels): one position
    np.testing.assert_allclose(
        seed_batch_distances(pooled, meg), seed_distance(meg, pooled, batched=True), rtol=1e-6
    )


def test_lanczos_matrices_reproduce_opencv() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(17, 23)).astype(np.float32)
    for channels, positions in ((40, 49), (8, 5), (64, 1)):
        rows, cols = lanczos_matrices(17, 23, channels, positions)
        expected = cv2.resize(x, (positions, channels), interpolation=cv2.INTER_LANCZOS4)
        np.testing.assert_allclose(rows @ x @ cols, expected, rtol=1e-5, atol=1e-6)


def test_concept_responses_are_held_per_concept(study: dict) -> None:
    meg = study["meg"]["P2"]
    concept = prepare_responses(meg, "P2", response="concept", tmin=0.0)
    assert concept.data.dims[0] == "concept" and concept.data.shape[0] == len(CONCEPTS)
    rows = concept.rows(["dog_03b", "cat_01b"])
    in_window = meg["time"].values >= 0.0
    expected = meg.values[[i.startswith("dog") for i in meg["image"].values]].mean(axis=0)
    np.testing.assert_allclose(rows[0], expected[:, in_window], rtol=1e-5, atol=1e-6)


def test_bad_inputs_give_one_line_errors(study: dict) -> None:
    with pytest.raises(DataError, match=r"'cat_01b'.*not in participant P1's MEG") as missing:
        fused_seed_distances(
            {"P1": study["meg"]["P1"].drop_sel(image="cat_01b")},
            study["source"],
            image_ids=["cat_01b", "cat_02b"],
            **NET,
        )
    assert "\n" not in str(missing.value)
    with pytest.raises(DataError, match="not among the 12 images of the source"):
        fused_seed_distances(study["meg"], study["source"], image_ids=["moth_01b"], **NET)
    with pytest.raises(DataError, match="no image id is in both"):
        fused_seed_distances({"P3": _meg(["x_01a"], seed=3)}, study["source"], **NET)
    with pytest.raises(UsageError, match="condition"):
        fused_seed_distances(study["meg"], study["source"], conditions=["mask"], **NET)
    with pytest.raises(DataError, match=r"\['nope'\]"):
        prepare_responses(study["meg"]["P2"], "P2").rows(["cat_01b", "nope"])
    with pytest.raises(UsageError, match="one per embedding"):
        seed_batch_distances(np.zeros((2, 4, 3, 3), np.float32), np.zeros((3, 5, 6), np.float32))


@pytest.mark.gpu
def test_fused_on_cuda_equals_stored_on_cuda(study: dict, tmp_path: Path) -> None:
    from figureground.features.extract import extract_features
    from figureground.features.store import open_features

    store = extract_features(
        study["source"], tmp_path / "g.zarr", layers=LAYERS, batch_size=4, device="cuda", **NET
    )
    groups = {c: open_features(store, c) for c in seed_fused.CONDITIONS}
    stored = pd.concat(
        [seed_analysis(study["meg"], groups, layer=layer, model="resnet18", weights="none")
         for layer in LAYERS],
        ignore_index=True,
    )  # fmt: skip
    fused = fused_seed_distances(
        study["meg"], study["source"], layers=LAYERS, batch_size=4, device="cuda", **NET
    )
    pd.testing.assert_frame_equal(fused.drop(columns="distance"), stored.drop(columns="distance"))
    # the same GPU convolutions on both paths; cuDNN may pick other kernels between runs
    np.testing.assert_allclose(fused["distance"], stored["distance"], rtol=1e-5)


def test_study_fused_mode_equals_stored(tmp_path: Path) -> None:
    """``analyses.seed_method.mode: fused`` in a run gives the stored mode's seed_distance.csv."""
    from figureground.config import parse_study
    from figureground.pipeline import run_study
    from figureground.reliability.harness import tiny_study

    study = tiny_study()
    run_study(parse_study(study, tmp_path))
    results = tmp_path / "run" / "results"
    stored = pd.read_csv(results / "seed_distance.csv")
    method = study["analyses"]["seed_method"]
    study["analyses"]["seed_method"] = {**method, "mode": "fused", "batch_size": 4}
    state = run_study(parse_study(study, tmp_path))
    assert "features-resnet18__none" in state.skipped and "analyses" not in state.skipped
    fused = pd.read_csv(results / "seed_distance.csv")
    assert len(fused) == len(stored) > 0
    keys = [c for c in stored.columns if c != "distance"]
    pd.testing.assert_frame_equal(fused[keys], stored[keys])
    np.testing.assert_allclose(fused["distance"], stored["distance"], rtol=1e-5)
    summary = json.loads((results / "summary.json").read_text())
    assert summary["seed_distance"]["options"]["mode"] == "fused"
