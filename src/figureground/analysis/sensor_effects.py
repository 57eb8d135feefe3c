"""Where on the head does the figure (or the ground) win? Per-sensor effects and cluster tests.

Two per-sensor measures, each computed for the figure (``no_background``) and the ground
(``no_foreground``) variant of a network's features:

- :func:`sensor_rsa`: RSA searchlight over sensors. For every sensor and time point, the RDM
  of the patterns over that sensor's neighbourhood (itself and its neighbours in MNE's
  ``ctf275`` adjacency template, :func:`figureground.neural.sensors.things_meg_adjacency`),
  compared with each model RDM (Spearman by default: ranks of the data RDM against ranks of
  the model RDM, as :func:`figureground.analysis.rdm_compare.compare_rdms`).
- :func:`sensor_encoding`: the encoding accuracy of :func:`figureground.analysis.encoding.encode`
  (Pearson r, mean over folds) per sensor, optionally averaged over each sensor's
  neighbourhood.

:func:`sensor_difference` takes figure minus ground per sensor and time for one participant;
:func:`sensor_cluster_test` tests the participants' differences against 0 with MNE's
spatio-temporal cluster permutation test (sign flips, clusters over neighbouring sensors and
adjacent time points); :func:`sensor_effects_table` writes everything as one tidy table and
:func:`peak_windows` picks the time windows the topographies show
(:mod:`figureground.report.sensor_figure`).

Smallest attainable p-value
---------------------------
The one-sample test flips the signs of whole participants. With ``n`` participants there are
``2**n`` sign patterns; the two-sided test (``tail=0``) counts a pattern and its mirror once,
so MNE enumerates all ``2**(n-1)`` of them (an exact test) whenever ``2**(n-1) - 1 <
n_permutations``, and the observed data are one of them. The smallest p-value any cluster can
get is therefore ``1 / 2**(n-1) = 2 / 2**n`` (two-sided) or ``1 / 2**n`` (one-sided), and
never below ``1 / n_permutations``. THINGS-MEG has 4 participants: the two-sided minimum is
**0.125** (one-sided 0.0625), so **no cluster can reach p < 0.05** however strong the
effect. The result says so in its ``min_p`` column; the group maps are descriptive.

MNE 1.13's exact *one-sided* test enumerates the sign patterns ``1 .. 2**n - 1`` of
``bin_perm_rep``: they include the unflipped data (all +1) and omit the all-flipped pattern,
so the observed statistic enters the null distribution twice whenever the permutation loop's
t-test reproduces it to the last bit (about half the time, by rounding). One-sided p-values
can therefore be up to ``1 / 2**n`` larger than the exact test's (0.125 instead of 0.0625
with 4 participants); ``min_p`` gives the exact test's bound. The two-sided enumeration
(patterns with the first participant flipped) is correct.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr
from scipy import sparse, stats

from figureground import logs
from figureground.analysis.rdm_calc import n_pairs, pair_indices
from figureground.analysis.rdm_compare import METHODS, compare_rdms, rank_rows
from figureground.analysis.verdict import FIGURE, GROUND, GROUP
from figureground.errors import DataError, UsageError

log = logs.get_logger(__name__)

ANALYSES = ("rsa", "encoding")
CONTRAST = "figure_minus_ground"
NO_CLUSTER = -1
TAILS = (-1, 0, 1)
TABLE_COLUMNS = [
    "participant", "analysis", "model", "layer", "contrast", "sensor", "time", "value",
    "cluster", "p_cluster", "min_p",
]  # fmt: skip
CLUSTER_COLUMNS = [
    "cluster", "sign", "statistic", "p_cluster", "min_p", "exact", "n_permutations",
    "n_participants", "threshold", "tail", "tmin", "tmax", "n_times", "n_sensors",
    "peak_time", "peak_sensor", "sensors",
]  # fmt: skip
# Working memory of one searchlight batch (Gram matrices of many sensor x time units).
_BATCH_BYTES = 2**27


# ---------------------------------------------------------------------------- neighbourhoods


def _square_adjacency(adjacency, n_sensors: int | None = None) -> sparse.csr_array:
    """``adjacency`` as a boolean CSR array, checked square (and of ``n_sensors`` rows)."""
    matrix = sparse.csr_array(adjacency, dtype=bool)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise UsageError(f"adjacency must be a square sensor x sensor matrix; got {matrix.shape}")
    if n_sensors is not None and matrix.shape[0] != n_sensors:
        raise UsageError(
            f"adjacency has {matrix.shape[0]} sensors but the data have {n_sensors}; build it "
            "with things_meg_adjacency(channel names of the data)"
        )
    return matrix


def _with_self(adjacency: sparse.csr_array) -> sparse.csr_array:
    """The adjacency with every sensor adjacent to itself."""
    eye = sparse.eye_array(adjacency.shape[0], dtype=bool, format="csr")
    return sparse.csr_array(adjacency + eye, dtype=bool)


def neighbourhoods(adjacency) -> list[np.ndarray]:
    """Each sensor's neighbourhood: its own index and those of its adjacent sensors, sorted.

    ``adjacency`` is a square sensor x sensor matrix (sparse or dense), e.g.
    :func:`figureground.neural.sensors.things_meg_adjacency`. A sensor is in its own
    neighbourhood whether or not the diagonal is set.
    """
    matrix = _with_self(_square_adjacency(adjacency))
    matrix.sort_indices()
    return [
        matrix.indices[matrix.indptr[i] : matrix.indptr[i + 1]].astype(np.intp)
        for i in range(matrix.shape[0])
    ]


def _padded(groups: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Neighbourhoods as an index array (sensors, K) and its mask; pads repeat the sensor."""
    width = max(len(group) for group in groups)
    index = np.empty((len(groups), width), dtype=np.intp)
    mask = np.zeros((len(groups), width), dtype=bool)
    for i, group in enumerate(groups):
        index[i] = i
        index[i, : len(group)] = group
        mask[i, : len(group)] = True
    return index, mask


