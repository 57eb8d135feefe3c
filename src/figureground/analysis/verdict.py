"""The verdict: do the responses follow the figure or the ground, when, and how sure are we?

Inputs are the RSA curves of one model / layer / level / view for each participant, with their
bootstrap distributions over images (:mod:`figureground.analysis.rsa_bootstrap`; every
participant with the same image draws). Curves: RSA with the ``original``, figure
(``no_background``) and ground (``no_foreground``) model RDMs, and the partial RSA of figure
given ground and ground given figure.

Contrasts (:data:`CONTRASTS`), each a curve over time:

- ``difference``: r(figure) - r(ground).
- ``partial_difference``: r(figure | ground) - r(ground | figure).
- ``figure_vs_original`` / ``ground_vs_original``: r(variant) - r(original): does the variant
  explain the responses better than the unsegmented image?
- ``figure_fit`` / ``ground_fit``: r(variant) against 0.

Inference per contrast and time (rsatoolbox's model-comparison inference, extended over time):

- Pointwise: percentile interval of the bootstrap distribution; ``p_boot``, rsatoolbox's
  bootstrap test (``bootstrap_pair_tests``: twice the smaller share of samples on either side
  of 0, shrunk as ``(B - 1) / B * p + 1 / B``); ``p_t``, rsatoolbox's t-test (the mean over
  samples divided by their standard deviation, ``n - 1`` degrees of freedom).
- Family-wise over the tested times (``tmin`` .. ``tmax``): the bootstrap max-t (single-step,
  Romano & Wolf): with ``se`` the bootstrap standard deviation, ``t = estimate / se`` and
  ``M* = max over times |(sample - estimate) / se|``, ``p_fwer(t) = (1 + #{M* >= |t|}) /
  (1 + B)``. Windows are runs of consecutive times with ``p_fwer < alpha`` and one sign.
- Group: the mean over participants, its bootstrap resampling participants and images
  together (rsatoolbox's ``eval_bootstrap`` over RDMs and patterns: the same image draw for
  every participant of a sample).

The ``verdict`` contrast decides: **figure** where ``difference`` is significantly positive
and ``figure_vs_original`` significantly positive (the figure model beats the ground model and
the unsegmented image), **ground** where ``difference`` is significantly negative and
``ground_vs_original`` significantly positive; its ``p_fwer`` is the larger of the two. The
second condition is the control for brains with no figure/ground preference: a code of the
whole image follows whichever region covers more of it (mostly the ground), so the plain
difference calls it "ground"; it never beats the original image (docs/validation.md).

A design that cannot reach significance gets ``direction = untestable`` with the reason: fewer
than ``min_conditions`` images, fewer than ``min_participants`` participants for the group,
participants shown different images, or too few bootstrap samples for ``alpha``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from figureground.analysis.verdict_inference import (
    ContrastTest,
    Curves,
    bootstrap_p,
    contrast_inference,
    group_curves,
    t_test_p,
    windows,
)
from figureground.analysis.verdict_rows import (
    CONTRASTS,
    FIGURE,
    GROUND,
    GROUP,
    PARTIAL_FIGURE,
    PARTIAL_GROUND,
    TIMECOURSE_COLUMNS,
    VERDICT,
    VERDICT_COLUMNS,
    contrast_rows,
    timecourse_table,
    untestable_rows,
    verdict_rows,
)
from figureground.errors import DataError

__all__ = [
    "ANY_VIEW",
    "CONTRASTS",
    "FIGURE",
    "GROUND",
    "GROUP",
    "PARTIAL_FIGURE",
    "PARTIAL_GROUND",
    "SIGNIFICANT",
    "TIMECOURSE_COLUMNS",
    "VERDICT",
    "VERDICT_COLUMNS",
    "ContrastTest",
    "Curves",
    "VerdictSettings",
    "bootstrap_p",
    "combine_views",
    "contrast_inference",
    "curves_inference",
    "group_curves",
    "t_test_p",
    "verdict_tables",
    "windows",
]


@dataclass(frozen=True)
class VerdictSettings:
    """How the verdict is tested (see the module docstring)."""

    alpha: float = 0.05
    ci: float = 0.95
    tmin: float | None = 0.0
    tmax: float | None = None
    min_conditions: int = 20
    min_participants: int = 3
    seed: int = 0


def _tested_times(times: np.ndarray, settings: VerdictSettings) -> np.ndarray:
    tested = np.ones(times.shape, dtype=bool)
    if settings.tmin is not None:
        tested &= times >= settings.tmin - 1e-9
    if settings.tmax is not None:
        tested &= times <= settings.tmax + 1e-9
    return tested


def _why_untestable(n_conditions: int, n_boot: int, settings: VerdictSettings) -> str:
    if n_conditions < settings.min_conditions:
        return (
            f"{n_conditions} conditions; a bootstrap over images needs at least "
            f"{settings.min_conditions} (analyses.verdict.min_conditions)"
        )
    if 1.0 / (n_boot + 1) >= settings.alpha:
        return f"{n_boot} bootstrap samples cannot reach p < {settings.alpha:g}"
    return ""


def curves_inference(
    descriptors: Mapping[str, object],
    times: np.ndarray,
    estimate: np.ndarray,
    distribution: np.ndarray,
    names: Sequence[str],
    n_conditions: int,
    settings: VerdictSettings,
    n_units: int,
) -> tuple[list[dict[str, object]], list[pd.DataFrame]]:
    """Verdict rows and per-time tables of every contrast of one set of curves."""
    curves = Curves(np.asarray(times), tuple(names), estimate, distribution)
    reason = _why_untestable(n_conditions, distribution.shape[0], settings)
    if reason:
        return untestable_rows(descriptors, reason), []
    tested = _tested_times(curves.times, settings)
    tests: dict[str, ContrastTest] = {}
    for name, (weights, _, _) in CONTRASTS.items():
        found = curves.contrast(weights)
        if found is not None:
            tests[name] = contrast_inference(*found, tested, settings.ci, n_units)
    rows: list[dict[str, object]] = []
    tables = []
    for name, test in tests.items():
        rows += contrast_rows(descriptors, name, test, curves.times, settings.alpha)
        tables.append(timecourse_table(descriptors, name, test, curves.times))
    rows += verdict_rows(descriptors, tests, curves.times, settings.alpha)
    return rows, tables


def verdict_tables(
    per_participant: Mapping[str, Curves],
    descriptors: Mapping[str, object],
    settings: VerdictSettings = VerdictSettings(),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``verdict.csv`` rows and ``verdict_timecourse.csv`` rows of one model/layer/level/view.

    Every participant is tested on its own (bootstrap over images), then the group (bootstrap
    over participants and images) when the design allows it.
    """
    if not per_participant:
        raise DataError("the verdict needs at least one participant's RSA curves")
    rows: list[dict[str, object]] = []
    tables: list[pd.DataFrame] = []
    for participant, curves in per_participant.items():
        n = len(curves.labels) or int(descriptors.get("n_conditions", 0))
        found, courses = curves_inference(
            {**descriptors, "participant": participant, "n_participants": 1, "n_conditions": n},
            curves.times,
            curves.estimate,
            curves.distribution,
            curves.names,
            n,
            settings,
            n_units=max(2, n),
        )
        rows += found
        tables += courses
    found, courses = _group_inference(per_participant, descriptors, settings)
    rows += found
    tables += courses
    n_boot = next(iter(per_participant.values())).distribution.shape[0]
    return _finished_tables(rows, tables, n_boot)


