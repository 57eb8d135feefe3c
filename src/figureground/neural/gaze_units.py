"""Eye-tracking constants and units: :class:`GazeSettings`, volts <-> pixels <-> degrees.

The constants and formulas are those of the authors' script ([AUTH]:
ViCCo-Group/THINGS-data, ``MEG/eyetracking/step1_eyetracking_preprocess.py``, commit
5e0ecca; "line N" refers to that file); see :mod:`figureground.neural.gaze` for the pipeline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from figureground.errors import UsageError

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
