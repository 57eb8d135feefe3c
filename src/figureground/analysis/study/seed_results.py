"""The seed method over a study: distances, pooled participants, summaries."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from figureground import logs
from figureground.analysis.study.columns import POOLED, SEED_COLUMNS
from figureground.config import CONDITIONS, AnalysesConfig
from figureground.errors import DataError

log = logs.get_logger(__name__)


# ----------------------------------------------------------------------------- seed method


def seed_results(
    cfg: AnalysesConfig, meg: Mapping[str, Any], feature_stores: Mapping[str, Mapping[str, Any]]
) -> pd.DataFrame:
    """Seed distances for every participant, model, layer and condition."""
    from figureground.analysis.seed import seed_analysis
    from figureground.features.store import open_features

    stores = [
        (info, {condition: open_features(info["store"], condition) for condition in CONDITIONS})
        for info in feature_stores.values()
    ]
    # Participants outermost: the recordings are read lazily, one participant at a time, so
    # this order reads each participant once (not once per store, layer and condition).
    parts: dict[tuple[int, str], list[pd.DataFrame]] = {}
    for participant in meg:
        responses = {participant: meg[participant]}
        for index, (info, groups) in enumerate(stores):
            for layer in info["layers"]:
                parts.setdefault((index, layer), []).append(
                    seed_analysis(
                        responses,
                        groups,
                        layer=layer,
                        model=info["model"],
                        weights=info["weights"],
                        response=cfg.seed.response,
                        tmin=cfg.seed.tmin,
                        tmax=cfg.seed.tmax,
                        zscore=cfg.seed.zscore,
                    )
                )
    # Rows in the order of one call over all participants: condition, then participant.
    order = {condition: rank for rank, condition in enumerate(CONDITIONS)}
    tables = [
        pd.concat(found, ignore_index=True)
        .sort_values("condition", key=lambda c: c.map(order), kind="stable")
        .reset_index(drop=True)
        for found in parts.values()
    ]
    if not tables:
        raise DataError("no feature stores to analyse")
    return pd.concat(tables, ignore_index=True)


def with_pooled(table: pd.DataFrame) -> pd.DataFrame:
    """Add a ``pooled`` participant: each image's distance averaged over participants."""
    keys = ["image_id", "condition", "model", "weights", "layer"]
    pooled = table.groupby(keys, sort=True, as_index=False)["distance"].mean()
    pooled.insert(0, "participant", POOLED)
    return pd.concat([table[SEED_COLUMNS], pooled[SEED_COLUMNS]], ignore_index=True)


def seed_summary(table: pd.DataFrame, n_boot: int, seed: int) -> dict[str, Any]:
    """Mean, SEM, bootstrap CI per group, and paired Wilcoxon tests between conditions."""
    from figureground.analysis.summaries import describe, paired_tests

    groups = ("participant", "model", "weights", "layer")
    full = with_pooled(table)
    summary = describe(full, value="distance", by=(*groups, "condition"), n_boot=n_boot, seed=seed)
    tests = paired_tests(
        full,
        value="distance",
        item="image_id",
        between="condition",
        within=groups,
        n_boot=n_boot,
        seed=seed,
    )
    return {
        "summary": summary.to_dict(orient="records"),
        "paired_tests": tests.to_dict(orient="records"),
    }