def _why_group_untestable(people: Sequence[Curves], settings: VerdictSettings) -> str:
    """Why the group cannot be tested ("" when it can)."""
    reason = ""
    if len(people) < settings.min_participants:
        reason = (
            f"{len(people)} participant(s); a group verdict needs at least "
            f"{settings.min_participants} (analyses.verdict.min_participants)"
        )
    elif any(p.labels != people[0].labels or p.names != people[0].names for p in people):
        reason = "participants were shown different images (or have different curves)"
    elif any(p.distribution.shape != people[0].distribution.shape for p in people):
        reason = "participants' bootstrap distributions differ in shape"
    return reason


def _group_inference(
    per_participant: Mapping[str, Curves],
    descriptors: Mapping[str, object],
    settings: VerdictSettings,
) -> tuple[list[dict[str, object]], list[pd.DataFrame]]:
    """Verdict rows and per-time tables of the group (participant :data:`GROUP`)."""
    people = list(per_participant.values())
    n = len(people[0].labels) or int(descriptors.get("n_conditions", 0))
    group = {**descriptors, "participant": GROUP, "n_participants": len(people), "n_conditions": n}
    reason = _why_group_untestable(people, settings)
    if reason:
        return untestable_rows(group, reason), []
    estimate, distribution, _ = group_curves(
        per_participant, people[0].distribution.shape[0], settings.seed
    )
    return curves_inference(
        group,
        people[0].times,
        estimate,
        distribution,
        people[0].names,
        n,
        settings,
        n_units=max(2, min(len(people), n)),
    )


