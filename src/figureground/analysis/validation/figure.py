"""The validation figure: power on planted brains and false positives on the nulls."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from figureground import fsutil


def _bars(ax, table: pd.DataFrame, groups: list[str], series: list[tuple[str, str]], colours):
    """Grouped bars of ``rate`` with exact intervals; ``series`` = (view, rule) pairs."""
    width = 0.8 / max(1, len(series))
    for k, (view, rule) in enumerate(series):
        rows = table[(table["view"] == view) & (table["rule"] == rule)].set_index("brain")
        rows = rows.reindex(groups)
        x = np.arange(len(groups)) + (k - (len(series) - 1) / 2) * width
        err = np.vstack([rows["rate"] - rows["ci_low"], rows["ci_high"] - rows["rate"]])
        ax.bar(x, rows["rate"], width, yerr=err, capsize=2, color=colours[k],
               label=f"{rule}, {view} view")  # fmt: skip
    ax.set_xticks(np.arange(len(groups)), [g.replace("_", "\n") for g in groups], fontsize=7)
    ax.set_ylim(0, 1.05)


def plot_summary(summary: pd.DataFrame, out: str | Path, alpha: float = 0.05) -> Path:
    """Write a two-panel PNG per SNR row: power (left) and false-positive rate (right).

    ``summary`` is :func:`figureground.analysis.validation.sweep.summarise`'s table.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    snrs = sorted(summary["snr"].unique())
    views = list(dict.fromkeys(summary["view"]))
    series = [(v, "verdict") for v in views] + [(views[0], "difference")]
    colours = [plt.get_cmap("tab10")(i) for i in range(len(series))]
    figure, axes = plt.subplots(
        len(snrs), 2, figsize=(13, 3.6 * len(snrs)), squeeze=False, constrained_layout=True
    )
    for (left, right), snr in zip(axes, snrs, strict=True):
        rows = summary[summary["snr"] == snr]
        power = rows[rows["measure"] == "power"]
        nulls = rows[rows["measure"] == "fpr"]
        _bars(left, power, list(dict.fromkeys(power["brain"])), series, colours)
        left.axhline(0.8, color="black", ls=":", lw=0.8)
        left.set_ylabel("power (group verdict = planted)")
        left.set_title(f"brains that follow the figure or the ground, SNR {snr:g}", fontsize=9)
        _bars(right, nulls, list(dict.fromkeys(nulls["brain"])), series, colours)
        right.axhline(alpha, color="black", ls=":", lw=0.8)
        right.axhline(0.10, color="red", ls="--", lw=0.8)
        right.set_ylabel("false-positive rate (95% CI)")
        right.set_title(f"brains without a figure/ground preference, SNR {snr:g}", fontsize=9)
    axes[0][0].legend(fontsize=7, loc="upper right")
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    with fsutil.atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, dpi=90, format="png")
    plt.close(figure)
    return path
