"""Where stimulus lists come from: the THINGS layout, plain folders and CSV files.

Each source turns a root folder into a list of :class:`Entry` (image id, concept, exemplar,
relative path, set) without opening any image. Assumptions:

- THINGS names are ``<concept>_<NN><letter>`` and the concept is everything before the last
  underscore (``coat_rack_03s`` -> ``coat_rack``, exemplar 3). In the THINGS layout the
  concept folders live in ``object_images/`` (THINGS) or ``images_meg/`` (THINGS-MEG); the
  first ``exemplars`` images of each concept *by exemplar number* are kept (``x_2b`` before
  ``x_10a``), set ``"exp"``. ``images_test_meg/`` and ``images_catch_meg/`` are kept whole,
  sets ``"test"`` and ``"catch"``. Files in concept folders whose names do not parse are
  skipped and reported.
- Plain folders are walked recursively; the concept is the parent folder's name (for files
  directly in the root, the THINGS rule applied to the file name); the exemplar is parsed from
  the name when it ends in ``_<NN><letter>``, else missing. Set ``"other"``.
- CSV files need a ``path`` column (relative to the root); ``image_id``, ``concept``,
  ``exemplar`` and ``set`` are optional and default as for plain folders. Absolute paths and
  paths leaving the root are refused with one line naming the row.
- Walks follow symbolic links to folders but visit each real folder once (link loops end),
  skip hidden names, and skip (and report) names that are not valid UTF-8.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from figureground import logs
from figureground.errors import UsageError
from figureground.fsutil import resolve_inside

log = logs.get_logger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp"})
SETS = ("exp", "test", "catch", "other")
CONCEPT_PARENTS = ("object_images", "images_meg")
SET_FOLDERS = {"test": "images_test_meg", "catch": "images_catch_meg"}
_THINGS_NAME = re.compile(r"^(?P<concept>.+)_(?P<number>\d+)(?P<letter>[A-Za-z]*)$")


@dataclass(frozen=True)
class Entry:
    """One stimulus before its file is opened; ``path`` is POSIX and relative to the root."""

    image_id: str
    concept: str
    exemplar: int | None
    path: str
    set: str


def parse_things_name(stem: str) -> tuple[str, int | None]:
    """Concept and exemplar number of a THINGS file stem.

    ``coat_rack_03s`` -> ``("coat_rack", 3)``; a stem without a ``_<NN><letter>`` ending gives
    everything before its last underscore (or the whole stem) and ``None``.
    """
    match = _THINGS_NAME.match(stem)
    if match:
        return match["concept"], int(match["number"])
    return (stem.rsplit("_", 1)[0] if "_" in stem else stem), None


def _printable(path: str | os.PathLike) -> str:
    """A path as text even when its name is not valid UTF-8 (bad bytes escaped)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def walk_image_files(top: Path, skipped: list[str]) -> Iterator[Path]:
    """Image files under ``top`` in sorted order; problems are appended to ``skipped``.

    Follows symbolic links to folders, visits each real folder once, ignores hidden names
    and names without an image suffix, and reports names that are not valid UTF-8.
    """
    seen: set[tuple[int, int]] = set()

    def on_error(exc: OSError) -> None:
        skipped.append(
            f"{_printable(exc.filename or top)}: cannot list folder ({exc.strerror or exc})"
        )

    for dirpath, dirnames, filenames in os.walk(top, followlinks=True, onerror=on_error):
        try:
            info = os.stat(dirpath)
        except OSError as exc:
            skipped.append(f"{_printable(dirpath)}: cannot stat folder ({exc.strerror or exc})")
            dirnames[:] = []
            continue
        key = (info.st_dev, info.st_ino)
        if key in seen:
            skipped.append(
                f"{_printable(dirpath)}: folder already visited (symbolic link loop "
                "or duplicate link)"
            )
            dirnames[:] = []
            continue
        seen.add(key)
        dirnames[:] = list(_listed_names(dirpath, dirnames, "folder", skipped))
        for name in _listed_names(dirpath, filenames, "file", skipped):
            if Path(name).suffix.lower() in IMAGE_SUFFIXES:
                yield Path(dirpath, name)


