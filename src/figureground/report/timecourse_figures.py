"""Fig. 3 - 6: time courses of RSA, partial RSA, encoding and variance partitioning.

Each figure has one row per model / layer (/ level / stratum) and one column per participant
plus a ``mean`` column: participant panels show bootstrap intervals over images and mark
times whose permutation p (corrected over time) is below alpha; the mean panel shows the
mean over participants (band: SEM across participants) with the clusters of the
across-participant test drawn as bars (solid: p < alpha, dotted: not significant). The noise
ceiling is a grey band. Each function returns a matplotlib Figure
(:func:`figureground.report.figures.save_figure` writes it).
"""

from __future__ import annotations

from collections.abc import Callable

import matplotlib

from figureground.conditions import NO_BACKGROUND, NO_FOREGROUND

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from figureground.report.figures import COMPONENT_COLOURS, CONDITION_COLOURS, CONDITION_LABELS

MEAN = "mean"
PARTIAL_LABELS = {
    NO_BACKGROUND: "figure | ground",
    NO_FOREGROUND: "ground | figure",
}


def _participants(table: pd.DataFrame) -> list[str]:
    return sorted(str(p) for p in table["participant"].unique() if str(p) != MEAN)


def _select(table: pd.DataFrame | None, **keys: object) -> pd.DataFrame:
    if table is None or table.empty:
        return pd.DataFrame()
    rows = table
    for column, value in keys.items():
        if column in rows.columns:
            rows = rows[rows[column].astype(str) == str(value)]
    return rows


def _grid(n_rows: int, n_cols: int) -> tuple[Figure, np.ndarray]:
    return plt.subplots(
        max(n_rows, 1),
        max(n_cols, 1),
        figsize=(3.4 * max(n_cols, 1), 2.6 * max(n_rows, 1)),
        squeeze=False,
        sharex=True,
    )


def _band(ax: plt.Axes, rows: pd.DataFrame, label: str) -> None:
    """Grey noise-ceiling band from rows with time, lower, upper."""
    if rows.empty:
        return
    rows = rows.sort_values("time")
    ax.fill_between(
        rows["time"], rows["lower"], rows["upper"], color="#bbbbbb", alpha=0.5, lw=0, label=label
    )


def _curve(
    ax: plt.Axes,
    rows: pd.DataFrame,
    colour: str,
    label: str,
    interval: tuple[str, str] | None,
    style: str = "-",
) -> None:
    rows = rows.sort_values("time")
    ax.plot(rows["time"], rows["value"], style, color=colour, lw=1.3, label=label)
    if interval and interval[0] in rows and rows[interval[0]].notna().any():
        ax.fill_between(
            rows["time"], rows[interval[0]], rows[interval[1]], color=colour, alpha=0.2, lw=0
        )


