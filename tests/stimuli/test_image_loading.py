"""load_rgb / probe_image on every image kind the stimuli may hold, good and bad.

Every file is written by the test; expected pixels come from hand formulas or numpy
(``np.rot90``, ``v / 257``, ``rgb*a + 255*(1-a)``), not from the code under test.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from figureground.errors import ImageLoadError
from figureground.stimuli import build_manifest, load_rgb, probe_image

RNG = np.random.default_rng(0)
PATTERN = RNG.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)


def _save(image: Image.Image, path: Path, fmt: str, **options: object) -> Path:
    image.save(path, format=fmt, **options)
    return path


def _assert_one_line_error(path: Path, match: str, **kwargs: object) -> None:
    with pytest.raises(ImageLoadError, match=match) as info:
        load_rgb(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message


@pytest.mark.parametrize(
    ("fmt", "suffix", "options"),
    [
        ("PNG", ".png", {}),
        ("WEBP", ".webp", {"lossless": True}),
        ("TIFF", ".tiff", {}),
        ("BMP", ".bmp", {}),
    ],
)
def test_lossless_formats_round_trip_exactly(
    tmp_path: Path, fmt: str, suffix: str, options: dict
) -> None:
    path = _save(Image.fromarray(PATTERN), tmp_path / f"img{suffix}", fmt, **options)
    out = load_rgb(path)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, PATTERN)
    assert probe_image(path) == (16, 12)


def test_jpeg_loads_close_to_source(tmp_path: Path) -> None:
    smooth = np.zeros((32, 48, 3), np.uint8)
    smooth[..., 0] = np.linspace(0, 255, 48, dtype=np.uint8)[None, :]
    smooth[..., 2] = 90
    path = _save(Image.fromarray(smooth), tmp_path / "a.jpg", "JPEG", quality=95)
    out = load_rgb(path)
    assert out.shape == (32, 48, 3)
    assert np.abs(out.astype(int) - smooth).mean() < 3


def test_png_named_jpg_decodes_by_content(tmp_path: Path) -> None:
    path = _save(Image.fromarray(PATTERN), tmp_path / "mislabelled.jpg", "PNG")
    np.testing.assert_array_equal(load_rgb(path), PATTERN)


def test_grayscale_becomes_three_equal_channels(tmp_path: Path) -> None:
    gray = PATTERN[..., 0]
    path = _save(Image.fromarray(gray, "L"), tmp_path / "g.png", "PNG")
    out = load_rgb(path)
    for channel in range(3):
        np.testing.assert_array_equal(out[..., channel], gray)


def test_cmyk_jpeg_converted_to_rgb(tmp_path: Path) -> None:
    # C=0, M=255, Y=255, K=0 is pure red; C=255, M=0, Y=255, K=0 pure green.
    cmyk = np.zeros((16, 32, 4), np.uint8)
    cmyk[:, :16] = (0, 255, 255, 0)
    cmyk[:, 16:] = (255, 0, 255, 0)
    path = _save(Image.fromarray(cmyk, "CMYK"), tmp_path / "cmyk.jpg", "JPEG", quality=95)
    out = load_rgb(path).astype(int)
    assert out.shape == (16, 32, 3)
    assert np.abs(out[4:12, 2:12] - (255, 0, 0)).max() < 16
    assert np.abs(out[4:12, 20:30] - (0, 255, 0)).max() < 16


def test_16bit_png_scaled_to_8bit(tmp_path: Path) -> None:
    values = np.array([[0, 1, 128, 129], [257, 30000, 65279, 65535]], np.uint16)
    path = _save(Image.fromarray(values), tmp_path / "deep.png", "PNG")
    out = load_rgb(path)
    expected = np.round(values / 257.0).astype(np.uint8)
    for channel in range(3):
        np.testing.assert_array_equal(out[..., channel], expected)


def test_float_tiff_in_unit_range_scaled(tmp_path: Path) -> None:
    values = np.array([[0.0, 0.5], [0.25, 1.0]], np.float32)
    path = _save(Image.fromarray(values, "F"), tmp_path / "float.tif", "TIFF")
    np.testing.assert_array_equal(load_rgb(path)[..., 1], np.round(values * 255).astype(np.uint8))


def test_palette_with_transparency_composited_on_white(tmp_path: Path) -> None:
    image = Image.new("P", (4, 2))
    image.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    image.putdata([0, 1, 0, 1, 1, 1, 0, 0])
    path = _save(image, tmp_path / "pal.png", "PNG", transparency=1)
    out = load_rgb(path)
    indices = np.array([[0, 1, 0, 1], [1, 1, 0, 0]])
    np.testing.assert_array_equal(out[indices == 0], np.tile([255, 0, 0], (4, 1)))
    np.testing.assert_array_equal(out[indices == 1], np.full((4, 3), 255))


def test_palette_without_transparency_keeps_colours(tmp_path: Path) -> None:
    image = Image.new("P", (2, 1))
    image.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    image.putdata([0, 1])
    out = load_rgb(_save(image, tmp_path / "pal.gif", "GIF"))
    np.testing.assert_array_equal(out[0], [[10, 20, 30], [200, 100, 50]])


def test_rgba_composited_on_white_pixel_values(tmp_path: Path) -> None:
    rgb = RNG.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    alpha = RNG.integers(0, 256, size=(8, 8), dtype=np.uint8)
    alpha[0, 0], alpha[0, 1] = 0, 255
    path = _save(Image.fromarray(np.dstack([rgb, alpha]), "RGBA"), tmp_path / "a.png", "PNG")
    out = load_rgb(path).astype(float)
    a = alpha[..., None] / 255.0
    expected = rgb * a + 255.0 * (1.0 - a)
    assert np.abs(out - expected).max() <= 0.5 + 1e-9
    np.testing.assert_array_equal(out[0, 0], [255, 255, 255])
    np.testing.assert_array_equal(out[0, 1], rgb[0, 1])


def test_la_composited_on_white_hand_value(tmp_path: Path) -> None:
    la = np.zeros((1, 3, 2), np.uint8)
    la[0] = [(100, 128), (0, 0), (40, 255)]
    out = load_rgb(_save(Image.fromarray(la, "LA"), tmp_path / "la.png", "PNG"))
    # 100*128/255 + 255*127/255 = 177.2 -> 177; transparent -> white; opaque -> itself.
    np.testing.assert_array_equal(out[0, :, 0], [177, 255, 40])
    assert (out[..., 0] == out[..., 2]).all()


def test_exif_orientation_applied(tmp_path: Path) -> None:
    upright_source = np.zeros((20, 40, 3), np.uint8)
    upright_source[:, :20] = (255, 0, 0)
    upright_source[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = _save(
        Image.fromarray(upright_source),
        tmp_path / "rot.jpg",
        "JPEG",
        quality=95,
        exif=exif.tobytes(),
    )
    out = load_rgb(path).astype(int)
    expected = np.rot90(upright_source, k=-1).astype(int)  # numpy reference, clockwise
    assert out.shape == (40, 20, 3)
    assert np.abs(out - expected).mean() < 4
    assert out[2, 10, 0] > 200 and out[-3, 10, 2] > 200  # red on top, blue below
    assert probe_image(path) == (20, 40)


def test_one_pixel_image_loads(tmp_path: Path) -> None:
    path = _save(Image.new("RGB", (1, 1), (7, 8, 9)), tmp_path / "one.png", "PNG")
    np.testing.assert_array_equal(load_rgb(path), [[[7, 8, 9]]])


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    _assert_one_line_error(path, "empty file")


def test_text_named_jpg(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("this is not an image\nsecond line\n")
    _assert_one_line_error(path, "not an image")


def test_missing_file(tmp_path: Path) -> None:
    _assert_one_line_error(tmp_path / "absent.png", "not found")


def _truncated_jpeg(path: Path) -> Path:
    buffer = io.BytesIO()
    Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(
        buffer, "JPEG", quality=90
    )
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    return path


def test_truncated_jpeg_fails_in_load_and_probe(tmp_path: Path) -> None:
    path = _truncated_jpeg(tmp_path / "cut.jpg")
    _assert_one_line_error(path, "truncated")
    with pytest.raises(ImageLoadError, match="truncated JPEG"):
        probe_image(path)


def test_truncated_png_fails(tmp_path: Path) -> None:
    good = tmp_path / "good.png"
    _save(Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)), good, "PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(good.read_bytes()[:-200])
    _assert_one_line_error(path, "truncated or corrupt")


def test_bomb_guard_with_low_max_pixels(tmp_path: Path) -> None:
    path = _save(Image.new("RGB", (100, 60)), tmp_path / "big.png", "PNG")
    _assert_one_line_error(path, "max_pixels=5000", max_pixels=5000)
    with pytest.raises(ImageLoadError, match="decompression-bomb"):
        probe_image(path, max_pixels=5999)
    assert load_rgb(path, max_pixels=6000).shape == (60, 100, 3)


def _png_header_only(path: Path, width: int, height: int) -> Path:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00"))
        + chunk(b"IEND", b"")
    )
    return path


def test_huge_header_refused_without_decoding(tmp_path: Path) -> None:
    # 20000 x 20000 = 400 M pixels: above the default limit and PIL's own error threshold.
    path = _png_header_only(tmp_path / "bomb.png", 20000, 20000)
    _assert_one_line_error(path, "decompression-bomb")


def test_manifest_records_each_bad_kind_and_goes_on(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    (root / "thing").mkdir(parents=True)
    _save(Image.fromarray(PATTERN), root / "thing" / "good_01a.png", "PNG")
    _save(Image.fromarray(PATTERN), root / "thing" / "mislabelled_02a.jpg", "PNG")
    (root / "thing" / "empty_03a.jpg").write_bytes(b"")
    (root / "thing" / "text_04a.jpg").write_text("hello")
    _truncated_jpeg(root / "thing" / "cut_05a.jpg")
    _save(Image.new("RGB", (100, 60)), root / "thing" / "big_06a.png", "PNG")
    frame = build_manifest(root, layout="folder", max_pixels=5000).set_index("image_id")
    expected_errors = {
        "empty_03a": "empty file",
        "text_04a": "not an image",
        "cut_05a": "truncated JPEG",
        "big_06a": "max_pixels=5000",
    }
    for image_id, fragment in expected_errors.items():
        assert frame.loc[image_id, "status"] == "failed"
        assert fragment in frame.loc[image_id, "error"]
        assert "\n" not in frame.loc[image_id, "error"]
    for image_id in ("good_01a", "mislabelled_02a"):
        assert frame.loc[image_id, "status"] == "ok"
        assert frame.loc[image_id, "error"] == ""
        assert (frame.loc[image_id, "width"], frame.loc[image_id, "height"]) == (16, 12)
    assert frame["width"].isna().sum() == len(expected_errors)
