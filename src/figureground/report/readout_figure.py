"""The readout figure: where the brain reads the layer's map, window by window.

Top row: the mean over images of ``|w_i|`` in image coordinates (the pooled grid; the
contour is where the masks cover half of the images on average). Middle row: the same
weights averaged on the object-centred grid (centroid at 0, axes in object radii; the
circle is the equal-area disc of radius 1). Each map is scaled to its own maximum. Bottom:
the in-mask ratio per window with its bootstrap interval over images, the shuffled-mask
null band and mean, and a line at 1 (no preference); filled markers are windows where
``p_figure`` or ``p_ground`` is below 0.05 (uncorrected).
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

from figureground.conditions import NO_BACKGROUND, NO_FOREGROUND

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure

from figureground.report.figures import CONDITION_COLOURS, save_figure

ALPHA = 0.05
NULL_COLOUR = "#9e9e9e"


def _scaled(values: np.ndarray) -> np.ndarray:
    top = np.nanmax(np.abs(values)) if np.isfinite(values).any() else 0.0
    return values / top if top > 0 else values


def _map_row(axes: np.ndarray, dataset: xr.Dataset, name: str, heading: str) -> None:
    for ax, time in zip(axes, dataset["time"].values, strict=True):
        values = _scaled(dataset[name].sel(time=time).values)
        if name == "object_map":
            offsets = dataset["object_x"].values
            extent = (offsets[0], offsets[-1], offsets[-1], offsets[0])
            ax.imshow(values, cmap="magma", vmin=0, vmax=1, extent=extent)
            ax.add_patch(plt.Circle((0, 0), 1.0, fill=False, color="white", lw=0.8, ls="--"))
        else:
            ax.imshow(values, cmap="magma", vmin=0, vmax=1)
            if "mask_mean" in dataset:
                ax.contour(
                    dataset["mask_mean"].values, levels=[0.5], colors="white", linewidths=0.8
                )
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{time * 1000:.0f} ms", fontsize=8)
    axes[0].set_ylabel(heading, fontsize=8)


def _ratio_panel(ax: plt.Axes, table: pd.DataFrame) -> None:
    rows = table.sort_values("time")
    time = rows["time"].to_numpy() * 1000
    ax.fill_between(
        time,
        rows["null_low"],
        rows["null_high"],
        color=NULL_COLOUR,
        alpha=0.3,
        lw=0,
        label="shuffled-mask null (95%)",
    )
    ax.plot(time, rows["null_mean"], color=NULL_COLOUR, ls="--", lw=1, label="null mean")
    ax.fill_between(time, rows["ci_low"], rows["ci_high"], color="black", alpha=0.15, lw=0)
    ax.plot(time, rows["ratio"], color="black", lw=1.5, label="in-mask ratio (95% CI)")
    for region, condition in (("figure", NO_BACKGROUND), ("ground", NO_FOREGROUND)):
        hits = (rows[f"p_{region}"] < ALPHA).to_numpy()
        ax.scatter(
            time[hits],
            rows["ratio"][hits],
            color=CONDITION_COLOURS[condition],
            zorder=3,
            label=f"{region}, p < {ALPHA}",
        )
    ax.axhline(1.0, color="black", lw=0.7)
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("in-mask ratio")
    ax.legend(fontsize=7, frameon=False, loc="best")


def build_readout_figure(dataset: xr.Dataset, table: pd.DataFrame) -> Figure:
    """The figure of :func:`readout_table`'s maps and table (one column per window)."""
    n_windows = dataset.sizes["time"]
    fig = plt.figure(figsize=(max(6.0, 1.1 * n_windows), 6.0), layout="constrained")
    grid = fig.add_gridspec(3, n_windows, height_ratios=[1, 1, 1.6])
    top = np.array([fig.add_subplot(grid[0, j]) for j in range(n_windows)])
    middle = np.array([fig.add_subplot(grid[1, j]) for j in range(n_windows)])
    _map_row(top, dataset, "image_map", "image coordinates")
    _map_row(middle, dataset, "object_map", "object-centred")
    _ratio_panel(fig.add_subplot(grid[2, :]), table)
    return fig


def readout_figure(dataset: xr.Dataset, table: pd.DataFrame, path: str | os.PathLike) -> bytes:
    """Draw the readout figure and write ``path`` as PNG and SVG; return the PNG bytes."""
    return save_figure(build_readout_figure(dataset, table), Path(path).with_suffix(""))
