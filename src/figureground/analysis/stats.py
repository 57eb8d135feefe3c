"""Statistics within and across participants, and results split by foreground fraction.

Within a participant (images are the random factor):

- :func:`bootstrap` resamples images with replacement and recomputes a statistic through a
  callback; percentile intervals.
- :func:`permutation_null` shuffles image labels through a callback;
  :func:`rdm_permutation_test` does the same for RSA fast, permuting the rows and columns of
  the model RDM in vectorised batches. p-values carry the +1 correction
  (``(1 + #null >= observed) / (1 + n_permutations)``).

Across participants: :func:`cluster_test` runs MNE's cluster-based sign-flip permutation test
over time on curves (participants x times). With P participants there are only 2**P distinct
sign flips, so the smallest attainable p-value is 2**-P; MNE 1.13's exact one-sided test
counts the identity twice and reports at least 2 / 2**P, i.e. 0.125 for the four THINGS-MEG
participants (measured), which can therefore never reach p < 0.05 on their own.

Strata: :func:`stratify` splits images by foreground fraction (real background vs almost
none); :func:`run_by_stratum` runs any analysis per stratum.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from figureground import logs
from figureground.errors import DataError, UsageError
from figureground.parallel import SERIAL, map_batches, parse_scheduler

log = logs.get_logger(__name__)

ALTERNATIVES = ("greater", "less", "two-sided")


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


# ----------------------------------------------------------------------------- permutations


@dataclass(frozen=True)
class PermutationResult:
    """Observed statistic, its permutation null distribution and +1-corrected p-values."""

    observed: np.ndarray
    null: np.ndarray  # (n_permutations, *observed.shape)
    p_value: np.ndarray
    alternative: str
    seed: int


def permutation_p_value(
    observed: np.ndarray, null: np.ndarray, alternative: str = "greater", tolerance: float = 0.0
) -> np.ndarray:
    """``(1 + #{null as or more extreme than observed}) / (1 + n_permutations)``.

    A null value within ``tolerance`` of the observed one counts as a tie (as extreme), so
    that a permutation reproducing the observed statistic counts whatever the rounding.
    """
    if alternative not in ALTERNATIVES:
        raise UsageError(f"alternative {alternative!r} is not one of {', '.join(ALTERNATIVES)}")
    observed = np.asarray(observed)
    null = np.asarray(null)
    if alternative == "greater":
        extreme = null >= observed - tolerance
    elif alternative == "less":
        extreme = null <= observed + tolerance
    else:
        extreme = np.abs(null) >= np.abs(observed) - tolerance
    return (1.0 + extreme.sum(axis=0)) / (1.0 + null.shape[0])


def permutation_null(
    statistic: Callable[[np.ndarray], np.ndarray | float],
    n_images: int,
    n_permutations: int = 1000,
    seed: int = 0,
    alternative: str = "greater",
) -> PermutationResult:
    """Permutation test by shuffling image labels through a callback.

    ``statistic(order)`` receives a permutation of ``range(n_images)`` (the identity for the
    observed value) and should pair, e.g., the responses of image ``i`` with the features of
    image ``order[i]``.
    """
    rng = np.random.default_rng(seed)
    observed = np.asarray(statistic(np.arange(n_images)), dtype=np.float64)
    null = np.stack(
        [
            np.asarray(statistic(rng.permutation(n_images)), dtype=np.float64)
            for _ in logs.progress(range(n_permutations), n_permutations, "permutations")
        ]
    )
    return PermutationResult(
        observed, null, permutation_p_value(observed, null, alternative), alternative, seed
    )


def _n_conditions(n_pairs: int) -> int:
    n = (1 + math.isqrt(1 + 8 * n_pairs)) // 2
    if n * (n - 1) // 2 != n_pairs:
        raise DataError(f"{n_pairs} values is not a condensed RDM (n * (n - 1) / 2 pairs)")
    return n


PERMUTATION_MEMORY_BYTES = 2**29  # index and value gathers of one permutation batch
NULL_BLOCK_BYTES = 2**30  # permuted model RDMs (float64) correlated in one matrix product


def _standardise(values: np.ndarray, method: str) -> np.ndarray:
    """Centre and scale to unit norm along the last axis (after ranking for spearman)."""
    if method == "spearman":
        values = rankdata(values, axis=-1)
    elif method != "pearson":
        raise UsageError(f"RDM comparison {method!r} is not one of pearson, spearman")
    centred = values - values.mean(axis=-1, keepdims=True)
    norm = np.sqrt((centred**2).sum(axis=-1, keepdims=True))
    if np.any(norm == 0):
        raise DataError("an RDM is constant; its correlation is undefined")
    return centred / norm


# Correlations of standardised RDMs within this of each other are ties (rounding differs
# between BLAS calls of different shapes and between numpy and torch).
TIE_TOLERANCE = 1e-12
# Permutations drawn together: the draws depend on it (kept from the first release).
PERMUTATION_DRAW_BATCH = 256


def standardised_rdms(rdms: np.ndarray, method: str) -> np.ndarray:
    """Condensed RDMs (rows) ranked for spearman, centred and scaled to unit norm (float64).

    Correlation is invariant to the order of the entries, so this is done once and the
    permutation test only gathers entries; the dot product of two standardised RDMs is their
    ``method`` correlation.
    """
    data = np.atleast_2d(np.asarray(rdms))
    out = np.empty(data.shape, dtype=np.float64)
    for row in range(data.shape[0]):  # row by row: float32 RDMs are never copied whole
        out[row] = _standardise(np.asarray(data[row], dtype=np.float64), method)
    return out


def check_rdms(data_rdms: np.ndarray, model_rdm: np.ndarray) -> int:
    """Number of conditions of matching, finite condensed RDMs; DataError otherwise."""
    data, model = np.atleast_2d(data_rdms), np.asarray(model_rdm)
    if model.shape[-1] != data.shape[-1] or model.ndim > 2:
        raise DataError(f"data RDMs {data.shape} and model RDM {model.shape} do not match")
    if not (np.isfinite(data).all() and np.isfinite(model).all()):
        raise DataError("RDMs contain NaN or infinite values")
    return _n_conditions(data.shape[-1])


def permutation_draws(
    n_conditions: int, n_permutations: int, seed: int, batch_size: int = PERMUTATION_DRAW_BATCH
) -> np.ndarray:
    """The permutations of the conditions (n_permutations, n_conditions), drawn from
    ``default_rng(seed)`` ``batch_size`` at a time."""
    rng = np.random.default_rng(seed)
    draws = [
        rng.permuted(
            np.tile(np.arange(n_conditions), (min(batch_size, n_permutations - s), 1)), axis=1
        )
        for s in range(0, n_permutations, batch_size)
    ]
    return np.concatenate(draws) if draws else np.empty((0, n_conditions), dtype=np.int64)


def _permuted_models(square: np.ndarray, perms: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Condensed model RDMs (len(perms), pairs) with rows and columns permuted by ``perms``.

    Rows then columns are taken from the square matrix (contiguous, cache-friendly), then the
    upper triangle; threads share the permutations.
    """
    out = np.empty((len(perms), int(upper.sum())))

    def one(r: int) -> None:
        permuted = np.take(np.take(square, perms[r], axis=0), perms[r], axis=1)
        out[r] = permuted[upper]

    threads = min(len(perms), os.cpu_count() or 1)
    if threads <= 1:
        for r in range(len(perms)):
            one(r)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, range(len(perms))))
    return out


