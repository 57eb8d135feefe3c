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
from dataclasses import dataclass

import numpy as np

from figureground import logs
from figureground.errors import DataError, UsageError

log = logs.get_logger(__name__)

AUTHORS_SCRIPT = (
    "ViCCo-Group/THINGS-data MEG/eyetracking/step1_eyetracking_preprocess.py (commit 5e0ecca)"
)
ANGLE_METHODS = ("linear", "authors", "eccentricity")


@dataclass(frozen=True)
class GazeSettings:
    """Constants of the eye-tracking conversion and cleaning, each from [AUTH] (line given).

    ``angle_method``, ``y_down``, ``mask_threshold`` and ``bcea_probability`` are this
    toolkit's choices (not in the script).
    """

    sfreq: float = 1200.0  # lines 44-45: eye tracker recorded by the MEG at 1200 Hz
    x_channel: str = "UADC009-2104"  # line 48 (x)
    y_channel: str = "UADC010-2104"  # line 48 (y)
    pupil_channel: str = "UADC013-2104"  # line 48 (pupil)
    min_voltage: float = -5.0  # line 52
    max_voltage: float = 5.0  # line 53
    min_range: float = -0.2  # line 54: min_voltage is 0.2 screens left of / above the screen
    max_range: float = 1.2  # line 55
    screen_left: int = 0  # line 56
    screen_right: int = 1023  # line 57
    screen_top: int = 0  # line 58
    screen_bottom: int = 767  # line 59
    screen_width_px: int = 1024  # line 66
    screen_height_px: int = 768  # line 66
    screen_width_cm: float = 42.0  # line 62
    screen_height_cm: float = 32.0  # line 63 (defined, never used by the script)
    distance_cm: float = 75.0  # line 64
    stim_size_deg: float = 10.0  # line 68: square stimulus, stim_size_deg * pix_per_deg px
    crop_before_s: float = 0.2  # line 336: run cropped from 0.2 s before the first onset
    crop_after_s: float = 2.0  # line 337: .. to 2 s after the last onset
    median_centre: bool = True  # lines 192-195: the run's median is subtracted
    speed_max_gap_ms: float = 200.0  # line 215: no speed across gaps longer than this
    speed_mad_multiplier: float = 16.0  # line 230 ("as defined in Kret et al., 2019")
    deviation_passes: int = 4  # line 250
    deviation_mad_multiplier: float = 16.0  # line 251
    deviation_filter_fs: float = 100.0  # line 252 (the Butterworth design rate)
    deviation_lowpass_hz: float = 16.0  # line 253 (also sets the interpolation step, l. 255)
    loner_max_ms: float = 100.0  # line 138
    loner_separation_ms: float = 40.0  # line 139
    gap_min_ms: float = 75.0  # line 109
    gap_max_ms: float = 2000.0  # line 110
    gap_pad_back_ms: float = 100.0  # line 111
    gap_pad_forward_ms: float = 150.0  # line 112
    long_gap_ms: float = 500.0  # line 123: gaps longer than this get twice the padding
    detrend: bool = True  # lines 286-288
    angle_method: str = "linear"  # see pixels_to_degrees
    y_down: bool = True  # y grows downwards on the screen (screentop = 0, line 58)
    mask_threshold: float = 0.5  # soft mask value at or above which a pixel is object
    bcea_probability: float = 0.682  # share of samples inside the fixation ellipse

    def __post_init__(self) -> None:
        if self.angle_method not in ANGLE_METHODS:
            raise UsageError(
                f"angle_method {self.angle_method!r}; expected one of {', '.join(ANGLE_METHODS)}"
            )
        if self.max_voltage <= self.min_voltage or self.max_range <= self.min_range:
            raise UsageError(
                f"voltage range {self.min_voltage}..{self.max_voltage} V -> "
                f"{self.min_range}..{self.max_range}; expected increasing ranges"
            )
        positive = {
            "sfreq": self.sfreq,
            "screen_width_px": self.screen_width_px,
            "screen_width_cm": self.screen_width_cm,
            "distance_cm": self.distance_cm,
            "stim_size_deg": self.stim_size_deg,
        }
        for name, value in positive.items():
            if not value > 0:
                raise UsageError(f"GazeSettings.{name} = {value}; expected a positive number")
        if not 0.0 < self.bcea_probability < 1.0:
            raise UsageError(f"bcea_probability {self.bcea_probability}; expected in (0, 1)")

    @property
    def pix_per_cm(self) -> float:
        """Horizontal pixels per cm, used for both axes (line 77)."""
        return self.screen_width_px / self.screen_width_cm

    @property
    def pix_per_deg(self) -> float:
        """Screen width in px over its full visual angle (line 67): 32.73 px/deg."""
        half_angle = math.degrees(math.atan(self.screen_width_cm / 2 / self.distance_cm))
        return self.screen_width_px / (2 * half_angle)

    @property
    def stim_size_px(self) -> float:
        """Side of the stimulus square on the screen in px (lines 69-70): 327.3 px."""
        return self.stim_size_deg * self.pix_per_deg

    @property
    def channels(self) -> list[str]:
        """The x, y and pupil channel names."""
        return [self.x_channel, self.y_channel, self.pupil_channel]