def _neighbour_mean(values: np.ndarray, adjacency: sparse.csr_array) -> np.ndarray:
    """Mean of ``values`` (sensor, ...) over each sensor's neighbourhood (self included)."""
    matrix = _with_self(adjacency).astype(np.float64)
    counts = np.asarray(matrix.sum(axis=1)).ravel()
    flat = values.reshape(values.shape[0], -1)
    return (matrix @ flat / counts[:, None]).reshape(values.shape)


# ---------------------------------------------------------------------------- searchlight RSA


def _unit(patterns: np.ndarray, mask: np.ndarray, counts: np.ndarray, centre: bool) -> np.ndarray:
    """Rows of (units, conditions, K) centred over the valid channels (optional), unit length."""
    if centre:
        mean = patterns.sum(axis=-1, keepdims=True) / counts[:, None, None]
        patterns = (patterns - mean) * mask
    norms = np.sqrt(np.einsum("uck,uck->uc", patterns, patterns))[..., None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return patterns / norms


def _gram(patterns: np.ndarray) -> np.ndarray:
    return np.matmul(patterns, patterns.transpose(0, 2, 1))


def _one_minus_gram(centre: bool) -> Callable:
    def distances(patterns, mask, counts, rows, cols):
        gram = _gram(_unit(patterns, mask, counts, centre))
        return 1.0 - gram[:, rows, cols]

    return distances


def _squared_gram(per_channel: bool) -> Callable:
    def distances(patterns, mask, counts, rows, cols):
        gram = _gram(patterns)
        diag = np.einsum("ucc->uc", gram)
        squared = np.maximum(diag[:, rows] + diag[:, cols] - 2.0 * gram[:, rows, cols], 0.0)
        return squared / counts[:, None] if per_channel else squared

    return distances


# name -> distances of (units, conditions, K) zero-padded patterns, condensed (units, pairs);
# definitions as figureground.analysis.rdm_calc (rsatoolbox's calc_rdm)
SEARCHLIGHT_METRICS: dict[str, Callable] = {
    "correlation": _one_minus_gram(centre=True),
    "cosine": _one_minus_gram(centre=False),
    "sqeuclidean": _squared_gram(per_channel=False),
    "euclidean": _squared_gram(per_channel=True),
}


def _patterns_array(patterns: xr.DataArray | np.ndarray) -> tuple[np.ndarray, dict]:
    """(condition, channel, time) values as float64 and the channel / time coordinates."""
    if isinstance(patterns, xr.DataArray):
        if patterns.ndim != 3 or not {"channel", "time"} <= set(patterns.dims):
            raise UsageError(
                f"patterns has dims {patterns.dims}; expected (condition, 'channel', 'time')"
            )
        patterns = patterns.transpose(..., "channel", "time")
        coords = {
            "sensor": np.asarray(patterns["channel"].values),
            "time": np.asarray(patterns["time"].values),
        }
        return np.asarray(patterns.values, dtype=np.float64), coords
    values = np.asarray(patterns, dtype=np.float64)
    if values.ndim != 3:
        raise UsageError(f"patterns has shape {values.shape}; expected (condition, channel, time)")
    return values, {"sensor": np.arange(values.shape[1]), "time": np.arange(values.shape[2])}


def _model_matrix(model_rdms: Mapping[str, np.ndarray], n_conditions: int) -> np.ndarray:
    if not model_rdms:
        raise UsageError("model_rdms is empty; pass {model name: condensed RDM}")
    expected = n_pairs(n_conditions)
    models = np.vstack([np.asarray(rdm, dtype=np.float64).ravel() for rdm in model_rdms.values()])
    if models.shape[1] != expected:
        raise UsageError(
            f"model RDMs have {models.shape[1]} entries; {n_conditions} conditions need "
            f"{expected} (condensed upper triangle in pair_indices order)"
        )
    return models


def sensor_rsa(
    patterns: xr.DataArray | np.ndarray,
    model_rdms: Mapping[str, np.ndarray],
    adjacency,
    *,
    metric: str = "correlation",
    method: str = "spearman",
    n_jobs: int = 1,
) -> xr.DataArray:
    """RSA searchlight over sensors: each neighbourhood's RDM against each model RDM.

    Parameters
    ----------
    patterns : (condition, channel, time) responses; a DataArray with dims ``channel`` and
        ``time`` (and one condition dim) gives the result its sensor names and times.
    model_rdms : {name: condensed RDM (pairs,)}, pairs in :func:`pair_indices` order.
    adjacency : sensor x sensor adjacency of the channels, in the same order
        (:func:`figureground.neural.sensors.things_meg_adjacency`).
    metric : dissimilarity over a neighbourhood's channels, one of
        :data:`SEARCHLIGHT_METRICS` (``correlation``: 1 - Pearson r over the channels).
    method : RDM comparison, one of :data:`figureground.analysis.rdm_compare.METHODS`.
    n_jobs : threads that rank the data RDMs (rank-based methods).

    Returns
    -------
    DataArray ``rsa``, dims (model, sensor, time).

    Notes
    -----
    All sensors and time points are processed together in batches: the neighbourhoods are
    padded to the largest one (padding masked to zero), each (sensor, time) unit's
    condition x condition Gram matrix is one batched matrix product, and the model RDMs are
    ranked once. A data RDM with NaN (a condition whose neighbourhood pattern is constant)
    is compared on its other pairs only, as ``compare_rdms`` does.
    """
    if metric not in SEARCHLIGHT_METRICS:
        raise UsageError(f"metric must be one of {list(SEARCHLIGHT_METRICS)}; got {metric!r}")
    if method not in METHODS:
        raise UsageError(f"method must be one of {list(METHODS)}; got {method!r}")
    values, coords = _patterns_array(patterns)
    n_conditions, n_sensors, n_times = values.shape
    if n_conditions < 3:
        raise DataError(f"sensor RSA needs at least 3 conditions; got {n_conditions}")
    models = _model_matrix(model_rdms, n_conditions)
    index, mask = _padded(neighbourhoods(_square_adjacency(adjacency, n_sensors)))
    rows, cols = pair_indices(n_conditions)
    keep = ~np.isnan(models).any(axis=0)
    if not keep.any():
        raise DataError("every pair is NaN in some model RDM; nothing left to compare")
    ranked, compare = METHODS[method]
    prepared = rank_rows(models[:, keep]) if ranked else models[:, keep]
    distances = SEARCHLIGHT_METRICS[metric]

    n_units = n_sensors * n_times
    unit_bytes = 8 * (n_conditions**2 + 3 * rows.size + 2 * n_conditions * index.shape[1])
    batch = int(max(1, min(n_units, _BATCH_BYTES // unit_bytes)))
    out = np.empty((n_units, len(models)))
    starts = range(0, n_units, batch)
    for start in logs.progress(starts, len(starts), "sensor RSA"):
        units = np.arange(start, min(start + batch, n_units))
        sensor, time = np.divmod(units, n_times)
        unit_mask = mask[sensor][:, None, :]
        block = values[:, index[sensor], time[:, None]].transpose(1, 0, 2) * unit_mask
        rdms = distances(block, unit_mask, mask[sensor].sum(axis=1), rows, cols)[:, keep]
        bad = np.isnan(rdms).any(axis=1)
        good = rdms[~bad]
        if good.size:
            good = rank_rows(good, n_jobs) if ranked else good
            out[units[~bad]] = compare(good, prepared)
        for unit, rdm in zip(units[bad], rdms[bad], strict=True):
            out[unit] = compare_rdms(rdm, models[:, keep], method)[0]
    return xr.DataArray(
        out.reshape(n_sensors, n_times, len(models)).transpose(2, 0, 1),
        dims=("model", "sensor", "time"),
        coords={"model": [str(name) for name in model_rdms], **coords},
        name="rsa",
        attrs={"metric": metric, "method": method, "searchlight": "sensor neighbourhood"},
    )


# ---------------------------------------------------------------------------- encoding


def _scores_array(scores: xr.DataArray | np.ndarray) -> tuple[np.ndarray, dict]:
    """(fold, time, channel) scores as the fold mean (sensor, time) and its coordinates."""
    if isinstance(scores, xr.DataArray):
        if set(scores.dims) != {"fold", "time", "channel"}:
            raise UsageError(f"scores have dims {scores.dims}; expected (fold, time, channel)")
        scores = scores.transpose("fold", "channel", "time")
        coords = {
            "sensor": np.asarray(scores["channel"].values),
            "time": np.asarray(scores["time"].values),
        }
        return np.asarray(scores.values, dtype=np.float64).mean(axis=0), coords
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim != 3:
        raise UsageError(f"scores have shape {values.shape}; expected (fold, time, channel)")
    mean = values.mean(axis=0).T
    return mean, {"sensor": np.arange(mean.shape[0]), "time": np.arange(mean.shape[1])}


def sensor_encoding(
    scores_by_condition: Mapping[str, xr.DataArray | np.ndarray], adjacency, smooth: bool = True
) -> xr.DataArray:
    """Per-sensor encoding accuracy of each condition's features: mean over folds.

    Parameters
    ----------
    scores_by_condition : {condition: (fold, time, channel) Pearson r}, as
        :func:`figureground.analysis.encoding.encode` returns.
    adjacency : sensor x sensor adjacency of the channels, in the same order.
    smooth : average each sensor's value over its neighbourhood (itself and its neighbours),
        the same neighbourhoods as :func:`sensor_rsa`.

    Returns
    -------
    DataArray ``encoding``, dims (condition, sensor, time).
    """
    if not scores_by_condition:
        raise UsageError("scores_by_condition is empty; pass {condition: encode(...) scores}")
    maps, coords = [], None
    for condition, scores in scores_by_condition.items():
        mean, these = _scores_array(scores)
        if coords is not None and mean.shape != maps[0].shape:
            raise DataError(
                f"condition {condition!r} has {mean.shape} (sensor, time) scores; "
                f"expected {maps[0].shape}"
            )
        coords = coords or these
        maps.append(mean)
    stacked = np.stack(maps)
    if smooth:
        matrix = _square_adjacency(adjacency, stacked.shape[1])
        stacked = np.stack([_neighbour_mean(one, matrix) for one in stacked])
    return xr.DataArray(
        stacked,
        dims=("condition", "sensor", "time"),
        coords={"condition": [str(name) for name in scores_by_condition], **coords},
        name="encoding",
        attrs={"metric": "pearson_r", "smooth": int(smooth)},
    )


# ---------------------------------------------------------------------------- contrasts


def _by_name(values: Mapping[str, object] | xr.DataArray) -> Mapping[str, object]:
    """A mapping name -> (sensor, time) map; a DataArray is split along its first dim."""
    if isinstance(values, xr.DataArray):
        dim = values.dims[0]
        return {str(key): values.sel({dim: key}) for key in values[dim].values}
    return values


def sensor_difference(
    values: Mapping[str, xr.DataArray | np.ndarray] | xr.DataArray,
    figure: str = FIGURE,
    ground: str = GROUND,
) -> xr.DataArray:
    """Figure minus ground per sensor and time for one participant.

    ``values`` maps names to (sensor, time) maps, or is the output of :func:`sensor_rsa` /
    :func:`sensor_encoding` (split along its first dim). Returns DataArray ``difference``
    with dims (sensor, time).
    """
    named = _by_name(values)
    missing = [name for name in (figure, ground) if name not in named]
    if missing:
        raise UsageError(f"values have no {missing}; they have {sorted(named)}")
    first, second = named[figure], named[ground]
    if np.shape(first) != np.shape(second) or np.ndim(first) != 2:
        raise DataError(
            f"{figure!r} has shape {np.shape(first)} and {ground!r} {np.shape(second)}; "
            "expected equal (sensor, time) maps"
        )
    if isinstance(first, xr.DataArray):
        difference = first - second
        difference = difference.drop_vars(
            [n for n in difference.coords if n not in ("sensor", "time")]
        )
        difference = difference.transpose("sensor", "time")
    else:
        difference = xr.DataArray(
            np.asarray(first, dtype=np.float64) - np.asarray(second, dtype=np.float64),
            dims=("sensor", "time"),
        )
    difference.name = "difference"
    difference.attrs = {"contrast": CONTRAST, "figure": figure, "ground": ground}
    return difference


def stack_participants(differences: Mapping[str, xr.DataArray]) -> xr.DataArray:
    """Participants' (sensor, time) differences as one DataArray (participant, time, sensor)."""
    if not differences:
        raise UsageError("differences is empty; pass {participant: sensor_difference(...)}")
    maps = [
        difference if isinstance(difference, xr.DataArray) else xr.DataArray(difference)
        for difference in differences.values()
    ]
    maps = [one.rename(dict(zip(one.dims, ("sensor", "time"), strict=True))) for one in maps]
    shapes = {one.shape for one in maps}
    if len(shapes) != 1:
        raise DataError(f"participants' differences have different shapes {sorted(shapes)}")
    stacked = xr.concat(maps, dim="participant", join="exact", coords="minimal")
    stacked = stacked.assign_coords(participant=[str(name) for name in differences])
    return stacked.transpose("participant", "time", "sensor")


# ---------------------------------------------------------------------------- group test


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


def _differences_array(differences: xr.DataArray | np.ndarray) -> tuple[np.ndarray, dict]:
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
    import mne

    if tail not in TAILS:
        raise UsageError(f"tail must be one of {TAILS}; got {tail!r}")
    if int(n_permutations) < 1:
        raise UsageError(f"n_permutations must be at least 1; got {n_permutations}")
    values, coords = _differences_array(differences)
    n_participants, n_times, n_sensors = values.shape
    if n_participants < 2:
        raise DataError(f"a group test needs at least 2 participants; got {n_participants}")
    if not np.isfinite(values).all():
        raise DataError("differences contain NaN or infinite values")
    matrix = _square_adjacency(adjacency, n_sensors)
    threshold = default_threshold(n_participants, tail) if threshold is None else float(threshold)
    min_p = min_attainable_p(n_participants, n_permutations, tail)
    exact = 2 ** (n_participants - (tail == 0)) <= int(n_permutations)
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
    with warnings.catch_warnings(), mne.utils.use_log_level("error"):
        warnings.simplefilter("ignore", RuntimeWarning)  # "No clusters found"
        t_obs, clusters, p_values, h0 = mne.stats.spatio_temporal_cluster_1samp_test(
            values,
            adjacency=sparse.coo_matrix(matrix),
            threshold=threshold,
            n_permutations=int(n_permutations),
            tail=tail,
            out_type="indices",
            seed=seed,
            n_jobs=1,
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
    labels = np.full((n_times, n_sensors), NO_CLUSTER, dtype=int)
    point_p = np.full((n_times, n_sensors), np.nan)
    for label, (time_idx, sensor_idx) in enumerate(clusters):
        labels[time_idx, sensor_idx] = label
        point_p[time_idx, sensor_idx] = p_values[label]
    dims = ("time", "sensor")
    dataset = xr.Dataset(
        {"t_obs": (dims, t_obs), "cluster": (dims, labels), "p_cluster": (dims, point_p)},
        coords={"time": coords["time"], "sensor": coords["sensor"]},
        attrs={
            key: (int(value) if isinstance(value, bool) else value) for key, value in fixed.items()
        },
    )
    return table, dataset


# ---------------------------------------------------------------------------- tidy output


def sensor_effects_table(
    differences: xr.DataArray,
    *,
    analysis: str,
    model: str,
    layer: str,
    clusters: xr.Dataset | None = None,
    **descriptors: object,
) -> pd.DataFrame:
    """Tidy rows of every participant's figure - ground map and the group mean.

    Parameters
    ----------
    differences : (participant, time, sensor) (:func:`stack_participants`).
    analysis : ``"rsa"`` or ``"encoding"``.
    model, layer : descriptors of the network features, passed through.
    clusters : :func:`sensor_cluster_test`'s Dataset; its labels and p-values go on the
        ``group`` rows (participants' rows get cluster -1, p_cluster NaN).
    descriptors : further constant columns (e.g. weights, level).

    Returns
    -------
    DataFrame with :data:`TABLE_COLUMNS` (+ descriptors); ``participant == "group"`` holds
    the mean over participants.
    """
    if analysis not in ANALYSES:
        raise UsageError(f"analysis must be one of {ANALYSES}; got {analysis!r}")
    values, coords = _differences_array(differences)
    _, n_times, n_sensors = values.shape
    group = values.mean(axis=0)
    labels = np.full((n_times, n_sensors), NO_CLUSTER, dtype=int)
    point_p = np.full((n_times, n_sensors), np.nan)
    min_p = np.nan
    if clusters is not None:
        if clusters["cluster"].shape != (n_times, n_sensors):
            raise DataError(
                f"clusters are {clusters['cluster'].shape} (time, sensor); the differences "
                f"{(n_times, n_sensors)}"
            )
        labels = np.asarray(clusters["cluster"].transpose("time", "sensor").values)
        point_p = np.asarray(clusters["p_cluster"].transpose("time", "sensor").values)
        min_p = float(clusters.attrs.get("min_p", np.nan))
    people = [str(name) for name in coords["participant"]]
    stacked = np.concatenate([values, group[None]])
    n_rows = len(people) + 1
    per_map = n_times * n_sensors
    table = pd.DataFrame(
        {
            "participant": np.repeat([*people, GROUP], per_map),
            "analysis": analysis,
            "model": model,
            "layer": layer,
            "contrast": CONTRAST,
            "sensor": np.tile(np.tile(np.asarray(coords["sensor"]).astype(str), n_times), n_rows),
            "time": np.tile(np.repeat(coords["time"], n_sensors), n_rows),
            "value": stacked.reshape(-1),
            "cluster": np.concatenate([np.full(per_map * len(people), NO_CLUSTER), labels.ravel()]),
            "p_cluster": np.concatenate([np.full(per_map * len(people), np.nan), point_p.ravel()]),
            "min_p": np.concatenate(
                [np.full(per_map * len(people), np.nan), np.full(per_map, min_p)]
            ),
        }
    )
    for key, value in descriptors.items():
        table[key] = value
    return table


def _spread_peaks(curve: np.ndarray, times: np.ndarray, n: int, width: float, taken: list) -> list:
    """Times of the largest values of ``curve`` at least ``width`` apart from ``taken``."""
    chosen = list(taken)
    for i in np.argsort(-curve, kind="stable"):
        if len(chosen) >= n:
            break
        if all(abs(times[i] - other) >= width for other in chosen):
            chosen.append(times[i])
    return chosen[len(taken) :]


def peak_windows(
    group_difference: np.ndarray | xr.DataArray,
    times: Sequence[float] | np.ndarray,
    n: int = 3,
    width: float = 0.05,
    clusters: xr.Dataset | None = None,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Up to ``n`` non-overlapping windows of ``width`` (same unit as ``times``) to map.

    With ``clusters`` (from :func:`sensor_cluster_test`), windows first centre on the
    clusters with ``p_cluster <= alpha``, largest cluster statistic ``|sum of t|`` first,
    each at the time where its summed ``|t|`` is largest; the rest (all, without significant
    clusters, e.g. always with 4 participants) centre on the largest ``|mean over sensors|``
    of ``group_difference`` (time, sensor).

    Returns
    -------
    DataFrame: window, centre, tmin, tmax, source ("cluster" | "mean"), cluster (or -1),
    p_cluster.
    """
    if n < 1 or width <= 0:
        raise UsageError(f"need n >= 1 and width > 0; got n={n}, width={width}")
    values = np.asarray(
        group_difference.transpose("time", "sensor").values
        if isinstance(group_difference, xr.DataArray)
        else group_difference,
        dtype=np.float64,
    )
    times = np.asarray(times, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] != times.size:
        raise UsageError(
            f"group_difference has shape {values.shape}; expected (time, sensor) with "
            f"{times.size} times"
        )
    entries: list[tuple[float, str, int, float]] = []
    if clusters is not None:
        labels = np.asarray(clusters["cluster"].transpose("time", "sensor").values)
        t_abs = np.abs(np.asarray(clusters["t_obs"].transpose("time", "sensor").values))
        point_p = np.asarray(clusters["p_cluster"].transpose("time", "sensor").values)
        t_obs = np.asarray(clusters["t_obs"].transpose("time", "sensor").values)
        significant = np.unique(labels[(labels >= 0) & (point_p <= alpha)])
        masses = {int(label): abs(float(t_obs[labels == label].sum())) for label in significant}
        for label in sorted(masses, key=lambda key: -masses[key]):
            inside = labels == label
            centre = times[int(np.argmax(np.where(inside, t_abs, 0.0).sum(axis=1)))]
            if len(entries) < n and all(abs(centre - e[0]) >= width for e in entries):
                entries.append((centre, "cluster", label, float(point_p[inside][0])))
    curve = np.abs(values.mean(axis=1))
    taken = [entry[0] for entry in entries]
    for centre in _spread_peaks(curve, times, n, width, taken):
        entries.append((centre, "mean", NO_CLUSTER, np.nan))
    entries.sort(key=lambda entry: entry[0])
    return pd.DataFrame(
        {
            "window": np.arange(len(entries)),
            "centre": [e[0] for e in entries],
            "tmin": [max(times.min(), e[0] - width / 2) for e in entries],
            "tmax": [min(times.max(), e[0] + width / 2) for e in entries],
            "source": [e[1] for e in entries],
            "cluster": [e[2] for e in entries],
            "p_cluster": [e[3] for e in entries],
        }
    )
