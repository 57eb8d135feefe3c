"""The stimulus manifest: one row per image with its id, concept, file hash and size.

Building is cheap (hash plus header read per file; see
:func:`figureground.stimuli.loading.check_header`); bad files become rows with ``status ==
"failed"`` and a one-line ``error``, and the build goes on. Rows are sorted by concept,
exemplar (missing last) and image id. ``width`` and ``height`` are the upright size (after
EXIF orientation), missing for files that could not be read. Files that the walk skipped
(names that are not UTF-8, link loops, THINGS names that do not parse) are listed in
``df.attrs["skipped"]`` and logged.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from figureground import logs
from figureground.errors import UsageError
from figureground.fsutil import atomic_path, sha256_file
from figureground.stimuli.loading import DEFAULT_MAX_PIXELS, UnreadableImage, check_header, decode
from figureground.stimuli.sources import SOURCES, Entry

log = logs.get_logger(__name__)

STRING_COLUMNS = ("image_id", "concept", "path", "sha256", "set", "status", "error")
INTEGER_COLUMNS = ("exemplar", "width", "height")
COLUMNS = (
    "image_id",
    "concept",
    "exemplar",
    "path",
    "sha256",
    "width",
    "height",
    "set",
    "status",
    "error",
)
_SHOWN_SKIPS = 5


def _check_unique(entries: list[Entry]) -> None:
    first_path: dict[str, str] = {}
    for entry in entries:
        if entry.image_id in first_path:
            raise UsageError(
                f"duplicate image_id {entry.image_id!r}: {first_path[entry.image_id]}"
                f" and {entry.path}; image ids (file stems) must be unique"
            )
        first_path[entry.image_id] = entry.path


def _sort_key(entry: Entry) -> tuple:
    return (entry.concept, entry.exemplar is None, entry.exemplar or 0, entry.image_id)


def _inspect(path: Path, max_pixels: int, full_decode: bool) -> dict[str, object]:
    """Hash and check one file; returns the manifest columns that depend on its content."""
    row: dict[str, object] = {
        "sha256": "",
        "width": pd.NA,
        "height": pd.NA,
        "status": "ok",
        "error": "",
    }
    try:
        row["sha256"] = sha256_file(path)
    except FileNotFoundError:
        return {**row, "status": "failed", "error": "file not found"}
    except OSError as exc:
        return {**row, "status": "failed", "error": f"cannot read file ({exc.strerror or exc})"}
    try:
        if full_decode:
            height, width = decode(path, max_pixels).shape[:2]
        else:
            width, height = check_header(path, max_pixels)
    except UnreadableImage as exc:
        return {**row, "status": "failed", "error": exc.args[0]}
    return {**row, "width": width, "height": height}


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Manifest columns in their dtypes: text as ``str``, integers as nullable ``Int64``."""
    out = frame.copy()
    for column in STRING_COLUMNS:
        if column in out.columns:
            out[column] = out[column].astype("str")
    for column in INTEGER_COLUMNS:
        if column in out.columns:
            out[column] = out[column].astype("Int64")
    return out


