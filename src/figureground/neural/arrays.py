"""Other recordings as the same labelled arrays: any MNE epochs file, NumPy arrays, THINGS-EEG2.

Every loader returns a float32 ``xarray.DataArray`` with dims (image, channel, time) (or
(image, repetition, channel, time) when repetitions are kept), coords ``image`` (image ids),
``channel``, ``time`` in seconds and ``concept`` (and ``session`` where known) along image.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from figureground import logs, provenance
from figureground.errors import DataError, UsageError
from figureground.neural.aggregate import (
    build_responses,
    concept_of_id,
    image_id_of,
    recording_attrs,
)
from figureground.neural.trial_source import TrialSource

log = logs.get_logger(__name__)

IdSource = Sequence[str] | pd.DataFrame | str | Path | None


def _table(
    ids: Sequence[str], concepts: Sequence[str] | None, sessions: Sequence | None
) -> pd.DataFrame:
    table = pd.DataFrame({"epoch": np.arange(len(ids)), "image_id": [str(i) for i in ids]})
    table["concept"] = (
        [str(c) for c in concepts] if concepts is not None else table["image_id"].map(concept_of_id)
    )
    if sessions is not None:
        table["session"] = np.asarray(sessions)
    return table


def load_epochs(
    epochs_path: str | Path,
    image_column: str,
    *,
    concept_column: str | None = None,
    session_column: str | None = None,
    average: str = "image",
    repetitions: bool = False,
    tmin: float | None = None,
    tmax: float | None = None,
    picks: Sequence[str] | str | None = None,
    decim: int = 1,
    image_ids: IdSource = None,
    chunk_size: int = 256,
    epochs: Any = None,
) -> xr.DataArray:
    """Any MNE epochs file whose attached metadata names the image of each epoch.

    Parameters
    ----------
    image_column : metadata column holding image ids or image paths (file stem is the id).
    concept_column, session_column : optional metadata columns; the concept defaults to the
        id before its last underscore.
    repetitions : keep repetitions (dims image, repetition, channel, time) instead of averaging.
    epochs : the file's epochs already read, or a selection of them (e.g. by a metadata
        query); default: every epoch of ``epochs_path``, read lazily.
    Other parameters as :func:`figureground.neural.things_meg.load`.
    """
    from figureground.neural.things_meg import epochs_source, participant_of, read_epochs_lazy

    path = Path(epochs_path)
    epochs = read_epochs_lazy(path) if epochs is None else epochs
    metadata = epochs.metadata
    if metadata is None:
        raise DataError(f"{path}: no metadata attached; expected a column naming each image")
    for column in (image_column, concept_column, session_column):
        if column is not None and column not in metadata.columns:
            raise UsageError(
                f"{path}: metadata has no column {column!r} (it has {list(metadata.columns)})"
            )
    ids = [image_id_of(v) for v in metadata[image_column]]
    table = _table(
        ids,
        metadata[concept_column] if concept_column else None,
        metadata[session_column] if session_column else None,
    )
    attrs = recording_attrs(
        participant_of(path),
        path,
        provenance.stamp(loader="epochs", image_column=image_column),
    )
    return build_responses(
        epochs_source(epochs, str(path)),
        table,
        average=average,
        repetitions=repetitions,
        tmin=tmin,
        tmax=tmax,
        picks=picks,
        decim=decim,
        image_ids=image_ids,
        chunk_size=chunk_size,
        attrs=attrs,
    )


def _array_source(
    data: np.ndarray, name: str, ch_names: list[str], times: np.ndarray
) -> TrialSource:
    def read(indices: np.ndarray, channels: np.ndarray) -> np.ndarray:
        return np.asarray(data[indices][:, channels], dtype=np.float32)

    return TrialSource(name=name, ch_names=ch_names, times=times, n_trials=len(data), read=read)


def _times(
    n_times: int, times: Sequence[float] | None, sfreq: float | None, tmin: float, name: str
) -> np.ndarray:
    if times is not None:
        times = np.asarray(times, dtype=float)
        if times.shape != (n_times,):
            raise DataError(f"{name}: {n_times} samples but {times.size} times given")
        return times
    if sfreq is None:
        raise UsageError(f"{name}: give the sample times (times=...) or sfreq (and tmin)")
    return tmin + np.arange(n_times) / float(sfreq)


def load_numpy(
    data_path: str | Path,
    ids_path: str | Path,
    *,
    key: str | None = None,
    ch_names: Sequence[str] | None = None,
    times: Sequence[float] | None = None,
    sfreq: float | None = None,
    first_time: float = 0.0,
    id_column: str = "image_id",
    average: str = "image",
    repetitions: bool = False,
    tmin: float | None = None,
    tmax: float | None = None,
    picks: Sequence[str] | str | None = None,
    decim: int = 1,
    image_ids: IdSource = None,
) -> xr.DataArray:
    """NumPy responses (items x channels x times) plus a CSV with one row per item.

    ``.npy`` files are memory-mapped; ``.npz`` files give the array ``key`` (default ``data``,
    or their only array) and may also hold ``ch_names`` and ``times``. Loaded with
    ``allow_pickle=False``. The CSV needs ``id_column`` (ids or image paths) and may have
    ``concept`` and ``session`` columns; items sharing an id are averaged (or kept as
    repetitions). Sample times are ``times`` or ``first_time + arange(n) / sfreq``;
    tmin/tmax/picks/decim select as in :func:`figureground.neural.things_meg.load`.
    """
    path, csv_path = Path(data_path), Path(ids_path)
    for file in (path, csv_path):
        if not file.is_file():
            raise UsageError(f"{file} not found")
    data, extras = _read_array_file(path, key)
    table_in = _read_item_table(csv_path, id_column, len(data), path)
    names = _channel_names(extras, ch_names, data.shape[1], path)
    sample_times = _times(data.shape[2], extras.get("times", times), sfreq, first_time, str(path))
    table = _table(
        [image_id_of(v) for v in table_in[id_column]],
        table_in["concept"] if "concept" in table_in.columns else None,
        table_in["session"] if "session" in table_in.columns else None,
    )
    attrs = recording_attrs(path.stem, path, provenance.stamp(loader="numpy"))
    return build_responses(
        _array_source(data, str(path), names, sample_times),
        table,
        average=average,
        repetitions=repetitions,
        tmin=tmin,
        tmax=tmax,
        picks=picks,
        decim=decim,
        image_ids=image_ids,
        attrs=attrs,
    )


def _read_array_file(path: Path, key: str | None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The (item, channel, time) array of a ``.npy`` (memory-mapped) or ``.npz`` file, and
    the ``ch_names`` and ``times`` an ``.npz`` holds beside it."""
    extras: dict[str, np.ndarray] = {}
    try:
        if path.suffix == ".npz":
            archive = np.load(path, allow_pickle=False)
            names = list(archive.files)
            chosen = key or ("data" if "data" in names else (names[0] if len(names) == 1 else None))
            if chosen not in names:
                raise UsageError(f"{path}: choose the array with key= (it holds {names})")
            data = archive[chosen]
            extras = {k: archive[k] for k in ("ch_names", "times") if k in names}
        else:
            data = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise DataError(f"{path}: not a plain NumPy array file ({exc})") from None
    if data.ndim != 3:
        raise DataError(f"{path}: shape {data.shape}; expected items x channels x times")
    return data, extras


