"""No-foreground images: mask the object (thresholded, dilated alpha) and inpaint it away."""

from __future__ import annotations

import numpy as np

# Registry of OpenCV inpainting methods by CLI name (values are cv2 flag names).
INPAINT_METHODS: dict[str, str] = {"telea": "INPAINT_TELEA", "ns": "INPAINT_NS"}


def object_mask(alpha: np.ndarray, threshold: float = 0.5, dilate: int = 5) -> np.ndarray:
    """Object region to fill: ``alpha > threshold``, dilated by ``dilate`` pixels.

    Parameters
    ----------
    alpha
        Soft alpha (H, W) in [0, 1].
    threshold
        Alpha above which a pixel belongs to the object.
    dilate
        Radius in pixels of the elliptical dilation, so no halo of the object remains.

    Returns
    -------
    numpy.ndarray
        uint8 (H, W), 255 inside the region to fill, 0 elsewhere.
    """
    import cv2

    mask = (alpha > threshold).astype(np.uint8) * 255
    if dilate > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilate + 1, 2 * dilate + 1))
        mask = cv2.dilate(mask, kernel)
    return mask


def inpaint(
    rgb: np.ndarray,
    mask: np.ndarray,
    method: str = "telea",
    radius: int = 3,
    max_side: int | None = None,
) -> np.ndarray:
    """Fill ``mask`` (uint8, >0 = fill) in ``rgb`` with ``cv2.inpaint``.

    When ``max_side`` is set and the image is larger, the fill is computed on a copy reduced
    to ``max_side`` pixels on its long side, brought back by bicubic interpolation and pasted
    into the full-resolution image inside the mask only: pixels outside the mask are always
    the original's.

    Parameters
    ----------
    rgb
        uint8 (H, W, 3) image.
    mask
        uint8 (H, W) region to fill.
    method
        A key of :data:`INPAINT_METHODS` (``telea`` or ``ns``).
    radius
        Inpainting neighbourhood radius in pixels (at the resolution used).
    max_side
        Long side at which to inpaint; ``None`` inpaints at full resolution.
    """
    import cv2

    if method not in INPAINT_METHODS:
        raise ValueError(
            f"unknown inpainting method {method!r}; expected one of {', '.join(INPAINT_METHODS)}"
        )
    flag = getattr(cv2, INPAINT_METHODS[method])
    inside = mask > 0
    if not inside.any():
        return rgb.copy()
    height, width = mask.shape
    scale = 1.0 if max_side is None else min(1.0, max_side / max(height, width))
    if scale == 1.0:
        return cv2.inpaint(rgb, inside.astype(np.uint8) * 255, radius, flag)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small_rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    # Any coverage of a reduced pixel by the mask marks it for filling: no object colour leaks.
    small_mask = cv2.resize(inside.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0
    small_fill = cv2.inpaint(small_rgb, small_mask.astype(np.uint8) * 255, radius, flag)
    fill = cv2.resize(small_fill, (width, height), interpolation=cv2.INTER_CUBIC)
    out = rgb.copy()
    out[inside] = fill[inside]
    return out
