"""Builders of small THINGS-MEG-like BIDS trees (FIF, written by mne-bids) for the tests.

Channels follow ds004212's ``channels.tsv``: the 272 sensors (MRO11 included), a few
references, the EyeLink's x, y and pupil ADCs, the photodiode and the trigger. Raw runs
hold noise, an evoked bump after each onset, 64-triggers ``TRIGGER_LAG`` samples before each
photodiode onset and, when given, gaze planted per trial (volts, the authors' mapping).
"""

from __future__ import annotations

import datetime
import warnings
from pathlib import Path

import mne
import numpy as np
import pandas as pd

from figureground.neural import sensors
from figureground.neural.gaze import GazeSettings, degrees_to_pixels, pixels_to_volts

SFREQ = 1200.0
TRIGGER_LAG = 36  # samples from trigger to photodiode onset (30 ms), plus +-1 jitter
SUBJECT = "BIGMEG1"
EYES = ("UADC009-2104", "UADC010-2104", "UADC013-2104")


def channel_names() -> tuple[list[str], list[str], list[str]]:
    """All channels in ds004212's channels.tsv order (a few references), MEG sensors, types."""
    kept = sensors.things_meg_channel_names()
    at = kept.index("MRO12-1609")
    meg = [*kept[:at], "MRO11-1609", *kept[at:]]
    names = ["SCLK01-177", "BG1-1609", "G11-1609", *meg]
    names += [*EYES, "UADC016-2104", "UPPT001"]
    types = ["misc", "ref_meg", "ref_meg"] + ["mag"] * len(meg) + ["misc"] * 4 + ["stim"]
    return names, meg, types


def meg_info() -> mne.Info:
    """Channels as MNE's CTF reader makes them: sensors FIFFV_MEG_CH with CTF coils."""
    from mne.io.constants import FIFF

    names, meg, types = channel_names()
    info = mne.create_info(names, SFREQ, types)
    positions = sensors.sensor_positions(meg)
    frames = sensors.coil_frames(positions)
    where = {name: k for k, name in enumerate(meg)}
    for channel in info["chs"]:
        name = channel["ch_name"]
        if name in where:
            channel["coil_type"] = FIFF.FIFFV_COIL_CTF_GRAD
            channel["loc"][:3] = positions[where[name]]
            channel["loc"][3:12] = frames[where[name]]
        elif channel["kind"] == FIFF.FIFFV_REF_MEG_CH:
            channel["coil_type"] = FIFF.FIFFV_COIL_CTF_REF_MAG
    info["dev_head_t"] = mne.transforms.Transform("meg", "head")
    return info


def gaze_volts(x_deg: float, y_deg: float, settings: GazeSettings | None = None):
    """The EyeLink x, y volts of a gaze position in degrees from the screen centre."""
    settings = settings or GazeSettings()
    x_px, y_px = degrees_to_pixels(np.array([x_deg, y_deg]), settings)
    x_v, y_v = pixels_to_volts(x_px, y_px, settings)
    return float(x_v), float(y_v)


def make_raw(
    rng: np.random.Generator,
    onsets: np.ndarray,
    n_samples: int,
    gaze_deg: np.ndarray | None = None,
    gaze_seconds: float = 0.6,
) -> mne.io.RawArray:
    """One run: noise + drift + a bump per onset; triggers, photodiode and eye channels.

    ``gaze_deg`` (trial, 2): where the eyes rest from each onset for ``gaze_seconds``
    (elsewhere at the screen centre, 0 V); None leaves the eye channels at noise level.
    """
    names, meg, _ = channel_names()
    data = rng.standard_normal((len(names), n_samples)) * 1e-13
    data += np.linspace(0.0, 5e-13, n_samples) * rng.standard_normal((len(names), 1))
    bump = np.exp(-0.5 * ((np.arange(600) - 200) / 40.0) ** 2) * 3e-13
    for onset in onsets:
        data[3 : 3 + len(meg), onset : onset + 600] += bump * rng.standard_normal((len(meg), 1))
    trigger = np.zeros(n_samples)
    lags = TRIGGER_LAG + rng.integers(-1, 2, len(onsets))
    for onset, lag in zip(onsets, lags, strict=True):
        trigger[onset - lag : onset - lag + 10] = 64
    trigger[n_samples - 100 : n_samples - 90] = 32  # end-of-run trigger
    photodiode = rng.standard_normal(n_samples) * 0.01
    for onset in onsets:
        photodiode[onset : onset + 600] += 4.0
    data[names.index("UPPT001")] = trigger
    data[names.index("UADC016-2104")] = photodiode
    if gaze_deg is not None:
        x, y = (names.index(EYES[0]), names.index(EYES[1]))
        data[[x, y]] = rng.normal(0.0, 0.002, (2, n_samples))
        data[names.index(EYES[2])] = 1.0 + rng.normal(0.0, 0.002, n_samples)
        width = int(gaze_seconds * SFREQ)
        for onset, (x_deg, y_deg) in zip(onsets, gaze_deg, strict=True):
            x_v, y_v = gaze_volts(x_deg, y_deg)
            data[x, onset : onset + width] += x_v
            data[y, onset : onset + width] += y_v
    raw = mne.io.RawArray(data, meg_info(), verbose="error")
    raw.set_meas_date(datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC))
    return raw


def write_events(path: Path, trials: pd.DataFrame, samples) -> None:
    """events.tsv with ds004212's header and its literal ``N/A`` for catch trials."""
    lines = ["onset\tduration\ttrial_type\tthings_category_nr\tvalue\tsample"]
    for row, sample in zip(trials.itertuples(), samples, strict=True):
        missing = row.trial_type == "catch"
        category = "N/A" if missing else f"{row.things_category_nr:.1f}"
        value = "N/A" if missing else f"{row.things_image_nr:.1f}"
        lines.append(f"{sample / SFREQ!r}\t0.5\t{row.trial_type}\t{category}\t{value}\t{sample}")
    path.write_text("\n".join(lines) + "\n")


def bids_path(root: Path, session: str, run: str, subject: str = SUBJECT):
    """The BIDSPath of one run (task ``main``, datatype ``meg``)."""
    from mne_bids import BIDSPath

    return BIDSPath(
        subject=subject, session=session, task="main", run=run, datatype="meg", root=root
    )


def events_path(root: Path, session: str, run: str) -> Path:
    """The run's ``_events.tsv``."""
    return bids_path(root, session, run).copy().update(suffix="events", extension=".tsv").fpath


def write_run(root: Path, session: str, run: str, raw: mne.io.BaseRaw) -> Path:
    """Write ``raw`` as the run's FIF with mne-bids; the path of the written file."""
    from mne_bids import write_raw_bids

    path = bids_path(root, session, run)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_raw_bids(raw, path, format="FIF", allow_preload=True, verbose="error")
    return Path(path.fpath)
