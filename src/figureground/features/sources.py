"""What to embed: the images of a variants folder (three variants) or of a plain image folder.

Images are decoded by :func:`figureground.stimuli.load_rgb` (re-exported here).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path, PurePosixPath

from figureground import logs
from figureground.conditions import CONDITIONS, ORIGINAL
from figureground.errors import UsageError
from figureground.fsutil import resolve_inside, sha256_bytes, sha256_file
from figureground.stimuli import build_manifest, load_rgb

log = logs.get_logger(__name__)

__all__ = ["VARIANTS", "FeatureSource", "load_rgb", "open_source"]

VARIANTS = CONDITIONS


@dataclasses.dataclass(frozen=True)
class FeatureSource:
    """Image files per variant, aligned on ``image_ids``; rows that failed upstream listed."""

    root: Path
    kind: str  # "variants" or "images"
    image_ids: tuple[str, ...]
    paths: dict[str, tuple[Path, ...]]  # variant -> one path per image id
    concepts: tuple[str, ...]
    failed: tuple[str, ...] = ()
    listing_sha256: str = ""

    @property
    def variants(self) -> tuple[str, ...]:
        """Variant names present, in canonical order."""
        return tuple(v for v in VARIANTS if v in self.paths)


def is_variants_folder(path: Path) -> bool:
    """Whether ``path`` holds ``variants.csv`` and ``variants.json``."""
    return (path / "variants.csv").is_file() and (path / "variants.json").is_file()


def open_source(source: str | Path) -> FeatureSource:
    """Describe ``source``: a variants folder, or an image folder (THINGS layout or plain)."""
    root = Path(source)
    if not root.is_dir():
        raise UsageError(
            f"source {root} is not a folder; expected a variants folder "
            "(variants.csv + variants.json) or a folder of images"
        )
    if is_variants_folder(root):
        return _variants_source(root)
    return _image_folder_source(root)


def _variants_source(root: Path) -> FeatureSource:
    import pandas as pd

    try:
        info = json.loads((root / "variants.json").read_text())
        source_root = Path(info["source_root"])
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(
            f"{root / 'variants.json'} is not a variants description "
            f"(expected a JSON object with source_root): {exc}"
        ) from None
    table = pd.read_csv(root / "variants.csv", dtype=str, keep_default_na=False)
    for column in ("image_id", "path", "status"):
        if column not in table.columns:
            raise UsageError(f"{root / 'variants.csv'} has no column {column!r}")
    ok = table["status"] == "ok"
    failed = tuple(table.loc[~ok, "image_id"])
    if failed:
        log.warning(
            "%d images failed in the variants stage and are skipped: %s",
            len(failed),
            ", ".join(failed[:20]) + (" ..." if len(failed) > 20 else ""),
        )
    rows = table.loc[ok]
    paths: dict[str, list[Path]] = {variant: [] for variant in VARIANTS}
    for rel in rows["path"]:
        paths[ORIGINAL].append(resolve_inside(source_root, rel))
        png = PurePosixPath(rel).with_suffix(".png")
        for variant in VARIANTS[1:]:
            paths[variant].append(resolve_inside(root / variant, png))
    concepts = tuple(rows["concept"]) if "concept" in rows else ("",) * len(rows)
    return FeatureSource(
        root=root.resolve(),
        kind="variants",
        image_ids=tuple(rows["image_id"]),
        paths={k: tuple(v) for k, v in paths.items()},
        concepts=concepts,
        failed=failed,
        listing_sha256=sha256_file(root / "variants.csv"),
    )


def _image_folder_source(root: Path) -> FeatureSource:
    layout = (
        "things" if any((root / d).is_dir() for d in ("object_images", "images_meg")) else "folder"
    )
    manifest = build_manifest(root, layout=layout)
    bad = manifest["status"] != "ok"
    failed = tuple(str(i) for i in manifest.loc[bad, "image_id"])
    if failed:
        log.warning(
            "%d images of %s cannot be read and are skipped: %s",
            len(failed),
            root,
            ", ".join(failed[:20]) + (" ..." if len(failed) > 20 else ""),
        )
    manifest = manifest.loc[~bad]
    ids = tuple(str(i) for i in manifest["image_id"])
    files = tuple(resolve_inside(root, p) for p in manifest["path"])
    concepts = tuple(str(c) for c in manifest["concept"])
    if not ids:
        raise UsageError(f"source {root} holds no readable images")
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        raise UsageError(
            f"source {root} has several images named {dupes[0]!r}; image ids "
            "(file stems) must be unique"
        )
    listing = json.dumps(list(zip(ids, manifest["sha256"].astype(str), strict=True))).encode()
    return FeatureSource(
        root=root.resolve(),
        kind="images",
        image_ids=ids,
        paths={ORIGINAL: files},
        concepts=concepts,
        failed=failed,
        listing_sha256=sha256_bytes(listing),
    )
