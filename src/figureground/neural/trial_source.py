"""Epochs that can be read in chunks (:class:`TrialSource`), and the reading itself.

Channel picks by name or prefix, the samples of a time window with decimation, and the
chunked mean of groups of epochs in float64; :mod:`figureground.neural.aggregate` builds the
labelled response arrays on top.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from figureground import logs
from figureground.errors import DataError, UsageError
from figureground.neural.sensors import bare_name

Reader = Callable[[np.ndarray, np.ndarray], np.ndarray]


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
