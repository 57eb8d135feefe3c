"""The statistics of the verdict (:mod:`figureground.analysis.verdict`).

rsatoolbox's pointwise bootstrap and t-tests of a contrast over time, the bootstrap max-t
family-wise p-values over the tested times, the runs of significant times, and the group
bootstrap over participants and images. The module docstring of
:mod:`figureground.analysis.verdict` states the definitions.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy import stats


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
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
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
