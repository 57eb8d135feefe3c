"""THINGS-MEG preprocessing of a participant: per-run cache, concatenation, metadata, saving.

Each run is epoched (:func:`~figureground.neural.preprocess.preprocess_run`), z-scored
against its baseline at the raw rate and decimated, then cached as
``<out>/runs/sub-<label>/<run>-epo.fif`` (float32, as the final file) with a JSON record of
the settings and the source files' sizes and modification times; a rerun reuses every cache
whose record still matches and recomputes only the rest. A run that cannot be used (file
unreadable or truncated, events.tsv missing, triggers or photodiode disagreeing with
events.tsv) is logged in one line and skipped.

The authors z-score per session and decimate after concatenating all sessions; both steps act
on each epoch alone (z-score per epoch and channel against its own baseline, decimation by
taking every 6th sample), so doing them per run gives the same numbers while holding one run
at 1200 Hz in memory instead of all 27,048 epochs (about 98 GB in float64). The event samples
of the saved file are recomputed as MNE's nested concatenation at 1200 Hz gives them (runs
within a session, then sessions; 13,560 samples between runs), as in the authors' file.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from figureground import logs
from figureground.errors import DataError
from figureground.neural.preprocess import (
    decimate,
    gaze_at,
    preprocess_run_with_gaze,
    zscore_baseline,
)
from figureground.neural.preprocess_bids import (
    find_runs,
    missing_runs,
    participant_number,
    subject_label,
)
from figureground.neural.preprocess_settings import PreprocessSettings, RunFile

log = logs.get_logger(__name__)

CACHE_VERSION = 2  # 2: gaze epochs cached beside the MEG
INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class CachedRun:
    """A finished run: its epochs (read lazily from the cache) and its cache record."""

    run: RunFile
    epochs: object  # mne.Epochs at the output rate
    raw_sfreq: float
    n_events: int  # events.tsv rows (epochs dropped by MNE included)
    gaze: np.ndarray | None = None  # (epoch, 2, time) gaze x, y (deg) at the output rate


@dataclass(frozen=True)
class ParticipantResult:
    """What :func:`preprocess_participant` wrote and which runs it computed, reused or skipped."""

    epochs_path: Path
    attributes_path: Path | None
    n_epochs: int
    computed: tuple[str, ...]
    reused: tuple[str, ...]
    failed: tuple[tuple[str, str], ...]  # (run, one-line reason)
    gaze_path: Path | None = None


def cache_paths(out_dir: Path, run: RunFile) -> tuple[Path, Path]:
    """The cached epochs and JSON record of ``run`` under ``out_dir``."""
    folder = Path(out_dir) / "runs" / f"sub-{run.subject}"
    return folder / f"{run.name}-epo.fif", folder / f"{run.name}.json"


def gaze_cache_path(out_dir: Path, run: RunFile) -> Path:
    """The cached gaze epochs (``.npy``, float32) of ``run`` under ``out_dir``."""
    return cache_paths(out_dir, run)[0].with_name(f"{run.name}-gaze.npy")


def _stamp(path: Path) -> list[int] | None:
    """Size and modification time of a file, or of the files inside a folder (CTF ``.ds``)."""
    if not path.exists():
        return None
    files = [path] if path.is_file() else [p for p in sorted(path.rglob("*")) if p.is_file()]
    stats = [p.stat() for p in files]
    return [sum(s.st_size for s in stats), max((s.st_mtime_ns for s in stats), default=0)]


def _record(run: RunFile, settings: PreprocessSettings) -> dict:
    return {
        "version": CACHE_VERSION,
        "settings": settings.as_dict(),
        "raw": str(run.raw_path),
        "raw_stamp": _stamp(run.raw_path),
        "events": str(run.events_path),
        "events_stamp": _stamp(run.events_path),
    }


def load_cached_run(out_dir: Path, run: RunFile, settings: PreprocessSettings) -> CachedRun | None:
    """The cached run if its record matches the settings and source files, else None."""
    import mne

    epochs_path, record_path = cache_paths(out_dir, run)
    if not (epochs_path.is_file() and record_path.is_file()):
        return None
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        return None
    expected = _record(run, settings)
    if any(record.get(key) != value for key, value in expected.items()):
        log.info("%s: cache is stale (settings or source files changed); recomputing", run.name)
        return None
    try:
        epochs = mne.read_epochs(epochs_path, preload=False, verbose="error")
        gaze = None
        if record.get("gaze"):
            gaze = np.load(gaze_cache_path(out_dir, run), allow_pickle=False)
            if gaze.shape != (len(epochs), 2, len(epochs.times)):
                raise ValueError(f"gaze cache of shape {gaze.shape}")
    except Exception as exc:  # a damaged cache is recomputed, never trusted
        log.warning("%s: cache unreadable (%s); recomputing", run.name, type(exc).__name__)
        return None
    return CachedRun(run, epochs, float(record["raw_sfreq"]), int(record["n_events"]), gaze)


def compute_run(out_dir: Path, run: RunFile, settings: PreprocessSettings) -> CachedRun:
    """Epoch, z-score and decimate ``run``, then cache it (epochs first, record last)."""
    epochs, gaze = preprocess_run_with_gaze(run.raw_path, run.events_path, settings)
    raw_sfreq, n_events = float(epochs.info["sfreq"]), len(epochs.drop_log)
    zscore_baseline(epochs, settings)
    decimate(epochs, settings)
    epochs.set_annotations(None)
    epochs_path, record_path = cache_paths(out_dir, run)
    epochs_path.parent.mkdir(parents=True, exist_ok=True)
    record_path.unlink(missing_ok=True)
    partial = epochs_path.with_name(f"{run.name}.partial-epo.fif")
    epochs.save(partial, overwrite=True, fmt="single", verbose="error")
    os.replace(partial, epochs_path)
    if gaze is not None:
        gaze = gaze_at(gaze, raw_sfreq, settings.tmin, epochs.times).astype(np.float32)
        gaze_path = gaze_cache_path(out_dir, run)
        partial_gaze = gaze_path.with_name(f"{run.name}.partial-gaze.npy")
        np.save(partial_gaze, gaze, allow_pickle=False)
        os.replace(partial_gaze, gaze_path)
    record = _record(run, settings) | {
        "raw_sfreq": raw_sfreq,
        "n_events": n_events,
        "gaze": gaze is not None,
    }
    partial_record = record_path.with_suffix(".partial")
    partial_record.write_text(json.dumps(record, indent=1))
    os.replace(partial_record, record_path)
    cached = load_cached_run(out_dir, run, settings)
    return cached or CachedRun(run, epochs, raw_sfreq, n_events, gaze)


def authors_event_samples(samples: list[np.ndarray], tmax: float, raw_sfreq: float) -> np.ndarray:
    """Event samples after MNE's ``concatenate_epochs(add_offset=True)`` at the raw rate.

    Run ``k`` is shifted by the sum over earlier runs of (their largest sample + ``(10 +
    tmax) * raw_sfreq``); nesting runs in sessions gives the same offsets. Past the int32
    range MNE numbers the events 1, 2, ... instead, and so does this.
    """
    shift = int(np.int64((10 + tmax) * raw_sfreq))
    offset, shifted, overflow = 0, [], False
    for part in samples:
        shifted.append(np.asarray(part, dtype=np.int64) + offset)
        if len(part):
            offset += int(np.max(part)) + shift
        overflow |= offset > INT32_MAX
    out = np.concatenate(shifted) if shifted else np.zeros(0, dtype=np.int64)
    return np.arange(1, len(out) + 1, dtype=np.int64) if overflow else out


def concatenate_runs(runs: list[CachedRun]):
    """One Epochs of all runs in order, with the first run's head position (as the authors)."""
    import mne

    first = runs[0].epochs.info["dev_head_t"]
    for cached in runs:
        cached.epochs.info["dev_head_t"] = first
    samples = [cached.epochs.events[:, 0] for cached in runs]
    try:
        epochs = mne.concatenate_epochs([cached.epochs for cached in runs], verbose="error")
    except ValueError as exc:  # channels, times or baseline differ between runs
        names = ", ".join(cached.run.name for cached in runs[:2])
        raise DataError(f"runs cannot be concatenated ({names}, ...): {exc}") from None
    epochs.events[:, 0] = authors_event_samples(samples, epochs.tmax, runs[0].raw_sfreq)
    return epochs


