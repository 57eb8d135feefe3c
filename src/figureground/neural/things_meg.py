"""THINGS-MEG preprocessed epochs (``preprocessed_P{n}-epo.fif`` + ``sample_attributes_P{n}.csv``).

Each participant's file holds 27,048 epochs x 271 sensors x 281 samples (200 Hz, -0.1..1.3 s):
22,248 experiment images seen once, 200 test images seen 12 times (once per session) and 2,400
catch trials. The loader reads epochs in chunks (never the whole 8 GB file), averages per
image (or concept) in float64 and returns float32 ``xarray.DataArray`` objects aligned to the
stimulus manifest's ``image_id`` (the file stem of ``image_path``).

This module owns the format both ways: the simulator (:mod:`figureground.neural.simulate`)
and the synthetic THINGS-size data (:mod:`figureground.synth.data`) write their files with
:func:`write_epochs` and :func:`write_epochs_in_parts`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from figureground import logs, provenance
from figureground.errors import DataError, UsageError
from figureground.neural.aggregate import build_responses, check_consistent, recording_attrs
from figureground.neural.sensors import N_THINGS_MEG_SENSORS
from figureground.neural.things_meg_metadata import (  # noqa: F401  (re-exported)
    REQUIRED_COLUMNS,
    resolve_metadata,
    trials_table,
)
from figureground.neural.trial_source import TrialSource

log = logs.get_logger(__name__)

TRIAL_TYPES = ("exp", "test")
EPOCHS_NAME = "preprocessed_P{participant}-epo.fif"
ATTRIBUTES_NAME = "sample_attributes_P{participant}.csv"
_EPOCHS_PATTERN = re.compile(r"^preprocessed_P(\d+)-epo\.fif$")

SFREQ = 200.0  # Hz
TMIN = -0.1  # s, the first sample of an epoch
N_SAMPLES = 281  # -0.1 to 1.3 s
N_CHANNELS = N_THINGS_MEG_SENSORS
LOWPASS, HIGHPASS = 40.0, 0.1  # Hz, the filter edges the released files record


def read_epochs_lazy(epochs_path: str | Path):
    """Open an MNE epochs file without loading its data; one-line errors for bad files."""
    import mne

    path = Path(epochs_path)
    if not path.is_file():
        raise UsageError(f"epochs file {path} not found")
    try:
        return mne.read_epochs(path, preload=False, verbose="error")
    except Exception as exc:  # MNE raises many types for broken files
        raise DataError(
            f"{path}: cannot read as MNE epochs ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''})"
        ) from None


def epochs_source(epochs, name: str) -> TrialSource:
    """A chunked reader over non-preloaded MNE ``epochs``."""

    def read(indices: np.ndarray, channels: np.ndarray) -> np.ndarray:
        every = len(channels) == len(epochs.ch_names) and np.array_equal(
            channels, np.arange(len(channels))
        )  # picks=None spares MNE a copy of the whole chunk
        return epochs.get_data(item=indices, picks=None if every else channels, verbose="error")

    lowpass = epochs.info.get("lowpass")
    return TrialSource(
        name=name,
        ch_names=list(epochs.ch_names),
        times=np.asarray(epochs.times),
        n_trials=len(epochs),
        read=read,
        lowpass=float(lowpass) if lowpass else None,
    )


def participant_of(path: Path) -> str:
    """Participant label from a THINGS-MEG file name (``P1``), else the file stem."""
    match = re.search(r"P(\d+)", path.name)
    return f"P{match.group(1)}" if match else path.stem


def load(
    epochs_path: str | Path,
    attributes_path: str | Path | None = None,
    trial_type: str = "exp",
    *,
    average: str = "image",
    tmin: float | None = None,
    tmax: float | None = None,
    picks: Sequence[str] | str | None = None,
    decim: int = 1,
    image_ids: Sequence[str] | pd.DataFrame | str | Path | None = None,
    chunk_size: int = 256,
) -> xr.DataArray:
    """Load one THINGS-MEG participant as per-image (or per-concept) responses.

    Parameters
    ----------
    epochs_path : ``preprocessed_P{n}-epo.fif`` (MNE follows split parts itself).
    attributes_path : ``sample_attributes_P{n}.csv``; optional when metadata is attached.
    trial_type : ``"exp"`` -> dims (image, channel, time), trials of an image averaged;
        ``"test"`` -> (image, repetition, channel, time), repetitions ordered by session.
        Catch trials are always excluded.
    average : ``"image"`` or ``"concept"`` (exp only; first dim then ``concept``).
    tmin, tmax : time window in seconds, both ends inclusive.
    picks : sensor names, or a name prefix such as ``"MLO"``.
    decim : keep every ``decim``-th sample (grid through t = 0); the published data are
        low-passed at 40 Hz, so decim <= 2 does not alias.
    image_ids : stimulus ids (list, manifest DataFrame or manifest CSV); an epoch whose image
        is not among them raises DataError; output images follow this order.
    chunk_size : epochs read at a time (memory is about chunk_size x one epoch x 3).

    Returns
    -------
    float32 DataArray with coords ``image`` (or ``concept``), ``channel``, ``time`` and, along
    image, ``concept`` and ``session``; attrs participant, sfreq, source_file, provenance.
    """
    _check_trial_type(trial_type)
    path = Path(epochs_path)
    epochs = read_epochs_lazy(path)
    metadata = resolve_metadata(epochs, path, attributes_path)
    table = trials_table(metadata, trial_type, str(path))
    log.info(
        "%s: %d %s epochs of %d images",
        path.name,
        len(table),
        trial_type,
        table["image_id"].nunique(),
    )
    source = epochs_source(epochs, str(path))
    attrs = _load_attrs(path, attributes_path, trial_type, average, tmin, tmax, picks, decim)
    return build_responses(
        source,
        table,
        average=average,
        repetitions=trial_type == "test",
        tmin=tmin,
        tmax=tmax,
        picks=picks,
        decim=decim,
        image_ids=image_ids,
        chunk_size=chunk_size,
        attrs=attrs,
    )


def _check_trial_type(trial_type: str) -> None:
    if trial_type not in TRIAL_TYPES:
        raise UsageError(
            f"trial_type={trial_type!r}; expected one of {TRIAL_TYPES} "
            f"(catch trials are never loaded)"
        )


def _load_attrs(
    path: Path,
    attributes_path: str | Path | None,
    trial_type: str,
    average: str,
    tmin: float | None,
    tmax: float | None,
    picks: Sequence[str] | str | None,
    decim: int,
) -> dict:
    """The attrs of a loaded participant: its files, trial type and the loader's settings."""
    params = {
        "trial_type": trial_type,
        "average": average,
        "tmin": tmin,
        "tmax": tmax,
        "picks": picks if picks is None or isinstance(picks, str) else list(picks),
        "decim": decim,
    }
    return recording_attrs(
        participant_of(path),
        path,
        provenance.stamp(loader="things_meg", **params),
        attributes_file=str(Path(attributes_path).resolve()) if attributes_path else "",
        trial_type=trial_type,
    )


