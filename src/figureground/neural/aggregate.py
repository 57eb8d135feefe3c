"""Shared engine of the loaders: trials table + chunked reader -> labelled response array.

Every loader (THINGS-MEG, any MNE epochs file, NumPy arrays, THINGS-EEG2) describes its trials
as a table (epoch index, image id, concept, session) and gives a function that reads a sorted
set of epochs; this module selects channels and samples, averages in float64 and returns the
``xarray.DataArray`` that the contracts describe.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from figureground import logs
from figureground.errors import DataError, UsageError
from figureground.neural.sensors import bare_name

log = logs.get_logger(__name__)

Reader = Callable[[np.ndarray, np.ndarray], np.ndarray]
AVERAGES = ("image", "concept")


@dataclass(frozen=True)
class TrialSource:
    """Epochs that can be read in chunks.

    Attributes
    ----------
    name : the file (or files) the epochs come from, for messages.
    ch_names : sensor names, in file order.
    times : sample times in seconds.
    n_trials : number of epochs.
    read : ``read(epoch_indices, channel_indices) -> (n, n_channels, n_times)`` array, indices
        sorted ascending.
    lowpass : the low-pass edge recorded with the data (Hz), or None; used to warn when
        decimation would alias.
    """

    name: str
    ch_names: list[str]
    times: np.ndarray
    n_trials: int
    read: Reader
    lowpass: float | None = None


def pick_channels(source: TrialSource, picks: Sequence[str] | str | None) -> np.ndarray:
    """Indices of ``picks`` in ``source.ch_names``, in the order of ``picks``.

    ``picks`` is None (all channels), a name prefix such as ``"MLO"`` (matching channels in
    file order), or a list of sensor names. A name matches exactly or, failing that, with the
    CTF system suffix ignored on either side: ``"MLC11"`` picks ``"MLC11-1609"`` and
    ``"MLC11-1609"`` picks ``"MLC11"`` (see :func:`figureground.neural.sensors.bare_name`).
    The output keeps the file's names. Unknown names raise one UsageError naming them.
    """
    if picks is None:
        return np.arange(len(source.ch_names))
    if isinstance(picks, str):
        chosen = [i for i, name in enumerate(source.ch_names) if name.startswith(picks)]
        if not chosen:
            raise UsageError(f"picks {picks!r} matches no channel of {source.name}")
        return np.array(chosen)
    if len(picks) == 0:
        raise UsageError(f"picks is empty; name at least one channel of {source.name}")
    exact = {name: i for i, name in enumerate(source.ch_names)}
    by_bare: dict[str, list[int]] = {}
    for i, name in enumerate(source.ch_names):
        by_bare.setdefault(bare_name(name), []).append(i)
    indices, unknown = [], []
    for name in picks:
        if name in exact:
            indices.append(exact[name])
            continue
        matches = by_bare.get(bare_name(name), [])
        if len(matches) == 1:
            indices.append(matches[0])
        else:
            unknown.append(name)
    if unknown:
        raise UsageError(
            f"{len(unknown)} picked channels are not in {source.name}: {unknown[:5]} "
            f"(it has {source.ch_names[:3]}...; names match with or without a '-1609'-style "
            f"suffix)"
        )
    return np.array(indices, dtype=int)


def select_times(
    times: np.ndarray, tmin: float | None, tmax: float | None, decim: int
) -> np.ndarray:
    """Indices of the samples kept by a ``[tmin, tmax]`` window (both inclusive) and decimation.

    Decimation keeps every ``decim``-th sample on the grid through t = 0 (or the window start
    when 0 lies outside it); it does not filter, so the data must already be low-passed.
    """
    if int(decim) != decim or decim < 1:
        raise UsageError(f"decim={decim!r}; expected a whole number >= 1")
    step = float(np.median(np.diff(times))) if len(times) > 1 else 1.0
    low = times[0] if tmin is None else tmin
    high = times[-1] if tmax is None else tmax
    inside = np.flatnonzero((times >= low - step / 2) & (times <= high + step / 2))
    if inside.size == 0 or low > high:
        raise UsageError(
            f"time window [{low}, {high}] s holds no sample; the data span "
            f"[{times[0]:.3f}, {times[-1]:.3f}] s"
        )
    zero = int(np.argmin(np.abs(times)))
    anchor = zero if inside[0] <= zero <= inside[-1] else inside[0]
    return inside[(inside - anchor) % int(decim) == 0]


def _check_finite(block: np.ndarray, trials: np.ndarray, source: TrialSource) -> None:
    bad = ~np.isfinite(block).reshape(len(block), -1).all(axis=1)
    if bad.any():
        raise DataError(
            f"{source.name}: epoch {int(trials[np.argmax(bad)])} holds NaN or "
            f"infinite samples ({int(bad.sum())} bad epochs in this chunk)"
        )


def _as_slice(indices: np.ndarray) -> slice | np.ndarray:
    """A slice equal to evenly spaced ``indices`` (a view instead of a copy), else the indices."""
    if len(indices) > 1:
        steps = np.diff(indices)
        if (steps == steps[0]).all() and steps[0] > 0:
            return slice(int(indices[0]), int(indices[-1]) + 1, int(steps[0]))
    elif len(indices) == 1:
        return slice(int(indices[0]), int(indices[0]) + 1)
    return indices


def average_groups(
    source: TrialSource,
    trials: np.ndarray,
    groups: np.ndarray,
    n_groups: int,
    channels: np.ndarray,
    samples: np.ndarray,
    chunk_size: int = 256,
    desc: str = "epochs",
) -> np.ndarray:
    """Mean of the epochs of each group, read ``chunk_size`` epochs at a time.

    Parameters
    ----------
    trials : epoch indices to read.
    groups : output row of each of ``trials`` (0 .. n_groups-1).
    Returns
    -------
    float32 array (n_groups, len(channels), len(samples)). Epochs are taken as float32 (the
    precision of the files); groups seen once are copied, groups seen more than once are summed
    in float64 and divided, so results equal a float64 mean of the float32 samples.
    """
    order = np.argsort(trials, kind="stable")
    trials, groups = np.asarray(trials)[order], np.asarray(groups)[order]
    counts = np.bincount(groups, minlength=n_groups)
    if (counts == 0).any():
        raise DataError(f"{source.name}: {int((counts == 0).sum())} output rows have no epoch")
    shape = (len(channels), len(samples))
    window = _as_slice(samples)
    out = np.empty((n_groups, *shape), dtype=np.float32)
    repeated = np.flatnonzero(counts > 1)
    slot = np.full(n_groups, -1)
    slot[repeated] = np.arange(len(repeated))
    sums = np.zeros((len(repeated), *shape), dtype=np.float64)
    starts = range(0, len(trials), chunk_size)
    for start in logs.progress(starts, total=len(starts), desc=desc):
        idx = trials[start : start + chunk_size]
        block = source.read(idx, channels)
        if block.shape[1:] != (len(channels), len(source.times)) or len(block) != len(idx):
            raise DataError(
                f"{source.name}: read {block.shape} for {len(idx)} epochs, expected "
                f"({len(idx)}, {len(channels)}, {len(source.times)})"
            )
        block = np.asarray(block[:, :, window], dtype=np.float32)  # exact: files hold float32
        _check_finite(block, idx, source)
        rows = groups[start : start + chunk_size]
        single = slot[rows] < 0
        out[rows[single]] = block[single]
        if not single.all():
            where = slot[rows[~single]]
            by_slot = np.argsort(where, kind="stable")
            sorted_slots = where[by_slot]
            first = np.flatnonzero(np.r_[True, sorted_slots[1:] != sorted_slots[:-1]])
            partial = np.add.reduceat(block[~single][by_slot].astype(np.float64), first, axis=0)
            sums[sorted_slots[first]] += partial
    if len(repeated):
        out[repeated] = (sums / counts[repeated, None, None]).astype(np.float32)
    return out


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
    if average not in AVERAGES:
        raise UsageError(f"average={average!r}; expected one of {AVERAGES}")
    if repetitions and average != "image":
        raise UsageError("repetitions are kept per image; use average='image'")
    if table.empty:
        raise DataError(f"{source.name}: no epochs of the requested kind")
    table = table.reset_index(drop=True)
    has_session = "session" in table.columns
    if image_ids is not None:
        allowed = read_image_ids(image_ids)
        unknown = ~table["image_id"].isin(set(allowed))
        if unknown.any():
            examples = table.loc[unknown, "image_id"].unique()[:3].tolist()
            raise DataError(
                f"{source.name}: {int(unknown.sum())} epochs show images that match "
                f"no given stimulus (e.g. {examples})"
            )
        present = set(table["image_id"])
        images = [image for image in allowed if image in present]
    else:
        images = sorted(table["image_id"].unique())
    channels = pick_channels(source, picks)
    samples = select_times(source.times, tmin, tmax, decim)
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
    first = table.drop_duplicates("image_id").set_index("image_id")
    ch_names = [source.ch_names[i] for i in channels]
    times = source.times[samples]
    attrs = {
        **(attrs or {}),
        "average": average,
        "decim": int(decim),
        "sfreq": float(1.0 / np.median(np.diff(source.times)) / decim)
        if len(source.times) > 1
        else float("nan"),
    }

    if average == "concept":
        concepts = sorted(first.loc[images, "concept"].unique())
        row_of = {concept: i for i, concept in enumerate(concepts)}
        groups = table["concept"].map(row_of).to_numpy()
        data = average_groups(
            source, table["epoch"].to_numpy(), groups, len(concepts), channels, samples, chunk_size
        )
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

    row_of = {image: i for i, image in enumerate(images)}
    rows = table["image_id"].map(row_of).to_numpy()
    coords: dict = {
        "image": images,
        "channel": ch_names,
        "time": times,
        "concept": ("image", first.loc[images, "concept"].astype(str).to_numpy()),
    }
    if not repetitions:
        data = average_groups(
            source, table["epoch"].to_numpy(), rows, len(images), channels, samples, chunk_size
        )
        if has_session:
            session = table.groupby("image_id")["session"].min().loc[images].to_numpy()
            coords["session"] = ("image", session)
        return xr.DataArray(data, dims=("image", "channel", "time"), coords=coords, attrs=attrs)

    counts = np.bincount(rows, minlength=len(images))
    if len(set(counts.tolist())) != 1:
        worst = images[int(np.argmin(counts))]
        raise DataError(
            f"{source.name}: images have unequal repetition counts "
            f"({counts.min()} for {worst!r}, {counts.max()} for others); "
            f"expected the same count for every image"
        )
    n_reps = int(counts[0])
    table = table.assign(_row=rows, _order=np.arange(len(table)))
    keys = ["_row", "session", "_order"] if has_session else ["_row", "_order"]
    table = table.sort_values(keys, kind="stable")
    rep = np.tile(np.arange(n_reps), len(images))
    flat = table["_row"].to_numpy() * n_reps + rep
    data = average_groups(
        source, table["epoch"].to_numpy(), flat, len(images) * n_reps, channels, samples, chunk_size
    )
    data = data.reshape(len(images), n_reps, len(channels), len(samples))
    coords["repetition"] = np.arange(n_reps)
    if has_session:
        coords["session"] = (
            ("image", "repetition"),
            table["session"].to_numpy().reshape(len(images), n_reps),
        )
    return xr.DataArray(
        data, dims=("image", "repetition", "channel", "time"), coords=coords, attrs=attrs
    )


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
