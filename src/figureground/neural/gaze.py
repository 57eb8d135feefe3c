"""Eye tracking in the THINGS-MEG raw CTF files: volts -> pixels -> degrees, cleaning, epochs.

The EyeLink's analogue output was recorded by the MEG system on three ADC channels at the MEG
rate (1200 Hz), in volts. This module follows the authors' script, quoted below as [AUTH]:
ViCCo-Group/THINGS-data, ``MEG/eyetracking/step1_eyetracking_preprocess.py`` (commit 5e0ecca;
"line N" refers to that file). The code here is written anew; the constants and the order of
the steps are theirs.

Pipeline per run (:func:`epoch_gaze`):

1. Crop the run to 0.2 s before the first onset .. 2 s after the last (lines 336-338).
2. Volts -> screen pixels, then pixels relative to the screen centre (lines 84-87, 191, 193):
   ``S = (V - Vmin) / (Vmax - Vmin) * (Rmax - Rmin) + Rmin`` (the fraction of the screen),
   ``px = S * (right - left + 1) + left - size / 2``; with the script's values that is
   ``x_px = 143.36 * V`` and ``y_px = 107.52 * V`` (0 V = the screen centre; y grows downwards,
   screen convention, ``screentop = 0``).
3. Subtract the run's median x, y and pupil (drift; lines 192, 194, 195).
4. Cleaning (Kret & Sjak-Shie 2019 as the script implements it), a boolean "valid" mask:
   (1) gaze inside the 10-degree stimulus square (lines 203-211); (2) pupil dilation-speed
   outliers (lines 214-246); (3) deviation of the pupil from a smooth trend, up to 4 passes
   (lines 249-279); each of (2) and (3) also removes short isolated chunks
   (:func:`remove_loners`) and pads gaps (:func:`expand_gaps`).
5. Invalid samples -> NaN, x, y and pupil linearly detrended over the run (lines 283-289).
6. Pixels -> degrees (line 361; see :func:`pixels_to_degrees` for the three formulas).
7. Epochs with MNE's sample arithmetic, so they line up with ``mne.Epochs`` of the MEG.

Where this deviates from the script, or copies a quirk of it, the function says so.
"""

from __future__ import annotations

import math

import numpy as np

from figureground.errors import DataError, UsageError
from figureground.neural.gaze_cleaning import (  # noqa: F401  (re-exported)
    clean_gaze,
    deviation_filter,
    dilation_speed_filter,
    expand_gaps,
    in_stimulus_window,
    remove_loners,
    valid_samples,
)
from figureground.neural.gaze_units import (  # noqa: F401  (re-exported)
    ANGLE_METHODS,
    AUTHORS_SCRIPT,
    GazeSettings,
    degrees_to_pixels,
    pixels_to_degrees,
    pixels_to_volts,
    volts_to_pixels,
)


def gaze_from_volts(volts: np.ndarray, settings: GazeSettings, clean: bool = True) -> np.ndarray:
    """(3, n) x (deg), y (deg) and pupil of one run's (3, n) x, y, pupil volts.

    Volts -> centred pixels -> minus the run's median (if ``settings.median_centre``) ->
    :func:`clean_gaze` (``clean``) or straight to degrees without removal or detrending.
    """
    volts = np.asarray(volts, dtype=np.float64)
    if volts.ndim != 2 or volts.shape[0] != 3:
        raise DataError(f"eye-tracking volts of shape {volts.shape}; expected (3, samples)")
    x_px, y_px = volts_to_pixels(volts[0], volts[1], settings)
    pupil = volts[2].copy()
    if settings.median_centre:
        x_px, y_px, pupil = (s - np.median(s) for s in (x_px, y_px, pupil))
    if clean:
        return clean_gaze(x_px, y_px, pupil, settings)
    return np.vstack([pixels_to_degrees(np.vstack([x_px, y_px]), settings), pupil[None]])


# ---------------------------------------------------------------- epochs


def _nearest(value: float) -> int:
    """``value`` rounded half to even (Python's and MNE's ``int(round(...))``)."""
    return int(np.round(value))


