"""Composite stimuli with exact masks: objects pasted at varying positions and sizes.

The validation of the figure-versus-ground verdict needs images whose figure and ground are
known exactly and vary independently, as in photographs: objects of many concepts, each
exemplar at its own position and size, on a background drawn independently of the object.
Every image here is a textured object (a smooth random outline, a ball or a horse silhouette)
pasted onto a crop of a texture or photo that scikit-image ships; nothing is downloaded.

- A **concept** fixes the object's outline family, texture source and colour; its exemplars
  differ in texture crop, outline jitter, size, position, flip and shading.
- **Size**: the object's box is ``size_range`` of the image side (default 35-80%).
- **Position**: the box centre is drawn around the image centre with standard deviation
  ``position_sd`` of the side (default 0.12; THINGS objects sit near fixation), clipped so
  the object stays inside the image.
- **Background**: any of the shipped textures and photos, random crop and tint, drawn
  independently of the concept.

Layout (THINGS): ``object_images/<concept>/<concept>_<NN>c.png`` (lossless, so the mask is
exact) and ``ground_truth/<image_id>.png`` (uint8, 255 on the object), plus
``composites.json`` with every recipe. Everything follows from the seed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from figureground import logs
from figureground.demo_stimuli import horse_silhouette, load_source
from figureground.errors import UsageError
from figureground.fsutil import atomic_write_bytes, atomic_write_json
from figureground.provenance import stamp

log = logs.get_logger(__name__)

DESCRIPTION_FILE = "composites.json"
# Object textures: grayscale textures are tinted with the concept's colour.
OBJECT_SOURCES = (
    "brick", "grass", "gravel", "chelsea", "coffee", "astronaut", "rocket",
    "motorcycle_left", "grace_hopper", "moon", "text", "coins",
)  # fmt: skip
BACKGROUND_SOURCES = OBJECT_SOURCES
GRAYSCALE = frozenset({"brick", "grass", "gravel", "moon", "text", "coins"})
SHAPES = ("blob", "blob", "blob", "ball", "horse")  # outline families (blobs most often)
HARMONICS = 5  # radial Fourier terms of a blob outline


def _source_size(name: str, cache: dict[str, tuple[int, int]]) -> tuple[int, int]:
    if name not in cache:
        cache[name] = load_source(name).size
    return cache[name]


def _crop(rng: np.random.Generator, size: tuple[int, int], smallest: float) -> list[int]:
    width, height = size
    side = int(min(width, height) * rng.uniform(smallest, 1.0))
    left = int(rng.integers(0, width - side + 1))
    top = int(rng.integers(0, height - side + 1))
    return [left, top, left + side, top + side]


def _concept_plan(rng: np.random.Generator, index: int) -> dict[str, Any]:
    shape = SHAPES[index % len(SHAPES)] if index < len(SHAPES) else str(rng.choice(SHAPES))
    return {
        "concept": f"object{index + 1:02d}",
        "shape": shape,
        "harmonics": rng.uniform(0.02, 0.16, HARMONICS).round(4).tolist(),
        "phases": rng.uniform(0, 2 * np.pi, HARMONICS).round(4).tolist(),
        "aspect": round(float(rng.uniform(0.6, 1.0)), 3),
        "texture": str(OBJECT_SOURCES[index % len(OBJECT_SOURCES)]),
        "colour": rng.integers(40, 230, 3).tolist(),
    }


def plan_composites(
    concepts: int = 24,
    exemplars: int = 8,
    size: int = 256,
    seed: int = 0,
    size_range: tuple[float, float] = (0.35, 0.8),
    position_sd: float = 0.12,
) -> list[dict[str, Any]]:
    """The recipe of every composite image: a pure function of the arguments."""
    if concepts < 1 or exemplars < 1 or size < 32:
        raise UsageError(
            f"concepts={concepts}, exemplars={exemplars}, size={size}: expected >= 1, >= 1, >= 32"
        )
    low, high = size_range
    if not 0.05 <= low <= high <= 0.95 or position_sd < 0:
        raise UsageError(
            f"size_range={size_range}, position_sd={position_sd}: expected "
            "0.05 <= low <= high <= 0.95 and position_sd >= 0"
        )
    rng = np.random.default_rng(seed)
    sizes: dict[str, tuple[int, int]] = {}
    plan = []
    for c in range(concepts):
        concept = _concept_plan(rng, c)
        for e in range(exemplars):
            side = round(float(size * rng.uniform(low, high)))
            box_w = side if concept["shape"] != "blob" else round(side * concept["aspect"])
            box_h = side
            cx = size / 2 + rng.normal(0, position_sd * size)
            cy = size / 2 + rng.normal(0, position_sd * size)
            left = int(np.clip(round(cx - box_w / 2), 0, size - box_w))
            top = int(np.clip(round(cy - box_h / 2), 0, size - box_h))
            background = str(rng.choice(BACKGROUND_SOURCES))
            plan.append(
                {
                    "image_id": f"{concept['concept']}_{e + 1:02d}c",
                    "concept": concept["concept"],
                    "exemplar": e + 1,
                    "shape": concept["shape"],
                    "harmonics": [
                        round(float(h * rng.uniform(0.85, 1.15)), 4) for h in concept["harmonics"]
                    ],
                    "phases": concept["phases"],
                    "rotation": round(float(rng.uniform(-0.4, 0.4)), 3),
                    "flip": bool(rng.random() < 0.5),
                    "texture": concept["texture"],
                    "texture_crop": _crop(rng, _source_size(concept["texture"], sizes), 0.3),
                    "colour": [
                        int(np.clip(v * rng.uniform(0.9, 1.1), 0, 255)) for v in concept["colour"]
                    ],
                    "box": [left, top, box_w, box_h],
                    "background": background,
                    "background_crop": _crop(rng, _source_size(background, sizes), 0.4),
                    "background_tint": rng.integers(60, 220, 3).tolist(),
                    "light": round(float(rng.uniform(0.5, 0.9)), 3),
                    "size": size,
                }
            )
    return plan


def _texture(name: str, crop: list[int], shape: tuple[int, int], tint: list[int]) -> np.ndarray:
    """A crop of a shipped image as float RGB (H, W, 3); grayscale ones tinted."""
    height, width = shape
    image = load_source(name).crop(tuple(crop)).resize((width, height), Image.Resampling.BILINEAR)
    pixels = np.asarray(image, dtype=np.float64)
    if name in GRAYSCALE or pixels.ndim == 2:
        grey = pixels if pixels.ndim == 2 else pixels.mean(axis=2)
        relative = grey / max(float(grey.mean()), 1.0)
        return np.clip(relative[..., None] * np.asarray(tint, dtype=np.float64), 0, 255)
    return pixels


def _outline(recipe: dict[str, Any]) -> np.ndarray:
    """Boolean object mask filling the recipe's box."""
    width, height = recipe["box"][2], recipe["box"][3]
    if recipe["shape"] == "horse":
        silhouette = Image.fromarray(horse_silhouette().astype(np.uint8) * 255)
        mask = np.asarray(silhouette.resize((width, height), Image.Resampling.BILINEAR)) >= 128
    else:
        y, x = np.mgrid[0:height, 0:width]
        nx = (x + 0.5) / width * 2 - 1
        ny = (y + 0.5) / height * 2 - 1
        radius = np.hypot(nx, ny)
        if recipe["shape"] == "ball":
            mask = radius <= 1.0
        else:
            angle = np.arctan2(ny, nx) + recipe["rotation"]
            bound = np.ones_like(angle)
            for k, (amp, phase) in enumerate(
                zip(recipe["harmonics"], recipe["phases"], strict=True), start=2
            ):
                bound += amp * np.cos(k * angle + phase)
            grid = np.linspace(0, 2 * np.pi, 720)  # scale so the outline touches the box
            peak = (
                1.0
                + sum(
                    a * np.cos(k * grid + p)
                    for k, (a, p) in enumerate(
                        zip(recipe["harmonics"], recipe["phases"], strict=True), start=2
                    )
                ).max()
            )
            bound /= peak
            mask = radius <= bound
    return mask[:, ::-1] if recipe["flip"] else mask


