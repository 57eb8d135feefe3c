"""Group test of per-sensor figure - ground maps: MNE's spatio-temporal cluster test.

The participants' differences are tested against 0 with sign flips, clusters over
neighbouring sensors and adjacent time points. The smallest attainable p-value of the design
is explained in :mod:`figureground.analysis.sensor_effects`.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import xarray as xr
from scipy import sparse, stats

from figureground import logs
from figureground.analysis.sensor_neighbours import square_adjacency
from figureground.errors import DataError, UsageError

log = logs.get_logger(__name__)

NO_CLUSTER = -1
TAILS = (-1, 0, 1)
CLUSTER_COLUMNS = [
    "cluster", "sign", "statistic", "p_cluster", "min_p", "exact", "n_permutations",
    "n_participants", "threshold", "tail", "tmin", "tmax", "n_times", "n_sensors",
    "peak_time", "peak_sensor", "sensors",
]  # fmt: skip


def min_attainable_p(n_participants: int, n_permutations: int, tail: int = 0) -> float:
    """Smallest cluster p of the sign-flip test: ``1 / min(n_permutations, 2**(n - two))``.

    ``two`` is 1 for the two-sided test (a sign pattern and its mirror count once), else 0.
    4 participants: 0.125 two-sided, 0.0625 one-sided (MNE's exact one-sided test may give
    0.125, see the module notes).
    """
    n_patterns = 2 ** (n_participants - (tail == 0))
    return 1.0 / min(int(n_permutations), n_patterns)


def default_threshold(n_participants: int, tail: int = 0) -> float:
    """MNE's default cluster-forming threshold: t at p = 0.05 (two-sided: 0.025 per tail)."""
    p_thresh = 0.05 / (1 + (tail == 0))
    threshold = float(-stats.t.ppf(p_thresh, n_participants - 1))
    return -threshold if tail < 0 else threshold


def differences_array(differences: xr.DataArray | np.ndarray) -> tuple[np.ndarray, dict]:
    """(participant, time, sensor) differences as float64 and their coordinates."""
    if isinstance(differences, xr.DataArray):
        if set(differences.dims) != {"participant", "time", "sensor"}:
            raise UsageError(
                f"differences have dims {differences.dims}; expected (participant, time, sensor)"
            )
        differences = differences.transpose("participant", "time", "sensor")
        coords = {
            name: np.asarray(differences[name].values) for name in ("participant", "time", "sensor")
        }
        return np.asarray(differences.values, dtype=np.float64), coords
    values = np.asarray(differences, dtype=np.float64)
    if values.ndim != 3:
        raise UsageError(
            f"differences have shape {values.shape}; expected (participant, time, sensor)"
        )
    coords = {
        "participant": np.arange(values.shape[0]).astype(str),
        "time": np.arange(values.shape[1]),
        "sensor": np.arange(values.shape[2]),
    }
    return values, coords


def _cluster_rows(
    t_obs: np.ndarray, clusters: list, p_values: np.ndarray, coords: dict, fixed: dict
) -> pd.DataFrame:
    rows = []
    for label, ((time_idx, sensor_idx), p_value) in enumerate(zip(clusters, p_values, strict=True)):
        values = t_obs[time_idx, sensor_idx]
        peak = int(np.argmax(np.abs(values)))
        sensors = np.unique(sensor_idx)
        rows.append(
            {
                "cluster": label,
                "sign": int(np.sign(values.sum())),
                "statistic": float(values.sum()),
                "p_cluster": float(p_value),
                **fixed,
                "tmin": coords["time"][time_idx.min()],
                "tmax": coords["time"][time_idx.max()],
                "n_times": int(np.unique(time_idx).size),
                "n_sensors": int(sensors.size),
                "peak_time": coords["time"][time_idx[peak]],
                "peak_sensor": str(coords["sensor"][sensor_idx[peak]]),
                "sensors": ",".join(str(coords["sensor"][i]) for i in sensors),
            }
        )
    return pd.DataFrame(rows, columns=CLUSTER_COLUMNS)


