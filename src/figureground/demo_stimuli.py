"""A small THINGS-layout demo stimulus set built from photos that installed packages ship.

Nothing is downloaded: the photos come from scikit-image's bundled data (``chelsea``,
``coffee``, ``rocket``, ``astronaut``, ``motorcycle_left``, the ``horse`` silhouette and the
``grass`` / ``brick`` / ``gravel`` textures) and matplotlib's ``grace_hopper.jpg``.

The set has six concepts with four exemplars each (24 JPEGs, 300-600 px a side):

- ``cat``, ``coffee_cup``, ``rocket``, ``person``: crops, flips and rescalings of the photos;
- ``horse`` and ``ball``: **composites** with an exactly known object mask. A horse silhouette
  filled with a tinted texture, or a sphere filled with a photo crop, both shaded so they look
  like solid objects, pasted onto a texture or photo background. The mask is written as
  ``ground_truth/<image_id>.png`` (uint8, 0 or 255). The images are JPEGs (quality 95, no
  chroma subsampling), so they match their masks up to compression.

``demo_stimuli.json`` records what each image is (its full recipe); it is written before the
images, so an interrupted run resumes with the same recipe. Everything is a function of the
seed; reruns skip existing files, and every file is written atomically.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from figureground import logs
from figureground.errors import FigureGroundError, UsageError
from figureground.fsutil import atomic_write_bytes, atomic_write_json
from figureground.provenance import stamp

log = logs.get_logger(__name__)

DESCRIPTION_FILE = "demo_stimuli.json"
JPEG_QUALITY = 95
EXEMPLARS = 4
LETTERS = "bsnk"  # fixed exemplar letters: cat_01b, cat_02s, cat_03n, cat_04k
PHOTO_CONCEPTS = {  # concept -> source photo of each exemplar
    "cat": ("chelsea",) * EXEMPLARS,
    "coffee_cup": ("coffee",) * EXEMPLARS,
    "rocket": ("rocket",) * EXEMPLARS,
    "person": ("astronaut", "grace_hopper", "astronaut", "grace_hopper"),
}
COMPOSITE_CONCEPTS = ("ball", "horse")
BALL_TEXTURES = ("chelsea", "coffee", "astronaut", "rocket")
HORSE_COLOURS = ((120, 72, 40), (60, 45, 38), (176, 120, 70), (150, 150, 150))
BACKGROUNDS = (  # (source, tint for grayscale textures or None for colour photos)
    ("grass", (105, 150, 70)),
    ("brick", (185, 105, 85)),
    ("gravel", (165, 155, 140)),
    ("motorcycle_left", None),
)


def _skimage_file(name: str) -> Path:
    import skimage.data

    return Path(skimage.data.__file__).parent / name


def _matplotlib_file(name: str) -> Path:
    from matplotlib import cbook

    return Path(cbook.get_sample_data(name, asfileobj=False))


# Registry: source name -> where the installed package keeps the photo.
SOURCES: dict[str, Callable[[], Path]] = {
    "chelsea": lambda: _skimage_file("chelsea.png"),
    "coffee": lambda: _skimage_file("coffee.png"),
    "astronaut": lambda: _skimage_file("astronaut.png"),
    "rocket": lambda: _skimage_file("rocket.jpg"),
    "motorcycle_left": lambda: _skimage_file("motorcycle_left.png"),
    "horse": lambda: _skimage_file("horse.png"),
    "grass": lambda: _skimage_file("grass.png"),
    "brick": lambda: _skimage_file("brick.png"),
    "gravel": lambda: _skimage_file("gravel.png"),
    "grace_hopper": lambda: _matplotlib_file("grace_hopper.jpg"),
    "moon": lambda: _skimage_file("moon.png"),
    "text": lambda: _skimage_file("text.png"),
    "coins": lambda: _skimage_file("coins.png"),
}


def load_source(name: str) -> Image.Image:
    """A shipped photo as a PIL image (RGB, or L for the grayscale textures)."""
    path = SOURCES[name]()
    if not path.is_file():
        raise FigureGroundError(
            f"demo photo {name!r} is missing at {path}; reinstall "
            "scikit-image / matplotlib with their bundled data"
        )
    with Image.open(path) as image:
        mode = "L" if image.mode in ("L", "I;16") else "RGB"
        return image.convert(mode)


def horse_silhouette() -> np.ndarray:
    """skimage's horse as a boolean mask cropped to its bounding box, True on the horse."""
    with Image.open(SOURCES["horse"]()) as image:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float64)
    luminance = rgba[..., :3].mean(axis=2) * rgba[..., 3] / 255 + 255 - rgba[..., 3]
    horse = luminance < 128
    rows, cols = np.flatnonzero(horse.any(axis=1)), np.flatnonzero(horse.any(axis=0))
    return horse[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _random_crop(rng: np.random.Generator, width: int, height: int, smallest: float) -> list[int]:
    fraction = rng.uniform(smallest, 1.0)
    crop_w, crop_h = round(width * fraction), round(height * fraction)
    left = int(rng.integers(0, width - crop_w + 1))
    top = int(rng.integers(0, height - crop_h + 1))
    return [left, top, left + crop_w, top + crop_h]


def _name(concept: str, index: int) -> str:
    return f"{concept}_{index + 1:02d}{LETTERS[index]}"


def plan_demo_set(seed: int = 0) -> list[dict[str, Any]]:
    """The recipe of every demo image: a pure function of ``seed`` (JSON-serialisable)."""
    rng = np.random.default_rng(seed)
    sizes = {name: load_source(name).size for name in SOURCES if name != "horse"}
    horse_height, horse_width = horse_silhouette().shape
    plan: list[dict[str, Any]] = []
    for concept, sources in PHOTO_CONCEPTS.items():
        for index, source in enumerate(sources):
            crop = _random_crop(rng, *sizes[source], smallest=0.7)
            short_side = int(rng.integers(300, 401))
            crop_w, crop_h = crop[2] - crop[0], crop[3] - crop[1]
            scale = short_side / min(crop_w, crop_h)
            plan.append(
                {
                    "kind": "photo",
                    "image_id": _name(concept, index),
                    "concept": concept,
                    "source": source,
                    "crop": crop,
                    "flip": bool(rng.random() < 0.5),
                    "size": [round(crop_w * scale), round(crop_h * scale)],
                }
            )
    for concept in COMPOSITE_CONCEPTS:
        for index in range(EXEMPLARS):
            width, height = int(rng.integers(380, 513)), int(rng.integers(300, 401))
            background, tint = BACKGROUNDS[(index + (concept == "horse")) % len(BACKGROUNDS)]
            box_w = round(width * rng.uniform(0.4, 0.6))
            box_h = box_w
            if concept == "horse":
                box_h = min(round(box_w * horse_height / horse_width), height)
            box = [
                int(rng.integers(0, width - box_w + 1)),
                int(rng.integers(0, height - box_h + 1)),
                box_w,
                box_h,
            ]
            recipe = {
                "kind": "composite",
                "image_id": _name(concept, index),
                "concept": concept,
                "shape": concept,
                "size": [width, height],
                "box": box,
                "flip": bool(rng.random() < 0.5),
                "background": background,
                "background_tint": tint,
                "background_crop": _random_crop(rng, *sizes[background], smallest=0.6),
            }
            if concept == "ball":
                texture = BALL_TEXTURES[index]
                recipe["texture"] = texture
                recipe["texture_crop"] = _random_crop(rng, *sizes[texture], smallest=0.3)
            else:
                recipe["colour"] = list(HORSE_COLOURS[index])
                recipe["texture"] = "gravel"
                recipe["texture_crop"] = _random_crop(rng, *sizes["gravel"], smallest=0.4)
            recipe["ground_truth"] = f"ground_truth/{recipe['image_id']}.png"
            plan.append(recipe)
    return plan


def _crop_resize(source: str, crop: list[int], size: tuple[int, int]) -> Image.Image:
    return load_source(source).crop(tuple(crop)).resize(tuple(size), Image.Resampling.LANCZOS)


def _tinted(gray: np.ndarray, tint: tuple[int, int, int] | list[int]) -> np.ndarray:
    """A grayscale texture coloured by ``tint`` (float RGB, mean brightness = tint)."""
    relative = gray.astype(np.float64) / max(float(gray.mean()), 1.0)
    return relative[..., None] * np.asarray(tint, dtype=np.float64)


def _background(recipe: dict[str, Any]) -> np.ndarray:
    image = _crop_resize(recipe["background"], recipe["background_crop"], recipe["size"])
    if recipe["background_tint"] is not None:
        return _tinted(np.asarray(image), recipe["background_tint"])
    return np.array(image, dtype=np.float64)


def _ball(recipe: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Mask and lit RGB of a textured sphere filling the recipe's box."""
    diameter = recipe["box"][2]
    coords = (np.arange(diameter) + 0.5) / diameter * 2 - 1
    nx, ny = np.meshgrid(coords, coords)
    mask = nx**2 + ny**2 <= 1.0
    nz = np.sqrt(np.clip(1.0 - nx**2 - ny**2, 0.0, None))
    light = np.array([-0.45, -0.55, 0.70]) / np.linalg.norm([-0.45, -0.55, 0.70])
    diffuse = np.clip(nx * light[0] + ny * light[1] + nz * light[2], 0.0, None)
    halfway = light + np.array([0.0, 0.0, 1.0])  # Blinn-Phong half vector, viewer on +z
    half = halfway / np.linalg.norm(halfway)
    specular = np.clip(nx * half[0] + ny * half[1] + nz * half[2], 0.0, None) ** 40
    texture = np.asarray(
        _crop_resize(recipe["texture"], recipe["texture_crop"], (diameter, diameter)),
        dtype=np.float64,
    )
    rgb = texture * (0.2 + 0.8 * diffuse)[..., None] + 200.0 * specular[..., None]
    return mask, rgb


def _horse(recipe: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Mask and shaded RGB of the horse silhouette filling the recipe's box."""
    from scipy import ndimage

    width, height = recipe["box"][2], recipe["box"][3]
    silhouette = Image.fromarray(horse_silhouette().astype(np.uint8) * 255)
    mask = np.asarray(silhouette.resize((width, height), Image.Resampling.BILINEAR)) >= 128
    depth = ndimage.distance_transform_edt(mask)
    roundness = np.sqrt(np.clip(depth / (0.08 * width), 0.0, 1.0))
    top_light = 1.1 - 0.3 * np.linspace(0.0, 1.0, height)[:, None]
    gray = np.asarray(_crop_resize(recipe["texture"], recipe["texture_crop"], (width, height)))
    texture = 0.8 + 0.2 * _tinted(gray, (1.0, 1.0, 1.0))
    rgb = texture * np.asarray(recipe["colour"], dtype=np.float64)
    return mask, rgb * ((0.45 + 0.55 * roundness) * top_light)[..., None]


# Registry: composite shape -> function(recipe) -> (mask, rgb) over the recipe's box.
SHAPES: dict[str, Callable[[dict[str, Any]], tuple[np.ndarray, np.ndarray]]] = {
    "ball": _ball,
    "horse": _horse,
}


def render(recipe: dict[str, Any]) -> tuple[np.ndarray, np.ndarray | None]:
    """Pixels of one demo image: ``(rgb uint8 (H, W, 3), mask bool (H, W) or None)``."""
    if recipe["kind"] == "photo":
        image = _crop_resize(recipe["source"], recipe["crop"], recipe["size"])
        rgb = np.asarray(image)
        return (rgb[:, ::-1] if recipe["flip"] else rgb).copy(), None
    canvas = _background(recipe)
    object_mask, object_rgb = SHAPES[recipe["shape"]](recipe)
    if recipe["flip"]:
        object_mask, object_rgb = object_mask[:, ::-1], object_rgb[:, ::-1]
    left, top, width, height = recipe["box"]
    mask = np.zeros(canvas.shape[:2], dtype=bool)
    mask[top : top + height, left : left + width] = object_mask
    canvas[top : top + height, left : left + width][object_mask] = object_rgb[object_mask]
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8), mask


def _encode(array: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    options = {"quality": JPEG_QUALITY, "subsampling": 0} if fmt == "JPEG" else {}
    Image.fromarray(array).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _check_existing(description: Path, seed: int, plan: list[dict[str, Any]]) -> None:
    import json

    try:
        recorded = json.loads(description.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(
            f"{description} is unreadable ({exc}); delete it or choose another output folder"
        ) from None
    if recorded.get("seed") != seed or recorded.get("images") != json.loads(json.dumps(plan)):
        raise UsageError(
            f"{description.parent} already holds a demo set made with seed "
            f"{recorded.get('seed')!r} or another recipe; choose another output "
            f"folder for seed {seed}"
        )


def make_demo_stimuli(out_dir: str | os.PathLike, seed: int = 0) -> Path:
    """Write the demo set (THINGS layout) under ``out_dir``; return ``out_dir``.

    Parameters
    ----------
    out_dir : path-like
        Output folder; gets ``object_images/<concept>/<image_id>.jpg``,
        ``ground_truth/<image_id>.png`` for composites and ``demo_stimuli.json``.
    seed : int
        Seed of every random choice (crops, flips, sizes, placements).

    Raises
    ------
    UsageError
        ``out_dir`` already holds a demo set made with another seed or recipe.
    """
    out = Path(out_dir)
    plan = plan_demo_set(seed)
    description = out / DESCRIPTION_FILE
    if description.exists():
        _check_existing(description, seed, plan)
    else:
        atomic_write_json(
            description,
            {
                "seed": seed,
                "images": plan,
                "layout": "things",
                "provenance": stamp(
                    generator="figureground.demo_stimuli", seed=seed, jpeg_quality=JPEG_QUALITY
                ),
            },
        )
    written = 0
    for recipe in logs.progress(plan, total=len(plan), desc="demo stimuli"):
        image_path = out / "object_images" / recipe["concept"] / f"{recipe['image_id']}.jpg"
        mask_path = out / recipe["ground_truth"] if recipe["kind"] == "composite" else None
        if image_path.exists() and (mask_path is None or mask_path.exists()):
            continue
        rgb, mask = render(recipe)
        if mask_path is not None:
            atomic_write_bytes(mask_path, _encode(mask.astype(np.uint8) * 255, "PNG"))
        atomic_write_bytes(image_path, _encode(rgb, "JPEG"))
        written += 1
    log.info(
        "demo stimuli in %s: %d images (%d written, %d already there)",
        out,
        len(plan),
        written,
        len(plan) - written,
    )
    return out
