"""Permutation tests through a callback and their +1-corrected p-values.

:func:`permutation_null` shuffles image labels through a callback; p-values carry the +1
correction (``(1 + #null >= observed) / (1 + n_permutations)``, :func:`permutation_p_value`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from figureground import logs
from figureground.errors import UsageError

ALTERNATIVES = ("greater", "less", "two-sided")


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