def _run_rows(table: pd.DataFrame, cached: CachedRun, csv_path: Path) -> pd.DataFrame:
    """The CSV rows of one run (by session_nr, run_nr), kept epochs only, checked by code."""
    run = cached.run
    try:
        session, number = int(run.session), int(run.run)
    except (TypeError, ValueError):
        raise DataError(
            f"{run.name}: session/run labels {run.session!r}/{run.run!r} are not numbers; "
            f"cannot match the rows of {csv_path.name}"
        ) from None
    rows = table[(table["session_nr"] == session) & (table["run_nr"] == number)]
    if len(rows) != cached.n_events:
        raise DataError(
            f"{csv_path}: {len(rows)} rows with session_nr={session} run_nr={number}, but "
            f"{run.name} has {cached.n_events} events.tsv rows"
        )
    rows = rows.iloc[np.asarray(cached.epochs.selection)]
    if "things_image_nr" in rows.columns:
        catch = rows.get("trial_type", pd.Series("", index=rows.index)).astype(str) == "catch"
        image_nr = pd.to_numeric(rows["things_image_nr"], errors="coerce").to_numpy()
        codes = cached.epochs.events[:, 2]
        differ = np.flatnonzero(~catch.to_numpy() & (image_nr != codes))
        if differ.size:
            k = int(differ[0])
            raise DataError(
                f"{csv_path}: row {rows.index[k]} has things_image_nr={image_nr[k]:g} but "
                f"{run.name} event {k + 1} has code {codes[k]}; CSV and events.tsv disagree"
            )
    return rows


