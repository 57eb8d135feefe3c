"""Topographies of the figure - ground effect at its peak windows, cluster sensors marked.

One row per analysis / model / layer, one column per peak window
(:func:`figureground.analysis.sensor_effects.peak_windows`). Each map is the group's mean
figure - ground difference over the window's time points, drawn by ``mne.viz.plot_topomap``
at the positions of :func:`figureground.neural.sensors.things_meg_info` (sensor names with
their ``-1609`` suffix). Sensors of a cluster that overlaps the window are marked: white
dots where the cluster's p is at most ``alpha``; where the design cannot reach ``alpha``
(smallest attainable p ``min_p`` above it), open circles mark the clusters at that floor.
With 4 participants no cluster can reach p < 0.05 (smallest p 0.125, two-sided), which the
panel says.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr

from figureground.analysis.sensor_effects import (
    NO_CLUSTER,
    peak_windows,
    sensor_effects_table,
    stack_participants,
)
from figureground.analysis.verdict import GROUP
from figureground.errors import UsageError
from figureground.report.figures import save_figure

ROW_KEYS = ["analysis", "model", "layer"]
_SIGNIFICANT = {"marker": "o", "markerfacecolor": "w", "markeredgecolor": "k", "markersize": 6}
_DESCRIPTIVE = {"marker": "o", "markerfacecolor": "none", "markeredgecolor": "k", "markersize": 5}


def _group_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The group's rows, or the mean over participants where the table has none."""
    group = table[table["participant"].astype(str) == GROUP]
    if not group.empty:
        return group
    keys = [*ROW_KEYS, "sensor", "time"]
    return table.groupby(keys, as_index=False).agg(
        value=("value", "mean"), cluster=("cluster", "first"), p_cluster=("p_cluster", "first")
    )


def _maps(rows: pd.DataFrame, sensors: list[str]) -> xr.Dataset:
    """(time, sensor) arrays of value, cluster label and p from one panel row's table rows."""
    present = set(rows["sensor"].astype(str))
    unknown = sorted(present - set(sensors))
    if unknown:
        raise UsageError(
            f"sensors {unknown[:5]} are not channels of the info (e.g. {sensors[0]!r}); "
            "names must match, with their '-1609' suffix"
        )
    order = [name for name in sensors if name in present]

    def pivot(column: str, fill: float) -> pd.DataFrame:
        wide = rows.pivot_table(index="time", columns="sensor", values=column, aggfunc="first")
        return wide.reindex(columns=order).fillna(fill)

    value = pivot("value", np.nan)
    dims = ("time", "sensor")
    return xr.Dataset(
        {
            "t_obs": (dims, value.to_numpy()),
            "cluster": (dims, pivot("cluster", NO_CLUSTER).to_numpy().astype(int)),
            "p_cluster": (dims, pivot("p_cluster", np.nan).to_numpy()),
        },
        coords={"time": value.index.to_numpy(dtype=float), "sensor": order},
    )


def _panels(data: pd.DataFrame | xr.DataArray, clusters: xr.Dataset | None) -> list:
    """[(heading, Dataset of value / cluster / p on (time, sensor), min_p)] per figure row."""
    if isinstance(data, xr.DataArray):
        differences = data if "participant" in data.dims else data.expand_dims(participant=["mean"])
        if "participant" not in data.dims and set(data.dims) != {"time", "sensor"}:
            raise UsageError(f"arrays have dims {data.dims}; expected (participant,) time, sensor")
        data = sensor_effects_table(
            differences.transpose("participant", "time", "sensor"),
            analysis="rsa",
            model="",
            layer="",
            clusters=clusters,
        )
        data = data[data["participant"] == GROUP]
    missing = [c for c in [*ROW_KEYS, "sensor", "time", "value"] if c not in data.columns]
    if missing:
        raise UsageError(f"sensor effects table lacks columns {missing}")
    table = data.copy()
    for column, fill in (("cluster", NO_CLUSTER), ("p_cluster", np.nan), ("min_p", np.nan)):
        if column not in table.columns:
            table[column] = fill
    group = _group_rows(table)
    min_p = table.groupby(ROW_KEYS)["min_p"].max() if "min_p" in table else None
    panels = []
    for keys, rows in group.groupby(ROW_KEYS, sort=True):
        heading = " / ".join(str(k) for k in keys if str(k))
        panels.append(
            (heading, rows, float(min_p.get(keys, np.nan)) if min_p is not None else np.nan)
        )
    return panels


def _window_mask(
    maps: xr.Dataset, window: pd.Series, alpha: float, min_p: float
) -> tuple[np.ndarray, bool]:
    """Sensors to mark in a window, and whether they belong to significant clusters.

    Significant: clusters with p <= alpha overlapping the window. Without any, the clusters
    at the design's floor (p <= min_p, when min_p > alpha: the best p the design can give).
    """
    times = maps["time"].values
    inside = (times >= window["tmin"]) & (times <= window["tmax"])
    labels = maps["cluster"].values[inside]
    p_values = maps["p_cluster"].values[inside]
    significant = (labels >= 0) & (p_values <= alpha)
    if significant.any():
        return significant.any(axis=0), True
    floor = min_p if np.isfinite(min_p) and min_p > alpha else -np.inf
    return ((labels >= 0) & (p_values <= floor * (1 + 1e-9))).any(axis=0), False


