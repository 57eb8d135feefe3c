"""What a fused seed run works on (:mod:`figureground.analysis.seed_fused`).

The checked options and conditions, the participants' images in each chunk of the source,
and the distances collected per (layer, condition, participant) in MEG order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from figureground.analysis.seed import CONDITIONS
from figureground.errors import UsageError
from figureground.features import embed, sources

if TYPE_CHECKING:
    import xarray as xr


@dataclasses.dataclass
class Collected:
    """Distances and done flags per (layer, condition, participant), in MEG order."""

    ids: dict[str, list[str]]
    positions: dict[str, dict[str, int]]
    values: dict[tuple[str, str, str], np.ndarray]
    done: dict[tuple[str, str, str], np.ndarray]

    @classmethod
    def empty(
        cls, ids: dict[str, list[str]], layers: Sequence[str], conditions: Sequence[str]
    ) -> Collected:
        """Nothing collected yet for the ``ids`` of each participant (NaN, not done)."""
        keys = [(layer, c, p) for layer in layers for c in conditions for p in ids]
        return cls(
            ids,
            {p: {i: k for k, i in enumerate(found)} for p, found in ids.items()},
            {key: np.full(len(ids[key[2]]), np.nan) for key in keys},
            {key: np.zeros(len(ids[key[2]]), bool) for key in keys},
        )

    def add(
        self, condition: str, participant: str, ids: Sequence[str], ok: np.ndarray, found: dict
    ) -> None:
        """Store one chunk's ``found`` distances per layer of ``ids``; those not ``ok`` stay
        NaN and not done."""
        where = np.array([self.positions[participant][i] for i in ids], dtype=int)
        for layer, distances in found.items():
            key = (layer, condition, participant)
            self.values[key][where[ok]] = distances[ok]
            self.done[key][where] = ok


def chunk_members(
    ids: Sequence[str], selected: Mapping[str, list[str]]
) -> dict[str, tuple[np.ndarray, list[str]]]:
    """Per participant, the positions in ``ids`` it has responses for, and those ids."""
    members = {}
    for participant, wanted in selected.items():
        keep = set(wanted)
        rows = np.array([k for k, i in enumerate(ids) if i in keep], dtype=int)
        if rows.size:
            members[participant] = (rows, [ids[k] for k in rows])
    return members


def check_options(
    meg_by_participant: Mapping[str, xr.DataArray], batch_size: int, precision: str, pool: str
) -> None:
    """Raise a UsageError for no participants, a bad batch size, precision or pooling."""
    if not meg_by_participant:
        raise UsageError("fused_seed_distances needs at least one participant's MEG")
    if batch_size < 1:
        raise UsageError(f"batch size must be at least 1, got {batch_size}")
    if precision not in embed.PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}; expected fp32, bf16 or fp16")
    embed.pooling(pool)


def chosen_conditions(
    feature_source: sources.FeatureSource, conditions: Sequence[str] | None
) -> list[str]:
    """``conditions`` (default: every variant of the source), each checked to be in it."""
    conditions = list(feature_source.variants if conditions is None else conditions)
    unknown = [c for c in conditions if c not in feature_source.variants]
    if unknown or not conditions:
        raise UsageError(
            f"condition(s) {unknown or conditions} not in the source; it has "
            f"{list(feature_source.variants)} (of {list(CONDITIONS)})"
        )
    return conditions
