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
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from figureground.conditions import NO_BACKGROUND, NO_FOREGROUND, ORIGINAL
from figureground.errors import DataError

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


@dataclass(frozen=True)
class Curves:
    """One participant's RSA curves and their bootstrap distribution over images."""

    times: np.ndarray  # (T,)
    names: tuple[str, ...]  # curve names, e.g. original, no_background, no_background|...
    estimate: np.ndarray  # (T, C)
    distribution: np.ndarray  # (B, T, C), the same image draws for every participant
    labels: tuple[str, ...] = field(default=())  # the conditions (images or concepts)

    def contrast(self, weights: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray] | None:
        """(estimate (T,), distribution (B, T)) of a weighted sum of curves; None if absent."""
        if any(name not in self.names for name in weights):
            return None
        index = [self.names.index(name) for name in weights]
        w = np.asarray(list(weights.values()))
        return self.estimate[:, index] @ w, self.distribution[:, :, index] @ w


@dataclass(frozen=True)
class ContrastTest:
    """Pointwise and family-wise inference of one contrast over time."""

    estimate: np.ndarray
    distribution: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    se: np.ndarray
    p_boot: np.ndarray
    p_t: np.ndarray
    p_fwer: np.ndarray
    tested: np.ndarray
    ci: float = 0.95


