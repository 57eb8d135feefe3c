"""Robust image loading: any common format in, ``uint8`` RGB ``(H, W, 3)`` out.

Assumptions, stated once:

- Files are decoded by content, never by extension (a PNG named ``.jpg`` loads fine).
- EXIF orientation is applied, so arrays are upright as a viewer shows them.
- Transparency (RGBA, LA, palette with a transparent index) is composited on **white**, the
  background the seed method puts behind objects.
- 16-bit samples are scaled to 8 bits (``v / 257``, rounded); 32-bit integer images (mode
  ``I``) are read as 16-bit when any sample exceeds 255, else as 8-bit; float images (mode
  ``F``) are taken to lie in ``[0, 1]`` when their maximum is at most 1, else in ``[0, 255]``.
  16-bit RGB(A) files are reduced to 8 bits by PIL itself when opened.
- Multi-frame files (TIFF pages, GIF frames) give their first frame.
- Decompression-bomb guard: an image with more than ``max_pixels`` pixels is refused before it
  is decoded. The default is PIL's own error threshold (twice ``Image.MAX_IMAGE_PIXELS``).
  PIL's ``DecompressionBombWarning`` is never left as a mere warning: inside these functions
  it is silenced and the explicit ``max_pixels`` check decides (turning it into an error
  would cap images at PIL's warning threshold whatever ``max_pixels`` says); PIL's
  ``DecompressionBombError`` becomes an :class:`ImageLoadError` like any other bad file.
  (``warnings.catch_warnings`` is process-wide in Python 3.11: with several threads loading
  at once the filter may stay installed afterwards, which only silences that one warning.)
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from figureground.errors import ImageLoadError

DEFAULT_MAX_PIXELS = 178_956_970  # PIL's DecompressionBombError threshold (2 x 89,478,485)
WHITE = 255
_JPEG_EOI = b"\xff\xd9"
_EOI_SEARCH_BYTES = 4096


class UnreadableImage(Exception):  # noqa: N818 - internal signal, carries a one-line reason
    """Internal: an image that cannot be used; ``args[0]`` is the one-line reason."""


def _open(path: Path, max_pixels: int) -> Image.Image:
    """Open ``path`` lazily (header only), enforcing the pixel limit; raises UnreadableImage."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise UnreadableImage("file not found") from None
    except OSError as exc:
        raise UnreadableImage(f"cannot stat file ({exc.strerror or exc})") from None
    if size == 0:
        raise UnreadableImage("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except UnidentifiedImageError:
        raise UnreadableImage("not an image (content not recognised by PIL)") from None
    except Image.DecompressionBombError as exc:
        raise UnreadableImage(f"decompression-bomb guard: {exc}") from None
    except IsADirectoryError:
        raise UnreadableImage("is a directory, expected an image file") from None
    except OSError as exc:
        raise UnreadableImage(f"cannot open ({exc.strerror or exc})") from None
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise UnreadableImage(
            f"decompression-bomb guard: {width}x{height} = {width * height} "
            f"pixels exceeds max_pixels={max_pixels}"
        )
    return image


def _jpeg_truncated(path: Path) -> bool:
    """Whether a JPEG lacks its end-of-image marker near the end of the file (cheap check)."""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        length = handle.tell()
        handle.seek(max(0, length - _EOI_SEARCH_BYTES))
        tail = handle.read()
    return _JPEG_EOI not in tail.rstrip(b"\x00")


_TRANSPOSING_ORIENTATIONS = frozenset({5, 6, 7, 8})  # EXIF orientations that swap axes
_EXIF_ORIENTATION = 0x0112


def _upright_size(image: Image.Image) -> tuple[int, int]:
    """``(width, height)`` after EXIF orientation, from the header only.

    A PNG whose EXIF block follows the pixel data is taken as upright here (reading that block
    would decode the whole image); :func:`load_rgb` still applies it.
    """
    width, height = image.size
    if image.format == "PNG" and "exif" not in image.info:
        return width, height
    try:
        orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # unreadable EXIF: load_rgb ignores it the same way
        orientation = 1
    if orientation in _TRANSPOSING_ORIENTATIONS:
        return height, width
    return width, height


def check_header(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """Cheap check of an image file: header read, size limit, structural verification.

    Detects zero-byte files, non-images, oversized images, truncated JPEGs (no end-of-image
    marker) and corrupt PNG chunks (``Image.verify``) without decoding the pixels.

    Parameters
    ----------
    path : path-like
        The image file.
    max_pixels : int
        Largest accepted ``width * height``.

    Returns
    -------
    (width, height) : tuple of int
        Size as :func:`load_rgb` returns it, i.e. after EXIF orientation.

    Raises
    ------
    UnreadableImage
        With a one-line reason (internal; :func:`probe_image` turns it into ImageLoadError).
    """
    path = Path(path)
    image = _open(path, max_pixels)
    try:
        size = _upright_size(image)
        image_format = image.format
    finally:
        image.close()
    if image_format == "JPEG" and _jpeg_truncated(path):
        raise UnreadableImage("truncated JPEG (no end-of-image marker)")
    image = _open(path, max_pixels)  # verify() needs a freshly opened image
    try:
        image.verify()
    except Exception as exc:  # PIL raises many types for corrupt data
        raise UnreadableImage(f"corrupt {image_format} data ({exc})") from None
    finally:
        image.close()
    return size


def probe_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """Cheap validity check of an image file; returns its upright ``(width, height)``.

    Raises
    ------
    ImageLoadError
        One line naming the file and the reason (see :func:`check_header`).
    """
    try:
        return check_header(Path(path), max_pixels)
    except UnreadableImage as exc:
        raise ImageLoadError(f"cannot read image {path}: {exc.args[0]}") from None


def _scale_to_uint8(values: np.ndarray, sixteen_bit: bool) -> np.ndarray:
    """Samples to ``uint8``: 16-bit divided by 257, floats in [0, 1] or [0, 255], clipped."""
    if np.issubdtype(values.dtype, np.floating):
        data = np.nan_to_num(values.astype(np.float64))
        scale = 255.0 if data.size and data.max() <= 1.0 else 1.0
        return np.clip(np.rint(data * scale), 0, 255).astype(np.uint8)
    data = values.astype(np.int64)
    if sixteen_bit:
        data = (data + 128) // 257
    return np.clip(data, 0, 255).astype(np.uint8)


def _composite_on_white(rgba: np.ndarray) -> np.ndarray:
    """Alpha-composite an ``(H, W, 4)`` uint8 array on white: ``rgb*a + 255*(1-a)``, rounded."""
    rgb = rgba[..., :3].astype(np.uint32)
    alpha = rgba[..., 3:4].astype(np.uint32)
    out = (rgb * alpha + WHITE * (255 - alpha) + 127) // 255
    return out.astype(np.uint8)


def _from_rgb(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _from_rgba(image: Image.Image) -> np.ndarray:
    return _composite_on_white(np.asarray(image.convert("RGBA"), dtype=np.uint8))


def _from_palette(image: Image.Image) -> np.ndarray:
    if "transparency" in image.info or image.mode == "PA":
        return _from_rgba(image)
    return _from_rgb(image)


def _from_high_depth_gray(image: Image.Image) -> np.ndarray:
    values = np.asarray(image)
    # I;16* is 16-bit by definition; 32-bit "I" holds 16-bit data when any sample exceeds 255.
    sixteen_bit = image.mode.startswith("I;16") or bool(values.size and values.max() > 255)
    gray = _scale_to_uint8(values, sixteen_bit)
    return np.repeat(gray[..., None], 3, axis=2)


# Registry: PIL mode -> converter to uint8 RGB. Modes not listed go through PIL's own
# conversion to RGB (``_from_rgb``).
_CONVERTERS: dict[str, Callable[[Image.Image], np.ndarray]] = {
    "RGBA": _from_rgba,
    "RGBa": _from_rgba,
    "LA": _from_rgba,
    "La": _from_rgba,
    "PA": _from_palette,
    "P": _from_palette,
    "I": _from_high_depth_gray,
    "I;16": _from_high_depth_gray,
    "I;16B": _from_high_depth_gray,
    "I;16L": _from_high_depth_gray,
    "I;16N": _from_high_depth_gray,
    "F": _from_high_depth_gray,
}


def _exif_upright(image: Image.Image) -> Image.Image:
    """Apply EXIF orientation; unreadable EXIF metadata is ignored (as in ``_upright_size``)."""
    try:
        return ImageOps.exif_transpose(image) or image
    except Exception:  # corrupt EXIF block: the pixels are still fine
        return image


def load_rgb(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode an image file to an upright ``uint8`` RGB array ``(H, W, 3)``.

    Parameters
    ----------
    path : path-like
        JPEG, PNG, WebP, TIFF, BMP or anything else PIL reads; decoded by content.
    max_pixels : int
        Decompression-bomb guard: images with more pixels are refused before decoding.

    Returns
    -------
    numpy.ndarray
        ``uint8`` array of shape ``(height, width, 3)``, EXIF orientation applied, alpha
        composited on white.

    Raises
    ------
    ImageLoadError
        One line naming the file and the reason (empty, not an image, truncated, too large).
    """
    try:
        return decode(Path(path), max_pixels)
    except UnreadableImage as exc:
        raise ImageLoadError(f"cannot load image {path}: {exc.args[0]}") from None


def decode(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """:func:`load_rgb` without the error wrapping: raises UnreadableImage (internal)."""
    image = _open(path, max_pixels)
    try:
        image.load()
        upright = _exif_upright(image)
        rgb = _CONVERTERS.get(upright.mode, _from_rgb)(upright)
    except UnreadableImage:
        raise
    except Exception as exc:  # decoder errors: truncated or corrupt data
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UnreadableImage(f"truncated or corrupt {image.format} data ({reason})") from None
    finally:
        image.close()
    return np.ascontiguousarray(rgb)
