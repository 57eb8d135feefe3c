"""Compositing on a fill colour, object masks, inpainting, PNG encoding and mask metrics."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy import ndimage

from figureground.variants import VariantParams
from figureground.variants.compose import decode_png, encode_png, no_background, quantize_alpha
from figureground.variants.inpaint import inpaint, object_mask
from figureground.variants.metrics import bounding_box, mask_metrics
from figureground.variants.run import make_image_variants


def textured_scene(size: int = 96, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth textured background with a differently coloured textured ellipse; its mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    background = np.stack(
        [90 + 40 * np.sin(xx / 7), 120 + 30 * np.cos(yy / 5), 60 + 0.5 * xx], axis=-1
    )
    object_rgb = np.stack([220 - 0.3 * yy, 40 + 20 * np.sin(xx / 3), 200 + 0 * xx], axis=-1)
    mask = np.zeros((size, size), np.uint8)
    cv2.ellipse(mask, (size // 2, size // 2), (size // 4, size // 3), 0, 0, 360, 255, -1)
    image = np.where(mask[..., None] > 0, object_rgb, background) + rng.normal(
        0, 3, (size, size, 3)
    )
    return np.clip(image, 0, 255).astype(np.uint8), mask > 0


def test_no_background_matches_hand_formula_and_keeps_exact_fill() -> None:
    rgb = np.array([[[10, 20, 30], [200, 100, 0], [50, 60, 70]]], np.uint8)
    alpha8 = np.array([[0, 255, 128]], np.uint8)
    out = no_background(rgb, alpha8, fill=(255, 0, 10))
    assert out[0, 0].tolist() == [255, 0, 10]  # alpha 0: exactly the fill
    assert out[0, 1].tolist() == [200, 100, 0]  # alpha 1: exactly the original
    a = 128 / 255  # hand computation of img*a + fill*(1-a), rounded
    expected = [round(50 * a + 255 * (1 - a)), round(60 * a), round(70 * a + 10 * (1 - a))]
    assert out[0, 2].tolist() == expected


def test_quantize_alpha_rounds_and_clips() -> None:
    alpha = np.array([-0.2, 0.0, 0.5, 1 / 255 * 0.49, 1.0, 1.3])
    assert quantize_alpha(alpha).tolist() == [0, 0, 128, 0, 255, 255]


def test_object_mask_threshold_and_dilation_distance() -> None:
    alpha = np.zeros((60, 60), np.float32)
    alpha[25:35, 20:40] = 0.8
    alpha[10, 10] = 0.5  # exactly the threshold: not object
    dilate = 4
    mask = object_mask(alpha, threshold=0.5, dilate=dilate) > 0
    # Independent reference: Euclidean distance to the thresholded object.
    distance = ndimage.distance_transform_edt(~(alpha > 0.5))
    assert mask[distance <= dilate - 0.5].all()
    assert not mask[distance > dilate + 0.5].any()
    assert not mask[10, 10]
    assert (object_mask(alpha, 0.5, 0) > 0).sum() == 200


@pytest.mark.parametrize("method", ["telea", "ns"])
def test_inpaint_full_resolution_equals_opencv(method: str) -> None:
    rgb, truth = textured_scene()
    mask = object_mask(truth.astype(np.float32), 0.5, 2)
    flag = cv2.INPAINT_TELEA if method == "telea" else cv2.INPAINT_NS
    np.testing.assert_array_equal(inpaint(rgb, mask, method, 3), cv2.inpaint(rgb, mask, 3, flag))


def test_inpaint_reduced_resolution_only_changes_the_mask() -> None:
    rgb, truth = textured_scene(size=160)
    mask = object_mask(truth.astype(np.float32), 0.5, 3)
    full = inpaint(rgb, mask, "telea", 3)
    reduced = inpaint(rgb, mask, "telea", 3, max_side=64)
    outside = mask == 0
    np.testing.assert_array_equal(reduced[outside], rgb[outside])
    inside = ~outside
    assert np.abs(reduced[inside].astype(int) - rgb[inside]).mean() > 20  # object removed
    # The fill is a smooth background guess either way; measured mean |diff| 4.9 grey levels.
    assert np.abs(reduced[inside].astype(int) - full[inside]).mean() < 15
    np.testing.assert_array_equal(inpaint(rgb, np.zeros_like(mask)), rgb)
    with pytest.raises(ValueError, match="unknown inpainting"):
        inpaint(rgb, mask, "bogus")


def test_png_is_lossless_and_deterministic() -> None:
    rgb, truth = textured_scene()
    data = encode_png(rgb)
    assert data == encode_png(rgb.copy())
    np.testing.assert_array_equal(decode_png(data), rgb)
    grey = (truth * 255).astype(np.uint8)
    np.testing.assert_array_equal(decode_png(encode_png(grey)), grey)
    # Channel order: red stays red for a reader that is not OpenCV.
    from io import BytesIO

    from PIL import Image

    np.testing.assert_array_equal(np.asarray(Image.open(BytesIO(data))), rgb)


def test_mask_metrics_by_hand() -> None:
    alpha = np.zeros((10, 20), np.float32)
    alpha[2:5, 3:8] = 1.0  # 15 confident object pixels
    alpha[0, 0] = 0.5  # one unsure pixel (not above threshold 0.5)
    metrics = mask_metrics(alpha, 0.5, 0.9)
    assert metrics["fg_fraction"] == pytest.approx((15 + 0.5) / 200)
    assert metrics["mask_confidence"] == pytest.approx(199 / 200)
    assert metrics["bbox"] == "3,2,8,5"
    assert metrics["little_background"] is False
    assert mask_metrics(np.full((4, 4), 0.95, np.float32))["little_background"] is True
    assert bounding_box(np.zeros((3, 3))) == ""


def test_variant_images_keep_background_and_remove_object() -> None:
    rgb, truth = textured_scene(size=128)
    params = VariantParams(fill=(255, 255, 255), dilate=5, threshold=0.5)
    images = make_image_variants(rgb, truth.astype(np.float32), params)
    far = ndimage.distance_transform_edt(~truth) > params.dilate + 1
    # No-background: every pixel away from the object is exactly the fill colour.
    assert (images["no_background"][far] == 255).all()
    np.testing.assert_array_equal(images["no_background"][truth], rgb[truth])
    # No-foreground: pixels away from the dilated mask are the original; the object is gone.
    np.testing.assert_array_equal(images["no_foreground"][far], rgb[far])
    assert np.abs(images["no_foreground"][truth].astype(int) - rgb[truth]).mean() > 40
    np.testing.assert_array_equal(images["mask"], truth.astype(np.uint8) * 255)
