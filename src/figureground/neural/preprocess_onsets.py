"""A run's events.tsv and the onset checks against its triggers and photodiode.

Not in the authors' step 1 apart from the trigger count (see
:mod:`figureground.neural.preprocess`): every events.tsv onset must lie within
``onset_tolerance`` of a photodiode onset, and each trigger-to-onset lag within
``lag_tolerance`` of the run's median lag.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from figureground.errors import DataError
from figureground.neural.preprocess_settings import PreprocessSettings, first_line


def read_events_tsv(events_path: Path, settings: PreprocessSettings, name: str) -> pd.DataFrame:
    """``sample`` (int) and ``code`` (``value``, ``N/A`` -> ``catch_code``) of each row."""
    if not events_path.is_file():
        raise DataError(f"{name}: events file {events_path.name} not found")
    try:
        table = pd.read_csv(events_path, sep="\t")
    except (ValueError, OSError) as exc:  # pandas parser errors are ValueErrors
        raise DataError(f"{name}: cannot read {events_path.name} ({first_line(exc)})") from None
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