def epoch_offsets(tmin: float, tmax: float, sfreq: float) -> np.ndarray:
    """Sample offsets of an epoch relative to its event, as ``mne.Epochs`` computes them."""
    if tmax < tmin:
        raise UsageError(f"epoch window {tmin}..{tmax} s; expected tmin <= tmax")
    return np.arange(_nearest(tmin * sfreq), _nearest(tmax * sfreq) + 1)


def epoch_times(tmin: float, tmax: float, sfreq: float) -> np.ndarray:
    """Times (s) of the samples of an epoch (``mne.Epochs(...).times``)."""
    return epoch_offsets(tmin, tmax, sfreq) / sfreq


def _event_samples(events: np.ndarray) -> np.ndarray:
    events = np.asarray(events)
    if events.ndim == 2 and events.shape[1] == 3:
        return events[:, 0].astype(np.int64)
    if events.ndim == 1:
        return events.astype(np.int64)
    raise UsageError(f"events of shape {events.shape}; expected (n, 3) MNE events or samples")


def epoch_signals(
    signals: np.ndarray,
    events: np.ndarray,
    first_samp: int,
    sfreq: float,
    tmin: float,
    tmax: float,
) -> np.ndarray:
    """(trial, channel, time) windows of continuous (channel, n) ``signals`` around events.

    ``events`` hold absolute samples (``raw.first_samp`` included, as in MNE) and
    ``signals[:, 0]`` is sample ``first_samp``. A window outside the signals raises.
    """
    samples = _event_samples(events)
    offsets = epoch_offsets(tmin, tmax, sfreq)
    starts = samples - int(first_samp) + offsets[0]
    outside = (starts < 0) | (starts + offsets.size > signals.shape[1])
    if outside.any():
        bad = int(np.flatnonzero(outside)[0])
        raise DataError(
            f"event {bad} (sample {samples[bad]}): window {tmin}..{tmax} s falls outside the "
            f"recording (samples {first_samp}..{first_samp + signals.shape[1] - 1})"
        )
    windows = signals[:, starts[:, None] + np.arange(offsets.size)]
    return np.ascontiguousarray(windows.transpose(1, 0, 2))


def epoch_gaze(
    raw,
    events: np.ndarray,
    tmin: float,
    tmax: float,
    settings: GazeSettings | None = None,
    *,
    clean: bool = True,
    pupil: bool = False,
) -> np.ndarray:
    """(trial, 2 | 3, time) gaze x, y (deg) [and pupil] of one run, aligned with MEG epochs.

    ``raw`` is an ``mne.io.Raw`` of one run holding the eye channels (in volts); ``events``
    the same (n, 3) MNE events as the MEG epochs (absolute samples). The run is cropped to
    ``crop_before_s`` before the first event .. ``crop_after_s`` after the last (widened to
    the epoch window), converted and cleaned (:func:`gaze_from_volts`) and cut with MNE's
    sample arithmetic (:func:`epoch_times` gives the times). Removed samples are NaN.
    """
    settings = settings or GazeSettings()
    sfreq = float(raw.info["sfreq"])
    if not math.isclose(sfreq, settings.sfreq):
        raise UsageError(
            f"raw sampled at {sfreq} Hz but GazeSettings.sfreq is {settings.sfreq}; pass "
            "dataclasses.replace(settings, sfreq=...) to clean at the raw rate"
        )
    missing = [name for name in settings.channels if name not in raw.ch_names]
    if missing:
        raise DataError(f"raw lacks eye-tracking channel(s) {missing}; expected x, y, pupil")
    samples = _event_samples(events)
    if samples.size == 0:
        raise UsageError("no events to epoch")
    first = int(raw.first_samp)
    before = _nearest(min(tmin, -settings.crop_before_s) * sfreq)
    after = _nearest(max(tmax, settings.crop_after_s) * sfreq)
    start = max(int(samples.min()) - first + before, 0)
    stop = min(int(samples.max()) - first + after + 1, raw.n_times)
    if stop <= start:
        raise DataError(f"events {samples.min()}..{samples.max()} lie outside the recording")
    volts = raw.get_data(picks=settings.channels, start=start, stop=stop)
    gaze = gaze_from_volts(volts, settings, clean=clean)
    epochs = epoch_signals(gaze, samples, first + start, sfreq, tmin, tmax)
    return epochs if pupil else epochs[:, :2]
