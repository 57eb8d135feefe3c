"""One image's variants: parameters, the images, their metrics, and the record that marks it done.

The per-image half of the variants stage (:mod:`figureground.variants.run` runs it over a
manifest; :mod:`figureground.variants.batched` and :mod:`figureground.variants.distributed`
run it in batches and on Dask). The folder layout is :func:`variant_path`'s.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

import numpy as np

from figureground import logs
from figureground.conditions import NO_BACKGROUND, NO_FOREGROUND
from figureground.errors import FigureGroundError, UsageError
from figureground.fsutil import (
    atomic_write_bytes,
    atomic_write_json,
    is_disk_full,
    resolve_inside,
    sha256_bytes,
    sha256_file,
)
from figureground.variants.compose import (
    apply_alpha_floor,
    decode_png,
    encode_png,
    no_background,
    quantize_alpha,
)
from figureground.variants.inpaint import INPAINT_METHODS, inpaint, object_mask
from figureground.variants.metrics import haze_metrics, mask_metrics, silhouette_metrics
from figureground.variants.segmenters import (
    Segmenter,
)

log = logs.get_logger(__name__)

VARIANTS: tuple[str, ...] = (NO_BACKGROUND, NO_FOREGROUND, "mask")
RECORDS = "records"
FORMAT_VERSION = 1  # of the images (part of the record key: a change remakes every image)
METRICS_VERSION = 2  # of the record's metrics (a change recomputes them from the saved images)
METRIC_COLUMNS = (
    "fg_fraction",
    "mask_confidence",
    "bbox",
    "little_background",
    "haze",
    "haze_fraction",
    "silhouette_auc",
    "silhouette_detectability",
)
FLOAT_METRICS = (
    "fg_fraction",
    "mask_confidence",
    "haze",
    "haze_fraction",
    "silhouette_auc",
    "silhouette_detectability",
)


@dataclass(frozen=True)
class VariantParams:
    """Everything that changes the variant images; hashed into each image's record key.

    Attributes
    ----------
    segmenter
        Segmenter spec (``isnet``, ``u2net``, ``rembg:<model>``, ``grabcut``, ``masks:<dir>``).
    threshold, dilate
        Alpha threshold of the object mask and its dilation in pixels.
    inpaint, inpaint_radius, inpaint_max_side
        OpenCV method (``telea`` / ``ns``), its radius, and the long side above which the fill
        is computed at reduced resolution (0 = always full resolution).
    fill
        Background colour of the no-background image.
    little_background_above
        ``fg_fraction`` above which an image is flagged ``little_background``.
    alpha_floor
        Alpha below which the no-background image shows only the fill colour (0 = off: the
        soft alpha as the segmenter gave it). Must lie in [0, threshold]. The saved mask is
        the segmenter's alpha either way; a value other than 0 is part of the record key, so
        changing it remakes every image.
    """

    segmenter: str = "isnet"
    threshold: float = 0.5
    dilate: int = 5
    inpaint: str = "telea"
    inpaint_radius: int = 3
    inpaint_max_side: int = 1024
    fill: tuple[int, int, int] = (255, 255, 255)
    little_background_above: float = 0.9
    alpha_floor: float = 0.0

    # Fields added after the first records were written, with the value that makes the images
    # those records describe: at that value a field stays out of the record key, so records
    # made before it existed keep their key and are reused.
    ADDED_LATER: ClassVar[dict[str, Any]] = {"alpha_floor": 0.0}

    def validate(self) -> None:
        """Raise :class:`UsageError` naming the first bad value."""
        if self.inpaint not in INPAINT_METHODS:
            raise UsageError(
                f"inpainting method {self.inpaint!r} is unknown; expected one of "
                f"{', '.join(INPAINT_METHODS)}"
            )
        if not 0.0 <= self.threshold < 1.0:
            raise UsageError(f"mask threshold {self.threshold} is outside [0, 1)")
        if self.dilate < 0 or self.inpaint_radius < 1 or self.inpaint_max_side < 0:
            raise UsageError(
                f"dilate={self.dilate}, inpaint_radius={self.inpaint_radius}, "
                f"inpaint_max_side={self.inpaint_max_side}: expected dilate >= 0, "
                "radius >= 1, max side >= 0 (0 = full resolution)"
            )
        if len(self.fill) != 3 or not all(0 <= int(c) <= 255 for c in self.fill):
            raise UsageError(f"fill colour {self.fill} is not three values in 0..255")
        if not 0.0 <= self.alpha_floor < 1.0:
            raise UsageError(f"alpha floor {self.alpha_floor} is outside [0, 1)")
        if self.alpha_floor > self.threshold:
            raise UsageError(
                f"alpha floor {self.alpha_floor} is above the mask threshold {self.threshold}: "
                "it would remove object pixels from the no-background image that the "
                "no-foreground image fills; expected alpha floor <= threshold"
            )

    def hashed(self) -> dict[str, Any]:
        """The fields hashed into the record key: all but those of :attr:`ADDED_LATER` that
        have their earlier value (with the defaults the key is the one of earlier versions)."""
        values = asdict(self)
        for name, earlier in self.ADDED_LATER.items():
            if values[name] == earlier:
                del values[name]
        return values

    def columns(self) -> dict[str, Any]:
        """The parameter columns of variants.csv."""
        values = asdict(self)
        values["fill"] = ",".join(str(int(c)) for c in self.fill)
        return values


def variant_path(out_dir: str | os.PathLike, rel_path: str, variant: str) -> Path:
    """Path of one variant image: ``out_dir/<variant>/<rel_path without suffix>.png``."""
    if variant not in (*VARIANTS, RECORDS):
        raise UsageError(f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    suffix = ".json" if variant == RECORDS else ".png"
    rel = PurePosixPath(rel_path).with_suffix(suffix)
    return resolve_inside(Path(out_dir) / variant, rel)


def make_image_variants(
    rgb: np.ndarray, alpha: np.ndarray, params: VariantParams
) -> dict[str, np.ndarray]:
    """The three variant images of one RGB image from its soft alpha.

    The alpha is quantised to the 8-bit mask that is saved first, so every output can be
    recomputed from the saved mask. The saved mask is the segmenter's alpha, quantised and
    nothing else. The no-background image composites the object with that alpha after the
    floor (:func:`~figureground.variants.compose.apply_alpha_floor`: values below
    ``params.alpha_floor`` become 0; the default 0 changes nothing). The no-foreground image
    fills the thresholded, dilated saved mask, which the floor does not touch (it is at most
    the threshold).
    """
    alpha8 = quantize_alpha(alpha)
    fill_region = object_mask(alpha8.astype(np.float32) / 255.0, params.threshold, params.dilate)
    return {
        "mask": alpha8,
        NO_BACKGROUND: no_background(
            rgb, apply_alpha_floor(alpha8, params.alpha_floor), params.fill
        ),
        NO_FOREGROUND: inpaint(
            rgb, fill_region, params.inpaint, params.inpaint_radius, params.inpaint_max_side or None
        ),
    }


def image_metrics(images: dict[str, np.ndarray], params: VariantParams) -> dict[str, Any]:
    """The metrics of one image's record, from its three variant images (made or read back).

    Mask metrics (:func:`~figureground.variants.metrics.mask_metrics`) of the saved mask;
    ``haze`` and ``haze_fraction`` (:func:`~figureground.variants.metrics.haze_metrics`) of
    the no-background image with the alpha it was composited with (after the floor), the
    background being where that alpha is at most ``params.threshold``;
    ``silhouette_auc`` and ``silhouette_detectability``
    (:func:`~figureground.variants.metrics.silhouette_metrics`) of the no-foreground image
    in the region that was inpainted. Undefined values are ``None``.
    """
    alpha8 = images["mask"]
    alpha = alpha8.astype(np.float32) / 255.0
    composited = apply_alpha_floor(alpha8, params.alpha_floor).astype(np.float32) / 255.0
    metrics = {
        **mask_metrics(alpha, params.threshold, params.little_background_above),
        **haze_metrics(composited, images[NO_BACKGROUND], params.fill, params.threshold),
        **silhouette_metrics(
            images[NO_FOREGROUND], object_mask(alpha, params.threshold, params.dilate)
        ),
    }
    return {
        name: None if isinstance(value, float) and math.isnan(value) else value
        for name, value in metrics.items()
    }


def task_params(task: dict[str, Any]) -> VariantParams:
    """The :class:`VariantParams` of a task (its ``params`` went through JSON or pickling)."""
    return VariantParams(**{**task["params"], "fill": tuple(task["params"]["fill"])})


def _read_record(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def outputs_intact(out_dir: Path, rel: str, record: dict[str, Any]) -> bool:
    """Whether the three outputs of ``rel`` exist and match the hashes in its record.

    Records written before output hashes were recorded are trusted when the files exist.
    A damaged output is named in a warning.
    """
    hashes = record.get("outputs", {})
    for variant in VARIANTS:
        path = variant_path(out_dir, rel, variant)
        if not path.is_file():
            return False
        if variant in hashes and sha256_file(path) != hashes[variant]:
            log.warning("%s does not match its recorded SHA-256; it is made again", path)
            return False
    return True


def reused_record(task: dict[str, Any]) -> dict[str, Any] | None:
    """The record of an image already done with the same inputs, or ``None``.

    A record of an earlier :data:`METRICS_VERSION` gets its metrics computed again from the
    saved images (:func:`refreshed_record`); ``None`` when those cannot be read.
    """
    out_dir, rel = Path(task["out_dir"]), task["path"]
    previous = _read_record(variant_path(out_dir, rel, RECORDS))
    if not (
        previous
        and previous.get("image_sha256") == task["sha256"]
        and previous.get("params_hash") == task["params_hash"]
        and outputs_intact(out_dir, rel, previous)
    ):
        return None
    if previous.get("metrics_version") != METRICS_VERSION:
        previous = refreshed_record(task, previous)
        if previous is None:
            return None
    return {**previous, "image_id": task["image_id"], "skipped": True}


def refreshed_record(task: dict[str, Any], record: dict[str, Any]) -> dict[str, Any] | None:
    """``record`` with the current metrics, computed from the saved images and written back.

    Returns the record marked ``metrics_refreshed`` (not saved), or ``None`` (with a
    warning) when a saved image cannot be read: the image is then made again. A full disk is
    raised.
    """
    out_dir, rel = Path(task["out_dir"]), task["path"]
    try:
        images = {v: decode_png(variant_path(out_dir, rel, v).read_bytes()) for v in VARIANTS}
        metrics = image_metrics(images, task_params(task))
        updated = {**record, **metrics, "metrics_version": METRICS_VERSION}
        atomic_write_json(variant_path(out_dir, rel, RECORDS), updated)
    except Exception as exc:
        if is_disk_full(exc):
            raise
        log.warning("%s: metrics cannot be recomputed (%s); it is made again", rel, exc)
        return None
    return {**updated, "metrics_refreshed": True}


def failed_record(task: dict[str, Any], exc: Exception) -> dict[str, Any]:
    """The record of an image that failed; a full disk is raised instead (all would fail)."""
    if is_disk_full(exc):
        raise exc
    message = str(exc).splitlines()[0] if str(exc) else ""
    if not isinstance(exc, FigureGroundError):
        message = f"{type(exc).__name__}: {message}"
    return {"image_id": task["image_id"], "status": "failed", "error": message}


def write_image_variants(
    task: dict[str, Any], rgb: np.ndarray, alpha: np.ndarray
) -> dict[str, Any]:
    """Make and write the three variants of one image, then its record (last)."""
    out_dir, rel = Path(task["out_dir"]), task["path"]
    params = task_params(task)
    images = make_image_variants(rgb, alpha, params)
    metrics = image_metrics(images, params)
    hashes = {}
    for variant in VARIANTS:
        data = encode_png(images[variant])
        atomic_write_bytes(variant_path(out_dir, rel, variant), data)
        hashes[variant] = sha256_bytes(data)
    key = {"image_sha256": task["sha256"], "params_hash": task["params_hash"]}
    record = {
        **key,
        "status": "ok",
        "error": "",
        **metrics,
        "metrics_version": METRICS_VERSION,
        "outputs": hashes,
    }
    atomic_write_json(variant_path(out_dir, rel, RECORDS), record)  # last: marks it done
    return {**record, "image_id": task["image_id"], "skipped": False}


def process_image(task: dict[str, Any], segmenter: Segmenter) -> dict[str, Any]:
    """Make (or reuse) the variants of one image; return its record.

    Never raises for a bad image; a full disk is raised (every later image would fail too).
    """
    from figureground.stimuli import load_rgb

    if reused := reused_record(task):
        return reused
    try:
        rgb = load_rgb(task["source"])
        return write_image_variants(task, rgb, segmenter(rgb, task["image_id"]))
    except Exception as exc:  # one bad image in 20,000 is reported and skipped
        return failed_record(task, exc)
