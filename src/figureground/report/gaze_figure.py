"""Where the eyes were: object-centred gaze density and per-trial object / background shares.

Panel a: the mean share of gaze samples per bin in object-centred coordinates (each image's
object aligned on its centroid, in units of the object's size, sqrt of its area), with the
mean object mask's 0.5 contour; b: per-trial share of gaze on the object, with the mean share
of the image the object covers (what gaze spread evenly over the image would give) and the
share of trials whose fixation point lies on the object; c: per-trial mean distance from the
object (deg, 0 on it); d (when the gaze strata ran): the RSA's figure minus ground per
participant for trials with gaze mostly on / off the object. Inputs come from
:mod:`figureground.neural.gaze_metrics`.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from figureground.errors import UsageError
from figureground.neural.gaze_metrics import GazeDensity
from figureground.report.figures import save_figure

REQUIRED_COLUMNS = ("gaze_on_object", "distance_from_mask", "object_share", "centre_on_object")


def _density_panel(ax, density: GazeDensity) -> None:
    lo, hi = float(density.edges[0]), float(density.edges[-1])
    image = ax.imshow(
        density.density, origin="upper", extent=(lo, hi, hi, lo), cmap="magma", aspect="equal"
    )
    ax.contour(
        (density.edges[:-1] + density.edges[1:]) / 2,
        (density.edges[:-1] + density.edges[1:]) / 2,
        density.mean_mask,
        levels=[0.5],
        colors="#1b9e77",
        linewidths=1.2,
    )
    ax.plot(0, 0, "+", color="w", markersize=8)
    ax.set_xlabel("x from object centroid (object sizes)")
    ax.set_ylabel("y from object centroid (object sizes, down)")
    ax.set_title(
        f"a  gaze density, {density.n_trials} trials\n"
        f"(green: mean object 0.5; {100 * density.outside_share:.0f}% of gaze outside)",
        fontsize=9,
    )
    plt.colorbar(image, ax=ax, fraction=0.046, label="share of samples per bin")


def _share_panel(ax, table: pd.DataFrame) -> None:
    shares = table["gaze_on_object"].dropna().to_numpy(float)
    ax.hist(shares, bins=np.linspace(0, 1, 21), color="#d95f02", alpha=0.8)
    chance = float(table["object_share"].mean())
    ax.axvline(
        chance, color="k", linestyle="--", linewidth=1, label=f"mean object area {chance:.2f}"
    )
    centre = float(table["centre_on_object"].astype(float).mean())
    ax.set_title(
        f"b  gaze on object per trial\n(fixation point on object in {100 * centre:.0f}%)",
        fontsize=9,
    )
    ax.set_xlabel("share of valid samples on the object")
    ax.set_ylabel("trials")
    ax.legend(frameon=False, fontsize=8)


def _distance_panel(ax, table: pd.DataFrame) -> None:
    distances = table["distance_from_mask"].dropna().to_numpy(float)
    top = max(float(distances.max()) if distances.size else 1.0, 1e-3)
    ax.hist(distances, bins=np.linspace(0, top, 21), color="#1b9e77", alpha=0.8)
    ax.set_title("c  mean distance from the object", fontsize=9)
    ax.set_xlabel("degrees (0 = on the object)")
    ax.set_ylabel("trials")


def _strata_panel(ax, strata: pd.DataFrame) -> None:
    """Figure minus ground (post-stimulus mean RSA) per participant in each gaze stratum."""
    names = sorted(strata["stratum"].unique())
    participants = sorted(strata["participant"].astype(str).unique())
    width = 0.8 / max(len(names), 1)
    for k, name in enumerate(names):
        rows = strata[strata["stratum"] == name]
        by_participant = dict(
            zip(rows["participant"].astype(str), rows["figure_minus_ground"], strict=True)
        )
        values = [float(by_participant.get(p, np.nan)) for p in participants]
        ax.bar(np.arange(len(participants)) + k * width, values, width, label=name)
    ax.axhline(0, color="k", linewidth=0.8)
    ax.set_xticks(np.arange(len(participants)) + width * (len(names) - 1) / 2, participants)
    ax.set_ylabel("figure − ground RSA (post-stimulus mean)")
    ax.set_title("d  figure vs ground by gaze stratum", fontsize=9)
    ax.legend(frameon=False, fontsize=8)


def gaze_figure(
    density: GazeDensity,
    table: pd.DataFrame,
    path: str | Path,
    strata: pd.DataFrame | None = None,
) -> bytes:
    """Write the gaze figure to ``path`` (.png and .svg; suffix replaced); return the PNG.

    ``strata`` (``gaze_strata.csv``: participant, stratum, figure_minus_ground) adds panel d.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise UsageError(
            f"gaze table lacks column(s) {', '.join(missing)}; expected gaze_metrics output"
        )
    if table.empty:
        raise UsageError("empty gaze table; expected one row per trial")
    panels = 3 if strata is None or strata.empty else 4
    fig, axes = plt.subplots(1, panels, figsize=(4 * panels, 3.8), constrained_layout=True)
    _density_panel(axes[0], density)
    _share_panel(axes[1], table)
    _distance_panel(axes[2], table)
    if panels == 4:
        _strata_panel(axes[3], strata)
    return save_figure(fig, Path(path).with_suffix(""))