def find_attributes(epochs_path: str | Path) -> Path | None:
    """The ``sample_attributes_P{n}.csv`` of a ``preprocessed_P{n}-epo.fif``, or None.

    Looks beside the epochs file first, then in ``<bids>/sourcedata/`` when the epochs lie
    under ``<bids>/derivatives/`` (the public release keeps them in
    ``<bids>/derivatives/preprocessed/`` and the CSV in ``<bids>/sourcedata/``).
    """
    path = Path(epochs_path)
    match = re.search(r"P(\d+)", path.name)
    if match is None:
        return None
    name = ATTRIBUTES_NAME.format(participant=match.group(1))
    folder = path.absolute().parent  # absolute, not resolved: annexed files are symlinks
    candidates = [path.parent / name]
    candidates += [
        above.parent / "sourcedata" / name
        for above in [folder, *folder.parents]
        if above.name == "derivatives"
    ]
    return next((candidate for candidate in candidates if candidate.is_file()), None)


def find_participants(directory: str | Path) -> dict[str, tuple[Path, Path | None]]:
    """``{"P1": (epochs file, attributes CSV or None), ...}`` found in ``directory``.

    The CSV is found by :func:`find_attributes` (beside the epochs or in the BIDS
    ``sourcedata`` folder).
    """
    root = Path(directory)
    if not root.is_dir():
        raise UsageError(f"THINGS-MEG folder {root} not found")
    found = {}
    for path in sorted(root.iterdir()):
        match = _EPOCHS_PATTERN.match(path.name)
        if match:
            found[f"P{match.group(1)}"] = (path, find_attributes(path))
    if not found:
        raise UsageError(f"{root} holds no preprocessed_P<n>-epo.fif file")
    return dict(sorted(found.items(), key=lambda item: int(item[0][1:])))


def load_participants(
    directory: str | Path, participants: Sequence[str] | None = None, **kwargs
) -> dict[str, xr.DataArray]:
    """Load every (or the named) participant of a THINGS-MEG folder with :func:`load`.

    Raises DataError naming the file whose channels or times differ from the first one's.
    """
    found = find_participants(directory)
    wanted = list(found) if participants is None else list(participants)
    unknown = [name for name in wanted if name not in found]
    if unknown:
        raise UsageError(f"participants {unknown} not in {directory} (found {list(found)})")
    arrays = {name: load(found[name][0], found[name][1], **kwargs) for name in wanted}
    check_consistent({str(found[name][0]): arrays[name] for name in wanted})
    return arrays


# ------------------------------------------------------------------------------ writing


