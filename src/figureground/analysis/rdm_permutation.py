"""The RSA permutation test: permute the model RDM's rows and columns together, fast.

:func:`rdm_permutation_test` standardises the RDMs once (ranking and scaling commute with
the permutation), draws the permutations in seeded batches (:func:`permutation_draws`) and
gathers and correlates the permuted model RDMs in vectorised blocks
(:func:`null_correlations`), here, on a torch device, or in blocks on a Dask scheduler
(:func:`null_distribution`, :func:`rdm_permutation_test_blocks`). p-values carry the +1
correction and count ties within :data:`TIE_TOLERANCE` as extreme.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from scipy.stats import rankdata

from figureground.analysis.permutations import PermutationResult, permutation_p_value
from figureground.errors import DataError, UsageError
from figureground.parallel import SERIAL, map_batches, parse_scheduler


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
