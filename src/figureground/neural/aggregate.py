"""Shared engine of the loaders: trials table + chunked reader -> labelled response array.

Every loader (THINGS-MEG, any MNE epochs file, NumPy arrays, THINGS-EEG2) describes its trials
as a table (epoch index, image id, concept, session) and gives a function that reads a sorted
set of epochs (:class:`~figureground.neural.trial_source.TrialSource`); this module selects
channels and samples, averages in float64 and returns the ``xarray.DataArray`` that the
contracts describe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from figureground import logs
from figureground.errors import DataError, UsageError
from figureground.neural.trial_source import (  # noqa: F401  (re-exported)
    Reader,
    TrialSource,
    average_groups,
    pick_channels,
    select_times,
)

log = logs.get_logger(__name__)

AVERAGES = ("image", "concept")


def concept_of_id(image_id: str) -> str:
    """THINGS concept of an image id: everything before the last underscore."""
    return image_id.rsplit("_", 1)[0] if "_" in image_id else image_id


def image_id_of(value: str) -> str:
    """Image id of a metadata value: the file stem of a path, or the value itself."""
    text = str(value)
    return Path(text).stem if ("/" in text or "\\" in text or Path(text).suffix) else text


def read_image_ids(image_ids: Sequence[str] | pd.DataFrame | str | Path) -> list[str]:
    """Image ids from a list, a manifest DataFrame or a manifest CSV (column ``image_id``)."""
    if isinstance(image_ids, str | Path):
        path = Path(image_ids)
        if not path.is_file():
            raise UsageError(f"image list {path} not found; expected a manifest CSV")
        image_ids = pd.read_csv(path, dtype=str, keep_default_na=False)
    if isinstance(image_ids, pd.DataFrame):
        if "image_id" not in image_ids.columns:
            raise UsageError("manifest has no 'image_id' column")
        image_ids = image_ids["image_id"]
    ids = [str(value) for value in image_ids]
    if len(set(ids)) != len(ids):
        raise UsageError("image_ids holds duplicates; expected unique image ids")
    return ids


def build_responses(
    source: TrialSource,
    table: pd.DataFrame,
    *,
    average: str = "image",
    repetitions: bool = False,
    tmin: float | None = None,
    tmax: float | None = None,
    picks: Sequence[str] | str | None = None,
    decim: int = 1,
    image_ids: Sequence[str] | pd.DataFrame | str | Path | None = None,
    chunk_size: int = 256,
    attrs: dict | None = None,
) -> xr.DataArray:
    """Average (or stack repetitions of) the epochs in ``table`` into a labelled array.

    Parameters
    ----------
    table : one row per epoch to use, columns ``epoch`` (index into the source), ``image_id``,
        ``concept`` and optionally ``session``; row order is the presentation order.
    average : ``"image"`` -> dims (image, channel, time); ``"concept"`` -> (concept, channel,
        time), the mean over all epochs of the concept's images.
    repetitions : keep each image's epochs, ordered by session then presentation, as dims
        (image, repetition, channel, time); every image must have the same count.
    image_ids : the stimuli the images must belong to; output images follow this order.
    """
    _check_request(source, table, average, repetitions)
    table = table.reset_index(drop=True)
    images = _output_images(source, table, image_ids)
    channels = pick_channels(source, picks)
    samples = select_times(source.times, tmin, tmax, decim)
    _warn_if_aliasing(source, decim)
    first = table.drop_duplicates("image_id").set_index("image_id")
    ch_names = [source.ch_names[i] for i in channels]
    times = source.times[samples]
    attrs = _response_attrs(source, attrs, average, decim)
    epochs = _Epochs(source, table, channels, samples, chunk_size)
    if average == "concept":
        return _concept_means(epochs, first, images, ch_names, times, attrs)
    coords: dict = {
        "image": images,
        "channel": ch_names,
        "time": times,
        "concept": ("image", first.loc[images, "concept"].astype(str).to_numpy()),
    }
    if not repetitions:
        return _image_means(epochs, images, coords, attrs)
    return _image_repetitions(epochs, images, coords, attrs)


def _check_request(
    source: TrialSource, table: pd.DataFrame, average: str, repetitions: bool
) -> None:
    if average not in AVERAGES:
        raise UsageError(f"average={average!r}; expected one of {AVERAGES}")
    if repetitions and average != "image":
        raise UsageError("repetitions are kept per image; use average='image'")
    if table.empty:
        raise DataError(f"{source.name}: no epochs of the requested kind")


def _output_images(
    source: TrialSource,
    table: pd.DataFrame,
    image_ids: Sequence[str] | pd.DataFrame | str | Path | None,
) -> list[str]:
    """The images of the output rows: sorted, or in the order of ``image_ids``."""
    if image_ids is None:
        return sorted(table["image_id"].unique())
    allowed = read_image_ids(image_ids)
    unknown = ~table["image_id"].isin(set(allowed))
    if unknown.any():
        examples = table.loc[unknown, "image_id"].unique()[:3].tolist()
        raise DataError(
            f"{source.name}: {int(unknown.sum())} epochs show images that match "
            f"no given stimulus (e.g. {examples})"
        )
    present = set(table["image_id"])
    return [image for image in allowed if image in present]


def _warn_if_aliasing(source: TrialSource, decim: int) -> None:
    if decim > 1 and source.lowpass is not None:
        nyquist = 1.0 / np.median(np.diff(source.times)) / decim / 2.0
        if source.lowpass > nyquist:
            log.warning(
                "%s: low-pass %.1f Hz is above the decimated Nyquist %.1f Hz; "
                "decimation will alias",
                source.name,
                source.lowpass,
                nyquist,
            )


def _response_attrs(source: TrialSource, attrs: dict | None, average: str, decim: int) -> dict:
    return {
        **(attrs or {}),
        "average": average,
        "decim": int(decim),
        "sfreq": float(1.0 / np.median(np.diff(source.times)) / decim)
        if len(source.times) > 1
        else float("nan"),
    }


@dataclass(frozen=True)
class _Epochs:
    """The epochs of a request: source, trials table, kept channels and samples."""

    source: TrialSource
    table: pd.DataFrame
    channels: np.ndarray
    samples: np.ndarray
    chunk_size: int

    def average(self, table: pd.DataFrame, groups: np.ndarray, n_groups: int) -> np.ndarray:
        """:func:`average_groups` of the epochs of ``table`` into ``n_groups`` rows."""
        return average_groups(
            self.source,
            table["epoch"].to_numpy(),
            groups,
            n_groups,
            self.channels,
            self.samples,
            self.chunk_size,
        )


def _concept_means(
    epochs: _Epochs,
    first: pd.DataFrame,
    images: list[str],
    ch_names: list[str],
    times: np.ndarray,
    attrs: dict,
) -> xr.DataArray:
    concepts = sorted(first.loc[images, "concept"].unique())
    row_of = {concept: i for i, concept in enumerate(concepts)}
    groups = epochs.table["concept"].map(row_of).to_numpy()
    data = epochs.average(epochs.table, groups, len(concepts))
    n_images = first.loc[images].groupby("concept").size().reindex(concepts).to_numpy()
    return xr.DataArray(
        data,
        dims=("concept", "channel", "time"),
        coords={
            "concept": concepts,
            "channel": ch_names,
            "time": times,
            "n_images": ("concept", n_images),
        },
        attrs=attrs,
    )


def _image_means(epochs: _Epochs, images: list[str], coords: dict, attrs: dict) -> xr.DataArray:
    table = epochs.table
    row_of = {image: i for i, image in enumerate(images)}
    rows = table["image_id"].map(row_of).to_numpy()
    data = epochs.average(table, rows, len(images))
    if "session" in table.columns:
        session = table.groupby("image_id")["session"].min().loc[images].to_numpy()
        coords["session"] = ("image", session)
    return xr.DataArray(data, dims=("image", "channel", "time"), coords=coords, attrs=attrs)


def _image_repetitions(
    epochs: _Epochs, images: list[str], coords: dict, attrs: dict
) -> xr.DataArray:
    table = epochs.table
    has_session = "session" in table.columns
    row_of = {image: i for i, image in enumerate(images)}
    rows = table["image_id"].map(row_of).to_numpy()
    counts = np.bincount(rows, minlength=len(images))
    if len(set(counts.tolist())) != 1:
        worst = images[int(np.argmin(counts))]
        raise DataError(
            f"{epochs.source.name}: images have unequal repetition counts "
            f"({counts.min()} for {worst!r}, {counts.max()} for others); "
            f"expected the same count for every image"
        )
    n_reps = int(counts[0])
    table = table.assign(_row=rows, _order=np.arange(len(table)))
    keys = ["_row", "session", "_order"] if has_session else ["_row", "_order"]
    table = table.sort_values(keys, kind="stable")
    rep = np.tile(np.arange(n_reps), len(images))
    flat = table["_row"].to_numpy() * n_reps + rep
    data = epochs.average(table, flat, len(images) * n_reps)
    data = data.reshape(len(images), n_reps, len(epochs.channels), len(epochs.samples))
    coords["repetition"] = np.arange(n_reps)
    if has_session:
        coords["session"] = (
            ("image", "repetition"),
            table["session"].to_numpy().reshape(len(images), n_reps),
        )
    return xr.DataArray(
        data, dims=("image", "repetition", "channel", "time"), coords=coords, attrs=attrs
    )


def recording_attrs(participant: str, path: Path, provenance: dict, **extra: object) -> dict:
    """The attrs a loader gives its responses: participant, resolved source file, ``extra``
    (in order), then the provenance record."""
    return {
        "participant": participant,
        "source_file": str(path.resolve()),
        **extra,
        "provenance": provenance,
    }


def check_consistent(arrays: dict[str, xr.DataArray]) -> None:
    """Raise DataError naming the first file whose channels or times differ from the first's."""
    items = list(arrays.items())
    if not items:
        return
    ref_name, ref = items[0]
    for name, array in items[1:]:
        if array.sizes["channel"] != ref.sizes["channel"]:
            raise DataError(
                f"{name}: {array.sizes['channel']} channels, but {ref_name} has "
                f"{ref.sizes['channel']}"
            )
        if list(array["channel"].values) != list(ref["channel"].values):
            raise DataError(f"{name}: channel names differ from {ref_name}")
        if not np.allclose(array["time"].values, ref["time"].values):
            raise DataError(f"{name}: sample times differ from {ref_name}")