def bootstrap_p(distribution: np.ndarray) -> np.ndarray:
    """rsatoolbox's two-sided bootstrap test of each column against 0 (``bootstrap_pair_tests``).

    ``distribution`` holds (samples, ...) of a difference; NaN samples are left out.
    """
    finite = np.isfinite(distribution)
    n = finite.sum(axis=0)
    below = (np.where(finite, distribution, 0.0) < 0).sum(axis=0)
    equal = (np.where(finite, distribution, np.nan) == 0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = below / (n - equal)
        p = 2 * np.minimum(share, 1 - share)
        return (n - 1) / n * p + 1 / n


def t_test_p(distribution: np.ndarray, n: int) -> np.ndarray:
    """rsatoolbox's t-test of each column (``t_tests``): the mean of the samples over their
    standard deviation, the variance scaled by ``n / (n - 1)`` and ``n - 1`` degrees of
    freedom, ``n`` the number of resampled units (rsatoolbox's ``extract_variances``)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nanmean(distribution, axis=0)
        variance = np.nanvar(distribution, axis=0, ddof=1) * n / (n - 1)
        sd = np.sqrt(np.maximum(variance, np.finfo(float).eps))
        return 2 * (1 - stats.t.cdf(np.abs(mean / sd), n - 1))


def contrast_inference(
    estimate: np.ndarray,
    distribution: np.ndarray,
    tested: np.ndarray,
    ci: float,
    n_units: int,
) -> ContrastTest:
    """Intervals, pointwise p-values and max-t family-wise p-values over ``tested`` times."""
    tail = (1 - ci) / 2 * 100
    with np.errstate(invalid="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            low = np.nanpercentile(distribution, tail, axis=0)
            high = np.nanpercentile(distribution, 100 - tail, axis=0)
            se = np.nanstd(distribution, axis=0, ddof=1)
    usable = tested & np.isfinite(estimate) & np.isfinite(se) & (se > 0)
    p_fwer = np.full(estimate.shape, np.nan)
    if usable.any():
        z = (distribution[:, usable] - estimate[usable]) / se[usable]
        valid = np.isfinite(z).all(axis=1)
        maxima = np.abs(z[valid]).max(axis=1)
        observed = np.abs(estimate[usable] / se[usable])
        p_fwer[usable] = (1.0 + (maxima[:, None] >= observed[None, :]).sum(axis=0)) / (
            1.0 + valid.sum()
        )
    return ContrastTest(
        estimate,
        distribution,
        low,
        high,
        se,
        bootstrap_p(distribution),
        t_test_p(distribution, n_units),
        p_fwer,
        usable,
        ci,
    )


def windows(significant: np.ndarray, sign: np.ndarray) -> list[tuple[int, int, int]]:
    """Runs (first, last, sign) of consecutive significant indices with one sign."""
    runs: list[tuple[int, int, int]] = []
    for index in np.flatnonzero(significant):
        s = int(np.sign(sign[index]))
        if runs and runs[-1][1] == index - 1 and runs[-1][2] == s:
            runs[-1] = (runs[-1][0], int(index), s)
        else:
            runs.append((int(index), int(index), s))
    return runs


def group_curves(
    per_participant: Mapping[str, Curves],
    n_boot: int,
    seed: int,
    draws: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group estimate (T, C) and its bootstrap over participants and images (B, T, C).

    Sample ``b`` averages the sample-``b`` curves of participants drawn with replacement
    (``default_rng(seed)``, one row of draws per sample, or the given ``draws`` (B, P)), so
    participants and images are resampled together. Returns (estimate, distribution,
    participant draws (B, P)).
    """
    people = list(per_participant.values())
    estimate = np.mean([c.estimate for c in people], axis=0)
    stacked = np.stack([c.distribution for c in people])  # (P, B, T, C)
    if draws is None:
        rng = np.random.default_rng(seed)
        draws = rng.integers(0, len(people), (n_boot, len(people)))
    samples = np.arange(n_boot)[:, None]
    distribution = stacked[draws, samples].mean(axis=1)
    return estimate, distribution, draws


def _row(
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


def _contrast_rows(
    descriptors: Mapping[str, object],
    name: str,
    test: ContrastTest,
    times: np.ndarray,
    alpha: float,
) -> list[dict[str, object]]:
    positive, negative = CONTRASTS[name][1:]
    significant = test.tested & (test.p_fwer < alpha)
    runs = windows(significant, test.estimate)
    if not runs:
        best = float(np.nanmin(test.p_fwer)) if test.tested.any() else np.nan
        return [_row(descriptors, name, "none", times, None, None, test, best)]
    return [
        _row(
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


def _verdict_rows(
    descriptors: Mapping[str, object],
    tests: Mapping[str, ContrastTest],
    times: np.ndarray,
    alpha: float,
) -> list[dict[str, object]]:
    """Rows of the combined ``verdict`` contrast (see the module docstring)."""
    diff = tests.get("difference")
    fig, gnd = tests.get("figure_vs_original"), tests.get("ground_vs_original")
    if diff is None or fig is None or gnd is None:
        return [
            _row(descriptors, VERDICT, "untestable", times, None, None, None, np.nan,
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
        return [_row(descriptors, VERDICT, "none", times, None, None, diff, best)]
    return [
        _row(
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


def _timecourse(
    descriptors: Mapping[str, object], name: str, test: ContrastTest, times: np.ndarray
) -> pd.DataFrame:
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


def _tested_times(times: np.ndarray, settings: VerdictSettings) -> np.ndarray:
    tested = np.ones(times.shape, dtype=bool)
    if settings.tmin is not None:
        tested &= times >= settings.tmin - 1e-9
    if settings.tmax is not None:
        tested &= times <= settings.tmax + 1e-9
    return tested


def _untestable(descriptors: Mapping[str, object], reason: str) -> list[dict[str, object]]:
    empty = np.zeros(1)
    return [
        _row(descriptors, name, "untestable", empty, None, None, None, np.nan, reason)
        for name in [*CONTRASTS, VERDICT]
    ]


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
        return _untestable(descriptors, reason), []
    tested = _tested_times(curves.times, settings)
    tests: dict[str, ContrastTest] = {}
    for name, (weights, _, _) in CONTRASTS.items():
        found = curves.contrast(weights)
        if found is not None:
            tests[name] = contrast_inference(*found, tested, settings.ci, n_units)
    rows: list[dict[str, object]] = []
    tables = []
    for name, test in tests.items():
        rows += _contrast_rows(descriptors, name, test, curves.times, settings.alpha)
        tables.append(_timecourse(descriptors, name, test, curves.times))
    rows += _verdict_rows(descriptors, tests, curves.times, settings.alpha)
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
    people = list(per_participant.values())
    n = len(people[0].labels) or int(descriptors.get("n_conditions", 0))
    group = {**descriptors, "participant": GROUP, "n_participants": len(people), "n_conditions": n}
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
    if reason:
        rows += _untestable(group, reason)
    else:
        estimate, distribution, _ = group_curves(
            per_participant, people[0].distribution.shape[0], settings.seed
        )
        found, courses = curves_inference(
            group,
            people[0].times,
            estimate,
            distribution,
            people[0].names,
            n,
            settings,
            n_units=max(2, min(len(people), n)),
        )
        rows += found
        tables += courses
    verdict = pd.DataFrame(rows)
    for column in VERDICT_COLUMNS:
        if column not in verdict:
            verdict[column] = np.nan
    verdict["n_boot"] = people[0].distribution.shape[0]
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
