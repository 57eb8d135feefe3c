"""Views of a layer's map: pooling equals torch's, the region view follows the mask, and the
position-tolerant views ignore where an object sits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from figureground.analysis.views import (
    adaptive_pool,
    mask_on_grid,
    preprocessing_of,
    view_values,
    weighted_pool,
)
from figureground.errors import DataError, UsageError


def test_adaptive_pool_equals_torch() -> None:
    rng = np.random.default_rng(0)
    maps = rng.standard_normal((3, 5, 14, 13))
    for size in (2, 4):
        expected = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(maps), size).numpy()
        np.testing.assert_allclose(adaptive_pool(maps, size), expected, atol=1e-12)


def test_weighted_pool_and_absent_regions() -> None:
    maps = np.arange(2 * 1 * 2 * 2, dtype=float).reshape(2, 1, 2, 2)
    weights = np.array([[[1.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]])
    pooled = weighted_pool(maps, weights)
    assert pooled[0, 0] == 0.0  # only the first cell
    assert pooled[1, 0] == pytest.approx(maps[1].mean())  # no region: pooled uniformly


def test_mask_on_grid_follows_resize_and_centre_crop() -> None:
    mask = np.zeros((300, 400), dtype=np.float32)
    mask[:, :200] = 1.0  # left half of a landscape image
    grid = mask_on_grid(mask, (4, 4), resize=256, crop=224)
    # resized to 341 x 256, cropped at columns 58..282: the left half (up to column 170.7)
    # covers 112.7 of the 224 cropped columns, i.e. cells of 56 columns: 1, 1, 0.012, 0
    assert grid.shape == (4, 4)
    np.testing.assert_allclose(grid[:, :2], 1.0, atol=1e-6)
    assert np.all((grid[:, 2] > 0) & (grid[:, 2] < 0.05)) and np.all(grid[:, 3] == 0)


def test_preprocessing_is_read_from_store_attributes() -> None:
    assert preprocessing_of({"preprocessing": "{'resize': 232, 'crop': 200}"}) == (232, 200)
    assert preprocessing_of({}) == (256, 224)


def _shifted_object(shift: int) -> np.ndarray:
    """A map (1, 3, 8, 8): a fixed feature vector at a 2 x 2 object, zeros elsewhere."""
    maps = np.zeros((1, 3, 8, 8))
    maps[0, :, 1 + shift : 3 + shift, 1 + shift : 3 + shift] = np.array([1.0, 2.0, 3.0])[
        :, None, None
    ]
    return maps


def test_tolerant_views_ignore_position_flat_does_not() -> None:
    a, b = _shifted_object(0), _shifted_object(4)
    masks = [(m[0, 0] > 0).astype(float)[None] for m in (a, b)]
    flat = [view_values({"no_background": m}, "flat")["no_background"] for m in (a, b)]
    assert not np.allclose(flat[0], flat[1])
    for view in ("global", "region"):
        found = [
            view_values({"no_background": m}, view, mask)["no_background"]
            for m, mask in zip((a, b), masks, strict=True)
        ]
        np.testing.assert_allclose(found[0], found[1])
    region = view_values({"no_background": a}, "region", masks[0])["no_background"]
    np.testing.assert_allclose(region[0], [1.0, 2.0, 3.0])  # the object's own features


def test_region_view_pools_ground_outside_and_original_everywhere() -> None:
    rng = np.random.default_rng(1)
    maps = rng.standard_normal((2, 4, 6, 6))
    mask = np.zeros((2, 6, 6))
    mask[:, :3] = 1.0
    found = view_values({"no_foreground": maps, "original": maps}, "region", mask)
    np.testing.assert_allclose(found["no_foreground"], maps[:, :, 3:].mean(axis=(2, 3)))
    np.testing.assert_allclose(found["original"], maps.mean(axis=(2, 3)))


def test_bad_views_and_shapes() -> None:
    with pytest.raises(UsageError, match="not one of"):
        view_values({"original": np.zeros((2, 3))}, "pooled")
    with pytest.raises(UsageError, match="masks"):
        view_values({"original": np.zeros((2, 3, 4, 4))}, "region")
    with pytest.raises(DataError, match="do not match"):
        view_values({"original": np.zeros((2, 3, 4, 4))}, "region", np.zeros((2, 3, 3)))
