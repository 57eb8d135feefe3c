"""Noise ceilings: how well a perfect model could do given the noise in the data.

RSA ceilings follow rsatoolbox's ``boot_noise_ceiling`` (rsatoolbox 0.3.2) for the ``corr``,
``spearman`` and ``cosine`` comparisons, computed from RDMs you already have (one per
participant or per repetition split), vectorised over time:

- pooled RDM: ``corr`` z-scores each RDM vector and averages, ``spearman`` averages the
  rank-transformed vectors, ``cosine`` averages vectors scaled to unit root-mean-square;
- upper bound: mean over RDMs of the comparison between each RDM and the pool of all RDMs;
- lower bound: mean over RDMs of the comparison between each RDM and the pool of the others.

Encoding ceilings come from split-half reliability over repetitions: the correlation across
images between the means of two random halves of the repetitions, Spearman-Brown corrected
to the full number of repetitions, per sensor and time, averaged over random splits.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import xarray as xr
from scipy.stats import rankdata

from figureground.errors import DataError, UsageError

Pool = Callable[[np.ndarray], np.ndarray]


def _zscore(v: np.ndarray) -> np.ndarray:
    centred = v - v.mean(axis=-1, keepdims=True)
    return centred / centred.std(axis=-1, keepdims=True)


def _rms_scaled(v: np.ndarray) -> np.ndarray:
    return v / np.sqrt((v**2).mean(axis=-1, keepdims=True))


def _ranks(v: np.ndarray) -> np.ndarray:
    return rankdata(v, axis=-1)


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity along the last axis (broadcasting)."""
    return (a * b).sum(-1) / np.sqrt((a * a).sum(-1) * (b * b).sum(-1))


def _correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _cosine(a - a.mean(-1, keepdims=True), b - b.mean(-1, keepdims=True))


def _spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _correlation(_ranks(a), _ranks(b))


# method -> (transform applied to each RDM before averaging, comparison)
RDM_CEILING_METHODS: dict[str, tuple[Pool, Callable[[np.ndarray, np.ndarray], np.ndarray]]] = {
    "corr": (_zscore, _correlation),
    "spearman": (_ranks, _spearman),
    "cosine": (_rms_scaled, _cosine),
}