def _read_item_table(csv_path: Path, id_column: str, n_items: int, path: Path) -> pd.DataFrame:
    """The CSV of one row per item of ``path``, checked for ``id_column`` and its length."""
    table_in = pd.read_csv(csv_path, dtype={id_column: str}, keep_default_na=False)
    if id_column not in table_in.columns:
        raise UsageError(f"{csv_path}: no column {id_column!r} (it has {list(table_in.columns)})")
    if len(table_in) != n_items:
        raise DataError(
            f"{csv_path}: {len(table_in)} rows, but {path} holds {n_items} items; "
            f"expected one row per item in the same order"
        )
    return table_in


def _channel_names(
    extras: dict[str, np.ndarray], ch_names: Sequence[str] | None, n_channels: int, path: Path
) -> list[str]:
    """``ch_names``, else the file's, else ``ch000``, ``ch001``, ...; one per channel."""
    names = (
        [str(n) for n in extras["ch_names"]]
        if ch_names is None and "ch_names" in extras
        else [str(n) for n in ch_names]
        if ch_names is not None
        else [f"ch{i:03d}" for i in range(n_channels)]
    )
    if len(names) != n_channels:
        raise DataError(f"{path}: {n_channels} channels but {len(names)} names")
    return names


_PICKLE_WHY = (
    "is a pickled Python dict, and unpickling can run arbitrary code; load it only "
    "if you trust its source, with trust_pickle=True (command line: --trust-pickle)"
)