def render_composite(recipe: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Pixels of one composite: ``(rgb uint8 (S, S, 3), mask bool (S, S))``."""
    from scipy import ndimage

    size = recipe["size"]
    canvas = _texture(
        recipe["background"], recipe["background_crop"], (size, size), recipe["background_tint"]
    )
    left, top, width, height = recipe["box"]
    object_mask = _outline(recipe)
    texture = _texture(recipe["texture"], recipe["texture_crop"], (height, width), recipe["colour"])
    if recipe["texture"] not in GRAYSCALE:  # photos: pull toward the concept's colour
        texture = 0.5 * texture + 0.5 * texture.mean(axis=2, keepdims=True) / 128.0 * np.asarray(
            recipe["colour"], dtype=np.float64
        )
    depth = ndimage.distance_transform_edt(object_mask)
    roundness = np.sqrt(np.clip(depth / max(0.15 * min(width, height), 1.0), 0.0, 1.0))
    shade = (1 - recipe["light"]) + recipe["light"] * roundness
    pixels = texture * shade[..., None]
    mask = np.zeros((size, size), dtype=bool)
    mask[top : top + height, left : left + width] = object_mask
    region = canvas[top : top + height, left : left + width]
    region[object_mask] = pixels[object_mask]
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8), mask


def _png(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def make_composite_stimuli(
    out_dir: str | os.PathLike,
    concepts: int = 24,
    exemplars: int = 8,
    size: int = 256,
    seed: int = 0,
    size_range: tuple[float, float] = (0.35, 0.8),
    position_sd: float = 0.12,
) -> Path:
    """Write a composite set (THINGS layout, exact masks) under ``out_dir``; return it.

    Raises
    ------
    UsageError
        ``out_dir`` already holds a composite set made with other settings.
    """
    out = Path(out_dir)
    settings = {
        "concepts": concepts,
        "exemplars": exemplars,
        "size": size,
        "seed": seed,
        "size_range": list(size_range),
        "position_sd": position_sd,
    }
    plan = plan_composites(concepts, exemplars, size, seed, tuple(size_range), position_sd)
    description = out / DESCRIPTION_FILE
    if description.exists():
        import json

        recorded = json.loads(description.read_text(encoding="utf-8"))
        if recorded.get("settings") != settings:
            raise UsageError(
                f"{out} already holds composites made with {recorded.get('settings')}; "
                "choose another output folder"
            )
    else:
        atomic_write_json(
            description,
            {
                "settings": settings,
                "images": plan,
                "layout": "things",
                "masks": "ground_truth/<image_id>.png",
                "provenance": stamp(generator="figureground.stimuli.composites", **settings),
            },
        )
    for recipe in logs.progress(plan, total=len(plan), desc="composites"):
        image_path = out / "object_images" / recipe["concept"] / f"{recipe['image_id']}.png"
        mask_path = out / "ground_truth" / f"{recipe['image_id']}.png"
        if image_path.exists() and mask_path.exists():
            continue
        rgb, mask = render_composite(recipe)
        atomic_write_bytes(mask_path, _png(mask.astype(np.uint8) * 255))
        atomic_write_bytes(image_path, _png(rgb))
    log.info("composite stimuli in %s: %d images", out, len(plan))
    return out
