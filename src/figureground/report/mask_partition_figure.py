"""Mask-aligned variance partitioning over time: unique figure, unique ground, shared.

One panel per participant and one for the group (:func:`figureground.analysis.
mask_partition.group_partition`), each with the three components of
:func:`figureground.analysis.mask_partition.mask_partition` and their bootstrap intervals
(over images for a participant, over participants for the group; a group of fewer than
three participants has no interval and says so).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from figureground.analysis.verdict import GROUP
from figureground.errors import DataError
from figureground.report.figures import COMPONENT_COLOURS, save_figure

COMPONENTS = {
    "unique_figure": ("unique figure", COMPONENT_COLOURS["unique_fg"]),
    "unique_ground": ("unique ground", COMPONENT_COLOURS["unique_bg"]),
    "shared": ("shared", COMPONENT_COLOURS["shared"]),
}


def _panels(table: pd.DataFrame) -> list[str]:
    if "participant" not in table.columns:
        return [""]
    people = [str(p) for p in dict.fromkeys(table["participant"]) if str(p) != GROUP]
    has_group = table["participant"].astype(str).eq(GROUP).any()
    return [*sorted(people), *([GROUP] if has_group else [])]


def fig_mask_partition(table: pd.DataFrame) -> Figure:
    """The figure of a (concatenated participants' and group) mask-partition table."""
    missing = {"time", "component", "value", "ci_low", "ci_high"} - set(table.columns)
    if missing:
        raise DataError(f"mask partition table lacks columns {sorted(missing)}")
    panels = _panels(table)
    fig, axes = plt.subplots(
        1, len(panels), figsize=(3.4 * len(panels), 2.8), squeeze=False, sharey=True
    )
    for ax, who in zip(axes[0], panels, strict=True):
        rows = table if who == "" else table[table["participant"].astype(str) == who]
        for component, (label, colour) in COMPONENTS.items():
            course = rows[rows["component"] == component].sort_values("time")
            if course.empty:
                continue
            ax.plot(course["time"], course["value"], color=colour, lw=1.3, label=label)
            if course["ci_low"].notna().any():
                ax.fill_between(
                    course["time"],
                    course["ci_low"],
                    course["ci_high"],
                    color=colour,
                    alpha=0.2,
                    lw=0,
                )
        notes = rows["note"].dropna().astype(str) if "note" in rows else pd.Series(dtype=str)
        notes = [n for n in dict.fromkeys(notes) if n]
        if notes:
            text = textwrap.fill(notes[0], 40)
            ax.text(0.03, 0.95, text, transform=ax.transAxes, fontsize=6, va="top")
        ax.axhline(0, color="#999999", lw=0.6)
        ax.axvline(0, color="#999999", lw=0.6, ls=":")
        ax.set_title(who if who else "participant", fontsize=8)
        ax.set_xlabel("time (s)", fontsize=7)
        ax.tick_params(labelsize=7)
    axes[0, 0].set_ylabel("R² (CV)", fontsize=7)
    axes[0, -1].legend(fontsize=6, frameon=False, loc="upper right")
    fig.suptitle(
        "Mask-aligned variance partitioning (original images): unique figure, unique ground, "
        "shared; bands: bootstrap intervals",
        fontsize=8,
    )
    fig.tight_layout()
    return fig


def mask_partition_figure(table: pd.DataFrame, path: str | Path) -> Path:
    """Draw :func:`fig_mask_partition` to ``path`` (.png, with an .svg beside it)."""
    stem = Path(path).with_suffix("")
    save_figure(fig_mask_partition(table), stem)
    return stem.with_suffix(".png")