def rdm_noise_ceiling(rdms: np.ndarray, method: str = "corr") -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper noise-ceiling bounds of RSA, per time point.

    Parameters
    ----------
    rdms : condensed RDMs, shape (n_rdms, n_times, n_pairs) or (n_rdms, n_pairs); one RDM
        per participant or per repetition split, at least two.
    method : "corr", "spearman" or "cosine" (rsatoolbox's comparison names).

    Returns
    -------
    (lower, upper), each of shape (n_times,) (or scalars for 2-D input).
    """
    if method not in RDM_CEILING_METHODS:
        raise UsageError(
            f"noise-ceiling method {method!r} is not one of {', '.join(RDM_CEILING_METHODS)}"
        )
    array = np.asarray(rdms, dtype=np.float64)
    squeeze = array.ndim == 2
    if squeeze:
        array = array[:, None, :]
    if array.ndim != 3 or array.shape[0] < 2:
        raise DataError(
            f"RDMs have shape {np.shape(rdms)}; expected (n_rdms >= 2, n_times, n_pairs)"
        )
    if not np.isfinite(array).all():
        raise DataError("RDMs contain NaN or infinite values")
    transform, compare = RDM_CEILING_METHODS[method]
    transformed = transform(array)  # (n_rdms, n_times, n_pairs)
    total = transformed.sum(axis=0)
    n_rdms = array.shape[0]
    upper = compare(total[None] / n_rdms, array).mean(axis=0)
    leave_one_out = (total[None] - transformed) / (n_rdms - 1)
    lower = compare(leave_one_out, array).mean(axis=0)
    if squeeze:
        return lower[0], upper[0]
    return lower, upper


def rdm_noise_ceiling_table(
    rdms: np.ndarray, times: np.ndarray, method: str = "corr", **descriptors: object
) -> pd.DataFrame:
    """:func:`rdm_noise_ceiling` as a tidy table: time, lower, upper, method, descriptors."""
    lower, upper = rdm_noise_ceiling(rdms, method)
    table = pd.DataFrame(
        {"time": np.asarray(times), "lower": np.atleast_1d(lower), "upper": np.atleast_1d(upper)}
    )
    table["method"] = method
    for key, value in descriptors.items():
        table[key] = value
    return table


def _check_repeated(data: xr.DataArray) -> xr.DataArray:
    expected = ("image", "repetition", "channel", "time")
    if set(data.dims) != set(expected):
        raise DataError(f"repeated responses have dims {data.dims}; expected {expected}")
    data = data.transpose(*expected)
    if data.sizes["repetition"] < 2:
        raise DataError("split-half reliability needs at least 2 repetitions per image")
    if data.sizes["image"] < 3:
        raise DataError("split-half reliability needs at least 3 images")
    return data


def repetition_halves(
    n_repetitions: int, n_splits: int, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Random splits of repetition indices into two halves (odd counts drop one)."""
    rng = np.random.default_rng(seed)
    half = n_repetitions // 2
    splits = []
    for _ in range(n_splits):
        order = rng.permutation(n_repetitions)
        splits.append((np.sort(order[:half]), np.sort(order[half : 2 * half])))
    return splits


def split_half_reliability(data: xr.DataArray, n_splits: int = 100, seed: int = 0) -> xr.DataArray:
    """Spearman-Brown corrected split-half reliability per split, sensor and time.

    Parameters
    ----------
    data : responses with dims (image, repetition, channel, time).
    n_splits : random splits of the repetitions into halves.
    seed : seeds the splits.

    Returns
    -------
    DataArray ``reliability`` with dims (split, channel, time); average over ``split`` for the
    estimate. The correlation is across images; ``2 r / (1 + r)`` corrects it from half of
    the repetitions to all of them.
    """
    data = _check_repeated(data)
    values = np.asarray(data.values, dtype=np.float64)
    if not np.isfinite(values).all():
        raise DataError("repeated responses contain NaN or infinite values")
    n_images, n_reps, n_channels, n_times = values.shape
    out = np.empty((n_splits, n_channels, n_times))
    for k, (first, second) in enumerate(repetition_halves(n_reps, n_splits, seed)):
        a = values[:, first].mean(axis=1).reshape(n_images, -1)
        b = values[:, second].mean(axis=1).reshape(n_images, -1)
        r = _correlation(a.T, b.T).reshape(n_channels, n_times)
        out[k] = 2 * r / (1 + r)
    return xr.DataArray(
        out,
        dims=("split", "channel", "time"),
        coords={
            "split": np.arange(n_splits),
            "channel": data["channel"].values,
            "time": data["time"].values,
        },
        name="reliability",
        attrs={"metric": "spearman_brown_split_half", "seed": seed, "n_repetitions": n_reps},
    )


def reliability_band(
    data: xr.DataArray,
    n_splits: int = 100,
    seed: int = 0,
    ci: float = 0.95,
    **descriptors: object,
) -> pd.DataFrame:
    """Encoding noise-ceiling band per time from :func:`split_half_reliability`.

    For each split the reliability is averaged over sensors; ``value`` is the mean over
    splits and ``lower`` / ``upper`` the central ``ci`` interval over splits.

    Returns
    -------
    Tidy DataFrame: time, value, lower, upper, metric, descriptors.
    """
    if not 0 < ci < 1:
        raise UsageError(f"ci={ci} must lie strictly between 0 and 1")
    per_split = split_half_reliability(data, n_splits, seed).mean("channel").values
    tail = (1 - ci) / 2 * 100
    table = pd.DataFrame(
        {
            "time": data["time"].values,
            "value": per_split.mean(axis=0),
            "lower": np.percentile(per_split, tail, axis=0),
            "upper": np.percentile(per_split, 100 - tail, axis=0),
            "metric": "spearman_brown_split_half",
        }
    )
    for key, value in descriptors.items():
        table[key] = value
    return table


def average_repetition_groups(
    data: xr.DataArray, n_groups: int = 2, seed: int = 0
) -> list[xr.DataArray]:
    """Split repetitions at random into ``n_groups`` groups and average each.

    The groups' (image, channel, time) means are the inputs for per-group RDMs, whose
    :func:`rdm_noise_ceiling` is the RSA ceiling of a single participant's test images.
    """
    data = _check_repeated(data)
    n_reps = data.sizes["repetition"]
    if not 2 <= n_groups <= n_reps:
        raise UsageError(f"n_groups={n_groups} must lie between 2 and {n_reps} repetitions")
    order = np.random.default_rng(seed).permutation(n_reps)
    return [
        data.isel(repetition=np.sort(part)).mean("repetition")
        for part in np.array_split(order, n_groups)
    ]