def _listed_names(dirpath: str, names: list[str], kind: str, skipped: list[str]) -> Iterator[str]:
    """``names`` in sorted order without hidden ones; names that are not UTF-8 are appended to
    ``skipped`` when reached (lazily, so the caller's own notes keep their order)."""
    for name in sorted(names):
        if name.startswith("."):
            continue
        if not _is_utf8(name):
            skipped.append(
                f"{_printable(os.path.join(dirpath, name))}: {kind} name is not valid UTF-8"
            )
            continue
        yield name


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def things_entries(
    root: Path, exemplars: int | None, csv_path: Path | None, skipped: list[str]
) -> list[Entry]:
    """Entries of a THINGS / THINGS-MEG folder (see the module docstring)."""
    parents = [root / name for name in CONCEPT_PARENTS if (root / name).is_dir()]
    set_dirs = {key: root / name for key, name in SET_FOLDERS.items() if (root / name).is_dir()}
    if not parents and not set_dirs:
        expected = ", ".join(f"{name}/" for name in (*CONCEPT_PARENTS, *SET_FOLDERS.values()))
        raise UsageError(
            f"{root} has none of {expected}; expected the THINGS layout "
            "(use layout='folder' for a plain folder of images)"
        )
    by_concept: dict[str, list[Entry]] = {}
    for parent in parents:
        for path in walk_image_files(parent, skipped):
            concept, number = parse_things_name(path.stem)
            if number is None:
                skipped.append(f"{_relative(path, root)}: name is not <concept>_<NN><letter>")
                continue
            if concept != path.parent.name:
                log.warning(
                    "%s: concept %r from the file name differs from its folder %r; "
                    "using the file name",
                    _relative(path, root),
                    concept,
                    path.parent.name,
                )
            by_concept.setdefault(concept, []).append(
                Entry(path.stem, concept, number, _relative(path, root), "exp")
            )
    entries: list[Entry] = []
    for concept in sorted(by_concept):
        ordered = sorted(by_concept[concept], key=lambda e: (e.exemplar, e.image_id))
        entries.extend(ordered[:exemplars] if exemplars else ordered)
    for set_name, folder in set_dirs.items():
        for path in walk_image_files(folder, skipped):
            concept, number = parse_things_name(path.stem)
            entries.append(Entry(path.stem, concept, number, _relative(path, root), set_name))
    return entries


def _folder_concept(relative: str) -> tuple[str, int | None]:
    """Concept (parent folder, else THINGS rule on the name) and exemplar of a relative path."""
    rel = Path(relative)
    concept, number = parse_things_name(rel.stem)
    if rel.parent != Path("."):
        concept = rel.parent.name
    return concept, number


def folder_entries(
    root: Path, exemplars: int | None, csv_path: Path | None, skipped: list[str]
) -> list[Entry]:
    """Entries of a plain folder, walked recursively; ``exemplars`` is not applied."""
    entries = []
    for path in walk_image_files(root, skipped):
        relative = _relative(path, root)
        concept, number = _folder_concept(relative)
        entries.append(Entry(path.stem, concept, number, relative, "other"))
    return entries


def _csv_row_entry(row: dict[str, str], where: str, root: Path) -> Entry:
    raw_path = row.get("path", "").strip()
    if not raw_path:
        raise UsageError(f"{where}: empty path; expected a path relative to {root}")
    try:
        resolve_inside(root, raw_path)
    except UsageError as exc:
        raise UsageError(f"{where}: {exc}") from None
    relative = Path(os.path.normpath(raw_path)).as_posix()
    concept, number = _folder_concept(relative)
    exemplar_text = row.get("exemplar", "").strip()
    if exemplar_text:
        try:
            number = int(exemplar_text)
        except ValueError:
            raise UsageError(f"{where}: exemplar {exemplar_text!r} is not an integer") from None
    set_name = row.get("set", "").strip() or "other"
    if set_name not in SETS:
        raise UsageError(f"{where}: set {set_name!r} is not one of {', '.join(SETS)}")
    return Entry(
        row.get("image_id", "").strip() or Path(relative).stem,
        row.get("concept", "").strip() or concept,
        number,
        relative,
        set_name,
    )


def csv_entries(
    root: Path, exemplars: int | None, csv_path: Path | None, skipped: list[str]
) -> list[Entry]:
    """Entries listed in a CSV file with a ``path`` column (paths relative to ``root``)."""
    if csv_path is None:
        raise UsageError("layout 'csv' needs csv_path, a CSV file with a 'path' column")
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise UsageError(
            f"stimulus CSV {csv_path} not found; expected a CSV file with a 'path' column"
        )
    try:
        table = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"{csv_path}: not a readable CSV file ({reason})") from None
    if "path" not in table.columns:
        raise UsageError(
            f"{csv_path} has no 'path' column (columns: {', '.join(map(str, table.columns))})"
        )
    return [
        _csv_row_entry(row, f"{csv_path} row {number}", root)
        for number, row in enumerate(table.to_dict("records"), start=2)
    ]


# Registry: layout name -> function(root, exemplars, csv_path, skipped) -> entries.
SOURCES: dict[str, Callable[[Path, int | None, Path | None, list[str]], list[Entry]]] = {
    "things": things_entries,
    "folder": folder_entries,
    "csv": csv_entries,
}
