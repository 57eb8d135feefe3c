"""The report's shared figure parts, and its figures of the stimuli and the seed method.

Fig. 1 example variants, Fig. 2 seed distance per condition; the colours and labels of the
conditions every figure uses; :func:`save_figure` writes PNG and SVG. The time-course
figures (Fig. 3 - 6) are in :mod:`figureground.report.timecourse_figures`.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

from figureground.conditions import CONDITIONS, NO_BACKGROUND, NO_FOREGROUND, ORIGINAL

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

CONDITION_LABELS = {
    ORIGINAL: ORIGINAL,
    NO_BACKGROUND: "no background\n(figure)",
    NO_FOREGROUND: "no foreground\n(ground)",
}
CONDITION_COLOURS = {ORIGINAL: "#4d4d4d", NO_BACKGROUND: "#d95f02", NO_FOREGROUND: "#1b9e77"}
COMPONENT_COLOURS = {
    "unique_fg": CONDITION_COLOURS[NO_BACKGROUND],
    "unique_bg": CONDITION_COLOURS[NO_FOREGROUND],
    "shared": "#7570b3",
    "joint": "#4d4d4d",
}


def _read_rgb(path: Path) -> np.ndarray:
    from figureground.stimuli import load_rgb

    return load_rgb(path)


def _read_alpha(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("L"), dtype=np.float32) / 255.0


def pick_examples(variants: pd.DataFrame, count: int) -> pd.DataFrame:
    """``count`` successful images spread over the range of foreground fractions."""
    ok = variants[variants["status"] == "ok"].sort_values(["fg_fraction", "image_id"])
    if len(ok) <= count:
        return ok
    positions = np.linspace(0, len(ok) - 1, count).round().astype(int)
    return ok.iloc[positions]


def fig_examples(variants_dir: Path, source_root: Path, examples: pd.DataFrame) -> Figure:
    """Fig. 1: original (mask outline) / no background / no foreground per example image."""
    from figureground.variants.layout import image_files

    rows = max(len(examples), 1)
    fig, axes = plt.subplots(rows, 3, figsize=(7.5, 2.5 * rows), squeeze=False)
    for row_axes, row in zip(axes, examples.itertuples(), strict=False):
        paths = image_files(variants_dir, source_root, row.path)
        alpha = _read_alpha(paths["mask"])
        for ax, condition in zip(row_axes, CONDITIONS, strict=True):
            ax.imshow(_read_rgb(paths[condition]))
            ax.set_xticks([])
            ax.set_yticks([])
        row_axes[0].contour(alpha, levels=[0.5], colors="#ff00ff", linewidths=1.0)
        row_axes[0].set_ylabel(f"{row.image_id}\nfg {row.fg_fraction:.2f}", fontsize=8)
    for ax, title in zip(
        axes[0], ("original (mask outline)", "no background", "no foreground"), strict=True
    ):
        ax.set_title(title, fontsize=9)
    fig.suptitle("Fig. 1  Stimulus variants (fg = foreground fraction)", fontsize=10)
    fig.tight_layout()
    return fig


def fig_seed_distance(summary: pd.DataFrame) -> Figure:
    """Fig. 2: mean seed distance per condition with 95% intervals, per participant + pooled.

    ``summary`` has columns participant, model, weights, layer, condition, mean, ci_low,
    ci_high; one panel per (model, weights, layer).
    """
    panels = list(summary.groupby(["model", "weights", "layer"], sort=True))
    fig, axes = plt.subplots(
        1, max(len(panels), 1), figsize=(4.2 * max(len(panels), 1), 3.6), squeeze=False
    )
    for ax, ((model, weights, layer), table) in zip(axes[0], panels, strict=False):
        participants = sorted(table["participant"].unique(), key=lambda p: (p == "pooled", p))
        width = 0.8 / len(participants)
        for i, participant in enumerate(participants):
            for j, condition in enumerate(CONDITION_LABELS):
                cell = table[
                    (table["participant"] == participant) & (table["condition"] == condition)
                ]
                if cell.empty:
                    continue
                mean, low, high = cell.iloc[0][["mean", "ci_low", "ci_high"]]
                x = j + (i - (len(participants) - 1) / 2) * width
                pooled = participant == "pooled"
                ax.errorbar(
                    x,
                    mean,
                    yerr=[[mean - low], [high - mean]],
                    fmt="D" if pooled else "o",
                    color=CONDITION_COLOURS[condition],
                    markersize=7 if pooled else 4,
                    capsize=2,
                    alpha=1.0 if pooled else 0.6,
                )
        ax.set_xticks(range(len(CONDITION_LABELS)), list(CONDITION_LABELS.values()), fontsize=8)
        ax.set_title(f"{model} ({weights})\n{layer}", fontsize=9)
        ax.set_ylabel("Euclidean distance (seed method)")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(
        "Fig. 2  Seed distance per condition (dots: participants; diamond: pooled; "
        "bars: 95% bootstrap CI)",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


def figure_png(fig: Figure, dpi: int = 110) -> bytes:
    """PNG bytes of ``fig`` (deterministic: no timestamp metadata)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()


def save_figure(fig: Figure, stem: Path) -> bytes:
    """Write ``stem``.png and ``stem``.svg atomically; return the PNG bytes."""
    from figureground.fsutil import atomic_write_bytes

    png = figure_png(fig)
    atomic_write_bytes(stem.with_suffix(".png"), png)
    svg = io.BytesIO()
    # A fixed hash salt gives the SVG's element ids fixed values: reruns write identical files.
    with matplotlib.rc_context({"svg.hashsalt": "figureground"}):
        fig.savefig(svg, format="svg", metadata={"Date": None})
    atomic_write_bytes(stem.with_suffix(".svg"), svg.getvalue())
    plt.close(fig)
    return png
