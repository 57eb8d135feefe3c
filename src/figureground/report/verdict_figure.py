"""The verdict figure: figure minus ground over time, with its band and corrected windows.

One row per model / layer / level, one column per view. Each panel draws the group's
``difference`` (r(figure) - r(ground)) with its pointwise bootstrap interval (over
participants and images) when the group is testable, else the mean over participants; thin
lines are the participants' own curves. Shaded spans are the ``verdict`` windows (orange:
figure, green: ground; family-wise error controlled over time). A panel whose design cannot
reach significance says so.
"""

from __future__ import annotations

import textwrap

import matplotlib

from figureground.conditions import NO_BACKGROUND, NO_FOREGROUND

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from figureground.analysis.verdict import ANY_VIEW, GROUP, VERDICT
from figureground.report.figures import CONDITION_COLOURS

DIRECTION_COLOURS = {
    "figure": CONDITION_COLOURS[NO_BACKGROUND],
    "ground": CONDITION_COLOURS[NO_FOREGROUND],
}
ROW_KEYS = ["model", "weights", "layer", "level"]


def _rows(table: pd.DataFrame, **keys: object) -> pd.DataFrame:
    selected = table
    for column, value in keys.items():
        selected = selected[selected[column].astype(str) == str(value)]
    return selected


def _panel(
    ax: plt.Axes, course: pd.DataFrame, verdict: pd.DataFrame, view: str, heading: str
) -> None:
    diff = _rows(course, contrast="difference")
    for _, own in diff[diff["participant"] != GROUP].groupby("participant"):
        own = own.sort_values("time")
        ax.plot(own["time"], own["estimate"], color="#999999", lw=0.7, alpha=0.8)
    group = diff[diff["participant"] == GROUP].sort_values("time")
    if not group.empty:
        ax.plot(group["time"], group["estimate"], color="black", lw=1.5, label="group")
        ax.fill_between(
            group["time"], group["ci_low"], group["ci_high"], color="black", alpha=0.15, lw=0
        )
    elif not diff.empty:
        mean = diff.groupby("time", as_index=False)["estimate"].mean()
        ax.plot(mean["time"], mean["estimate"], color="black", lw=1.5, ls="--", label="mean")
    windows = _rows(verdict, contrast=VERDICT)
    shown = windows[windows["participant"] == GROUP]
    if shown.empty or shown["direction"].eq("untestable").all():
        note = shown["note"].iloc[0] if not shown.empty else ""
        if note:
            text = textwrap.fill(f"group not testable: {note}", 38)
            ax.text(0.03, 0.95, text, transform=ax.transAxes, fontsize=6, va="top")
        shown = windows[windows["participant"] != GROUP]
    for row in shown[shown["direction"].isin(list(DIRECTION_COLOURS))].itertuples():
        ax.axvspan(row.start, row.stop + 1e-3, color=DIRECTION_COLOURS[row.direction], alpha=0.25)
    ax.axhline(0, color="#999999", lw=0.6)
    ax.axvline(0, color="#999999", lw=0.6, ls=":")
    ax.set_title(f"{heading}\n{view} view", fontsize=7)
    ax.tick_params(labelsize=7)


def fig_verdict(timecourse: pd.DataFrame, verdict: pd.DataFrame) -> Figure:
    """The verdict figure from ``verdict_timecourse.csv`` and ``verdict.csv``."""
    groups = (
        verdict[ROW_KEYS].drop_duplicates().to_dict(orient="records") if not verdict.empty else []
    )
    views = [v for v in dict.fromkeys(verdict["view"]) if v != ANY_VIEW] if len(verdict) else []
    n_rows, n_cols = max(len(groups), 1), max(len(views), 1)
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(3.4 * n_cols, 2.5 * n_rows), squeeze=False, sharex=True
    )
    for row_axes, group in zip(axes, groups, strict=False):
        heading = ", ".join(str(v) for v in group.values())
        for ax, view in zip(row_axes, views, strict=False):
            _panel(
                ax,
                _rows(timecourse, **group, view=view),
                _rows(verdict, **group, view=view),
                view,
                heading,
            )
        row_axes[0].set_ylabel("r(figure) - r(ground)", fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("time (s)", fontsize=8)
    handles = [
        plt.Rectangle((0, 0), 1, 1, color=colour, alpha=0.25)
        for colour in DIRECTION_COLOURS.values()
    ]
    fig.legend(
        [*handles, plt.Line2D([], [], color="black"), plt.Line2D([], [], color="#999999")],
        ["follows the figure", "follows the ground", "group (band: 95% CI)", "participants"],
        loc="lower center",
        fontsize=7,
        ncol=4,
    )
    fig.suptitle(
        "Verdict: figure minus ground RSA over time (shaded: windows significant after "
        "family-wise correction, where the winning variant also beats the whole image)",
        fontsize=8,
        x=0.01,
        ha="left",
    )
    fig.tight_layout(rect=(0, 0.04, 1, 0.95))
    if not groups:
        axes[0][0].text(0.5, 0.5, "no verdict", ha="center", transform=axes[0][0].transAxes)
    return fig