def _window_means(maps: xr.Dataset, windows: pd.DataFrame) -> tuple[list[np.ndarray], float]:
    """Each window's mean map over its time points, and the colour limit they share."""
    times = maps["time"].values
    means = [
        np.nanmean(maps["t_obs"].values[(times >= w.tmin) & (times <= w.tmax)], axis=0)
        for w in windows.itertuples()
    ]
    limit = float(np.nanmax(np.abs(means))) if means else 1.0
    return means, limit if limit > 0 else 1.0


def _draw_window(
    ax: plt.Axes,
    mean: np.ndarray,
    sub_info,
    maps: xr.Dataset,
    window: pd.Series,
    limit: float,
    alpha: float,
    min_p: float,
):
    """One window's topomap with its cluster sensors marked; returns the map's image."""
    import mne

    mask, significant = _window_mask(maps, window, alpha, min_p)
    image, _ = mne.viz.plot_topomap(
        mean,
        sub_info,
        ch_type="mag",
        mask=mask,
        mask_params=_SIGNIFICANT if significant else _DESCRIPTIVE,
        cmap="RdBu_r",
        vlim=(-limit, limit),
        axes=ax,
        show=False,
        contours=0,
        sensors=True,
    )
    note = (
        ""
        if not mask.any()
        else ("cluster p ≤ α" if significant else f"open: cluster p = {min_p:.3g}")
    )
    ax.set_title(f"{window.tmin:.3g} to {window.tmax:.3g} s\n{note}", fontsize=8)
    return image


def _label_row(row_axes: np.ndarray, heading: str, min_p: float, alpha: float) -> None:
    """The row's heading on its left; under it, a note when no cluster can be significant."""
    row_axes[0].text(
        -0.15, 0.5, heading or "figure − ground", transform=row_axes[0].transAxes,
        rotation=90, va="center", ha="right", fontsize=9,
    )  # fmt: skip
    if np.isfinite(min_p) and min_p > alpha:
        row_axes[-1].text(
            1.0, -0.08, f"smallest attainable cluster p = {min_p:.3g} > {alpha}:\n"
            "no cluster can be significant", transform=row_axes[-1].transAxes,
            ha="right", va="top", fontsize=7,
        )  # fmt: skip


def _draw_row(
    fig: plt.Figure,
    row_axes: np.ndarray,
    panel: tuple[str, pd.DataFrame, float],
    info,
    sensors: list[str],
    n_windows: int,
    width: float,
    alpha: float,
) -> None:
    """One figure row: the panel's maps at its peak windows, its labels and colour bar."""
    import mne

    heading, rows, min_p = panel
    maps = _maps(rows, sensors)
    windows = peak_windows(maps["t_obs"].values, maps["time"].values, n_windows, width, maps, alpha)
    picks = [sensors.index(name) for name in maps["sensor"].values]
    sub_info = mne.pick_info(info, picks)
    means, limit = _window_means(maps, windows)
    image = None
    for column in range(n_windows):
        ax = row_axes[column]
        if column >= len(windows):
            ax.axis("off")
            continue
        window = windows.iloc[column]
        image = _draw_window(ax, means[column], sub_info, maps, window, limit, alpha, min_p)
    _label_row(row_axes, heading, min_p, alpha)
    if image is not None:
        fig.colorbar(image, ax=row_axes.tolist(), shrink=0.7, label="figure − ground")


def sensor_figure(
    data: pd.DataFrame | xr.DataArray,
    info,
    path: Path | str,
    *,
    clusters: xr.Dataset | None = None,
    n_windows: int = 3,
    width: float = 0.05,
    alpha: float = 0.05,
) -> Path:
    """Write topomaps of the figure - ground effect at peak windows to ``path`` (PNG + SVG).

    Parameters
    ----------
    data : :func:`sensor_effects_table` rows (``group`` rows, else the mean over
        participants), or an array of differences (participant, time, sensor) or the group
        difference (time, sensor), with ``clusters`` from :func:`sensor_cluster_test`.
    info : ``mne.Info`` with the sensors' positions, e.g. ``things_meg_info()``; table
        sensors must be among its channel names (``-1609`` suffix included).
    path : output PNG; an SVG is written next to it.
    n_windows, width : peak windows per row and their width (seconds, as the times).
    alpha : cluster p at or below which sensors are marked significant.

    Returns
    -------
    The PNG path.
    """
    if isinstance(data, dict):
        data = stack_participants(data)
    panels = _panels(data, clusters)
    if not panels:
        raise UsageError("nothing to plot: the sensor effects table has no rows")
    sensors = [str(name) for name in info["ch_names"]]
    fig, axes = plt.subplots(
        len(panels), n_windows, figsize=(2.6 * n_windows + 0.8, 2.8 * len(panels)), squeeze=False
    )
    for row_axes, panel in zip(axes, panels, strict=True):
        _draw_row(fig, row_axes, panel, info, sensors, n_windows, width, alpha)
    fig.suptitle("figure − ground per sensor (group mean over peak windows)", fontsize=10)
    path = Path(path)
    save_figure(fig, path.with_suffix(""))
    return path.with_suffix(".png")
