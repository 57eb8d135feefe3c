"""Composite stimuli with exact masks, and pixel descriptors of their regions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from figureground.errors import UsageError
from figureground.stimuli import build_manifest
from figureground.stimuli.composites import (
    make_composite_stimuli,
    plan_composites,
    render_composite,
)
from figureground.stimuli.descriptors import N_DESCRIPTORS, region_descriptors


def test_composites_vary_position_and_size_with_exact_masks(tmp_path: Path) -> None:
    root = make_composite_stimuli(tmp_path / "set", concepts=3, exemplars=4, size=128, seed=2)
    manifest = build_manifest(root, layout="things", exemplars=None)
    assert len(manifest) == 12 and set(manifest["concept"]) == {"object01", "object02", "object03"}
    recipes = json.loads((root / "composites.json").read_text())["images"]
    boxes = np.array([r["box"] for r in recipes])
    assert len({tuple(b[:2]) for b in boxes}) == 12 and np.ptp(boxes[:, 3]) > 10
    for recipe in recipes[:4]:
        mask = np.asarray(Image.open(root / "ground_truth" / f"{recipe['image_id']}.png")) > 0
        rgb = np.asarray(Image.open(root / "object_images" / recipe["concept"]
                                    / f"{recipe['image_id']}.png"))  # fmt: skip
        again, exact = render_composite(recipe)
        np.testing.assert_array_equal(mask, exact)  # the written mask is the rendered one
        np.testing.assert_array_equal(rgb, again)  # lossless and deterministic
        assert 0.02 < mask.mean() < 0.7
    assert plan_composites(3, 4, 128, 2) == recipes
    with pytest.raises(UsageError, match="already holds"):
        make_composite_stimuli(tmp_path / "set", concepts=3, exemplars=4, size=128, seed=3)


def _scene(offset: int, object_colour: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A textured square object on a grey noise background, at ``offset``."""
    rng = np.random.default_rng(0)
    rgb = np.clip(120 + 20 * rng.standard_normal((128, 128, 1)), 0, 255).repeat(3, axis=2)
    mask = np.zeros((128, 128), dtype=bool)
    mask[offset : offset + 40, offset : offset + 40] = True
    stripes = (np.indices((40, 40))[1] // 4 % 2)[..., None] * 60
    rgb[mask] = (np.asarray(object_colour) + stripes).reshape(-1, 3)
    return rgb.astype(np.uint8), mask


def test_pooled_figure_code_ignores_position_grid_code_does_not() -> None:
    first = region_descriptors(*_scene(8, (200, 40, 40)))
    moved = region_descriptors(*_scene(80, (200, 40, 40)))
    other = region_descriptors(*_scene(8, (40, 40, 200)))
    assert first["figure"].shape == (N_DESCRIPTORS,)
    np.testing.assert_allclose(first["figure"], moved["figure"], atol=0.02)
    assert np.abs(first["figure"] - other["figure"]).max() > 0.3  # colour is coded
    assert np.abs(first["figure_grid"] - moved["figure_grid"]).max() > 0.3
    # the centre code sees an object at the centre, whatever the mask says
    centred = region_descriptors(*_scene(44, (200, 40, 40)))
    assert np.abs(first["centre"] - centred["centre"]).max() > 0.1


def test_whole_image_code_mixes_figure_and_ground_by_area() -> None:
    rgb, mask = _scene(40, (200, 40, 40))
    codes = region_descriptors(rgb, mask, ("figure", "ground", "image"))
    share = mask.mean()
    mixed = share * codes["figure"][:3] + (1 - share) * codes["ground"][:3]
    np.testing.assert_allclose(codes["image"][:3], mixed, atol=0.02)  # mean colour channels
