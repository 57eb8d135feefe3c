"""Condition pairs of a condensed RDM (``scipy.spatial.distance.squareform`` order).

Kept apart from :mod:`figureground.analysis.rdm_calc` (which re-exports :func:`pair_indices`
and :func:`n_pairs`) so that the Gram backends of :mod:`figureground.analysis.rdm_gram` can
use them without an import cycle.
"""

from __future__ import annotations

import functools

import numpy as np


def pair_indices(n_conditions: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column index of every condensed pair (squareform order)."""
    return np.triu_indices(n_conditions, k=1)


@functools.lru_cache(maxsize=4)
def cached_pairs(n_conditions: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`pair_indices`, read-only and cached for the last few sizes."""
    rows, cols = pair_indices(n_conditions)
    rows.flags.writeable = cols.flags.writeable = False
    return rows, cols


def n_pairs(n_conditions: int) -> int:
    """Number of condition pairs."""
    return n_conditions * (n_conditions - 1) // 2
