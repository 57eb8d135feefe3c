"""Views of a layer's activation map: which of its numbers the model RDMs compare.

A layer such as ResNet50 ``layer2`` is a map (channels x 28 x 28) over the image shown. Its
flattened map keeps every position, so two images whose objects sit in different places look
unlike even when the objects are the same; objects in THINGS vary in position and size. The
views (:data:`VIEWS`) trade position for tolerance:

- ``flat``: every unit at every position (the seed method's reading; position-specific).
- ``global``: each channel averaged over all positions (position-tolerant; an object on a
  white background is diluted by the white area, so it is size-dependent).
- ``grid2`` / ``grid4``: each channel averaged in a 2 x 2 / 4 x 4 partition of the map
  (adaptive average pooling: coarse position kept).
- ``region``: each variant averaged over its own region of the map: the no-background
  (figure) features over the object's cells, the no-foreground (ground) features over the
  other cells, the original over all cells. Cells are weighted by the share of their area the
  object mask covers (the mask taken through the network's own resize and centre crop). This
  view is tolerant to the object's position *and* size; it needs the object masks.

Arrays without spatial axes (pooled stores: image x channel) are the same in every view.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import Any

import numpy as np

from figureground.conditions import NO_BACKGROUND, NO_FOREGROUND
from figureground.errors import DataError, UsageError

FIGURE, GROUND = NO_BACKGROUND, NO_FOREGROUND
VIEWS = ("flat", "global", "grid2", "grid4", "region")
POSITION_TOLERANT = frozenset({"global", "region"})
MIN_REGION_WEIGHT = 1e-3  # total cell weight below which a region counts as absent


def _spatial(values: np.ndarray) -> np.ndarray:
    """(image, channel, y, x) view of an activation array; 2-D arrays get 1 x 1 maps."""
    if values.ndim == 2:
        return values[:, :, None, None]
    if values.ndim == 3:  # (image, channel, positions): one row of positions
        return values[:, :, None, :]
    if values.ndim == 4:
        return values
    raise DataError(f"activations of shape {values.shape}; expected (image, channel[, y, x])")


def adaptive_pool(maps: np.ndarray, size: int) -> np.ndarray:
    """Average pooling of (n, c, h, w) maps to (n, c, size, size) with torch's adaptive bins."""
    _, _, height, width = maps.shape
    if height < size or width < size:
        raise DataError(f"a {height} x {width} map cannot be pooled to {size} x {size}")
    rows = [(i * height // size, -(-(i + 1) * height // size)) for i in range(size)]
    cols = [(j * width // size, -(-(j + 1) * width // size)) for j in range(size)]
    out = np.empty((*maps.shape[:2], size, size), dtype=np.float64)
    for i, (r0, r1) in enumerate(rows):
        for j, (c0, c1) in enumerate(cols):
            out[:, :, i, j] = maps[:, :, r0:r1, c0:c1].mean(axis=(2, 3))
    return out


def weighted_pool(maps: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Channel means (n, c) of (n, c, h, w) maps weighted by (n, h, w) cell weights.

    An image whose weights sum to under :data:`MIN_REGION_WEIGHT` (no such region) is pooled
    uniformly instead.
    """
    total = weights.sum(axis=(1, 2))
    uniform = total < MIN_REGION_WEIGHT
    if uniform.any():
        weights = weights.copy()
        weights[uniform] = 1.0
        total = weights.sum(axis=(1, 2))
    return np.einsum("nchw,nhw->nc", maps, weights, optimize=True) / total[:, None]


def preprocessing_of(attrs: Mapping[str, Any]) -> tuple[int, int]:
    """(resize, crop) of a feature store's preprocessing attribute (defaults 256, 224)."""
    value = attrs.get("preprocessing", {})
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            value = {}
    return int(value.get("resize", 256)), int(value.get("crop", 224))


def mask_on_grid(mask: np.ndarray, grid: tuple[int, int], resize: int, crop: int) -> np.ndarray:
    """Share of each map cell covered by a soft mask (H, W) in [0, 1], as the network sees it.

    The mask goes through the network's preprocessing (shorter side to ``resize``, centre
    crop ``crop``) and is then area-averaged onto the ``grid`` (rows, cols).
    """
    import cv2

    height, width = mask.shape
    scale = resize / min(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    top = max(0, (resized.shape[0] - crop) // 2)
    left = max(0, (resized.shape[1] - crop) // 2)
    cropped = resized[top : top + crop, left : left + crop]
    rows, cols = grid
    return np.clip(cv2.resize(cropped, (cols, rows), interpolation=cv2.INTER_AREA), 0.0, 1.0)


def view_values(
    values: Mapping[str, np.ndarray], view: str, masks: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Each condition's activations (image, ...) as (image, features) in ``view``.

    Parameters
    ----------
    values : condition -> activations (image, channel[, y, x]); same images in each.
    view : one of :data:`VIEWS`.
    masks : (image, y, x) object coverage of each map cell (:func:`mask_on_grid`); needed by
        ``region`` only.
    """
    if view not in VIEWS:
        raise UsageError(f"view {view!r} is not one of {', '.join(VIEWS)}")
    out = {}
    for condition, array in values.items():
        data = np.asarray(array)
        if view == "flat":
            out[condition] = data.reshape(data.shape[0], -1)
            continue
        maps = _spatial(data).astype(np.float64, copy=False)
        if view == "global":
            out[condition] = maps.mean(axis=(2, 3))
        elif view in ("grid2", "grid4"):
            size = int(view[-1])
            pooled = maps if maps.shape[2:] == (1, 1) else adaptive_pool(maps, size)
            out[condition] = pooled.reshape(len(maps), -1)
        else:
            if masks is None:
                raise UsageError("the region view needs the object masks of the images")
            if masks.shape != (maps.shape[0], *maps.shape[2:]):
                raise DataError(
                    f"masks of shape {masks.shape} do not match activations {maps.shape}"
                )
            weights = {FIGURE: masks, GROUND: 1.0 - masks}.get(condition, np.ones_like(masks))
            out[condition] = weighted_pool(maps, weights)
    return out
