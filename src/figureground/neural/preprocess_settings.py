"""Settings of the THINGS-MEG preprocessing and the raw runs it reads.

:class:`PreprocessSettings` defaults to the authors' step 1
(:mod:`figureground.neural.preprocess` describes it); :class:`Dropout` is one of the signal
dropouts the authors patch; :class:`RunFile` one raw run of a BIDS participant.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from figureground.errors import UsageError

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


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (empty when it has none)."""
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
