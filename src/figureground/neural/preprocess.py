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
(:func:`zscore_baseline`, :func:`decimate`); :mod:`figureground.neural.preprocess_settings`
the settings, :mod:`figureground.neural.preprocess_bids` finding the runs,
:mod:`figureground.neural.preprocess_onsets` the events.tsv and onset checks, and
:mod:`figureground.neural.preprocess_io` the participant level (cache, concatenation,
metadata, saving).

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
from pathlib import Path

import numpy as np

from figureground import logs
from figureground.errors import DataError
from figureground.neural.preprocess_bids import (  # noqa: F401  (re-exported)
    find_runs,
    missing_runs,
    participant_number,
    subject_label,
)
from figureground.neural.preprocess_onsets import (
    check_onsets,
    photodiode_onsets,
    read_events_tsv,
)
from figureground.neural.preprocess_settings import (  # noqa: F401  (re-exported)
    AUTHORS_DROPOUTS,
    BASELINE_MODES,
    RAW_EXTENSIONS,
    Dropout,
    PreprocessSettings,
    RunFile,
    first_line,
)
from figureground.neural.sensors import N_THINGS_MEG_SENSORS

log = logs.get_logger(__name__)


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
            f"{name}: cannot read {raw_path.name} ({type(exc).__name__}: {first_line(exc)})"
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
        raise DataError(f"{name}: {settings.trigger_channel}: {first_line(exc)}") from None
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
    photodiode = _photodiode(raw, settings, name) if settings.check_onsets else None
    check_onsets(
        onsets, _triggers(raw, settings, name), photodiode, raw.info["sfreq"], settings, name
    )
    gaze = run_gaze(raw, onsets, settings, name)
    epochs = _epoch_run(raw, onsets, events_table["code"].to_numpy(), settings, name)
    return epochs, None if gaze is None else gaze[epochs.selection]


def _photodiode(raw, settings: PreprocessSettings, name: str) -> np.ndarray:
    """The run's photodiode onsets (samples from its start)."""
    if settings.photodiode_channel not in raw.ch_names:
        raise DataError(f"{name}: no photodiode channel {settings.photodiode_channel}")
    signal = raw.get_data(picks=[settings.photodiode_channel])[0]
    return photodiode_onsets(signal, settings.photodiode_rise, settings.photodiode_min_gap)


def _epoch_run(raw, onsets: np.ndarray, codes: np.ndarray, settings: PreprocessSettings, name: str):
    """The run filtered and epoched at ``onsets`` (samples from its start) with ``codes``."""
    import mne

    try:
        raw.filter(l_freq=settings.l_freq, h_freq=settings.h_freq, verbose="error")
        events = np.column_stack([onsets + raw.first_samp, np.zeros_like(onsets), codes])
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
            f"{name}: epoching failed ({type(exc).__name__}: {first_line(exc)})"
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
    return epochs


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
