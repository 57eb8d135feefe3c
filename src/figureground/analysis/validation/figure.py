"""The validation figure: power and recovery against SNR per method, and false positives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from figureground import fsutil

_STYLES = {"fg_only": "-", "bg_only": "--"}


def plot_summary(summary: pd.DataFrame, out: str | Path, alpha: float = 0.05) -> Path:
    """Write a two-panel PNG: power vs SNR (planted fg / bg) and FPR at equal weights.

    Parameters
    ----------
    summary : table of :func:`figureground.analysis.validation.sweep.summarise`.
    out : PNG path (written atomically).
    alpha : the nominal level, drawn as a line on the FPR panel.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(summary["method"]))
    colours = {m: plt.get_cmap("tab10")(i) for i, m in enumerate(methods)}
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for method in methods:
        for condition, style in _STYLES.items():
            rows = summary[(summary["method"] == method) & (summary["condition"] == condition)]
            if rows.empty:
                continue
            left.plot(
                rows["snr"],
                rows["power"],
                style,
                marker="o",
                color=colours[method],
                label=f"{method}, {condition.replace('_', '-')}",
            )
    left.set_xscale("log")
    left.set_ylim(-0.03, 1.03)
    left.set_xlabel("simulated SNR")
    left.set_ylabel(f"power (planted order recovered, p < {alpha:.2g})")
    left.set_title("fg-only (solid) and bg-only (dashed) brains")
    left.legend(fontsize=7, loc="center right")
    equal = summary[summary["condition"] == "equal"]
    snrs = sorted(equal["snr"].unique())
    width = 0.8 / max(1, len(methods))
    for k, method in enumerate(methods):
        rows = equal[equal["method"] == method].set_index("snr").reindex(snrs)
        x = np.arange(len(snrs)) + (k - (len(methods) - 1) / 2) * width
        err = np.vstack([rows["fpr"] - rows["rate_ci_low"], rows["rate_ci_high"] - rows["fpr"]])
        right.bar(x, rows["fpr"], width, yerr=err, capsize=2, color=colours[method], label=method)
    right.axhline(alpha, color="black", linestyle=":", label=f"nominal {alpha:.0%}")
    right.set_xticks(np.arange(len(snrs)), [f"{s:g}" for s in snrs])
    right.set_ylim(0, 1.03)
    right.set_xlabel("simulated SNR")
    right.set_ylabel("false-positive rate (95% CI)")
    right.set_title("equal fg and bg weights")
    right.legend(fontsize=7)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    with fsutil.atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, dpi=90, format="png")
    plt.close(figure)
    return path
