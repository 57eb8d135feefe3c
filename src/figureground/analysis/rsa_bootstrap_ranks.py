"""Bootstrap samples of conditions as pair weights, and ranking an RDM under such weights.

A sample drawing condition ``i`` ``c_i`` times weighs pair ``(i, j)`` by ``c_i c_j``
(:func:`pair_weights`); the ranks of the weighted RDM follow from one sort of its values
(:class:`SortedVector`, :func:`weighted_ranks`; :class:`RankPlan` keeps that sort compact
for the fast paths). See :mod:`figureground.analysis.rsa_bootstrap`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def bootstrap_draws(n_conditions: int, n_boot: int, seed: int) -> np.ndarray:
    """Condition indices of each bootstrap sample (n_boot, n), drawn with replacement.

    The same draws as :func:`figureground.analysis.stats.bootstrap` with this seed.
    """
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, n_conditions, n_conditions) for _ in range(n_boot)])


def pair_weights(draws: np.ndarray, n_conditions: int) -> np.ndarray:
    """Weights (samples, pairs) ``c_i c_j`` of the condensed pairs i < j for each draw."""
    draws = np.atleast_2d(draws)
    counts = np.zeros((draws.shape[0], n_conditions))
    np.add.at(counts, (np.arange(draws.shape[0])[:, None], draws), 1.0)
    rows, cols = np.triu_indices(n_conditions, 1)
    return counts[:, rows] * counts[:, cols]


@dataclass(frozen=True)
class SortedVector:
    """One RDM's sort order and tie groups, to rank it under any weights."""

    order: np.ndarray  # argsort of the values
    group_start: np.ndarray  # first sorted position of each tie group
    group_of: np.ndarray  # tie group of each sorted position
    ties: bool

    @classmethod
    def of(cls, values: np.ndarray) -> SortedVector:
        """Sort ``values`` once (NaN last)."""
        order = np.argsort(values, kind="stable")
        ordered = values[order]
        new = np.ones(ordered.size, dtype=bool)
        new[1:] = ordered[1:] != ordered[:-1]
        start = np.flatnonzero(new)
        return cls(order, start, np.cumsum(new) - 1, bool(start.size < ordered.size))


def weighted_ranks(sorted_vector: SortedVector, weights: np.ndarray) -> np.ndarray:
    """Average ranks (samples, pairs) of a vector repeated ``weights`` times, ties averaged.

    Entries of weight 0 get a rank too; it never counts.
    """
    ordered = weights[:, sorted_vector.order]
    cumulative = np.cumsum(ordered, axis=1)
    if not sorted_vector.ties:
        ranks_sorted = cumulative - (ordered - 1.0) / 2.0
    else:
        before = cumulative - ordered  # weight strictly before each position
        group_before = before[:, sorted_vector.group_start]
        group_total = np.add.reduceat(ordered, sorted_vector.group_start, axis=1)
        ranks_sorted = (group_before + (group_total + 1.0) / 2.0)[:, sorted_vector.group_of]
    ranks = np.empty_like(ranks_sorted)
    ranks[:, sorted_vector.order] = ranks_sorted
    return ranks


@dataclass(frozen=True)
class RankPlan:
    """One RDM sorted once, to rank it under any bootstrap weights in a few passes.

    ``first`` and ``second`` are the conditions of each pair in sorted order (the weight of
    a pair is the product of their counts); ``order`` is the pair index of each sorted
    position. Tied entries share the average rank of their group: ``tied`` are their sorted
    positions, ``tie_start`` / ``tie_stop`` the bounds of their group, ``group_start`` /
    ``group_stop`` those of every tie group once.
    """

    first: np.ndarray
    second: np.ndarray
    order: np.ndarray
    tied: np.ndarray
    tie_start: np.ndarray
    tie_stop: np.ndarray
    group_start: np.ndarray
    group_stop: np.ndarray

    @classmethod
    def of(cls, values: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> RankPlan:
        """Sort ``values`` (condensed pairs ``rows`` < ``cols``) once."""
        order = np.argsort(values, kind="stable")
        ordered = values[order]
        new = np.ones(ordered.size + 1, dtype=bool)
        new[1:-1] = ordered[1:] != ordered[:-1]
        bounds = np.flatnonzero(new)  # start of each group, then the end
        sizes = np.diff(bounds)
        group = np.repeat(np.arange(sizes.size), sizes)
        tied = np.flatnonzero(sizes[group] > 1)
        groups = np.flatnonzero(sizes > 1)
        condition = np.int16 if rows.size == 0 or cols[-1] < 2**15 else np.int32
        index = np.int32 if order.size < 2**31 else np.int64  # positions, kept small
        return cls(
            first=rows[order].astype(condition),
            second=cols[order].astype(condition),
            order=order.astype(index),
            tied=tied.astype(index),
            tie_start=bounds[group[tied]].astype(index),
            tie_stop=bounds[group[tied] + 1].astype(index),
            group_start=bounds[groups].astype(index),
            group_stop=bounds[groups + 1].astype(index),
        )
