"""Stimulus validity: do the no-background images keep background, and do the no-foreground
images keep the object's silhouette?

One figure of the per-image metrics of ``variants.csv``
(:func:`figureground.variants.image.image_metrics`): ``haze`` (mean alpha over the background
region of the no-background image), ``haze_fraction`` (share of that region not exactly the
fill colour) and ``silhouette_auc`` (texture of the inpainted region against a ring around
it; 0.5 = undetectable).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from figureground.conditions import NO_BACKGROUND, NO_FOREGROUND
from figureground.report.figures import CONDITION_COLOURS

# (column, panel title, x label, x range or None for 0..max, reference line or None, colour)
PANELS: tuple[tuple[str, str, str, tuple[float, float] | None, float | None, str], ...] = (
    (
        "haze",
        "Background haze (no background)",
        "mean alpha over the background",
        None,
        None,
        CONDITION_COLOURS[NO_BACKGROUND],
    ),
    (
        "haze_fraction",
        "Background showing through (no background)",
        "share of background pixels not the fill colour",
        (0.0, 1.0),
        None,
        CONDITION_COLOURS[NO_BACKGROUND],
    ),
    (
        "silhouette_auc",
        "Silhouette of the fill (no foreground)",
        "AUC, texture inside vs around the fill",
        (0.0, 1.0),
        0.5,
        CONDITION_COLOURS[NO_FOREGROUND],
    ),
)
BINS = 30


def _values(variants: pd.DataFrame, column: str) -> tuple[np.ndarray, int] | None:
    """Finite values of ``column`` and the count of images without one; None if absent."""
    if column not in variants.columns:
        return None
    values = pd.to_numeric(variants[column], errors="coerce").astype("float64").to_numpy()
    finite = np.isfinite(values)
    return values[finite], int((~finite).sum())


def _panel(
    ax: Axes,
    data: tuple[np.ndarray, int] | None,
    title: str,
    label: str,
    limits: tuple[float, float] | None,
    reference: float | None,
    colour: str,
) -> None:
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(label, fontsize=8)
    ax.tick_params(labelsize=7)
    if data is None:
        message = "not in this table\n(variants of an earlier version)"
        ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, fontsize=8)
        return
    values, missing = data
    low, high = limits or (0.0, max(float(values.max()) if values.size else 0.0, 1e-3) * 1.05)
    if values.size:
        ax.hist(values, bins=np.linspace(low, high, BINS + 1), color=colour, alpha=0.8)
        ax.plot(values, np.zeros_like(values), "|", color="black", markersize=8, alpha=0.5)
        median = float(np.median(values))
        ax.axvline(median, color="black", linewidth=1)
        summary = f"n = {values.size}; median {median:.3g}"
    else:
        summary = "n = 0"
    if missing:
        summary += f"\n{missing} without a value"
    if reference is not None:
        ax.axvline(reference, color="grey", linestyle="--", linewidth=1)
    ax.set_xlim(low, high)
    ax.set_ylabel("images", fontsize=8)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    box = {"facecolor": "white", "alpha": 0.8, "edgecolor": "none"}
    ax.text(0.97, 0.95, summary, ha="right", va="top", transform=ax.transAxes, fontsize=7, bbox=box)


def fig_stimulus_validity(variants: pd.DataFrame) -> Figure:
    """Per-image distributions of background haze and of the fill's silhouette.

    Parameters
    ----------
    variants
        Rows of ``variants.csv``; only rows with ``status`` ``ok`` are shown when it has that
        column. NaN values (no background region, no fill region) are counted, not drawn; a
        column the table lacks is said so in its panel.

    Returns
    -------
    matplotlib.figure.Figure
        Three histograms (ticks below: one per image; black line: median): ``haze``,
        ``haze_fraction`` and ``silhouette_auc`` (dashed line: 0.5, undetectable).
    """
    if "status" in variants.columns:
        variants = variants[variants["status"] == "ok"]
    fig = Figure(figsize=(11.0, 3.4))
    axes = fig.subplots(1, len(PANELS), squeeze=False)[0]
    for ax, (column, title, label, limits, reference, colour) in zip(axes, PANELS, strict=True):
        _panel(ax, _values(variants, column), title, label, limits, reference, colour)
    fig.suptitle(
        f"Stimulus validity of {len(variants)} images: background left in the no-background "
        "images (0 = none) and the object's silhouette left\nin the no-foreground images "
        "(AUC of local texture inside the inpainted region vs a ring around it; 0.5 = none, "
        "below = smoother fill)",
        fontsize=9,
    )
    fig.tight_layout()
    return fig