def _finished_tables(
    rows: list[dict[str, object]], tables: list[pd.DataFrame], n_boot: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The verdict rows and the per-time tables as DataFrames with every column, in order."""
    verdict = pd.DataFrame(rows)
    for column in VERDICT_COLUMNS:
        if column not in verdict:
            verdict[column] = np.nan
    verdict["n_boot"] = n_boot
    timecourse = (
        pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=TIMECOURSE_COLUMNS)
    )
    for column in TIMECOURSE_COLUMNS:
        if column not in timecourse:
            timecourse[column] = np.nan
    return verdict[VERDICT_COLUMNS], timecourse[TIMECOURSE_COLUMNS]


ANY_VIEW = "any"
SIGNIFICANT = frozenset({"figure", "ground", "original", "negative"})


def combine_views(verdict: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """Rows with view ``any``: each view's windows significant at ``alpha / k`` (Bonferroni
    over the ``k`` views analysed), so that choosing the view after seeing the data costs
    nothing. Keys without such a window get one row ``none`` (or ``untestable`` when every
    view was) whose ``p_fwer`` is the smallest Bonferroni-adjusted value over views.
    """
    keys = ["participant", "model", "weights", "layer", "level", "contrast"]
    views = list(dict.fromkeys(verdict["view"])) if not verdict.empty else []
    k = max(1, len(views))
    rows = []
    for _, group in verdict.groupby(keys, sort=False, dropna=False):
        hits = group[group["direction"].isin(SIGNIFICANT) & (group["p_fwer"] < alpha / k)]
        if not hits.empty:
            found = hits.assign(
                note=[f"{v} view; significant at alpha/{k}" for v in hits["view"]],
                p_fwer=np.minimum(1.0, hits["p_fwer"] * k),
            )
            rows.append(found.assign(view=ANY_VIEW))
            continue
        first = group.iloc[[0]].copy()
        if group["direction"].eq("untestable").all():
            rows.append(first.assign(view=ANY_VIEW))
            continue
        adjusted = np.minimum(1.0, group["p_fwer"].min() * k)
        first = first.assign(
            view=ANY_VIEW,
            direction="none",
            start=np.nan,
            stop=np.nan,
            estimate=np.nan,
            ci_low=np.nan,
            ci_high=np.nan,
            p_fwer=adjusted,
            note=f"no view significant at alpha/{k}",
        )
        rows.append(first)
    if not rows:
        return verdict.iloc[0:0]
    return pd.concat(rows, ignore_index=True)[VERDICT_COLUMNS]