# ---------------------------------------------------------------- conversions


def _screen_fraction(volts: np.ndarray, settings: GazeSettings) -> np.ndarray:
    span = settings.max_voltage - settings.min_voltage
    fraction = (np.asarray(volts, dtype=np.float64) - settings.min_voltage) / span
    return fraction * (settings.max_range - settings.min_range) + settings.min_range


def volts_to_pixels(
    x_volts: np.ndarray, y_volts: np.ndarray, settings: GazeSettings
) -> tuple[np.ndarray, np.ndarray]:
    """Gaze in screen pixels relative to the screen centre (x right, y down) from volts.

    ``S = (V - min_voltage) / (max_voltage - min_voltage) * (max_range - min_range) + min_range``
    is the position as a fraction of the screen; ``px = S * (right - left + 1) + left`` the
    pixel from the top-left corner (lines 84-87), minus half the screen (lines 191, 193).
    """
    x = _screen_fraction(x_volts, settings) * (settings.screen_right - settings.screen_left + 1)
    y = _screen_fraction(y_volts, settings) * (settings.screen_bottom - settings.screen_top + 1)
    x = x + settings.screen_left - settings.screen_width_px / 2
    y = y + settings.screen_top - settings.screen_height_px / 2
    return x, y


def pixels_to_volts(
    x_px: np.ndarray, y_px: np.ndarray, settings: GazeSettings
) -> tuple[np.ndarray, np.ndarray]:
    """The inverse of :func:`volts_to_pixels` (centred pixels -> volts)."""
    span_v = settings.max_voltage - settings.min_voltage
    span_r = settings.max_range - settings.min_range
    width = settings.screen_right - settings.screen_left + 1
    height = settings.screen_bottom - settings.screen_top + 1
    fx = (np.asarray(x_px, float) + settings.screen_width_px / 2 - settings.screen_left) / width
    fy = (np.asarray(y_px, float) + settings.screen_height_px / 2 - settings.screen_top) / height
    x = (fx - settings.min_range) / span_r * span_v + settings.min_voltage
    y = (fy - settings.min_range) / span_r * span_v + settings.min_voltage
    return x, y


def pixels_to_degrees(pixels: np.ndarray, settings: GazeSettings) -> np.ndarray:
    """Signed visual angle (degrees) of an offset of ``pixels`` from the screen centre.

    ``settings.angle_method``:

    - ``linear`` (default): ``px / pix_per_deg`` with ``pix_per_deg`` of line 67, the scale
      the script uses to size the stimulus (lines 69-70) and its validity window (lines
      204-205); the stimulus edge is then exactly ``stim_size_deg / 2``.
    - ``authors``: the script's ``pix_to_deg`` (lines 76-80) applied to positions (line 361),
      ``2 * atan(px / pix_per_cm / 2 / distance)``; it treats the offset as a centred extent
      (the stimulus edge is 5.125 deg).
    - ``eccentricity``: the angle between the line of sight to the centre and to the point,
      ``atan(px / pix_per_cm / distance)`` (the stimulus edge is 5.114 deg).

    Both axes use the horizontal pixel size (as the script does).
    """
    px = np.asarray(pixels, dtype=np.float64)
    if settings.angle_method == "linear":
        return px / settings.pix_per_deg
    cm = px / settings.pix_per_cm
    if settings.angle_method == "authors":
        return np.degrees(2 * np.arctan(cm / 2 / settings.distance_cm))
    return np.degrees(np.arctan(cm / settings.distance_cm))


def degrees_to_pixels(degrees: np.ndarray, settings: GazeSettings) -> np.ndarray:
    """The inverse of :func:`pixels_to_degrees` (same ``angle_method``)."""
    deg = np.asarray(degrees, dtype=np.float64)
    if settings.angle_method == "linear":
        return deg * settings.pix_per_deg
    if settings.angle_method == "authors":
        cm = 2 * settings.distance_cm * np.tan(np.radians(deg) / 2)
    else:
        cm = settings.distance_cm * np.tan(np.radians(deg))
    return cm * settings.pix_per_cm


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
