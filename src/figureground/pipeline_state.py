"""What the stages of a run share: the run's state, its stage cache and its lock.

Part of :mod:`figureground.pipeline`, which re-exports every name here.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from figureground import logs
from figureground.config import StudyConfig
from figureground.features.store import FeatureStore
from figureground.fsutil import (
    atomic_write_json,
    folder_lock,
    params_hash,
    sha256_file,
    tree_fingerprint,
)
from figureground.provenance import stamp

if TYPE_CHECKING:
    from figureground.neural.recording import Recording

log = logs.get_logger("figureground.pipeline")  # the log lines keep the name of the stages' module


@dataclass
class RunState:
    """What the stages of one run produced, passed from stage to stage."""

    run_dir: Path
    study: StudyConfig
    stimulus_root: Path | None = None
    manifest_path: Path | None = None
    variants_dir: Path | None = None
    feature_stores: dict[str, FeatureStore] = field(default_factory=dict)
    neural_files: dict[str, Recording] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    # Where variants, features and permutations run: "serial" or a Dask Client (not hashed:
    # results do not depend on it).
    scheduler: Any = "serial"


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``run_dir``; a second run on it stops with a clear message."""
    with folder_lock(run_dir, "run folder"):
        yield


def fingerprint(path: Path) -> str:
    """A cheap identity of a file or folder tree: names, sizes and modification times.

    Used for stage keys of large inputs (MEG files of 8 GB); content hashes are recorded by
    the stages themselves where they matter.
    """
    entries = []
    paths = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for item in paths:
        if item.name.startswith(".") or "/." in item.as_posix():
            continue
        info = item.stat()
        entries.append((item.relative_to(path.parent).as_posix(), info.st_size, info.st_mtime_ns))
    return params_hash(entries)


class StageCache:
    """Stage keys stored in ``RUN/.stages``; a stage runs only when its key changed."""

    def __init__(self, run_dir: Path) -> None:
        self.folder = run_dir / ".stages"

    def is_done(self, stage: str, key: str) -> dict[str, Any] | None:
        """The stored record when ``stage`` finished with ``key``, else None."""
        record_path = self.folder / f"{stage}.json"
        if not record_path.exists():
            return None
        try:
            record = json.loads(record_path.read_text())
        except (OSError, json.JSONDecodeError):
            log.warning("stage record %s is damaged; the stage will run again", record_path)
            return None
        if record.get("key") != key:
            return None
        for output, digest in record.get("outputs", {}).items():
            out_path = Path(output)
            if not out_path.exists():
                log.warning("%s is missing; stage %s runs again", out_path, stage)
                return None
            if digest and _output_digest(out_path) != digest:
                log.warning(
                    "%s differs from what stage %s wrote (hash mismatch); it runs again",
                    out_path,
                    stage,
                )
                return None
        return record

    def mark_done(self, stage: str, key: str, outputs: list[Path], **extra: Any) -> None:
        """Record that ``stage`` finished with ``key`` and wrote ``outputs``.

        Files are recorded by SHA-256, folders by the names and sizes of their files (a
        truncated or missing image or chunk file makes the stage run again, and the stage
        then finds the damaged piece by its own per-item hashes).
        """
        hashes = {str(p): _output_digest(p) for p in outputs}
        atomic_write_json(self.folder / f"{stage}.json", {"key": key, "outputs": hashes, **extra})


def _output_digest(path: Path) -> str:
    if path.is_file():
        return sha256_file(path)
    return f"tree:{tree_fingerprint(path)}" if path.is_dir() else ""


def run_provenance(state: RunState) -> dict[str, Any]:
    """The study, its inputs and library versions, for summary.json and the report."""
    stores = {key: info.record() for key, info in state.feature_stores.items()}
    return stamp(
        study=state.study.to_dict(),
        stimulus_root=str(state.stimulus_root),
        feature_stores=stores,
        neural_files={p: r.record() for p, r in state.neural_files.items()},
    )