def sensor_cluster_test(
    differences: xr.DataArray | np.ndarray,
    adjacency,
    *,
    n_permutations: int = 1024,
    seed: int = 0,
    threshold: float | None = None,
    tail: int = 0,
) -> tuple[pd.DataFrame, xr.Dataset]:
    """Group test of figure minus ground against 0: MNE's spatio-temporal cluster test.

    Parameters
    ----------
    differences : (participant, time, sensor) differences (:func:`stack_participants`).
    adjacency : the *spatial* sensor x sensor adjacency (MNE joins adjacent time points
        itself, as ``mne.stats.combine_adjacency(n_times, adjacency)`` would).
    n_permutations : sign flips drawn; all ``2**(n - (tail == 0))`` are enumerated (an exact
        test) when that is fewer.
    seed : seeds the sign flips of a non-exact test.
    threshold : cluster-forming t; None for MNE's default (:func:`default_threshold`).
    tail : 0 two-sided, 1 figure > ground, -1 ground > figure.

    Returns
    -------
    table : one row per cluster (:data:`CLUSTER_COLUMNS`), with ``p_cluster`` and ``min_p``,
        the smallest p the design can give (:func:`min_attainable_p`; 0.125 for 4
        participants, two-sided). Empty when no point passes the threshold.
    clusters : Dataset on (time, sensor): ``t_obs``, ``cluster`` (label, -1 outside any
        cluster) and ``p_cluster`` (NaN outside); attrs ``min_p``, ``exact``,
        ``n_permutations``, ``threshold``, ``tail``, ``n_participants``.
    """
    values, coords = _checked_differences(differences, n_permutations, tail)
    n_participants, _, n_sensors = values.shape
    matrix = square_adjacency(adjacency, n_sensors)
    threshold = default_threshold(n_participants, tail) if threshold is None else float(threshold)
    min_p = min_attainable_p(n_participants, n_permutations, tail)
    exact = 2 ** (n_participants - (tail == 0)) <= int(n_permutations)
    _log_design(n_participants, n_permutations, tail, min_p, exact)
    t_obs, clusters, p_values, h0 = _mne_cluster_test(
        values, matrix, threshold, n_permutations, tail, seed
    )
    fixed = {
        "min_p": min_p,
        "exact": exact,
        "n_permutations": len(h0)
        if len(h0)
        else min(2 ** (n_participants - (tail == 0)), int(n_permutations)),
        "n_participants": n_participants,
        "threshold": threshold,
        "tail": tail,
    }
    table = _cluster_rows(t_obs, clusters, np.asarray(p_values), coords, fixed)
    return table, _cluster_dataset(t_obs, clusters, p_values, coords, fixed)


def _checked_differences(
    differences: xr.DataArray | np.ndarray, n_permutations: int, tail: int
) -> tuple[np.ndarray, dict]:
    """The differences and coordinates of :func:`differences_array`, checked for the test."""
    if tail not in TAILS:
        raise UsageError(f"tail must be one of {TAILS}; got {tail!r}")
    if int(n_permutations) < 1:
        raise UsageError(f"n_permutations must be at least 1; got {n_permutations}")
    values, coords = differences_array(differences)
    n_participants = values.shape[0]
    if n_participants < 2:
        raise DataError(f"a group test needs at least 2 participants; got {n_participants}")
    if not np.isfinite(values).all():
        raise DataError("differences contain NaN or infinite values")
    return values, coords


def _log_design(
    n_participants: int, n_permutations: int, tail: int, min_p: float, exact: bool
) -> None:
    """Say when no cluster can reach p < 0.05, and warn of MNE's exact one-sided test."""
    if min_p > 0.05:  # expected with THINGS-MEG's 4: the table's min_p and the report say so
        log.info(
            "sensor cluster test: with %d participants the smallest attainable cluster p is "
            "%.4g (%s sign flips); no cluster can reach p < 0.05",
            n_participants,
            min_p,
            "all" if exact else n_permutations,
        )
    if exact and tail != 0:
        log.warning(
            "sensor cluster test: MNE's exact one-sided test may count the observed sign "
            "pattern twice; p-values can exceed the exact test's by up to %.4g",
            1.0 / 2**n_participants,
        )


def _mne_cluster_test(
    values: np.ndarray,
    matrix: sparse.csr_array,
    threshold: float,
    n_permutations: int,
    tail: int,
    seed: int,
) -> tuple:
    """MNE's spatio-temporal sign-flip test: (t_obs, clusters, p_values, h0), quietly."""
    import mne

    with warnings.catch_warnings(), mne.utils.use_log_level("error"):
        warnings.simplefilter("ignore", RuntimeWarning)  # "No clusters found"
        return mne.stats.spatio_temporal_cluster_1samp_test(
            values,
            adjacency=sparse.coo_matrix(matrix),
            threshold=threshold,
            n_permutations=int(n_permutations),
            tail=tail,
            out_type="indices",
            seed=seed,
            n_jobs=1,
        )


def _cluster_dataset(
    t_obs: np.ndarray, clusters: list, p_values: np.ndarray, coords: dict, fixed: dict
) -> xr.Dataset:
    """The (time, sensor) maps of t, cluster label and cluster p, ``fixed`` as attributes."""
    n_times, n_sensors = t_obs.shape
    labels = np.full((n_times, n_sensors), NO_CLUSTER, dtype=int)
    point_p = np.full((n_times, n_sensors), np.nan)
    for label, (time_idx, sensor_idx) in enumerate(clusters):
        labels[time_idx, sensor_idx] = label
        point_p[time_idx, sensor_idx] = p_values[label]
    dims = ("time", "sensor")
    return xr.Dataset(
        {"t_obs": (dims, t_obs), "cluster": (dims, labels), "p_cluster": (dims, point_p)},
        coords={"time": coords["time"], "sensor": coords["sensor"]},
        attrs={
            key: (int(value) if isinstance(value, bool) else value) for key, value in fixed.items()
        },
    )