def epochs_file(folder: str | Path, participant: int) -> Path:
    """``folder/preprocessed_P{participant}-epo.fif``."""
    return Path(folder) / EPOCHS_NAME.format(participant=participant)


def attributes_file(folder: str | Path, participant: int) -> Path:
    """``folder/sample_attributes_P{participant}.csv``."""
    return Path(folder) / ATTRIBUTES_NAME.format(participant=participant)


def epochs_info():
    """The ``mne.Info`` of a THINGS-MEG epochs file: 271 CTF sensors, 200 Hz, 0.1-40 Hz."""
    import mne

    from figureground.neural.sensors import things_meg_info

    # MNE locks the recorded filter edges (only filtering sets them); its public JSON round
    # trip writes them without filtering data that were made band-limited.
    fields = things_meg_info(SFREQ).to_json_dict()
    fields["lowpass"], fields["highpass"] = LOWPASS, HIGHPASS
    return mne.Info.from_json_dict(fields)


def epoch_events(attributes: pd.DataFrame) -> np.ndarray:
    """MNE events (n, 3) of the epochs: samples 1000, 1300, ..., event code of each trial."""
    from figureground.neural.design import event_codes

    n = len(attributes)
    return np.column_stack(
        [np.arange(n) * 300 + 1000, np.zeros(n, dtype=int), event_codes(attributes)]
    ).astype(int)


def write_attributes(folder: str | Path, participant: int, attributes: pd.DataFrame) -> Path:
    """Write ``sample_attributes_P{participant}.csv`` (one row per epoch, no index)."""
    path = attributes_file(folder, participant)
    attributes.to_csv(path, index=False)
    return path


def write_epochs(
    folder: str | Path, participant: int, data: np.ndarray, attributes: pd.DataFrame
) -> Path:
    """Write one participant's epochs (float32, MNE 2 GB split parts) and attributes CSV.

    ``data`` (epoch, channel, time) in memory; ``attributes`` one row per epoch, also attached
    to the epochs as metadata. Returns the epochs file.
    """
    import mne

    epochs = mne.EpochsArray(
        data,
        epochs_info(),
        events=epoch_events(attributes),
        tmin=TMIN,
        metadata=attributes,
        verbose="error",
    )
    path = epochs_file(folder, participant)
    epochs.save(path, fmt="single", overwrite=True, split_size="2GB", verbose="error")
    write_attributes(folder, participant, attributes)
    return path


def write_epochs_in_parts(
    folder: str | Path,
    participant: int,
    attributes: pd.DataFrame,
    part_data: Callable[[int, int], np.ndarray],
    per_part: int,
) -> list[Path]:
    """Write one participant's epochs part by part, never holding the whole file in memory.

    MNE cannot append to a FIF file, and a FIF tag's size is a 32-bit integer, so MNE itself
    splits epochs files into parts that each hold one data tag (``Epochs.save(split_size=...)``),
    linked by "next file" references that ``mne.read_epochs`` follows. Those parts are written
    here one at a time with MNE's own part writer (``mne.epochs._save_split``, a private
    function: pinned MNE 1.13), each from an ``EpochsArray`` of ``per_part`` epochs carrying the
    whole file's ``event_id``, ``drop_log`` and its own ``selection``.

    Parameters
    ----------
    attributes : one row per epoch (attached to each part's epochs, and written as the CSV).
    part_data : ``part_data(start, stop)`` gives the data (stop - start, channel, time) of
        epochs ``start:stop``; called once per part, in order.
    per_part : epochs per part.

    Returns
    -------
    list of pathlib.Path
        The part files, the first being ``preprocessed_P{participant}-epo.fif``.
    """
    import mne
    from mne.epochs import _make_split_fnames, _save_split

    n = len(attributes)
    events = epoch_events(attributes)
    codes = events[:, 2]
    event_id = {str(c): int(c) for c in np.unique(codes)}
    info = epochs_info()
    starts = list(range(0, n, per_part))
    n_parts = len(starts)
    target = epochs_file(folder, participant)
    names = [Path(p) for p in _make_split_fnames(target, n_parts, "neuromag")]
    for part, start in enumerate(starts):
        stop = min(start + per_part, n)
        epochs = mne.EpochsArray(
            part_data(start, stop),
            info,
            events=events[start:stop],
            tmin=TMIN,
            event_id={str(c): int(c) for c in np.unique(codes[start:stop])},
            metadata=attributes.iloc[start:stop].reset_index(drop=True),
            selection=np.arange(start, stop),
            drop_log=tuple(() if start <= i < stop else ("IGNORED",) for i in range(n)),
            verbose="error",
        )
        epochs.event_id = event_id  # every part carries the whole file's event ids
        _save_split(epochs, names, part, n_parts, "single", True)
        log.info(
            "P%d: wrote part %d of %d (%d epochs)", participant, part + 1, n_parts, stop - start
        )
        del epochs
    write_attributes(folder, participant, attributes)
    return names
