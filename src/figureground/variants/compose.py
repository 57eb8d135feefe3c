"""No-background images (object on a fill colour, soft alpha optionally floored) and
deterministic lossless PNG encoding."""

from __future__ import annotations

import numpy as np

# Fixed PNG settings: the same pixels always give the same bytes (resumed runs are identical).
PNG_COMPRESSION = 6


def quantize_alpha(alpha: np.ndarray) -> np.ndarray:
    """Soft alpha in [0, 1] as the 8-bit mask that is saved (0..255, rounded)."""
    return np.rint(np.clip(alpha, 0.0, 1.0) * 255.0).astype(np.uint8)


def apply_alpha_floor(alpha8: np.ndarray, floor: float = 0.0) -> np.ndarray:
    """The 8-bit alpha with every value below ``floor`` set to 0.

    A value ``v`` is below the floor when ``v / 255 < floor``: with ``floor = 0.1`` the values
    0..25 become 0 and 26..255 are kept. ``floor = 0`` returns ``alpha8`` itself (unchanged).
    The faint haze that a soft alpha leaves over the background (values of a few percent)
    would otherwise let the background show through the fill colour.
    """
    if not 0.0 <= floor < 1.0:
        raise ValueError(f"alpha floor {floor} is outside [0, 1)")
    if floor == 0.0:
        return alpha8
    return np.where(alpha8.astype(np.float64) / 255.0 < floor, 0, alpha8).astype(np.uint8)


def no_background(
    rgb: np.ndarray, alpha8: np.ndarray, fill: tuple[int, int, int] = (255, 255, 255)
) -> np.ndarray:
    """Composite the object onto ``fill``: ``rgb * a + fill * (1 - a)`` with ``a = alpha8/255``.

    Unlike rembg's cut-out this keeps soft edges bright; where ``alpha8`` is 0 the pixel is
    exactly ``fill``, where it is 255 exactly the original.
    """
    a = alpha8.astype(np.float32)[..., None] / 255.0
    fill_rgb = np.asarray(fill, dtype=np.float32).reshape(1, 1, 3)
    out = rgb.astype(np.float32) * a + fill_rgb * (1.0 - a)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def encode_png(image: np.ndarray) -> bytes:
    """Lossless, deterministic PNG bytes of an RGB (H, W, 3) or grey (H, W) uint8 image."""
    import cv2

    pixels = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    ok, buffer = cv2.imencode(".png", pixels, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
    if not ok:
        raise ValueError("PNG encoding failed")
    return buffer.tobytes()


def decode_png(data: bytes) -> np.ndarray:
    """Inverse of :func:`encode_png` (RGB or grey uint8)."""
    import cv2

    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB) if pixels.ndim == 3 else pixels
