"""The rows of ``verdict.csv`` and ``verdict_timecourse.csv``, and the contrasts they name.

The windows and the combined ``verdict`` decision of :mod:`figureground.analysis.verdict`
(see its module docstring), one row per window of significant times (or one ``none`` /
``untestable`` row), and the per-time table of each contrast.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from figureground.analysis.verdict_inference import ContrastTest, windows
from figureground.conditions import NO_BACKGROUND, NO_FOREGROUND, ORIGINAL

FIGURE, GROUND = NO_BACKGROUND, NO_FOREGROUND
PARTIAL_FIGURE, PARTIAL_GROUND = f"{FIGURE}|{GROUND}", f"{GROUND}|{FIGURE}"
GROUP = "group"
VERDICT = "verdict"
# contrast -> ({curve: weight}, label when positive, label when negative)
CONTRASTS: dict[str, tuple[dict[str, float], str, str]] = {
    "difference": ({FIGURE: 1.0, GROUND: -1.0}, "figure", "ground"),
    "partial_difference": ({PARTIAL_FIGURE: 1.0, PARTIAL_GROUND: -1.0}, "figure", "ground"),
    "figure_vs_original": ({FIGURE: 1.0, ORIGINAL: -1.0}, "figure", "original"),
    "ground_vs_original": ({GROUND: 1.0, ORIGINAL: -1.0}, "ground", "original"),
    "figure_fit": ({FIGURE: 1.0}, "figure", "negative"),
    "ground_fit": ({GROUND: 1.0}, "ground", "negative"),
}
VERDICT_COLUMNS = [
    "participant", "model", "weights", "layer", "level", "view", "contrast", "start", "stop",
    "direction", "estimate", "ci_low", "ci_high", "p_fwer", "n_participants", "n_conditions",
    "n_boot", "note",
]  # fmt: skip
TIMECOURSE_COLUMNS = [
    "participant", "model", "weights", "layer", "level", "view", "contrast", "time", "estimate",
    "ci_low", "ci_high", "se", "p_boot", "p_t", "p_fwer", "tested",
]  # fmt: skip


def summary_row(
    descriptors: Mapping[str, object],
    contrast: str,
    direction: str,
    times: np.ndarray,
    first: int | None,
    last: int | None,
    test: ContrastTest | None,
    p_fwer: float,
    note: str = "",
) -> dict[str, object]:
    """One ``verdict.csv`` row: a window ``first`` .. ``last`` of ``times`` (None: no window),
    its estimate (mean over the window, or over the tested times) and percentile interval
    of the window means of ``test``'s samples (NaN without ``test``)."""
    row: dict[str, object] = {
        **descriptors,
        "contrast": contrast,
        "start": float(times[first]) if first is not None else np.nan,
        "stop": float(times[last]) if last is not None else np.nan,
        "direction": direction,
        "estimate": np.nan,
        "ci_low": np.nan,
        "ci_high": np.nan,
        "p_fwer": p_fwer,
        "note": note,
    }
    if test is None:
        return row
    span = (
        slice(first, last + 1)
        if first is not None and last is not None
        else np.flatnonzero(test.tested)
    )
    estimate = test.estimate[span]
    samples = test.distribution[:, span]
    if np.size(estimate) == 0:
        return row
    means = np.nanmean(samples, axis=1) if samples.ndim == 2 else samples
    tail = (1 - test.ci) / 2 * 100
    with np.errstate(invalid="ignore"):
        row["estimate"] = float(np.nanmean(estimate))
        row["ci_low"], row["ci_high"] = (
            float(v) for v in np.nanpercentile(means, [tail, 100 - tail])
        )
    return row


def contrast_rows(
    descriptors: Mapping[str, object],
    name: str,
    test: ContrastTest,
    times: np.ndarray,
    alpha: float,
) -> list[dict[str, object]]:
    """Rows of contrast ``name``: one per window of times significant at ``alpha`` with one
    sign, or one ``none`` row carrying the smallest family-wise p-value."""
    positive, negative = CONTRASTS[name][1:]
    significant = test.tested & (test.p_fwer < alpha)
    runs = windows(significant, test.estimate)
    if not runs:
        best = float(np.nanmin(test.p_fwer)) if test.tested.any() else np.nan
        return [summary_row(descriptors, name, "none", times, None, None, test, best)]
    return [
        summary_row(
            descriptors,
            name,
            positive if s > 0 else negative,
            times,
            a,
            b,
            test,
            float(np.nanmin(test.p_fwer[a : b + 1])),
        )
        for a, b, s in runs
    ]


def verdict_rows(
    descriptors: Mapping[str, object],
    tests: Mapping[str, ContrastTest],
    times: np.ndarray,
    alpha: float,
) -> list[dict[str, object]]:
    """Rows of the combined ``verdict`` contrast (see :mod:`figureground.analysis.verdict`)."""
    diff = tests.get("difference")
    fig, gnd = tests.get("figure_vs_original"), tests.get("ground_vs_original")
    if diff is None or fig is None or gnd is None:
        return [
            summary_row(descriptors, VERDICT, "untestable", times, None, None, None, np.nan,
                 "needs the original, figure and ground models")
        ]  # fmt: skip
    sig = {k: t.tested & (t.p_fwer < alpha) for k, t in tests.items()}
    figure = sig["difference"] & (diff.estimate > 0) & sig["figure_vs_original"]
    figure &= fig.estimate > 0
    ground = sig["difference"] & (diff.estimate < 0) & sig["ground_vs_original"]
    ground &= gnd.estimate > 0
    p_figure = np.fmax(diff.p_fwer, fig.p_fwer)
    p_ground = np.fmax(diff.p_fwer, gnd.p_fwer)
    combined = np.where(diff.estimate > 0, p_figure, p_ground)
    runs = windows(figure | ground, np.where(figure, 1.0, -1.0))
    if not runs:
        best = float(np.nanmin(combined[diff.tested])) if diff.tested.any() else np.nan
        return [summary_row(descriptors, VERDICT, "none", times, None, None, diff, best)]
    return [
        summary_row(
            descriptors,
            VERDICT,
            "figure" if s > 0 else "ground",
            times,
            a,
            b,
            diff,
            float(np.nanmin(combined[a : b + 1])),
        )
        for a, b, s in runs
    ]


def timecourse_table(
    descriptors: Mapping[str, object], name: str, test: ContrastTest, times: np.ndarray
) -> pd.DataFrame:
    """``verdict_timecourse.csv`` rows of contrast ``name``: its inference at every time."""
    return pd.DataFrame(
        {
            **{k: [v] * len(times) for k, v in descriptors.items() if k in TIMECOURSE_COLUMNS},
            "contrast": name,
            "time": times,
            "estimate": test.estimate,
            "ci_low": test.ci_low,
            "ci_high": test.ci_high,
            "se": test.se,
            "p_boot": test.p_boot,
            "p_t": test.p_t,
            "p_fwer": test.p_fwer,
            "tested": test.tested,
        }
    )


def untestable_rows(descriptors: Mapping[str, object], reason: str) -> list[dict[str, object]]:
    """One ``untestable`` row, saying ``reason``, for every contrast and the verdict."""
    empty = np.zeros(1)
    return [
        summary_row(descriptors, name, "untestable", empty, None, None, None, np.nan, reason)
        for name in [*CONTRASTS, VERDICT]
    ]
