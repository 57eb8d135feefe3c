"""Compositing on a fill colour, object masks, inpainting, PNG encoding, mask metrics and the
stimulus-validity metrics (haze of the no-background image, silhouette of the fill)."""

from __future__ import annotations

import timeit

import cv2
import numpy as np
import pytest
from scipy import ndimage, stats

from figureground.variants import VariantParams
from figureground.variants.compose import (
    apply_alpha_floor,
    decode_png,
    encode_png,
    no_background,
    quantize_alpha,
)
from figureground.variants.image import image_metrics, make_image_variants
from figureground.variants.inpaint import inpaint, object_mask
from figureground.variants.metrics import (
    bounding_box,
    fill_and_ring,
    haze_metrics,
    mask_metrics,
    roc_auc,
    silhouette_metrics,
)


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


# ------------------------------------------------------------------ alpha floor and haze


def hazy_alpha(truth: np.ndarray, haze: float = 0.05, edge: float = 0.0) -> np.ndarray:
    """A soft alpha: 1 on the object, ``haze`` everywhere else; with ``edge`` > 0 a soft edge
    (Gaussian of that SD) around the object."""
    alpha = truth.astype(np.float32)
    if edge:
        alpha = cv2.GaussianBlur(alpha, (0, 0), edge)
    return np.maximum(alpha, haze).astype(np.float32)


def test_apply_alpha_floor_boundaries() -> None:
    values = np.arange(256, dtype=np.uint8)
    floored = apply_alpha_floor(values, 0.1)  # 25/255 < 0.1 <= 26/255
    assert (floored[:26] == 0).all() and (floored[26:] == values[26:]).all()
    assert floored.dtype == np.uint8
    assert (apply_alpha_floor(values, 0.2)[:51] == 0).all()  # 51/255 is 0.2: kept
    assert apply_alpha_floor(values, 0.2)[51] == 51
    assert apply_alpha_floor(values, 0.0) is values  # off: the alpha itself
    with pytest.raises(ValueError, match="outside"):
        apply_alpha_floor(values, 1.0)


def test_alpha_floor_removes_a_planted_haze() -> None:
    rgb, truth = textured_scene(size=128)
    alpha = hazy_alpha(truth, 0.05)
    hazy = make_image_variants(rgb, alpha, VariantParams())
    clean = make_image_variants(rgb, alpha, VariantParams(alpha_floor=0.1))
    before = image_metrics(hazy, VariantParams())
    after = image_metrics(clean, VariantParams(alpha_floor=0.1))
    # Before: the background shows through at 13/255 = 5.1% everywhere.
    assert before["haze"] == pytest.approx(13 / 255, abs=1e-6)
    assert before["haze_fraction"] == 1.0
    assert (hazy["no_background"][~truth] != 255).any(axis=-1).all()
    # After: exactly white there.
    assert after["haze"] == 0.0 and after["haze_fraction"] == 0.0
    assert (clean["no_background"][~truth] == 255).all()
    # The saved mask is the network's alpha; the fill and the object's pixels are unchanged.
    np.testing.assert_array_equal(clean["mask"], quantize_alpha(alpha))
    np.testing.assert_array_equal(clean["no_foreground"], hazy["no_foreground"])
    np.testing.assert_array_equal(clean["no_background"][truth], hazy["no_background"][truth])
    # With a soft edge, what the floor leaves is that edge (alpha between floor and threshold).
    soft = hazy_alpha(truth, 0.05, edge=1.5)
    params = VariantParams(alpha_floor=0.1)
    edged = make_image_variants(rgb, soft, params)
    far = ndimage.distance_transform_edt(~truth) > 8
    assert (edged["no_background"][far] == 255).all()
    edge_only = image_metrics(edged, params)
    # Measured: haze 0.010, haze fraction 0.039 (a ring of ~2 px around the object).
    assert 0 < edge_only["haze"] < 0.02 and 0 < edge_only["haze_fraction"] < 0.06


def test_default_alpha_floor_keeps_the_earlier_outputs() -> None:
    """With ``alpha_floor`` 0 the images are those of the formulas before it existed."""
    rgb, truth = textured_scene(size=128, seed=3)
    alpha = hazy_alpha(truth, 0.03)
    params = VariantParams()
    images = make_image_variants(rgb, alpha, params)
    alpha8 = quantize_alpha(alpha)  # the function path before the floor, step by step
    region = object_mask(alpha8.astype(np.float32) / 255.0, params.threshold, params.dilate)
    earlier = {
        "mask": alpha8,
        "no_background": no_background(rgb, alpha8, params.fill),
        "no_foreground": inpaint(rgb, region, "telea", 3, 1024),
    }
    for name, image in earlier.items():
        assert encode_png(images[name]) == encode_png(image), name


