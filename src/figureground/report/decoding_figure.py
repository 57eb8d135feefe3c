"""The decoding figure: data quality (pairwise decoding) and figure-vs-ground cross-decoding.

Four panels: (a) time-resolved pairwise decoding accuracy of the test images, with chance at
0.5 (thin grey lines: participants, black: their mean); (b) the temporal generalisation
matrix (mean over participants), centred on chance; (c) cross-decoding: 2-vs-2
identification of held-out images from each feature set's encoding predictions, with
bootstrap bands; (d) the figure - ground difference with its band.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

from figureground.conditions import NO_BACKGROUND, NO_FOREGROUND, ORIGINAL

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure

from figureground.analysis.cross_decoding import GROUP
from figureground.analysis.decoding import CHANCE
from figureground.report.figures import CONDITION_COLOURS, save_figure

FEATURE_COLOURS = {
    "figure": CONDITION_COLOURS[NO_BACKGROUND],
    "ground": CONDITION_COLOURS[NO_FOREGROUND],
    ORIGINAL: CONDITION_COLOURS[ORIGINAL],
}


def _long(data: xr.DataArray | pd.DataFrame | None) -> pd.DataFrame:
    """A tidy table from a DataArray (its dims become columns) or a table as it is."""
    if data is None:
        return pd.DataFrame()
    if isinstance(data, xr.DataArray):
        return data.to_dataframe(name="value").reset_index()
    return data


def _note(ax: plt.Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=8)
    ax.set_axis_off()


def _pairwise_panel(ax: plt.Axes, pairwise: pd.DataFrame) -> None:
    if pairwise.empty:
        _note(ax, "pairwise decoding not run")
        return
    if "participant" in pairwise.columns:
        for _, own in pairwise.groupby("participant"):
            own = own.sort_values("time")
            ax.plot(own["time"], own["value"], color="#999999", lw=0.7)
    mean = pairwise.groupby("time", as_index=False)["value"].mean()
    ax.plot(mean["time"], mean["value"], color="black", lw=1.5)
    ax.axhline(CHANCE, color="#999999", lw=0.8, ls="--", label="chance")
    ax.axvline(0, color="#999999", lw=0.6, ls=":")
    ax.set_xlabel("time (s)", fontsize=8)
    ax.set_ylabel("pairwise accuracy", fontsize=8)
    ax.set_title("(a) Pairwise decoding of the test images", fontsize=8)


def _edges(times: np.ndarray) -> tuple[float, float]:
    half = (times[-1] - times[0]) / (2 * max(len(times) - 1, 1)) if len(times) > 1 else 0.5
    return float(times[0] - half), float(times[-1] + half)


def _generalisation_panel(fig: Figure, ax: plt.Axes, generalisation: pd.DataFrame) -> None:
    if generalisation.empty:
        _note(ax, "temporal generalisation not run")
        return
    matrix = generalisation.pivot_table(
        index="train_time", columns="test_time", values="value", aggfunc="mean"
    )
    train, test = matrix.index.to_numpy(float), matrix.columns.to_numpy(float)
    spread = max(float(np.nanmax(np.abs(matrix.to_numpy() - CHANCE))), 1e-3)
    image = ax.imshow(
        matrix.to_numpy(),
        origin="lower",
        aspect="auto",
        cmap="RdBu_r",
        vmin=CHANCE - spread,
        vmax=CHANCE + spread,
        extent=(*_edges(test), *_edges(train)),  # pixels centred on their times
    )
    ax.plot([test[0], test[-1]], [test[0], test[-1]], color="black", lw=0.5, ls=":")
    fig.colorbar(image, ax=ax, fraction=0.046, label="accuracy")
    ax.set_xlabel("test time (s)", fontsize=8)
    ax.set_ylabel("train time (s)", fontsize=8)
    ax.set_title("(b) Temporal generalisation", fontsize=8)


def _group_rows(cross: pd.DataFrame) -> pd.DataFrame:
    """The group rows when present, the only participant's rows, or the mean (no band)."""
    if "participant" not in cross.columns:
        return cross
    if (cross["participant"] == GROUP).any():
        return cross[cross["participant"] == GROUP]
    if cross["participant"].nunique() == 1:
        return cross
    mean = cross.groupby(["feature_set", "time"], as_index=False)["value"].mean()
    return mean.assign(ci_low=np.nan, ci_high=np.nan)