def run_metadata(csv_path: Path, runs: list[CachedRun]) -> tuple[pd.DataFrame, bool]:
    """Metadata rows of the kept epochs, and whether they are the whole CSV in its order.

    Rows are matched to runs by ``session_nr`` and ``run_nr``; without those columns the CSV
    is used whole, which needs every epoch of every run (as the authors assign it).
    """
    table = pd.read_csv(csv_path)
    n_epochs = sum(len(cached.epochs) for cached in runs)
    if not {"session_nr", "run_nr"} <= set(table.columns):
        if len(table) != n_epochs:
            raise DataError(
                f"{csv_path}: {len(table)} rows and no session_nr/run_nr columns, but "
                f"{n_epochs} epochs were kept; cannot tell which rows belong to them"
            )
        return table, True
    rows = pd.concat([_run_rows(table, cached, csv_path) for cached in runs])
    whole = np.array_equal(rows.index.to_numpy(), np.arange(len(table)))
    return rows.reset_index(drop=True), whole


def _compute_task(run: RunFile, out: Path, settings: PreprocessSettings) -> tuple[str, str | None]:
    """One Dask task: compute and cache ``run``; (name, None) or (name, the one-line reason)."""
    try:
        compute_run(out, run, settings)
    except DataError as exc:
        return run.name, str(exc)
    return run.name, None


def _process_runs(
    out: Path, runs: list[RunFile], settings: PreprocessSettings, resume: bool, scheduler: Any
):
    """Cached runs in run order, and the names computed, reused and failed.

    Runs without an up-to-date cache are computed one task per run (``scheduler``: serial, a
    Dask address or client; each task writes its run's cache, the runs are read back here).
    """
    from figureground.parallel import map_batches

    cached = {run.name: load_cached_run(out, run, settings) if resume else None for run in runs}
    reused = [name for name, found in cached.items() if found is not None]
    pending = [run for run in runs if cached[run.name] is None]
    failed: dict[str, str] = {}
    desc = f"preprocess sub-{runs[0].subject}"
    for name, reason in map_batches(_compute_task, pending, scheduler, out, settings, desc=desc):
        if reason is not None:
            log.warning("skipped run %s", reason)
            failed[name] = reason
    computed = [run.name for run in pending if run.name not in failed]
    done = []
    for run in runs:
        if run.name in failed:
            continue
        found = cached[run.name] or load_cached_run(out, run, settings)
        if found is None:
            raise DataError(f"{run.name}: its cache under {out} could not be read back")
        done.append(found)
    return done, computed, reused, [(name, failed[name]) for name in sorted(failed)]