def null_correlations(
    z_data: np.ndarray, z_model: np.ndarray, perms: np.ndarray, device: str | None = None
) -> np.ndarray:
    """Correlation (len(perms), times) of each standardised data RDM with the standardised
    model RDM after permuting its rows and columns together by each row of ``perms``.

    One model RDM: the permuted models of a block of permutations (under
    :data:`NULL_BLOCK_BYTES`) are gathered from its square form, then correlated with every
    time point in one matrix product, so the data RDMs are read once per block. One model
    RDM per time: index and value gathers in sub-batches under
    :data:`PERMUTATION_MEMORY_BYTES`. With a torch ``device`` they run there (float64).
    """
    n_pairs = z_data.shape[-1]
    n = _n_conditions(n_pairs)
    gather = max(1, PERMUTATION_MEMORY_BYTES // (40 * n_pairs))
    if device is not None:
        from figureground.analysis.torch_stats import permutation_null

        return permutation_null(z_data, z_model, [perms], n, gather, device)
    rows, cols = np.triu_indices(n, 1)
    null = np.empty((len(perms), z_data.shape[0]))
    if z_model.ndim == 1:
        square = np.zeros((n, n))
        square[rows, cols] = z_model
        square[cols, rows] = z_model
        upper = np.triu(np.ones((n, n), dtype=bool), 1)
        block = max(1, NULL_BLOCK_BYTES // (8 * n_pairs))
        for first in range(0, len(perms), block):
            some = perms[first : first + block]
            null[first : first + len(some)] = _permuted_models(square, some, upper) @ z_data.T
        return null
    position = np.zeros((n, n), dtype=np.intp)
    position[rows, cols] = np.arange(len(rows))
    position[cols, rows] = np.arange(len(rows))
    for first in range(0, len(perms), gather):
        some = perms[first : first + gather]
        gathered = z_model[..., position[some[:, rows], some[:, cols]]]
        # one model RDM per time: (times, size, pairs) -> (size, times)
        null[first : first + len(some)] = np.einsum("tsp,tp->st", gathered, z_data)
    return null


def rdm_permutation_test(
    data_rdms: np.ndarray,
    model_rdm: np.ndarray,
    n_permutations: int = 1000,
    method: str = "spearman",
    seed: int = 0,
    alternative: str = "greater",
    batch_size: int = PERMUTATION_DRAW_BATCH,
    device: str | None = None,
    null_function: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> PermutationResult:
    """RSA permutation test: permute the model RDM's rows and columns together.

    Parameters
    ----------
    data_rdms : condensed data RDMs, (n_times, n_pairs) or (n_pairs,).
    model_rdm : condensed model RDM, (n_pairs,) or (n_times, n_pairs).
    method : "spearman" or "pearson" correlation between RDMs.
    batch_size : permutations drawn together (the draws depend on it,
        :func:`permutation_draws`).
    device : a torch device (``"cuda"``) to gather and correlate on, in float64, from the
        same draws (:func:`null_correlations`); None: numpy.
    null_function : ``(z_data, z_model, perms) -> null`` computing :func:`null_correlations`
        elsewhere (e.g. in blocks on Dask); None: here, on ``device``.

    Returns
    -------
    :class:`PermutationResult` with ``observed`` of shape (n_times,) (or scalar) and ``null``
    of shape (n_permutations, n_times). Ties within :data:`TIE_TOLERANCE` count as extreme.
    """
    n = check_rdms(data_rdms, model_rdm)
    squeeze = np.ndim(data_rdms) == 1
    # Ranking and scaling commute with the permutation: standardise once, then only gather.
    z_data = standardised_rdms(data_rdms, method)
    z_model = standardised_rdms(model_rdm, method)
    z_model = z_model[0] if np.ndim(model_rdm) == 1 else z_model
    perms = permutation_draws(n, n_permutations, seed, batch_size)
    if null_function is None:
        null = null_correlations(z_data, z_model, perms, device)
    else:
        null = null_function(z_data, z_model, perms)
    observed = null_correlations(z_data, z_model, np.arange(n)[None], device)[0]
    if squeeze:
        observed, null = observed[0], null[:, 0]
    p_value = permutation_p_value(observed, null, alternative, TIE_TOLERANCE)
    return PermutationResult(observed, null, p_value, alternative, seed)


# ----------------------------------------------------------------------------- clusters


def _null_block(
    block: tuple[int, np.ndarray], z_data: np.ndarray, z_model: np.ndarray
) -> tuple[int, np.ndarray]:
    """One Dask task: the null rows of a block of permutations, with its index."""
    index, perms = block
    return index, null_correlations(z_data, z_model, perms)


def null_distribution(
    z_data: np.ndarray,
    z_model: np.ndarray,
    perms: np.ndarray,
    scheduler: Any = SERIAL,
    block_size: int = 256,
    device: str | None = None,
) -> np.ndarray:
    """:func:`null_correlations` in blocks of ``block_size`` permutations on ``scheduler``;
    the rows are the same whatever the scheduler and block size.

    The standardised RDMs are sent to every worker once (1.9 GB at THINGS concept level:
    size the workers' memory for it). With a torch ``device`` every block runs here, on it:
    Dask workers need not have one.
    """
    if device is not None or not parse_scheduler(scheduler).distributed:
        return null_correlations(z_data, z_model, perms, device)
    blocks = [
        (k, perms[s : s + block_size]) for k, s in enumerate(range(0, len(perms), block_size))
    ]
    parts = dict(map_batches(_null_block, blocks, scheduler, z_data, z_model, desc="permutations"))
    if not parts:
        return np.empty((0, z_data.shape[0]))
    return np.concatenate([parts[k] for k in sorted(parts)])


def rdm_permutation_test_blocks(
    data_rdms: np.ndarray,
    model_rdm: np.ndarray,
    n_permutations: int = 1000,
    method: str = "spearman",
    seed: int = 0,
    alternative: str = "greater",
    block_size: int = 256,
    scheduler: Any = SERIAL,
    device: str | None = None,
) -> PermutationResult:
    """:func:`rdm_permutation_test` with its permutations in blocks on ``scheduler``: the
    same draws, the same null, the same p-values.

    The RDMs are ranked and standardised once, here; the blocks only gather and correlate.
    """
    return rdm_permutation_test(
        data_rdms,
        model_rdm,
        n_permutations,
        method,
        seed,
        alternative,
        device=device,
        null_function=lambda z_data, z_model, perms: null_distribution(
            z_data, z_model, perms, scheduler, block_size, device
        ),
    )


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