def build_manifest(
    root: str | os.PathLike,
    layout: str = "things",
    exemplars: int | None = 12,
    csv_path: str | os.PathLike | None = None,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    full_decode: bool = False,
) -> pd.DataFrame:
    """List the stimuli under ``root`` with their hashes and sizes.

    Parameters
    ----------
    root : path-like
        Stimulus root folder; every ``path`` in the result is relative to it.
    layout : {"things", "folder", "csv"}
        Where the list comes from (see :mod:`figureground.stimuli.sources`). Giving
        ``csv_path`` selects ``"csv"``.
    exemplars : int or None
        THINGS layout only: keep the first N exemplars of each concept by exemplar number
        (THINGS-MEG used 12); ``None`` or 0 keeps all.
    csv_path : path-like, optional
        CSV file with a ``path`` column (and optional ``image_id``, ``concept``,
        ``exemplar``, ``set``).
    max_pixels : int
        Decompression-bomb guard; larger images become failed rows.
    full_decode : bool
        Decode every image completely (slow, thorough) instead of the header check.

    Returns
    -------
    pandas.DataFrame
        Columns ``image_id, concept, exemplar, path, sha256, width, height, set, status,
        error``; ``attrs["skipped"]`` lists files the walk skipped, with reasons.

    Raises
    ------
    UsageError
        Missing root, unknown layout, duplicate image ids (naming both paths), CSV paths that
        are absolute or leave the root.
    """
    root_path = Path(root)
    skipped: list[str] = []
    entries = _entries(root_path, layout, exemplars, csv_path, skipped)
    rows = [
        _row(entry, root_path, max_pixels, full_decode)
        for entry in logs.progress(entries, total=len(entries), desc="stimuli")
    ]
    frame = _typed(pd.DataFrame(rows, columns=list(COLUMNS)))
    frame.attrs["skipped"] = skipped
    if skipped:
        shown = "; ".join(skipped[:_SHOWN_SKIPS])
        more = f" (and {len(skipped) - _SHOWN_SKIPS} more)" if len(skipped) > _SHOWN_SKIPS else ""
        log.warning("skipped %d file(s): %s%s", len(skipped), shown, more)
    failed = int((frame["status"] != "ok").sum())
    log.info("manifest of %s: %d images, %d failed", root_path, len(frame), failed)
    return frame


def _entries(
    root: Path,
    layout: str,
    exemplars: int | None,
    csv_path: str | os.PathLike | None,
    skipped: list[str],
) -> list[Entry]:
    """The images of the layout, unique ids checked, in manifest order; skips to ``skipped``."""
    if not root.is_dir():
        raise UsageError(f"stimulus root {root} is not a folder")
    if csv_path is not None:
        if layout not in ("things", "csv"):
            raise UsageError(f"csv_path was given with layout {layout!r}; use layout='csv'")
        layout = "csv"
    if layout not in SOURCES:
        raise UsageError(
            f"unknown stimulus layout {layout!r}; expected one of {', '.join(SOURCES)}"
        )
    entries = SOURCES[layout](
        root, exemplars, None if csv_path is None else Path(csv_path), skipped
    )
    _check_unique(entries)
    entries.sort(key=_sort_key)
    return entries


def _row(entry: Entry, root: Path, max_pixels: int, full_decode: bool) -> dict[str, object]:
    """The manifest row of one entry (a warning when its file cannot be used)."""
    details = _inspect(root / entry.path, max_pixels, full_decode)
    if details["status"] != "ok":
        log.warning("%s: %s", entry.path, details["error"])
    return {
        "image_id": entry.image_id,
        "concept": entry.concept,
        "exemplar": pd.NA if entry.exemplar is None else entry.exemplar,
        "path": entry.path,
        "set": entry.set,
        **details,
    }


def write_manifest(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a manifest (or any table with manifest columns) as CSV, atomically."""
    with atomic_path(path, suffix=".csv") as tmp:
        df.to_csv(tmp, index=False, lineterminator="\n")


def read_manifest(path: str | os.PathLike) -> pd.DataFrame:
    """Read a manifest CSV written by :func:`write_manifest`.

    Manifest columns get their dtypes back (text ``str`` with empty strings kept,
    ``exemplar`` / ``width`` / ``height`` nullable ``Int64``); other columns stay text.

    Raises
    ------
    UsageError
        Missing file, missing manifest columns, or non-integer values in integer columns.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"manifest {path} not found")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"manifest {path} is not a readable CSV file ({reason})") from None
    missing = [column for column in COLUMNS if column not in frame.columns]
    if missing:
        raise UsageError(f"manifest {path} lacks column(s) {', '.join(missing)}")
    for column in INTEGER_COLUMNS:
        text = frame[column].str.strip()
        numbers = pd.to_numeric(text.mask(text == ""), errors="coerce")
        bad = text[(text != "") & numbers.isna()]
        if len(bad) or (numbers.dropna() % 1 != 0).any():
            example = bad.iloc[0] if len(bad) else numbers[numbers % 1 != 0].iloc[0]
            raise UsageError(
                f"manifest {path}: column {column!r} holds {example!r}; expected integers"
            )
        frame[column] = numbers.astype("Int64")
    return _typed(frame)
