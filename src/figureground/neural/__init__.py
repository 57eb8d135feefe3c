"""Neural responses aligned to image ids: THINGS-MEG, other recordings, and a simulator.

``LOADERS`` maps a loader name to the function that reads one file; every loader returns a
float32 ``xarray.DataArray`` with dims (image, channel, time) (or with ``repetition`` after
image). ``SOURCES`` is the pipeline's registry of ``neural.source`` values: how each finds its
participants' files (:func:`find_participants`) and reads one participant's experiment or test
responses from that entry (:func:`read_participant`). Loaders are imported on first use, so
importing this package stays light.

A participant's entry (``neural_files["P<n>"]``) is a frozen
:class:`~figureground.neural.recording.Recording`: ``epochs`` (the main file, which the run
fingerprints), ``attributes`` (a side file or None), ``test`` (the test-trial file or None),
``source``, ``options`` (the study file's options of that source), and ``gaze``
(``gaze_P<n>.npz`` beside THINGS-MEG epochs, from ``preprocess-meg``, or None). The readers
also take a plain mapping with those keys (one without ``source`` is THINGS-MEG).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import xarray as xr

from figureground.errors import DataError, UsageError
from figureground.neural.recording import Recording, as_recording

LOADERS: dict[str, str] = {
    "things-meg": "figureground.neural.things_meg:load",
    "epochs": "figureground.neural.arrays:load_epochs",
    "numpy": "figureground.neural.arrays:load_numpy",
    "things-eeg2": "figureground.neural.arrays:load_things_eeg2",
}

TRIAL_TYPES = ("exp", "test")


def get_loader(source: str) -> Callable[..., xr.DataArray]:
    """The loader registered as ``source`` (one of ``LOADERS``)."""
    if source not in LOADERS:
        raise UsageError(f"neural source {source!r} unknown; expected one of {sorted(LOADERS)}")
    module, name = LOADERS[source].split(":")
    return getattr(importlib.import_module(module), name)


def load_responses(source: str, *args, **kwargs) -> xr.DataArray:
    """Load responses with the loader registered as ``source``."""
    return get_loader(source)(*args, **kwargs)


# ----------------------------------------------------------------------------- finding files


def _entry(
    source: str,
    main: Path,
    attributes: Path | None = None,
    test: Path | None = None,
    options: Mapping[str, Any] | None = None,
    **files: Path | None,
) -> Recording:
    return Recording(
        epochs=main, source=source, attributes=attributes, test=test, options=options or {}, **files
    )


def _number(pattern: str, name: str) -> int | None:
    match = re.fullmatch(pattern, name)
    return int(match.group(1)) if match else None


def _find_things_meg(path: Path, options: Mapping[str, Any]) -> dict[int, Recording]:
    from figureground.neural.things_meg import find_attributes

    if not path.is_dir():
        raise UsageError(f"neural.path {str(path)!r} is not a folder of THINGS-MEG files")
    if (
        not any(path.glob("preprocessed_P*-epo.fif"))
        and (path / "derivatives" / "preprocessed").is_dir()
    ):
        path = path / "derivatives" / "preprocessed"  # the BIDS root was given
    found = {}
    for file in path.glob("preprocessed_P*-epo.fif"):
        number = _number(r"preprocessed_P(\d+)-epo\.fif", file.name)
        if number is not None:
            gaze = file.with_name(f"gaze_P{number}.npz")  # written by preprocess-meg
            found[number] = _entry(
                "things_meg", file, find_attributes(file), gaze=gaze if gaze.is_file() else None
            )
    return found


def _find_epochs(path: Path, options: Mapping[str, Any]) -> dict[int, Recording]:
    if path.is_file():
        number = _number(r".*?P(\d+)-epo\.fif", path.name)
        return {number or 1: _entry("epochs", path, options=options)}
    if not path.is_dir():
        raise UsageError(f"neural.path {str(path)!r} is neither an epochs file nor a folder")
    found: dict[int, Recording] = {}
    for file in sorted(path.glob("*-epo.fif")):
        number = _number(r".*?P(\d+)-epo\.fif", file.name)
        if number is None:
            continue
        if number in found:
            raise UsageError(f"{path}: two epochs files for participant P{number}")
        found[number] = _entry("epochs", file, options=options)
    return found


def _find_things_eeg2(path: Path, options: Mapping[str, Any]) -> dict[int, Recording]:
    if not path.is_dir():
        raise UsageError(f"neural.path {str(path)!r} is not a folder of THINGS-EEG2 sub-* folders")
    metadata = Path(options.get("metadata") or path / "image_metadata.npy")
    if not metadata.is_file():
        raise UsageError(f"THINGS-EEG2 image metadata {str(metadata)!r} not found")
    found = {}
    for folder in path.glob("sub-*"):
        number = _number(r"sub-(\d+)", folder.name)
        training = folder / "preprocessed_eeg_training.npy"
        if number is None or not training.is_file():
            continue
        test = folder / "preprocessed_eeg_test.npy"
        found[number] = _entry(
            "things_eeg2",
            training,
            metadata,
            test if test.is_file() else None,
            {"trust_pickle": bool(options.get("trust_pickle", False))},
        )
    return found


def _array_file(folder: Path, stem: str) -> Path | None:
    files = [folder / f"{stem}{suffix}" for suffix in (".npy", ".npz")]
    present = [f for f in files if f.is_file()]
    if len(present) > 1:
        raise UsageError(f"{folder}: both {stem}.npy and {stem}.npz; keep one")
    return present[0] if present else None


def _find_arrays(path: Path, options: Mapping[str, Any]) -> dict[int, Recording]:
    if not path.is_dir():
        raise UsageError(f"neural.path {str(path)!r} is not a folder of P<n>.npy|npz files")
    found = {}
    for file in path.glob("P*.np[yz]"):
        number = _number(r"P(\d+)\.np[yz]", file.name)
        if number is None or number in found:
            continue
        data = _array_file(path, f"P{number}")
        table = path / f"P{number}.csv"
        if not table.is_file():
            raise UsageError(f"{data}: no {table.name} beside it naming each item's image")
        test = _array_file(path, f"P{number}_test")
        test_table = path / f"P{number}_test.csv"
        if test is not None and not test_table.is_file():
            raise UsageError(f"{test}: no {test_table.name} beside it naming each item's image")
        found[number] = _entry(
            "arrays", data, table, test, options, test_attributes=test_table if test else None
        )
    return found


SOURCES: dict[str, Callable[[Path, Mapping[str, Any]], dict[int, Recording]]] = {
    "things_meg": _find_things_meg,
    "things_eeg2": _find_things_eeg2,
    "epochs": _find_epochs,
    "arrays": _find_arrays,
}


def find_participants(
    source: str, path: Path, options: Mapping[str, Any], participants: tuple[int, ...] = ()
) -> dict[str, Recording]:
    """Each participant's neural-files entry of ``source`` at ``path``, ``P<n>`` -> entry.

    ``participants``: the numbers wanted (empty: every one found). Raises UsageError naming
    the source and path when nothing (or a wanted participant) is not there.
    """
    if source not in SOURCES:
        raise UsageError(f"neural.source {source!r} unknown; expected one of {sorted(SOURCES)}")
    found = SOURCES[source](Path(path), options)
    if not found:
        raise UsageError(f"neural.path {str(path)!r} holds no {source} recordings")
    missing = [n for n in participants if n not in found]
    if missing:
        raise UsageError(
            f"neural.participants {missing} not found at {path} (found {sorted(found)})"
        )
    numbers = participants or tuple(sorted(found))
    return {f"P{n}": found[n] for n in numbers}


# ----------------------------------------------------------------------------- reading


def has_test(files: Recording | Mapping[str, Any]) -> bool:
    """Whether an entry can give test responses (repetitions of test images)."""
    recording = as_recording(files)
    if recording.source == "epochs":
        return bool(recording.options.get("test_query"))
    if recording.source in ("things_eeg2", "arrays"):
        return recording.test is not None
    return True  # THINGS-MEG: its test trials are in the epochs file


def _query(epochs_path: Path, query: str | None) -> Any:
    """The epochs of ``epochs_path`` chosen by a metadata query (all when None)."""
    from figureground.neural.things_meg import read_epochs_lazy

    epochs = read_epochs_lazy(epochs_path)
    if not query:
        return epochs
    if epochs.metadata is None:
        raise DataError(f"{epochs_path}: no metadata attached to query {query!r}")
    try:
        chosen = epochs[query]
    except (KeyError, ValueError, SyntaxError) as exc:
        raise UsageError(f"{epochs_path}: metadata query {query!r} failed ({exc})") from None
    if len(chosen) == 0:
        raise DataError(f"{epochs_path}: no epochs match {query!r}")
    return chosen


def read_participant(
    files: Recording | Mapping[str, Any], trial_type: str, **window: Any
) -> xr.DataArray:
    """One participant's experiment (``"exp"``) or test (``"test"``) responses.

    Experiment responses have dims (image, channel, time), test responses (image, repetition,
    channel, time). ``window``: tmin / tmax / decim as the loaders take them. Raises DataError
    when the entry has no test trials.
    """
    if trial_type not in TRIAL_TYPES:
        raise UsageError(f"trial_type {trial_type!r}; expected one of {TRIAL_TYPES}")
    recording = as_recording(files)
    test = trial_type == "test"
    if test and not has_test(recording):
        raise DataError(f"{recording.epochs}: the {recording.source} source has no test trials")
    if recording.source not in _READERS:
        raise UsageError(
            f"neural source {recording.source!r} unknown; expected one of {sorted(SOURCES)}"
        )
    return _READERS[recording.source](recording, test, window)


def _read_things_meg(recording: Recording, test: bool, window: dict[str, Any]) -> xr.DataArray:
    from figureground.neural import things_meg

    trial_type = "test" if test else "exp"
    return things_meg.load(recording.epochs, recording.attributes, trial_type=trial_type, **window)


def _read_epochs(recording: Recording, test: bool, window: dict[str, Any]) -> xr.DataArray:
    from figureground.neural import arrays

    options = recording.options
    query = options.get("test_query") if test else options.get("experiment_query")
    return arrays.load_epochs(
        recording.epochs,
        options["image_column"],
        concept_column=options.get("concept_column"),
        session_column=options.get("session_column"),
        repetitions=test,
        epochs=_query(Path(recording.epochs), query),
        **window,
    )


def _read_things_eeg2(recording: Recording, test: bool, window: dict[str, Any]) -> xr.DataArray:
    from figureground.neural import arrays

    return arrays.load_things_eeg2(
        recording.test if test else recording.epochs,
        recording.attributes,
        trust_pickle=bool(recording.options.get("trust_pickle")),
        partition="test" if test else "train",
        repetitions=test,
        **window,
    )


def _read_arrays(recording: Recording, test: bool, window: dict[str, Any]) -> xr.DataArray:
    from figureground.neural import arrays

    options = recording.options
    return arrays.load_numpy(
        recording.test if test else recording.epochs,
        recording.test_attributes if test else recording.attributes,
        key=options.get("key"),
        sfreq=options.get("sfreq"),
        first_time=float(options.get("first_time", 0.0)),
        id_column=options.get("id_column", "image_id"),
        repetitions=test,
        **window,
    )


_READERS: dict[str, Callable[[Recording, bool, dict[str, Any]], xr.DataArray]] = {
    "things_meg": _read_things_meg,
    "epochs": _read_epochs,
    "things_eeg2": _read_things_eeg2,
    "arrays": _read_arrays,
}