def _load_pickled(path: Path, trust_pickle: bool) -> dict:
    if not path.is_file():
        raise UsageError(f"{path} not found")
    if not trust_pickle:
        raise UsageError(f"{path} {_PICKLE_WHY}")
    try:
        value = np.load(path, allow_pickle=True)
        value = value.item() if isinstance(value, np.ndarray) and value.dtype == object else value
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    if not isinstance(value, dict):
        raise DataError(f"{path}: holds {type(value).__name__}; expected a dict")
    return value


def load_things_eeg2(
    eeg_path: str | Path,
    metadata_path: str | Path,
    *,
    trust_pickle: bool = False,
    partition: str | None = None,
    repetitions: bool = False,
    tmin: float | None = None,
    tmax: float | None = None,
    picks: Sequence[str] | str | None = None,
    decim: int = 1,
    image_ids: IdSource = None,
) -> xr.DataArray:
    """THINGS-EEG2 preprocessed data (``preprocessed_eeg_training.npy`` / ``_test.npy``).

    Parameters
    ----------
    eeg_path : pickled dict with ``preprocessed_eeg_data`` (images x repetitions x channels x
        times), ``ch_names`` and ``times``.
    metadata_path : ``image_metadata.npy`` (pickled dict with ``train_img_files``,
        ``train_img_concepts``, ``test_img_files``, ``test_img_concepts``).
    trust_pickle : both files are pickles; they are only read when this is True.
    partition : ``"train"`` or ``"test"``; default from the file name.
    repetitions : keep repetitions (image, repetition, channel, time); else their mean.
    tmin, tmax, picks, decim : as in :func:`figureground.neural.things_meg.load`.
    """
    path, meta_path = Path(eeg_path), Path(metadata_path)
    if partition is None:
        partition = "test" if "test" in path.name else "train"
    if partition not in ("train", "test"):
        raise UsageError(f"partition={partition!r}; expected 'train' or 'test'")
    content = _load_pickled(path, trust_pickle)
    meta = _load_pickled(meta_path, trust_pickle)
    missing = [k for k in ("preprocessed_eeg_data", "ch_names", "times") if k not in content]
    files_key, concepts_key = f"{partition}_img_files", f"{partition}_img_concepts"
    missing += [k for k in (files_key, concepts_key) if k not in meta]
    if missing:
        raise DataError(f"{path} / {meta_path}: missing keys {missing}")
    data = np.asarray(content["preprocessed_eeg_data"])
    if data.ndim != 4:
        raise DataError(
            f"{path}: data shape {data.shape}; expected images x repetitions x channels x times"
        )
    files = [str(f) for f in meta[files_key]]
    if len(files) != data.shape[0]:
        raise DataError(
            f"{meta_path}: {len(files)} {partition} images, but {path} holds {data.shape[0]}"
        )
    names = [str(n) for n in content["ch_names"]]
    if len(names) != data.shape[2]:
        raise DataError(f"{path}: {data.shape[2]} channels but {len(names)} ch_names")
    sample_times = _times(data.shape[3], content["times"], None, 0.0, str(path))
    n_images, n_reps = data.shape[:2]
    flat = data.reshape(n_images * n_reps, *data.shape[2:])
    ids = np.repeat([image_id_of(f) for f in files], n_reps)
    concepts = np.repeat([str(c).split("_", 1)[-1] for c in meta[concepts_key]], n_reps)
    table = _table(list(ids), list(concepts), None)
    attrs = recording_attrs(
        path.parent.name, path, provenance.stamp(loader="things_eeg2"), partition=partition
    )
    return build_responses(
        _array_source(flat, str(path), names, sample_times),
        table,
        repetitions=repetitions,
        tmin=tmin,
        tmax=tmax,
        picks=picks,
        decim=decim,
        image_ids=image_ids,
        attrs=attrs,
    )
