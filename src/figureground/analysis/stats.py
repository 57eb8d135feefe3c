"""Statistics within and across participants, and results split by foreground fraction.

Within a participant (images are the random factor):

- :func:`bootstrap` resamples images with replacement and recomputes a statistic through a
  callback; percentile intervals.
- :func:`permutation_null` shuffles image labels through a callback;
  :func:`rdm_permutation_test` does the same for RSA fast, permuting the rows and columns of
  the model RDM in vectorised batches. p-values carry the +1 correction
  (``(1 + #null >= observed) / (1 + n_permutations)``). Both live in their own modules
  (:mod:`figureground.analysis.permutations`, :mod:`figureground.analysis.rdm_permutation`)
  and are re-exported here.

Across participants: :func:`cluster_test` runs MNE's cluster-based sign-flip permutation test
over time on curves (participants x times). With P participants there are only 2**P distinct
sign flips, so the smallest attainable p-value is 2**-P; MNE 1.13's exact one-sided test
counts the identity twice and reports at least 2 / 2**P, i.e. 0.125 for the four THINGS-MEG
participants (measured), which can therefore never reach p < 0.05 on their own.

Strata: :func:`stratify` splits images by foreground fraction (real background vs almost
none); :func:`run_by_stratum` runs any analysis per stratum.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from figureground import logs
from figureground.analysis.permutations import (
    ALTERNATIVES,
    PermutationResult,
    permutation_null,
    permutation_p_value,
)
from figureground.analysis.rdm_permutation import (
    NULL_BLOCK_BYTES,
    PERMUTATION_DRAW_BATCH,
    PERMUTATION_MEMORY_BYTES,
    TIE_TOLERANCE,
    check_rdms,
    null_correlations,
    null_distribution,
    permutation_draws,
    rdm_permutation_test,
    rdm_permutation_test_blocks,
    standardised_rdms,
)
from figureground.errors import DataError, UsageError

__all__ = [
    "ALTERNATIVES",
    "NULL_BLOCK_BYTES",
    "PERMUTATION_DRAW_BATCH",
    "PERMUTATION_MEMORY_BYTES",
    "STRATA",
    "TIE_TOLERANCE",
    "BootstrapResult",
    "PermutationResult",
    "bootstrap",
    "check_rdms",
    "cluster_test",
    "cluster_test_difference",
    "null_correlations",
    "null_distribution",
    "permutation_draws",
    "permutation_null",
    "permutation_p_value",
    "rdm_permutation_test",
    "rdm_permutation_test_blocks",
    "run_by_stratum",
    "standardised_rdms",
    "strata_from_variants",
    "stratify",
]

log = logs.get_logger(__name__)


# ----------------------------------------------------------------------------- bootstrap


@dataclass(frozen=True)
class BootstrapResult:
    """Statistic on all images, percentile interval and the bootstrap distribution."""

    estimate: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    distribution: np.ndarray  # (n_boot, *estimate.shape)
    ci: float
    seed: int


def bootstrap(
    statistic: Callable[[np.ndarray], np.ndarray | float],
    n_images: int,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
) -> BootstrapResult:
    """Bootstrap interval over images.

    Parameters
    ----------
    statistic : called with an index array into the images (length ``n_images``, drawn with
        replacement); returns a scalar or an array (e.g. one value per time point). For RSA,
        the callback should drop the pairs of an image with its own copy.
    n_images : number of images to resample.
    n_boot : bootstrap samples.
    ci : coverage of the percentile interval.
    seed : seeds the resampling.
    """
    if not 0 < ci < 1:
        raise UsageError(f"ci={ci} must lie strictly between 0 and 1")
    if n_images < 2 or n_boot < 1:
        raise UsageError(f"bootstrap needs >= 2 images and >= 1 sample (got {n_images}, {n_boot})")
    rng = np.random.default_rng(seed)
    estimate = np.asarray(statistic(np.arange(n_images)), dtype=np.float64)
    distribution = np.stack(
        [
            np.asarray(statistic(rng.integers(0, n_images, n_images)), dtype=np.float64)
            for _ in logs.progress(range(n_boot), n_boot, "bootstrap")
        ]
    )
    tail = (1 - ci) / 2 * 100
    return BootstrapResult(
        estimate=estimate,
        lower=np.nanpercentile(distribution, tail, axis=0),
        upper=np.nanpercentile(distribution, 100 - tail, axis=0),
        distribution=distribution,
        ci=ci,
        seed=seed,
    )


# ----------------------------------------------------------------------------- clusters


def cluster_test(
    curves: np.ndarray,
    times: Sequence[float] | np.ndarray,
    *,
    threshold: float | None = None,
    tail: int = 1,
    n_permutations: int = 1024,
    seed: int = 0,
    **descriptors: object,
) -> pd.DataFrame:
    """Cluster-based sign-flip permutation test over time (MNE) on participants x times.

    Parameters
    ----------
    curves : one curve per participant, shape (n_participants, n_times), tested against 0
        (e.g. correlation minus chance, or a difference of conditions).
    times : time of each column, seconds.
    threshold : cluster-forming t threshold; None lets MNE use p < 0.05 for the given tail.
    tail : 1 (greater than zero), -1 (less) or 0 (both).
    n_permutations : sign flips; MNE runs the exact test when 2**n_participants is smaller.
    seed : seeds the permutations.

    Returns
    -------
    One row per cluster: cluster, start, stop (s, inclusive), p_value, t_sum, n_participants,
    tail and ``descriptors``; empty (same columns) when no cluster forms.
    """
    from mne.stats import permutation_cluster_1samp_test

    X = np.asarray(curves, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != len(times):
        raise DataError(f"curves have shape {X.shape}; expected (participants, {len(times)})")
    if X.shape[0] < 2:
        raise DataError("a cluster test across participants needs at least 2 participants")
    if tail not in (-1, 0, 1):
        raise UsageError(f"tail={tail} must be -1, 0 or 1")
    t_obs, clusters, p_values, _ = permutation_cluster_1samp_test(
        X,
        threshold=threshold,
        n_permutations=n_permutations,
        tail=tail,
        rng=seed,
        out_type="mask",
        verbose="error",
    )
    rows = []
    for k, (cluster, p) in enumerate(zip(clusters, p_values, strict=True)):
        mask = np.zeros(len(times), dtype=bool)
        mask[cluster] = True  # MNE gives a mask, or a tuple of slices for 1-D data
        index = np.flatnonzero(mask)
        rows.append(
            {
                "cluster": k,
                "start": times[index[0]],
                "stop": times[index[-1]],
                "p_value": float(p),
                "t_sum": float(t_obs[index].sum()),
            }
        )
    table = pd.DataFrame(rows, columns=["cluster", "start", "stop", "p_value", "t_sum"])
    table["n_participants"] = X.shape[0]
    table["tail"] = tail
    for key, value in descriptors.items():
        table[key] = value
    return table


def cluster_test_difference(
    foreground: np.ndarray,
    background: np.ndarray,
    times: Sequence[float] | np.ndarray,
    *,
    tail: int = 0,
    **options: object,
) -> pd.DataFrame:
    """:func:`cluster_test` on foreground minus background curves (two-sided by default)."""
    fg = np.asarray(foreground, dtype=np.float64)
    bg = np.asarray(background, dtype=np.float64)
    if fg.shape != bg.shape:
        raise DataError(f"foreground curves {fg.shape} and background curves {bg.shape} differ")
    options.setdefault("contrast", "fg-bg")
    return cluster_test(fg - bg, times, tail=tail, **options)


# ----------------------------------------------------------------------------- strata

STRATA: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "with_background": lambda fraction, threshold: fraction < threshold,
    "little_background": lambda fraction, threshold: fraction >= threshold,
}


def stratify(
    image_ids: Sequence[str] | np.ndarray,
    fg_fraction: Sequence[float] | np.ndarray,
    threshold: float = 0.9,
) -> dict[str, pd.Index]:
    """Image ids per stratum: ``with_background`` (fg_fraction < threshold) and
    ``little_background`` (>= threshold). Images with unknown fraction (NaN) are left out.
    """
    ids = np.asarray(image_ids).astype(str)
    fraction = np.asarray(fg_fraction, dtype=np.float64)
    if ids.shape != fraction.shape:
        raise DataError(f"{len(ids)} image ids but {len(fraction)} foreground fractions")
    if not 0 < threshold <= 1:
        raise UsageError(f"threshold={threshold} must lie in (0, 1]")
    known = np.isfinite(fraction)
    if not known.all():
        log.warning("stratify: %d image(s) without a foreground fraction left out", (~known).sum())
    return {
        name: pd.Index(ids[known & rule(np.where(known, fraction, 0.0), threshold)], name="image")
        for name, rule in STRATA.items()
    }


def strata_from_variants(variants: pd.DataFrame, threshold: float = 0.9) -> dict[str, pd.Index]:
    """:func:`stratify` from a variants table (``image_id``, ``fg_fraction``; ok rows only)."""
    missing = {"image_id", "fg_fraction"} - set(variants.columns)
    if missing:
        raise DataError(f"variants table lacks column(s) {', '.join(sorted(missing))}")
    rows = variants
    if "status" in variants.columns:
        rows = variants[variants["status"] == "ok"]
    return stratify(rows["image_id"].to_numpy(), rows["fg_fraction"].to_numpy(), threshold)


def run_by_stratum(
    analysis: Callable[[pd.Index], pd.DataFrame], strata: Mapping[str, pd.Index]
) -> pd.DataFrame:
    """Run ``analysis(image_ids)`` for each non-empty stratum; rows gain a ``stratum`` column."""
    tables = []
    for name, ids in strata.items():
        if len(ids) == 0:
            log.warning("stratum %s has no images; skipped", name)
            continue
        table = analysis(ids).copy()
        table["stratum"] = name
        tables.append(table)
    if not tables:
        raise DataError("every stratum is empty")
    return pd.concat(tables, ignore_index=True)