def _curve(ax: plt.Axes, rows: pd.DataFrame, colour: str, label: str) -> None:
    rows = rows.sort_values("time")
    ax.plot(rows["time"], rows["value"], color=colour, lw=1.4, label=label)
    if {"ci_low", "ci_high"} <= set(rows.columns) and rows["ci_low"].notna().any():
        ax.fill_between(rows["time"], rows["ci_low"], rows["ci_high"], color=colour, alpha=0.2)


def _cross_panels(axes: list[plt.Axes], cross: pd.DataFrame) -> None:
    if cross.empty:
        for ax in axes:
            _note(ax, "cross-decoding not run")
        return
    rows = _group_rows(cross)
    contrasts = [n for n in dict.fromkeys(rows["feature_set"]) if "_minus_" in str(n)]
    sets = [n for n in dict.fromkeys(rows["feature_set"]) if n not in contrasts]
    for k, name in enumerate(sets):
        colour = FEATURE_COLOURS.get(str(name), f"C{k}")
        _curve(axes[0], rows[rows["feature_set"] == name], colour, str(name))
    axes[0].axhline(CHANCE, color="#999999", lw=0.8, ls="--")
    axes[0].set_ylabel("2-vs-2 identification", fontsize=8)
    axes[0].set_title("(c) Cross-decoding from network features", fontsize=8)
    axes[0].legend(fontsize=7, frameon=False)
    for ax in axes:
        ax.axvline(0, color="#999999", lw=0.6, ls=":")
        ax.set_xlabel("time (s)", fontsize=8)
    if not contrasts:
        _note(axes[1], "no contrast")
        return
    for name in contrasts:
        _curve(axes[1], rows[rows["feature_set"] == name], "black", str(name))
    axes[1].axhline(0, color="#999999", lw=0.8)
    axes[1].set_ylabel("difference in identification", fontsize=8)
    axes[1].set_title(f"(d) {contrasts[0].replace('_minus_', ' - ')}", fontsize=8)


def fig_decoding(
    pairwise: xr.DataArray | pd.DataFrame | None,
    generalisation: xr.DataArray | pd.DataFrame | None,
    cross: pd.DataFrame | None,
) -> Figure:
    """The decoding figure.

    Parameters
    ----------
    pairwise : :func:`~figureground.analysis.decoding.pairwise_decoding` output, or its
        table (time, value[, participant]).
    generalisation : :func:`~figureground.analysis.decoding.temporal_generalisation` output,
        or its table (train_time, test_time, value[, participant]).
    cross : :func:`~figureground.analysis.cross_decoding.cross_decoding` table, or
        participants' tables with :func:`~figureground.analysis.cross_decoding.group_decoding`
        rows.
    """
    fig, axes = plt.subplots(2, 2, figsize=(9.0, 6.5))
    _pairwise_panel(axes[0, 0], _long(pairwise))
    _generalisation_panel(fig, axes[0, 1], _long(generalisation))
    _cross_panels([axes[1, 0], axes[1, 1]], _long(cross))
    for ax in axes.flat:
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


def decoding_figure(
    pairwise: xr.DataArray | pd.DataFrame | None,
    generalisation: xr.DataArray | pd.DataFrame | None,
    cross: pd.DataFrame | None,
    path: Path,
) -> bytes:
    """Write the decoding figure to ``path`` (.png and .svg); return the PNG bytes."""
    path = Path(path)
    return save_figure(fig_decoding(pairwise, generalisation, cross), path.with_suffix(""))
