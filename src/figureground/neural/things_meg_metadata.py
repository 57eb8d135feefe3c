"""THINGS-MEG sample attributes: one metadata row per epoch, checked, and the trials table.

The attributes CSV (``sample_attributes_P{n}.csv``) is checked against the epochs file (the
metadata attached to it, else its event codes) before its rows name each epoch's image;
:func:`trials_table` then lists the epochs of one trial type with their image, concept and
session. Used by the THINGS-MEG loader (:mod:`figureground.neural.things_meg`).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from figureground import logs
from figureground.errors import DataError, UsageError
from figureground.neural.aggregate import concept_of_id

log = logs.get_logger(__name__)

REQUIRED_COLUMNS = ("trial_type", "image_path")

_MISSING_TEXT = frozenset({"", "nan", "none", "n/a", "<na>"})


def _missing(values: pd.Series) -> np.ndarray:
    """True where a value is missing: None, NaN, NA, or text that is empty, 'nan' or 'n/a'."""
    text = values.astype(object).map(lambda value: str(value).strip().lower())
    return (values.isna() | text.isin(_MISSING_TEXT)).to_numpy(dtype=bool)


def _first_difference(left: pd.Series, right: pd.Series) -> int | None:
    """Row of the first disagreement between two columns, or None.

    Missing values (None, NaN, empty text, ``n/a``) equal each other whatever the column's
    type, because a CSV reads them as NaN while MNE's fif round trip gives None or NaN
    depending on the column; values that both read as numbers compare as numbers (``1`` equals
    ``1.0``), others as stripped text.
    """
    left, right = left.reset_index(drop=True), right.reset_index(drop=True)
    left_missing, right_missing = _missing(left), _missing(right)
    present = ~left_missing & ~right_missing
    a = pd.to_numeric(left.astype(object), errors="coerce").to_numpy(dtype=float)
    b = pd.to_numeric(right.astype(object), errors="coerce").to_numpy(dtype=float)
    numeric = present & ~np.isnan(a) & ~np.isnan(b)
    same = left_missing & right_missing
    same |= numeric & np.isclose(np.where(numeric, a, 0.0), np.where(numeric, b, 0.0))
    textual = present & ~numeric
    if textual.any():
        left_text = left.astype(object).map(lambda value: str(value).strip()).to_numpy()
        right_text = right.astype(object).map(lambda value: str(value).strip()).to_numpy()
        same |= textual & (left_text == right_text)
    differ = np.flatnonzero(~same)
    return int(differ[0]) if differ.size else None


def _catch_rows(csv: pd.DataFrame) -> np.ndarray:
    """True for catch trials: ``trial_type == 'catch'`` or (without that column) no image."""
    if "trial_type" in csv.columns:
        return (csv["trial_type"].astype(object).map(str).str.strip() == "catch").to_numpy()
    return _missing(csv["things_image_nr"])


def _codes_encode(codes: np.ndarray, values: np.ndarray) -> bool:
    """Whether every value occurs among the event codes as often as in ``values``."""
    code_set, code_counts = np.unique(codes, return_counts=True)
    value_set, value_counts = np.unique(values, return_counts=True)
    where = np.searchsorted(code_set, value_set)
    inside = where < len(code_set)
    if not inside.all() or not np.array_equal(code_set[where], value_set):
        return False
    return bool((code_counts[where] >= value_counts).all())


def _check_event_codes(
    codes: np.ndarray, csv: pd.DataFrame, csv_path: Path, epochs_path: Path
) -> bool:
    """Check the CSV's row order against the event codes; False if they encode no column.

    The codes of the public files are ``things_image_nr`` for experiment and test trials and a
    placeholder (999999) for catch trials, whose ``things_image_nr`` is empty; files written by
    other tools may use ``image_nr`` for every trial. Either is recognised from the values the
    codes take (independently of row order) and then compared row by row, on the non-catch
    rows for ``things_image_nr``. A disagreement raises DataError.
    """
    if "image_nr" in csv.columns and not _missing(csv["image_nr"]).any():
        image_nr = pd.to_numeric(csv["image_nr"], errors="coerce").to_numpy(dtype=float)
        if np.isfinite(image_nr).all() and np.array_equal(
            np.sort(codes), np.sort(image_nr.astype(codes.dtype))
        ):
            _raise_if_order_differs(
                codes, image_nr, np.arange(len(codes)), "image_nr", csv_path, epochs_path
            )
            return True
    if "things_image_nr" in csv.columns:
        things = pd.to_numeric(csv["things_image_nr"], errors="coerce").to_numpy(dtype=float)
        rows = np.flatnonzero(~_catch_rows(csv) & np.isfinite(things))
        if rows.size and _codes_encode(codes, things[rows].astype(codes.dtype)):
            _raise_if_order_differs(codes, things, rows, "things_image_nr", csv_path, epochs_path)
            return True
    return False


def _raise_if_order_differs(
    codes: np.ndarray,
    values: np.ndarray,
    rows: np.ndarray,
    column: str,
    csv_path: Path,
    epochs_path: Path,
) -> None:
    differ = rows[codes[rows] != values[rows].astype(codes.dtype)]
    if differ.size:
        row = int(differ[0])
        raise DataError(
            f"{csv_path}: row {row} has {column}={values[row]:g} but epoch {row} of "
            f"{epochs_path.name} has event code {codes[row]}; rows are in a different order "
            f"than the epochs"
        )


def resolve_metadata(epochs, epochs_path: Path, attributes_path: str | Path | None) -> pd.DataFrame:
    """One metadata row per epoch, checked against the epochs file.

    The CSV must have one row per epoch (or one per original event when epochs were dropped:
    then the kept rows are taken by ``epochs.selection``). Its order is checked against the
    metadata attached to the epochs (columns in common, missing values equal to missing
    values) if there is any, else against the event codes when these encode ``image_nr`` or
    ``things_image_nr`` (catch rows excluded); a disagreement raises DataError. Empty CSV
    fields read as NaN; no placeholder value is needed for them.
    """
    attached = epochs.metadata
    if attributes_path is None:
        if attached is None:
            raise DataError(
                f"{epochs_path}: no metadata attached; pass the attributes CSV "
                f"(sample_attributes_P<n>.csv)"
            )
        return attached.reset_index(drop=True)
    csv_path = Path(attributes_path)
    if not csv_path.is_file():
        raise UsageError(f"attributes file {csv_path} not found")
    csv = pd.read_csv(csv_path)
    n_epochs = len(epochs)
    if len(csv) != n_epochs:
        if len(csv) == len(epochs.drop_log) and len(epochs.drop_log) != n_epochs:
            log.info(
                "%s: %d of %d epochs were dropped; using the CSV rows of the kept ones",
                epochs_path.name,
                len(epochs.drop_log) - n_epochs,
                len(epochs.drop_log),
            )
            csv = csv.iloc[np.asarray(epochs.selection)]
        else:
            raise DataError(
                f"{csv_path}: {len(csv)} rows, but {epochs_path} has {n_epochs} "
                f"epochs; expected one row per epoch in the same order"
            )
    csv = csv.reset_index(drop=True)
    if attached is not None:
        attached = attached.reset_index(drop=True)
        for column in [c for c in csv.columns if c in attached.columns]:
            row = _first_difference(csv[column], attached[column])
            if row is not None:
                raise DataError(
                    f"{csv_path}: row {row} {column}={csv[column].iloc[row]!r} but "
                    f"the metadata attached to {epochs_path.name} says "
                    f"{attached[column].iloc[row]!r}; rows are misaligned"
                )
        return csv
    if _check_event_codes(np.asarray(epochs.events[:, 2]), csv, csv_path, epochs_path):
        return csv
    log.warning(
        "%s: order not verified (no metadata attached to %s and its event codes encode "
        "neither image_nr nor things_image_nr); trusting the row order",
        csv_path.name,
        epochs_path.name,
    )
    return csv


def _image_fields(paths: pd.Series) -> tuple[list[str], list[str]]:
    ids, concepts = [], []
    for value in paths.astype(str):
        path = PurePosixPath(value.replace("\\", "/"))
        ids.append(path.stem)
        folder = path.parent.name
        concepts.append(
            folder if folder and not folder.startswith("images_") else concept_of_id(path.stem)
        )
    return ids, concepts


def trials_table(metadata: pd.DataFrame, trial_type: str, name: str) -> pd.DataFrame:
    """Epoch index, image id, concept and session of each epoch of ``trial_type``."""
    missing = [column for column in REQUIRED_COLUMNS if column not in metadata.columns]
    if missing:
        raise DataError(
            f"{name}: metadata lacks columns {missing}; expected THINGS-MEG sample attributes"
        )
    keep = metadata["trial_type"].astype(object).map(str).str.strip() == trial_type
    chosen = metadata.loc[keep]
    no_path = _missing(chosen["image_path"])
    if no_path.any():
        row = int(np.flatnonzero(keep.to_numpy())[np.argmax(no_path)])
        raise DataError(f"{name}: row {row} is a {trial_type!r} trial without image_path")
    ids, concepts = _image_fields(chosen["image_path"])
    table = pd.DataFrame(
        {"epoch": np.flatnonzero(keep.to_numpy()), "image_id": ids, "concept": concepts}
    )
    if "session_nr" in chosen.columns:
        table["session"] = chosen["session_nr"].to_numpy()
    return table
