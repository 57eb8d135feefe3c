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

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from figureground.analysis.sensor_clusters import (
    CLUSTER_COLUMNS,
    NO_CLUSTER,
    TAILS,
    default_threshold,
    differences_array,
    min_attainable_p,
    sensor_cluster_test,
)
from figureground.analysis.sensor_neighbours import neighbour_mean, neighbourhoods, square_adjacency
from figureground.analysis.sensor_searchlight import SEARCHLIGHT_METRICS, sensor_rsa
from figureground.analysis.verdict import FIGURE, GROUND, GROUP
from figureground.errors import DataError, UsageError

__all__ = [
    "ANALYSES",
    "CLUSTER_COLUMNS",
    "CONTRAST",
    "FIGURE",
    "GROUND",
    "NO_CLUSTER",
    "SEARCHLIGHT_METRICS",
    "TABLE_COLUMNS",
    "TAILS",
    "default_threshold",
    "min_attainable_p",
    "neighbourhoods",
    "peak_windows",
    "sensor_cluster_test",
    "sensor_difference",
    "sensor_effects_table",
    "sensor_encoding",
    "sensor_rsa",
    "stack_participants",
]

ANALYSES = ("rsa", "encoding")
CONTRAST = "figure_minus_ground"
TABLE_COLUMNS = [
    "participant", "analysis", "model", "layer", "contrast", "sensor", "time", "value",
    "cluster", "p_cluster", "min_p",
]  # fmt: skip


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
        matrix = square_adjacency(adjacency, stacked.shape[1])
        stacked = np.stack([neighbour_mean(one, matrix) for one in stacked])
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
    values, coords = differences_array(differences)
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
