"""THINGS-MEG raw runs (OpenNeuro ds004212, BIDS) to epochs, as the authors' step 1 does.

The authors' script (ViCCo-Group/THINGS-data ``MEG/step1_preprocessing.py``) does, per run:
read the CTF ``.ds`` with ``mne.io.read_raw_ctf``; patch two known signal dropouts with each
channel's median; drop ``MRO11-1609``; find the ``UPPT001`` triggers of amplitude 64 with
``mne.find_events(..., initial_event=True)`` and replace their samples by the events.tsv
``sample`` column (onsets measured with the optical sensor) and their codes by its ``value``
column (``N/A`` -> 999999); ``raw.filter(0.1, 40)`` with MNE's defaults; ``mne.Epochs`` from
-0.1 to 1.3 s, ``picks='mag'``, ``baseline=None``. Per session it z-scores every epoch and
channel against its own baseline (``mne.baseline.rescale(..., (None, 0), mode='zscore')`` at
1200 Hz); across sessions it concatenates, attaches ``sample_attributes_P{n}.csv``,
decimates to 200 Hz and saves ``preprocessed_P{n}-epo.fif``.

This module holds the per-run steps (:func:`preprocess_run`) and the per-epoch steps
(:func:`zscore_baseline`, :func:`decimate`); :mod:`figureground.neural.preprocess_io` holds
the participant level (cache, concatenation, metadata, saving).

What ``picks='mag'`` selects: MNE's CTF reader gives the 272 axial gradiometers kind
``FIFFV_MEG_CH`` with unit tesla, which MNE types ``'mag'``; the reference sensors are
``FIFFV_REF_MEG_CH`` (type ``'ref_meg'``) and the ADC, clock and trigger channels ``misc``
or ``stim``, so after dropping MRO11 ``'mag'`` is the 271 sensors.

Onset checks (not in the authors' step 1; they change no data). The authors' only check is
implicit: ``events[:, 0] = event_file['sample']`` fails unless the run has exactly one
64-trigger per events.tsv row. We raise that as a DataError, and add two checks that a wrong
or shifted events.tsv cannot pass: every events.tsv onset must lie within
``onset_tolerance`` of a photodiode onset of ``UADC016-2104`` (a rise of more than 1.5 from
one sample to the next, the first of each burst closer than 1000 samples: the rule of the
authors' ``MEG/eyetracking/step1_eyetracking_preprocess.py``), and the lag from each trigger
to its events.tsv onset must stay within ``lag_tolerance`` of the run's median lag.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from figureground import logs
from figureground.errors import DataError, UsageError
from figureground.neural.sensors import N_THINGS_MEG_SENSORS

log = logs.get_logger(__name__)

RAW_EXTENSIONS = (".ds", ".fif", ".con", ".sqd", ".pdf")  # MEG formats mne-bids reads
BASELINE_MODES = ("mean", "ratio", "logratio", "percent", "zscore", "zlogratio")


@dataclass(frozen=True)
class Dropout:
    """A stretch of one run replaced by each channel's median over the run (authors' patch)."""

    subject: str
    session: str
    run: str
    start: float  # seconds from the start of the recording
    duration: float = 0.2


# The authors' ``read_raw``: participant '1' session 11 run index 4 (sorted runs, 0-based:
# run-05) at 13.4 s, participant '2' session 10 run index 2 (run-03) at 59.8 s, 0.2 s each.
AUTHORS_DROPOUTS = (
    Dropout("BIGMEG1", "11", "05", 13.4),
    Dropout("BIGMEG2", "10", "03", 59.8),
)


@dataclass(frozen=True)
class PreprocessSettings:
    """Parameters of the THINGS-MEG preprocessing (defaults: the authors' step 1).

    ``photodiode_*``, ``onset_tolerance`` and ``lag_tolerance`` belong to our onset checks
    (module docstring); ``check_onsets=False`` keeps only the authors' trigger count check.
    """

    l_freq: float = 0.1
    h_freq: float = 40.0
    tmin: float = -0.1
    tmax: float = 1.3
    baseline: tuple[float | None, float | None] = (None, 0.0)
    baseline_mode: str = "zscore"
    sfreq: float = 200.0
    bad_channels: tuple[str, ...] = ("MRO11-1609",)
    picks: str = "mag"
    trigger_channel: str = "UPPT001"
    trigger_amplitude: int = 64
    photodiode_channel: str = "UADC016-2104"
    photodiode_rise: float = 1.5  # volts between consecutive samples
    photodiode_min_gap: int = 1000  # samples between photodiode bursts
    onset_tolerance: float = 0.02  # s, events.tsv onset to nearest photodiode onset
    lag_tolerance: float = 0.05  # s, trigger-to-onset lag around the run's median lag
    check_onsets: bool = True
    catch_code: int = 999999  # event code of rows whose value is N/A (catch trials)
    dropouts: tuple[Dropout, ...] = AUTHORS_DROPOUTS
    eye_tracking: bool = True  # epoch the EyeLink channels too (figureground.neural.gaze)

    def __post_init__(self) -> None:
        if not 0 <= self.l_freq < self.h_freq:
            raise UsageError(f"l_freq={self.l_freq}, h_freq={self.h_freq}; expected 0 <= l < h")
        if not self.tmin < 0 < self.tmax:
            raise UsageError(f"tmin={self.tmin}, tmax={self.tmax}; expected tmin < 0 < tmax")
        if self.baseline_mode not in BASELINE_MODES:
            raise UsageError(f"baseline_mode={self.baseline_mode!r}; expected {BASELINE_MODES}")
        if self.sfreq <= 0:
            raise UsageError(f"sfreq={self.sfreq}; expected a positive output rate in Hz")
        for name in ("onset_tolerance", "lag_tolerance"):
            if getattr(self, name) < 0:
                raise UsageError(f"{name}={getattr(self, name)}; expected >= 0 seconds")

    def as_dict(self) -> dict:
        """JSON-ready settings (tuples as lists), used to validate cached runs."""
        return _jsonable(dataclasses.asdict(self))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _jsonable(value):
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value


@dataclass(frozen=True)
class RunFile:
    """One raw run of a BIDS participant and its events.tsv (which may be missing)."""

    subject: str
    session: str | None
    run: str | None
    raw_path: Path
    events_path: Path
    name: str  # BIDS basename without suffix, e.g. sub-BIGMEG1_ses-01_task-main_run-01


def subject_label(bids_root: str | Path, participant: str | int) -> str:
    """The BIDS subject label of ``participant``: ``1``, ``"BIGMEG1"`` or ``"sub-BIGMEG1"``."""
    root = Path(bids_root)
    if not root.is_dir():
        raise UsageError(f"BIDS root {root} not found")
    label = str(participant).removeprefix("sub-")
    if (root / f"sub-{label}").is_dir():
        return label
    if label.isdigit() and (root / f"sub-BIGMEG{label}").is_dir():
        return f"BIGMEG{label}"
    found = sorted(path.name for path in root.glob("sub-*") if path.is_dir())
    raise UsageError(f"participant {participant!r} not in {root} (found {found})")


def participant_number(label: str) -> str:
    """The number of a THINGS-MEG subject label (``"BIGMEG1"`` -> ``"1"``) for file names."""
    match = re.search(r"(\d+)$", label)
    if match is None:
        raise UsageError(f"subject {label!r} has no number; expected e.g. 'BIGMEG1'")
    return str(int(match.group(1)))


def find_runs(bids_root: str | Path, participant: str | int) -> list[RunFile]:
    """The MEG runs of a participant, ordered by session and run (the authors' sorted paths).

    Any raw format mne-bids knows for MEG is found (CTF ``.ds`` in ds004212); split FIF
    files are listed once (MNE follows the parts). Each run's events.tsv path is the
    run's BIDS path with suffix ``events``; it is read (and may be missing) per run.
    """
    from mne_bids import find_matching_paths

    label = subject_label(bids_root, participant)
    paths = find_matching_paths(
        bids_root,
        subjects=label,
        datatypes="meg",
        suffixes="meg",
        extensions=list(RAW_EXTENSIONS),
    )
    runs = []
    for path in paths:
        if path.split not in (None, "01"):
            continue
        events = path.copy().update(suffix="events", extension=".tsv", split=None)
        stem = path.copy().update(suffix=None, extension=None, split=None)
        runs.append(
            RunFile(
                label, path.session, path.run, Path(path.fpath), Path(events.fpath), stem.basename
            )
        )
    if not runs:
        raise UsageError(f"no MEG runs of sub-{label} under {bids_root}")
    return sorted(runs, key=lambda run: run.name)


def missing_runs(bids_root: str | Path, runs: list[RunFile]) -> list[tuple[str, str]]:
    """Runs of the participant that are named in the tree but have no recording.

    A run is missing when its ``_events.tsv`` exists without a raw file, or when the
    session's ``_scans.tsv`` lists a MEG file that is not there. Returns (run, reason) pairs.
    """
    if not runs:
        return []
    subject = Path(bids_root) / f"sub-{runs[0].subject}"
    have = {run.name for run in runs}
    missing: dict[str, str] = {}
    for events in sorted(subject.rglob("meg/*_events.tsv")):
        name = events.name.removesuffix("_events.tsv")
        if name not in have:
            missing[name] = f"{events.name} has no raw recording beside it"
    for scans in sorted(subject.rglob("*_scans.tsv")):
        try:
            listed = pd.read_csv(scans, sep="\t", dtype=str)["filename"]
        except (OSError, KeyError, ValueError, pd.errors.ParserError):
            continue
        for filename in listed.dropna():
            path = scans.parent / filename
            if "/meg/" not in f"/{filename}" or path.exists():
                continue
            name = re.sub(r"(_split-\d+)?_meg\.[a-z]+$", "", Path(filename).name)
            if name not in have:
                missing.setdefault(name, f"{scans.name} lists {filename}, which is missing")
    return sorted(missing.items())


def read_events_tsv(events_path: Path, settings: PreprocessSettings, name: str) -> pd.DataFrame:
    """``sample`` (int) and ``code`` (``value``, ``N/A`` -> ``catch_code``) of each row."""
    if not events_path.is_file():
        raise DataError(f"{name}: events file {events_path.name} not found")
    try:
        table = pd.read_csv(events_path, sep="\t")
    except (ValueError, OSError) as exc:  # pandas parser errors are ValueErrors
        raise DataError(f"{name}: cannot read {events_path.name} ({_first_line(exc)})") from None
    missing = [column for column in ("sample", "value") if column not in table.columns]
    if missing:
        raise DataError(f"{events_path}: lacks columns {missing}; expected ds004212 events.tsv")
    if table.empty:
        raise DataError(f"{events_path}: no rows")
    sample = pd.to_numeric(table["sample"], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(sample) | (sample != np.round(sample))
    if bad.any():
        row = int(np.argmax(bad))
        raise DataError(f"{events_path}: row {row} sample={table['sample'].iloc[row]!r}")
    code = pd.to_numeric(table["value"], errors="coerce").fillna(settings.catch_code)
    return pd.DataFrame({"sample": sample.astype(np.int64), "code": code.astype(np.int64)})


def photodiode_onsets(signal: np.ndarray, rise: float, min_gap: int) -> np.ndarray:
    """Samples where ``signal`` rises by more than ``rise`` from the sample before.

    Only the first rise of each burst is kept (rises closer than ``min_gap`` samples to the
    previous one are dropped). The returned index is the first sample after the rise.
    """
    rises = np.flatnonzero(np.diff(np.asarray(signal, dtype=float)) > rise) + 1
    if rises.size == 0:
        return rises
    return rises[np.concatenate([[True], np.diff(rises) >= min_gap])]


def check_onsets(
    onsets: np.ndarray,
    triggers: np.ndarray,
    photodiode: np.ndarray | None,
    sfreq: float,
    settings: PreprocessSettings,
    name: str,
) -> None:
    """Raise DataError when the events.tsv onsets disagree with the triggers or photodiode.

    ``onsets``, ``triggers`` and ``photodiode`` are sample indices from the start of the run;
    ``photodiode`` None skips the photodiode and lag checks.
    """
    if len(triggers) != len(onsets):
        raise DataError(
            f"{name}: {len(triggers)} triggers of amplitude {settings.trigger_amplitude} on "
            f"{settings.trigger_channel} but {len(onsets)} events.tsv rows; expected one each"
        )
    if photodiode is None:
        return
    if photodiode.size == 0:
        raise DataError(
            f"{name}: no photodiode onset on {settings.photodiode_channel} (no rise above "
            f"{settings.photodiode_rise} between samples)"
        )
    where = np.searchsorted(photodiode, onsets)
    last = len(photodiode) - 1
    left = photodiode[np.clip(where - 1, 0, last)]
    right = photodiode[np.clip(where, 0, last)]
    nearest = np.minimum(np.abs(onsets - left), np.abs(right - onsets))
    worst = int(np.argmax(nearest))
    if nearest[worst] / sfreq > settings.onset_tolerance:
        raise DataError(
            f"{name}: events.tsv onset of trial {worst + 1} ({onsets[worst] / sfreq:.3f} s) is "
            f"{nearest[worst] / sfreq * 1000:.0f} ms from the nearest photodiode onset on "
            f"{settings.photodiode_channel} (tolerance {settings.onset_tolerance * 1000:.0f} ms)"
        )
    lags = (onsets - triggers) / sfreq
    spread = np.abs(lags - np.median(lags))
    worst = int(np.argmax(spread))
    if spread[worst] > settings.lag_tolerance:
        raise DataError(
            f"{name}: trial {worst + 1} starts {lags[worst] * 1000:.0f} ms after its "
            f"{settings.trigger_channel} trigger, the run's median is "
            f"{np.median(lags) * 1000:.0f} ms (tolerance {settings.lag_tolerance * 1000:.0f} "
            f"ms); triggers and photodiode onsets disagree"
        )


def patch_dropouts(raw, run: RunFile | None, settings: PreprocessSettings) -> None:
    """Replace the run's known dropouts with each channel's median over the run (in place).

    As the authors: all channels, ``int(duration * sfreq)`` samples from the sample nearest
    to ``start``, before any channel is dropped and before the triggers are read.
    """
    if run is None:
        return
    for dropout in settings.dropouts:
        if (dropout.subject, dropout.session, dropout.run) != (run.subject, run.session, run.run):
            continue
        n_samples = int(dropout.duration / (1 / raw.info["sfreq"]))
        first = int(np.argmin(np.abs(raw.times - dropout.start)))
        log.info("%s: dropout at %.1f s replaced by channel medians", run.name, dropout.start)

        def patch(data: np.ndarray, first: int = first, n_samples: int = n_samples) -> np.ndarray:
            data[:, first : first + n_samples] = np.median(data, axis=1)[:, None]
            return data

        raw.apply_function(patch, picks="all", channel_wise=False)


def read_raw(raw_path: Path, name: str):
    """Read a raw MEG run fully into memory; one-line DataError when it cannot be read."""
    import mne

    if not raw_path.exists():
        raise DataError(f"{name}: raw file {raw_path} not found")
    try:
        return mne.io.read_raw(raw_path, preload=True, verbose="error")
    except Exception as exc:  # MNE raises many types for broken files
        raise DataError(
            f"{name}: cannot read {raw_path.name} ({type(exc).__name__}: {_first_line(exc)})"
        ) from None


def _run_of(raw_path: Path, events_path: Path) -> RunFile | None:
    from mne_bids import get_entities_from_fname

    entities = get_entities_from_fname(raw_path.name, on_error="ignore")
    if not entities.get("subject"):
        return None
    name = raw_path.name.split("_meg")[0]
    return RunFile(
        entities["subject"], entities["session"], entities["run"], raw_path, events_path, name
    )


def _triggers(raw, settings: PreprocessSettings, name: str) -> np.ndarray:
    import mne

    if settings.trigger_channel not in raw.ch_names:
        raise DataError(f"{name}: no trigger channel {settings.trigger_channel}")
    try:
        events = mne.find_events(
            raw, stim_channel=settings.trigger_channel, initial_event=True, verbose="error"
        )
    except ValueError as exc:
        raise DataError(f"{name}: {settings.trigger_channel}: {_first_line(exc)}") from None
    return events[events[:, 2] == settings.trigger_amplitude, 0] - raw.first_samp


def preprocess_run(
    raw_path: str | Path, events_tsv: str | Path, settings: PreprocessSettings | None = None
):
    """One run as the authors epoch it: filtered, MRO11 dropped, ``picks='mag'``, no baseline.

    Returns preloaded ``mne.Epochs`` at the raw rate (event samples from events.tsv, codes
    from its ``value``). Raises DataError naming the run when the file cannot be read, the
    events.tsv is missing, or onsets, triggers and photodiode disagree.
    """
    return preprocess_run_with_gaze(raw_path, events_tsv, settings)[0]


def run_gaze(raw, onsets: np.ndarray, settings: PreprocessSettings, name: str):
    """(event, 2, time) gaze x, y (deg) of a run's events at the raw rate, or None.

    The eye channels are converted and cleaned over the whole run as the authors do
    (:func:`figureground.neural.gaze.epoch_gaze`, at the raw rate); events whose window
    leaves the recording (MNE drops their epochs) get NaN. None, with one logged line, when
    ``eye_tracking`` is off or the run lacks an eye channel: its MEG is still used.
    """
    from figureground.neural.gaze import GazeSettings, epoch_gaze, epoch_offsets

    if not settings.eye_tracking:
        return None
    gaze_settings = dataclasses.replace(GazeSettings(), sfreq=float(raw.info["sfreq"]))
    missing = [channel for channel in gaze_settings.channels if channel not in raw.ch_names]
    if missing:
        log.warning("%s: no eye-tracking channel %s; its trials have no gaze", name, missing)
        return None
    offsets = epoch_offsets(settings.tmin, settings.tmax, gaze_settings.sfreq)
    inside = (onsets + offsets[0] >= 0) & (onsets + offsets[-1] < raw.n_times)
    gaze = np.full((len(onsets), 2, offsets.size), np.nan, dtype=np.float32)
    if not inside.any():
        return gaze
    events = onsets[inside] + raw.first_samp
    try:
        gaze[inside] = epoch_gaze(raw, events, settings.tmin, settings.tmax, gaze_settings)
    except DataError as exc:
        log.warning("%s: eye tracking unusable (%s); its trials have no gaze", name, exc)
        return None
    return gaze


def preprocess_run_with_gaze(
    raw_path: str | Path, events_tsv: str | Path, settings: PreprocessSettings | None = None
):
    """:func:`preprocess_run` and the gaze of its kept epochs (:func:`run_gaze`, or None)."""
    import mne

    settings = settings or PreprocessSettings()
    raw_path, events_path = Path(raw_path), Path(events_tsv)
    run = _run_of(raw_path, events_path)
    name = run.name if run else raw_path.name
    events_table = read_events_tsv(events_path, settings, name)
    raw = read_raw(raw_path, name)
    patch_dropouts(raw, run, settings)
    missing = [channel for channel in settings.bad_channels if channel not in raw.ch_names]
    if missing:
        raise DataError(f"{name}: bad channels {missing} not in the recording")
    raw.drop_channels(list(settings.bad_channels))
    onsets = events_table["sample"].to_numpy()
    photodiode = None
    if settings.check_onsets:
        if settings.photodiode_channel not in raw.ch_names:
            raise DataError(f"{name}: no photodiode channel {settings.photodiode_channel}")
        signal = raw.get_data(picks=[settings.photodiode_channel])[0]
        photodiode = photodiode_onsets(
            signal, settings.photodiode_rise, settings.photodiode_min_gap
        )
    check_onsets(
        onsets, _triggers(raw, settings, name), photodiode, raw.info["sfreq"], settings, name
    )
    gaze = run_gaze(raw, onsets, settings, name)
    try:
        raw.filter(l_freq=settings.l_freq, h_freq=settings.h_freq, verbose="error")
        events = np.column_stack(
            [onsets + raw.first_samp, np.zeros_like(onsets), events_table["code"].to_numpy()]
        )
        epochs = mne.Epochs(
            raw,
            events,
            tmin=settings.tmin,
            tmax=settings.tmax,
            picks=settings.picks,
            baseline=None,
            preload=True,
            verbose="error",
        )
    except (ValueError, RuntimeError) as exc:
        raise DataError(
            f"{name}: epoching failed ({type(exc).__name__}: {_first_line(exc)})"
        ) from None
    if len(epochs) == 0:
        reasons = sorted({reason for entry in epochs.drop_log for reason in entry})
        raise DataError(f"{name}: every epoch was dropped ({', '.join(reasons)})")
    if len(epochs.ch_names) != N_THINGS_MEG_SENSORS:
        log.warning(
            "%s: picks=%r gave %d channels, not THINGS-MEG's %d",
            name,
            settings.picks,
            len(epochs.ch_names),
            N_THINGS_MEG_SENSORS,
        )
    if len(epochs) < len(events):
        log.warning("%s: %d of %d epochs dropped", name, len(events) - len(epochs), len(events))
    return epochs, None if gaze is None else gaze[epochs.selection]


def zscore_baseline(epochs, settings: PreprocessSettings):
    """Rescale every epoch and channel against its own baseline, in place (authors' z-score).

    ``mne.baseline.rescale(data, times, baseline, mode)``: with mode ``zscore`` each
    epoch-channel series has its baseline mean subtracted and is divided by its baseline
    standard deviation (ddof 0). Per epoch, so the same per run as per session.
    """
    from mne.baseline import rescale

    times = epochs.times

    def scale(data: np.ndarray) -> np.ndarray:
        return rescale(
            data, times, settings.baseline, mode=settings.baseline_mode, copy=False, verbose="error"
        )

    epochs.apply_function(scale, picks="all", channel_wise=False, verbose="error")
    return epochs


def decimation_factor(raw_sfreq: float, settings: PreprocessSettings) -> int:
    """The integer factor from ``raw_sfreq`` to ``settings.sfreq`` (1200 -> 200: 6)."""
    factor = raw_sfreq / settings.sfreq
    if factor < 1 or abs(factor - round(factor)) > 1e-9:
        raise DataError(
            f"sampling rate {raw_sfreq} Hz is not an integer multiple of the output rate "
            f"{settings.sfreq} Hz"
        )
    return round(factor)


def decimate(epochs, settings: PreprocessSettings):
    """Keep every n-th sample (grid through t = 0), as ``Epochs.decimate``; no extra filter."""
    factor = decimation_factor(epochs.info["sfreq"], settings)
    return epochs.decimate(factor, verbose="error")


def gaze_at(gaze: np.ndarray, raw_sfreq: float, tmin: float, times: np.ndarray) -> np.ndarray:
    """The samples of raw-rate gaze epochs (starting at ``tmin``) at the epochs' ``times``."""
    from figureground.neural.gaze import epoch_times

    raw_times = epoch_times(tmin, float(times[-1]) + 0.5 / raw_sfreq, raw_sfreq)
    index = np.rint((np.asarray(times) - raw_times[0]) * raw_sfreq).astype(np.int64)
    if index.min() < 0 or index.max() >= gaze.shape[-1]:
        raise DataError(f"gaze epochs of {gaze.shape[-1]} samples do not cover times {times}")
    return gaze[..., index]
