"""Group rows of the mask-aligned variance partition (:mod:`figureground.analysis.mask_partition`).

The mean over participants of every value, with a percentile bootstrap over participants.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from figureground.analysis.verdict import GROUP
from figureground.errors import DataError, UsageError

MIN_GROUP_PARTICIPANTS = 3
NO_GROUP_INTERVAL = f"fewer than {MIN_GROUP_PARTICIPANTS} participants: no interval"
PER_ROW = ("participant", "value", "ci_low", "ci_high", "n_images", "n_participants", "note")


def group_partition(
    table_per_participant: pd.DataFrame, n_boot: int = 1000, seed: int = 0, ci: float = 0.95
) -> pd.DataFrame:
    """Group rows (participant ``"group"``): the mean over participants of every value.

    The interval is a percentile bootstrap over participants (resampled with replacement,
    the same resamples for every time and component). With fewer than
    :data:`MIN_GROUP_PARTICIPANTS` participants the interval is not computed: ci_low and
    ci_high are NaN and ``note`` says why. Rows already labelled ``"group"`` are ignored.

    Parameters
    ----------
    table_per_participant : concatenated
        :func:`~figureground.analysis.mask_partition.mask_partition` tables with a
        ``participant`` column; every participant must have the same rows (time, component
        and any other descriptor).

    Returns
    -------
    One row per (time, component, descriptors): value (mean), ci_low, ci_high, metric,
    n_images (summed over participants), n_participants, participant "group", note.
    """
    if "participant" not in table_per_participant.columns:
        raise DataError("the table has no 'participant' column")
    if n_boot < 1 or not 0 < ci < 1:
        raise UsageError(f"n_boot={n_boot}, ci={ci}; expected n_boot >= 1 and 0 < ci < 1")
    rows = table_per_participant[table_per_participant["participant"].astype(str) != GROUP]
    keys = [c for c in rows.columns if c not in PER_ROW]
    indexed = rows.set_index([*keys, "participant"])
    if indexed.index.duplicated().any():
        raise DataError("repeated rows for one participant (same time, component, descriptors)")
    values = indexed["value"].unstack("participant")
    if values.isna().any().any():
        raise DataError("participants differ in their rows (time, component or descriptors)")
    n_participants = values.shape[1]
    group = values.mean(axis=1).rename("value").reset_index()
    if n_participants >= MIN_GROUP_PARTICIPANTS:
        rng = np.random.default_rng(seed)
        picks = rng.integers(0, n_participants, (n_boot, n_participants))
        boot = values.to_numpy()[:, picks].mean(axis=2)  # (rows, n_boot)
        tail = 100 * (1 - ci) / 2
        group["ci_low"], group["ci_high"] = np.percentile(boot, [tail, 100 - tail], axis=1)
        group["note"] = ""
    else:
        group["ci_low"] = group["ci_high"] = np.nan
        group["note"] = NO_GROUP_INTERVAL
    if "n_images" in indexed.columns:
        images = indexed["n_images"].unstack("participant").sum(axis=1)
        group["n_images"] = images.to_numpy()
    group["n_participants"] = n_participants
    group["participant"] = GROUP
    return group
