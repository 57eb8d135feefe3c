"""The demo stimulus set: layout, determinism, idempotent reruns, masks that match images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import skimage.morphology
import skimage.transform
from PIL import Image
from scipy import ndimage

from figureground.cli import main
from figureground.demo_stimuli import DESCRIPTION_FILE, make_demo_stimuli, render
from figureground.errors import UsageError
from figureground.stimuli import build_manifest, load_rgb


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_demo_stimuli(tmp_path_factory.mktemp("demo") / "set", seed=0)


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _recipes(root: Path) -> list[dict]:
    return json.loads((root / DESCRIPTION_FILE).read_text())["images"]


def test_things_layout_manifest(demo_dir: Path) -> None:
    frame = build_manifest(demo_dir)
    assert len(frame) == 24
    assert (frame["status"] == "ok").all()
    assert (frame["set"] == "exp").all()
    assert frame.groupby("concept").size().to_dict() == {
        c: 4 for c in ("ball", "cat", "coffee_cup", "horse", "person", "rocket")
    }
    assert frame["exemplar"].tolist() == [1, 2, 3, 4] * 6
    assert frame["width"].between(300, 640).all() and frame["height"].between(300, 640).all()
    assert all(p.startswith("object_images/") and p.endswith(".jpg") for p in frame["path"])


def test_same_seed_gives_identical_bytes(demo_dir: Path, tmp_path: Path) -> None:
    again = make_demo_stimuli(tmp_path / "again", seed=0)
    assert _files(again) == _files(demo_dir)
    other = make_demo_stimuli(tmp_path / "other", seed=1)
    assert _files(other).keys() == _files(demo_dir).keys()
    assert (
        _files(other)["object_images/cat/cat_01b.jpg"]
        != _files(demo_dir)["object_images/cat/cat_01b.jpg"]
    )


def test_rerun_skips_and_resumes(demo_dir: Path, tmp_path: Path) -> None:
    target = make_demo_stimuli(tmp_path / "set", seed=0)
    before = {p: p.stat().st_mtime_ns for p in target.rglob("*") if p.is_file()}
    make_demo_stimuli(target, seed=0)
    assert {p: p.stat().st_mtime_ns for p in target.rglob("*") if p.is_file()} == before
    (target / "object_images" / "horse" / "horse_02s.jpg").unlink()
    (target / "ground_truth" / "ball_03n.png").unlink()
    make_demo_stimuli(target, seed=0)
    assert _files(target) == _files(demo_dir)
    assert not [p for p in target.rglob(".*") if p.is_file()]  # no temporary files left


def test_other_seed_in_existing_folder_is_refused(demo_dir: Path) -> None:
    with pytest.raises(UsageError, match="seed 0"):
        make_demo_stimuli(demo_dir, seed=3)


def test_composite_masks_match_images(demo_dir: Path) -> None:
    composites = [r for r in _recipes(demo_dir) if r["kind"] == "composite"]
    assert len(composites) == 8
    assert sorted(p.stem for p in (demo_dir / "ground_truth").iterdir()) == sorted(
        r["image_id"] for r in composites
    )
    for recipe in composites:
        mask = np.asarray(Image.open(demo_dir / recipe["ground_truth"]))
        image = load_rgb(
            demo_dir / "object_images" / recipe["concept"] / f"{recipe['image_id']}.jpg"
        ).astype(float)
        assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 255}
        assert mask.shape == image.shape[:2]
        rendered, rendered_mask = render(recipe)
        np.testing.assert_array_equal(rendered_mask, mask == 255)
        assert np.abs(image - rendered).mean() < 3.5  # JPEG q95 4:4:4 error only (grass: 2.7)
        inside = mask == 255
        ring = ndimage.binary_dilation(inside, skimage.morphology.disk(6)) & ~inside
        contrast = np.linalg.norm(image[inside].mean(0) - image[ring].mean(0))
        edge_jump = np.abs(image[inside].mean() - image[ring].mean())
        assert contrast > 15 or edge_jump > 15, recipe["image_id"]


def test_ball_masks_are_disks(demo_dir: Path) -> None:
    for recipe in (r for r in _recipes(demo_dir) if r.get("shape") == "ball"):
        mask = np.asarray(Image.open(demo_dir / recipe["ground_truth"])) == 255
        diameter = recipe["box"][2]
        assert abs(mask.sum() / (np.pi * diameter**2 / 4) - 1) < 0.02
        rows, cols = np.nonzero(mask)
        assert rows.max() - rows.min() + 1 == pytest.approx(diameter, abs=1)
        assert cols.max() - cols.min() + 1 == pytest.approx(diameter, abs=1)


def test_horse_masks_match_skimage_silhouette(demo_dir: Path) -> None:
    horse = ~skimage.data.horse()  # skimage: False on the horse
    rows, cols = np.nonzero(horse)
    horse = horse[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].astype(float)
    for recipe in (r for r in _recipes(demo_dir) if r.get("shape") == "horse"):
        left, top, width, height = recipe["box"]
        mask = np.asarray(Image.open(demo_dir / recipe["ground_truth"])) == 255
        expected = np.zeros_like(mask)
        scaled = skimage.transform.resize(horse, (height, width), order=1) >= 0.5
        expected[top : top + height, left : left + width] = (
            scaled[:, ::-1] if recipe["flip"] else scaled
        )
        iou = (mask & expected).sum() / (mask | expected).sum()
        assert iou > 0.93, (recipe["image_id"], iou)


def test_cli_writes_set_and_reports(demo_dir: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["-q", "demo-stimuli", "--out", str(demo_dir), "--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert "24 images in 6 concepts, 8 with ground-truth masks" in out
    assert main(["-q", "demo-stimuli", "--out", str(demo_dir), "--seed", "5"]) == 2
    assert "seed 0" in capsys.readouterr().err