def _mean_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean over participants per time, with mean +- SEM as lo / hi."""
    stats = rows.groupby("time")["value"].agg(["mean", "sem", "count"]).reset_index()
    sem = stats["sem"].fillna(0.0)
    return pd.DataFrame(
        {
            "time": stats["time"],
            "value": stats["mean"],
            "lo": stats["mean"] - sem,
            "hi": stats["mean"] + sem,
        }
    )


def _marks(ax: plt.Axes, times: np.ndarray, level: int, colour: str) -> None:
    """Significance marks in a row along the bottom of the panel (axes coordinates)."""
    if len(times):
        ax.scatter(
            times,
            np.full(len(times), 0.03 + 0.04 * level),
            marker="s",
            s=6,
            color=colour,
            transform=ax.get_xaxis_transform(),
            clip_on=False,
        )


def _cluster_bars(
    ax: plt.Axes, clusters: pd.DataFrame, level: int, colour: str, alpha: float
) -> None:
    for row in clusters.itertuples():
        significant = float(row.p_value) < alpha
        ax.plot(
            [row.start, row.stop],
            [0.03 + 0.04 * level] * 2,
            color=colour,
            lw=3 if significant else 1,
            ls="-" if significant else ":",
            transform=ax.get_xaxis_transform(),
            solid_capstyle="butt",
        )


def _timecourse_grid(
    table: pd.DataFrame,
    row_keys: list[str],
    curves: list[tuple[dict[str, str], str, str, str]],
    ceiling: Callable[[dict[str, object], str], pd.DataFrame],
    clusters: pd.DataFrame | None,
    alpha: float,
    ylabel: str,
    title: str,
    p_column: str | None = "p_perm_fwer",
) -> Figure:
    """Rows = groups of ``row_keys``; columns = participants + mean; one line per curve.

    ``curves``: (keys selecting the curve's rows, cluster curve name, label, colour).
    """
    groups = table[row_keys].drop_duplicates().sort_values(row_keys).to_dict(orient="records")
    columns = [*_participants(table), MEAN]
    fig, axes = _grid(len(groups), len(columns))
    for row_axes, group in zip(axes, groups, strict=False):
        rows = _select(table, **group)
        for ax, participant in zip(row_axes, columns, strict=True):
            _band(ax, ceiling(group, participant), "noise ceiling")
            for level, (keys, cluster_name, label, colour) in enumerate(curves):
                selected = _select(rows, **keys)
                if participant == MEAN:
                    if selected.empty:
                        continue
                    mean = _mean_rows(selected)
                    _curve(ax, mean, colour, label, ("lo", "hi"))
                    found = _select(clusters, **group, curve=cluster_name)
                    _cluster_bars(ax, found, level, colour, alpha)
                    continue
                own = _select(selected, participant=participant)
                if own.empty:
                    continue
                _curve(ax, own, colour, label, ("ci_low", "ci_high"))
                if p_column and p_column in own:
                    hits = own[own[p_column].astype(float) < alpha]["time"].to_numpy()
                    _marks(ax, hits, level, colour)
            ax.axhline(0, color="#999999", lw=0.6)
            ax.axvline(0, color="#999999", lw=0.6, ls=":")
            ax.tick_params(labelsize=7)
            heading = ", ".join(str(v) for v in group.values())
            ax.set_title(f"{participant}: {heading}", fontsize=7)
        row_axes[0].set_ylabel(ylabel, fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("time (s)", fontsize=8)
    handles, labels = axes[0][-1].get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    fig.legend(unique.values(), unique.keys(), loc="upper right", fontsize=7, ncol=len(unique))
    fig.suptitle(title, fontsize=9, x=0.01, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


def _ceiling_lookup(
    ceiling: pd.DataFrame | None, analysis: str, estimates: dict[str, str]
) -> Callable[[dict[str, object], str], pd.DataFrame]:
    """Ceiling rows for a panel: ``estimates`` maps participant kind -> estimate name."""

    def lookup(group: dict[str, object], participant: str) -> pd.DataFrame:
        if group.get("stratum", "all") != "all":
            return pd.DataFrame()
        kind = MEAN if participant == MEAN else "participant"
        keys = {"analysis": analysis, "estimate": estimates[kind]}
        if "level" in group and analysis == "rsa":
            keys["level"] = group["level"]  # each panel draws the ceiling of its own level
        return _select(ceiling, participant=participant, **keys)

    return lookup


def fig_rsa(
    rsa: pd.DataFrame,
    ceiling: pd.DataFrame | None,
    clusters: pd.DataFrame | None,
    alpha: float = 0.05,
    partial: bool = False,
) -> Figure:
    """Fig. 3 (RSA per condition) or Fig. 4 (``partial``: figure | ground, ground | figure).

    ``rsa`` is ``results/rsa_timecourse.csv``; ``ceiling`` ``noise_ceiling.csv``;
    ``clusters`` ``clusters.csv``. Participant panels draw the test-image repetition ceiling
    (level image), mean panels the ceiling across participants of the same level.
    """
    table = rsa.assign(given=rsa["given"].fillna("").astype(str))
    if partial:
        curves = [
            ({"condition": c, "given": g}, f"{c}|{g}", PARTIAL_LABELS[c], CONDITION_COLOURS[c])
            for c, g in (
                (NO_BACKGROUND, NO_FOREGROUND),
                (NO_BACKGROUND, NO_FOREGROUND)[::-1],
            )
        ]
        title = (
            "Fig. 4  Partial RSA: what the figure model explains beyond the ground "
            "model, and vice versa"
        )
    else:
        curves = [
            (
                {"condition": c, "given": ""},
                c,
                CONDITION_LABELS[c].replace("\n", " "),
                CONDITION_COLOURS[c],
            )
            for c in CONDITION_LABELS
        ]
        title = "Fig. 3  Time-resolved RSA of MEG RDMs with each condition's model RDM"
    curves = [c for c in curves if not _select(table, **c[0]).empty]
    lookup = _ceiling_lookup(
        ceiling, "rsa", {"participant": "test_repetitions", MEAN: "participants"}
    )
    method = str(table["method"].iloc[0]) if "method" in table and len(table) else ""
    return _timecourse_grid(
        table,
        [c for c in ("model", "weights", "layer", "level", "view", "stratum") if c in table],
        curves,
        lookup,
        clusters if clusters is None else _select(clusters, analysis="rsa"),
        alpha,
        f"RSA ({method})",
        title,
    )


def fig_encoding(
    encoding: pd.DataFrame,
    ceiling: pd.DataFrame | None,
    clusters: pd.DataFrame | None,
    alpha: float = 0.05,
) -> Figure:
    """Fig. 5: cross-validated encoding accuracy (Pearson r, mean over sensors) over time.

    The band is the ceiling on single-trial r from split-half reliability of the test images.
    """
    curves = [
        ({"condition": c}, c, CONDITION_LABELS[c].replace("\n", " "), CONDITION_COLOURS[c])
        for c in CONDITION_LABELS
    ]
    curves = [c for c in curves if not _select(encoding, **c[0]).empty]
    lookup = _ceiling_lookup(
        ceiling, "encoding", {"participant": "single_trial_r", MEAN: "single_trial_r"}
    )

    def ceiling_for(group: dict[str, object], participant: str) -> pd.DataFrame:
        if participant != MEAN:
            return lookup(group, participant)
        rows = _select(ceiling, analysis="encoding", estimate="single_trial_r")
        if rows.empty:
            return rows
        return rows.groupby("time", as_index=False)[["lower", "upper"]].mean()

    return _timecourse_grid(
        encoding,
        ["model", "weights", "layer"],
        curves,
        ceiling_for,
        _select(clusters, analysis="encoding"),
        alpha,
        "encoding r (CV)",
        "Fig. 5  Encoding: ridge from each condition's features to every sensor and time",
        p_column=None,
    )


def fig_variance_partition(
    partition: pd.DataFrame, clusters: pd.DataFrame | None, alpha: float = 0.05
) -> Figure:
    """Fig. 6: unique figure, unique ground and shared cross-validated R² over time."""
    curves = [
        ({"component": c}, c, c.replace("_", " "), COMPONENT_COLOURS[c])
        for c in ("unique_fg", "unique_bg", "shared")
    ]
    return _timecourse_grid(
        partition,
        ["model", "weights", "layer"],
        curves,
        lambda group, participant: pd.DataFrame(),
        _select(clusters, analysis="variance_partition"),
        alpha,
        "R² (CV)",
        "Fig. 6  Variance partitioning (banded ridge): unique figure, unique ground, shared",
        p_column=None,
    )
