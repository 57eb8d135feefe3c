"""Eye-tracking cleaning, steps 1-5 of :mod:`figureground.neural.gaze` (Kret & Sjak-Shie 2019
as the authors' script implements it; "line N" refers to that script, see ``AUTHORS_SCRIPT``).

A boolean "valid" mask per sample: gaze inside the stimulus square, pupil dilation-speed
outliers removed, pupil deviations from a smooth trend removed; short isolated chunks are
dropped and gaps padded; then invalid samples become NaN and the run is detrended.
"""

from __future__ import annotations

import math

import numpy as np

from figureground import logs
from figureground.errors import DataError
from figureground.neural.gaze_units import GazeSettings, pixels_to_degrees

log = logs.get_logger(__name__)

# ---------------------------------------------------------------- cleaning steps


def _runs(valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last index (inclusive) of each run of True in ``valid``."""
    padded = np.concatenate([[False], valid, [False]]).astype(np.int8)
    edges = np.diff(padded)
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1


def in_stimulus_window(x_px: np.ndarray, y_px: np.ndarray, settings: GazeSettings) -> np.ndarray:
    """Step 1 (lines 203-211): gaze strictly inside the stimulus square (centred pixels).

    The script's header also promises to drop pupil values outside +/-5 V; its code does not,
    and neither does this. Its ``if not any(is_valid)`` branch (loners, gap padding) only runs
    when no sample is valid (and would then fail), so it is left out.
    """
    half = settings.stim_size_px / 2
    return (np.abs(x_px) < half) & (np.abs(y_px) < half)


def remove_loners(valid: np.ndarray, settings: GazeSettings) -> np.ndarray:
    """Drop short valid chunks after a gap (lines 137-158).

    A chunk goes when ``(last - first) / sfreq`` is under ``loner_max_ms`` and the gap before
    it is "wide": the script compares the gap in *samples* with ``40 * 1 / sfreq`` (line 149),
    which every gap passes, so in effect every short chunk but the first is dropped. That is
    copied. (With exactly one gap the script itself fails on a 0-d array; this does not.)
    """
    starts, ends = _runs(valid)
    out = np.asarray(valid, dtype=bool).copy()
    if starts.size == 0:
        return out
    short = (ends - starts) / settings.sfreq * 1000 < settings.loner_max_ms
    separation = starts[1:] - ends[:-1]
    wide = separation > settings.loner_separation_ms * 1 / settings.sfreq  # line 149, as written
    separated = np.concatenate([[False], wide])
    for first, last in zip(starts[short & separated], ends[short & separated], strict=True):
        out[first : last + 1] = False
    return out


def expand_gaps(valid: np.ndarray, settings: GazeSettings) -> np.ndarray:
    """Pad gaps between valid samples of ``gap_min_ms`` < width < ``gap_max_ms`` (lines 108-134).

    The width is the time between the valid samples either side. Valid samples later than
    ``pad_back`` (100 ms) before the gap's first border and earlier than ``pad_forward``
    (150 ms) after its last border are dropped, borders included (strict inequalities, as
    in the script); gaps wider than ``long_gap_ms`` (500 ms) get twice the padding. Gaps of
    2 s or more are not padded (script). Times come from integer sample differences, so the
    boundaries are exact (the script's float times may differ by one sample at a boundary).
    """
    out = np.asarray(valid, dtype=bool).copy()
    index = np.flatnonzero(out)
    if index.size < 2:
        return out
    ms_per_sample = 1000 / settings.sfreq
    width = np.diff(index) * ms_per_sample
    padded = (width > settings.gap_min_ms) & (width < settings.gap_max_ms)
    for first, last, gap in zip(index[:-1][padded], index[1:][padded], width[padded], strict=True):
        factor = 2 if gap > settings.long_gap_ms else 1
        back = settings.gap_pad_back_ms * factor / ms_per_sample
        forward = settings.gap_pad_forward_ms * factor / ms_per_sample
        lo = max(math.floor(first - back) + 1, 0)
        hi = math.ceil(last + forward) - 1
        out[lo : hi + 1] = False
    return out


def dilation_speed_filter(
    pupil: np.ndarray, valid: np.ndarray, settings: GazeSettings
) -> np.ndarray:
    """Step 2 (lines 214-246): drop samples whose pupil dilation speed is an outlier.

    Speed is the change per ms between consecutive valid samples (none across gaps over
    ``speed_max_gap_ms``); each sample takes the larger absolute speed of its two sides. The
    threshold is ``median + 16 * MAD`` of those speeds (``median + 16`` if MAD is 0). Then
    loners, gap padding, loners again. Deviation: the script takes median and MAD over an
    ``np.empty_like`` array whose invalid positions are uninitialised memory; here they are
    taken over the valid samples only.
    """
    index = np.flatnonzero(valid)
    out = np.asarray(valid, dtype=bool).copy()
    if index.size >= 2:
        dt_ms = np.diff(index) * 1000 / settings.sfreq
        speed = np.diff(np.asarray(pupil, float)[index]) / dt_ms
        speed[dt_ms > settings.speed_max_gap_ms] = np.nan
        back = np.abs(np.concatenate([[np.nan], speed]))
        forward = np.abs(np.concatenate([speed, [np.nan]]))
        max_speed = np.fmax(back, forward)
        if np.isfinite(max_speed).any():
            median = np.nanmedian(max_speed)
            mad = np.nanmedian(np.abs(max_speed - median))
            multiplier = settings.speed_mad_multiplier
            threshold = median + multiplier * mad if mad != 0 else median + multiplier
            with np.errstate(invalid="ignore"):
                out[index[max_speed >= threshold]] = False
    out = remove_loners(out, settings)
    out = expand_gaps(out, settings)
    return remove_loners(out, settings)


def deviation_filter(pupil: np.ndarray, valid: np.ndarray, settings: GazeSettings) -> np.ndarray:
    """Step 3 (lines 249-279): drop samples far from a smooth trend of the pupil.

    Each pass interpolates the valid pupil onto a grid of step ``1000 / lowpass_hz`` ms
    (62.5 ms: the script's line 255 uses the cut-off, not ``interp_fs``, for the step),
    filters it forwards-backwards with a first-order Butterworth of normalised cut-off
    ``lowpass_hz / (filter_fs / 2)`` = 0.32 (designed for 100 Hz, so ~2.6 Hz on that grid),
    and interpolates it back. Samples whose absolute deviation exceeds ``median + 16 * MAD``
    are dropped (from the step-2 mask, not cumulatively), then loners and gap padding; at
    most 4 passes, stopping when a pass changes nothing. As in the script, samples after the
    grid's last point (up to 62.5 ms at the end of the run) get no trend and are dropped.
    """
    from scipy.signal import butter, filtfilt

    valid = np.asarray(valid, dtype=bool)
    times = np.arange(valid.size) * 1000 / settings.sfreq
    step = 1000 / settings.deviation_lowpass_hz
    grid = np.arange(times[0], times[-1], step) if valid.size else np.empty(0)
    b, a = butter(1, settings.deviation_lowpass_hz / (settings.deviation_filter_fs / 2))
    padlen = 3 * max(len(a), len(b))
    if grid.size <= padlen:
        raise DataError(
            f"an eye-tracking segment of {valid.size / settings.sfreq:.2f} s is too short to "
            f"clean; expected over {(padlen + 1) * step / 1000:.2f} s"
        )
    dia = np.where(valid, np.asarray(pupil, float), np.nan)
    running = valid.copy()
    for pass_id in range(settings.deviation_passes):
        before = running.copy()
        use = running & valid & np.isfinite(dia)
        if use.sum() < 2:
            break
        trend = filtfilt(b, a, np.interp(grid, times[use], dia[use]))
        trend_at_samples = np.interp(times, grid, trend, left=np.nan, right=np.nan)
        deviation = np.abs(dia - trend_at_samples)
        median = np.nanmedian(deviation)
        threshold = median + settings.deviation_mad_multiplier * np.nanmedian(
            np.abs(deviation - median)
        )
        with np.errstate(invalid="ignore"):
            running = (deviation <= threshold) & valid
        running = expand_gaps(remove_loners(running, settings), settings)
        if pass_id > 0 and np.array_equal(before, running):
            break
    return running


def valid_samples(
    x_px: np.ndarray, y_px: np.ndarray, pupil: np.ndarray, settings: GazeSettings
) -> np.ndarray:
    """The samples that survive cleaning steps 1-3 (boolean, one per sample).

    As in the script, a gap made by step 1 or 2 is padded twice (step 2 pads it, step 3
    pads the padded gap again): a 150 ms excursion outside the stimulus removes 240 samples
    (200 ms) before it and 360 (300 ms) after it; a gap made by step 3 is padded once.
    """
    step1 = in_stimulus_window(x_px, y_px, settings)
    step2 = dilation_speed_filter(pupil, step1, settings)
    step3 = deviation_filter(pupil, step2, settings)
    log.debug(
        "eye tracking: %.1f%% valid after the window, %.1f%% after speed, %.1f%% after deviation",
        100 * step1.mean(),
        100 * step2.mean(),
        100 * step3.mean(),
    )
    return step3


def _detrended(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``values`` minus the least-squares line over sample index fitted to the valid samples."""
    index = np.arange(values.size)
    slope, intercept = np.polyfit(index[valid], values[valid], 1)
    return values - (slope * index + intercept)


def clean_gaze(
    x_px: np.ndarray, y_px: np.ndarray, pupil: np.ndarray, settings: GazeSettings
) -> np.ndarray:
    """(3, n) cleaned x (deg), y (deg) and pupil (a.u.) of one run; removed samples are NaN.

    Inputs are centred pixels and the pupil signal (median-centred volts). Steps 1-3 of
    :func:`valid_samples`, then NaN and linear detrending (lines 283-289: the line over the
    valid samples is subtracted, so the run's valid gaze has mean 0, i.e. it is re-centred
    on the screen centre), then degrees (line 361).
    """
    valid = valid_samples(x_px, y_px, pupil, settings)
    signals = np.vstack([x_px, y_px, pupil]).astype(np.float64)
    signals[:, ~valid] = np.nan
    if settings.detrend and valid.sum() >= 2:
        signals = np.vstack([_detrended(row, valid) for row in signals])
    signals[:2] = pixels_to_degrees(signals[:2], settings)
    return signals