def test_haze_metrics_by_hand() -> None:
    alpha = np.array([[0.0, 0.2, 0.5, 0.9]], np.float32)  # background: the first three
    composite = np.array([[[255, 255, 255], [200, 255, 255], [255, 255, 255], [9, 9, 9]]], np.uint8)
    metrics = haze_metrics(alpha, composite, (255, 255, 255), threshold=0.5)
    assert metrics["haze"] == pytest.approx(0.7 / 3, abs=1e-6)
    assert metrics["haze_fraction"] == pytest.approx(1 / 3, abs=1e-6)
    assert metrics == haze_metrics(alpha, composite, (255, 255, 255), 0.5)
    nothing = haze_metrics(np.ones((2, 2), np.float32), np.zeros((2, 2, 3), np.uint8))
    assert np.isnan(nothing["haze"]) and np.isnan(nothing["haze_fraction"])


# ------------------------------------------------------------------ silhouette of the fill


def ellipse_region(size: int) -> np.ndarray:
    region = np.zeros((size, size), np.uint8)
    cv2.ellipse(region, (size // 2, size // 2), (size // 4, size // 3), 0, 0, 360, 255, -1)
    return region


def test_roc_auc_is_mann_whitney_u() -> None:
    rng = np.random.default_rng(1)
    inside = rng.integers(0, 20, 300).astype(np.float32)  # many ties
    outside = rng.integers(3, 25, 400).astype(np.float32)
    u = stats.mannwhitneyu(inside, outside).statistic
    assert roc_auc(inside, outside) == pytest.approx(u / (300 * 400), abs=1e-12)
    assert roc_auc(np.array([1.0, 2.0]), np.array([3.0])) == 0.0
    assert roc_auc(np.array([2.0]), np.array([2.0])) == 0.5
    assert np.isnan(roc_auc(np.array([]), outside))


def test_fill_and_ring_margins_and_image_border() -> None:
    region = np.zeros((40, 40), bool)
    region[:, :10] = True  # touches the image's top, bottom and left borders
    inside, ring = fill_and_ring(region, margin=2, width=6)
    assert inside[:, :8].all() and not inside[:, 8:].any()  # the image border is no edge
    assert ring[:, 12:16].all() and not ring[:, :12].any() and not ring[:, 16:].any()


def test_silhouette_of_untouched_texture_is_chance() -> None:
    """The "fill" has the texture of its surroundings: nothing tells it apart."""
    rng = np.random.default_rng(0)
    noise = cv2.GaussianBlur(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8), (0, 0), 1.0)
    metrics = silhouette_metrics(noise, ellipse_region(256))
    # Neighbouring energies are correlated: over seeds the AUC scatters with SD 0.017 here.
    assert metrics["silhouette_auc"] == pytest.approx(0.5, abs=0.06)
    assert metrics["silhouette_detectability"] < 0.12
    assert metrics == silhouette_metrics(noise, ellipse_region(256) > 0)  # deterministic


def test_silhouette_of_a_telea_fill_is_detected() -> None:
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)  # strong texture
    region = ellipse_region(256)
    filled = inpaint(texture, region, "telea", 3)
    metrics = silhouette_metrics(filled, region)
    assert metrics["silhouette_auc"] < 0.05  # the fill is a smooth blob
    assert metrics["silhouette_detectability"] > 0.9
    empty = silhouette_metrics(filled, np.zeros((256, 256), np.uint8))
    assert np.isnan(empty["silhouette_auc"]) and np.isnan(empty["silhouette_detectability"])
    everything = silhouette_metrics(filled, np.ones((256, 256), np.uint8))  # no ring
    assert np.isnan(everything["silhouette_auc"])


def test_silhouette_metric_is_fast_on_a_1024_px_image() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (1024, 1024, 3), dtype=np.uint8)
    region = ellipse_region(1024)
    best = min(timeit.repeat(lambda: silhouette_metrics(image, region), number=1, repeat=5))
    assert best < 0.05  # measured 15 ms on one core