def participant_gaze(runs: list[CachedRun]) -> np.ndarray | None:
    """(epoch, 2, time) gaze of the concatenated runs (NaN for runs without), or None."""
    if all(cached.gaze is None for cached in runs):
        return None
    parts = []
    for cached in runs:
        shape = (len(cached.epochs), 2, len(cached.epochs.times))
        parts.append(cached.gaze if cached.gaze is not None else np.full(shape, np.nan))
    return np.concatenate(parts).astype(np.float32)


def write_gaze(path: Path, gaze: np.ndarray, times: np.ndarray) -> Path:
    """``gaze_P{n}.npz``: ``gaze`` (epoch, 2 [x, y deg], time), ``times`` (s), in epoch order."""
    partial = path.with_name(f"{path.stem}.partial.npz")
    np.savez(partial, gaze=gaze, times=np.asarray(times, dtype=np.float64))
    os.replace(partial, path)
    return path


def preprocess_participant(
    bids_root: str | Path,
    participant: str | int,
    out_dir: str | Path,
    settings: PreprocessSettings | None = None,
    resume: bool = True,
    scheduler: Any = "serial",
) -> ParticipantResult:
    """Preprocess every run of ``participant`` and save ``preprocessed_P{n}-epo.fif``.

    Writes into ``out_dir`` the epochs (split by MNE at 2 GB into ``-epo-1.fif`` ...) and,
    when ``<bids_root>/sourcedata/sample_attributes_P{n}.csv`` exists, the metadata attached
    to them: a copy of that CSV, or only the rows of the kept epochs when runs were skipped;
    and, when any run has eye tracking, ``gaze_P{n}.npz`` (:func:`write_gaze`, one row per
    saved epoch). Runs are computed one Dask task each (``scheduler``). Runs named in the
    tree without a recording are reported as failed. Raises DataError when no run could be
    used or the CSV does not match the events.
    """
    import mne

    settings = settings or PreprocessSettings()
    label = subject_label(bids_root, participant)
    number = participant_number(label)
    runs = find_runs(bids_root, label)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    absent = missing_runs(bids_root, runs)
    for name, reason in absent:
        log.warning("skipped run %s: %s", name, reason)
    done, computed, reused, failed = _process_runs(out, runs, settings, resume, scheduler)
    failed = sorted([*failed, *absent])
    if not done:
        raise DataError(f"sub-{label}: none of {len(runs)} runs could be preprocessed")
    gaze = participant_gaze(done)
    epochs = concatenate_runs(done)
    csv_path = Path(bids_root) / "sourcedata" / f"sample_attributes_P{number}.csv"
    attributes_out = out / csv_path.name
    whole = False
    if csv_path.is_file():
        metadata, whole = run_metadata(csv_path, done)
        with mne.utils.use_log_level("error"):
            epochs.metadata = metadata
    else:
        log.info("%s not found; the epochs carry no metadata", csv_path)
    target = out / f"preprocessed_P{number}-epo.fif"
    for stale in out.glob(f"preprocessed_P{number}-epo-*.fif"):
        stale.unlink()
    epochs.save(target, overwrite=True, fmt="single", verbose="error")
    gaze_path = out / f"gaze_P{number}.npz"
    gaze_path.unlink(missing_ok=True)
    if gaze is not None:
        write_gaze(gaze_path, gaze, epochs.times)
    if epochs.metadata is None:
        attributes_out = None
    elif whole:
        if attributes_out.resolve() != csv_path.resolve():
            shutil.copyfile(csv_path, attributes_out)
    else:
        epochs.metadata.to_csv(attributes_out, index=False)
        log.warning("%s holds only the rows of the %d kept epochs", attributes_out, len(epochs))
    log.info(
        "%s: %d epochs from %d runs (%d computed, %d reused, %d skipped)",
        target.name,
        len(epochs),
        len(done),
        len(computed),
        len(reused),
        len(failed),
    )
    return ParticipantResult(
        target,
        attributes_out,
        len(epochs),
        tuple(computed),
        tuple(reused),
        tuple(failed),
        gaze_path if gaze is not None else None,
    )
