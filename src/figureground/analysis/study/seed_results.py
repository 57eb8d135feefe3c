"""The seed method over a study: distances, pooled participants, summaries."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from figureground import logs
from figureground.analysis.study.columns import POOLED, SEED_COLUMNS
from figureground.conditions import CONDITIONS
from figureground.config import AnalysesConfig
from figureground.errors import DataError
from figureground.features.store import FeatureStore

log = logs.get_logger(__name__)


# ----------------------------------------------------------------------------- seed method


def seed_results(
    cfg: AnalysesConfig,
    meg: Mapping[str, Any],
    feature_stores: Mapping[str, FeatureStore],
    scheduler: Any = "serial",
) -> pd.DataFrame:
    """Seed distances for every participant, model, layer and condition.

    ``analyses.seed_method.mode``: ``stored`` reads the feature stores; ``fused`` recomputes each
    store's full maps batch by batch (:func:`fused_store_distances`; ``scheduler`` runs it).
    """
    from figureground.analysis.seed import seed_analysis
    from figureground.features.store import open_features

    fused = cfg.seed_method.mode == "fused"
    stores = [
        (
            info,
            {}
            if fused
            else {condition: open_features(info.path, condition) for condition in CONDITIONS},
        )
        for info in feature_stores.values()
    ]
    # Participants outermost: the recordings are read lazily, one participant at a time, so
    # this order reads each participant once (not once per store, layer and condition).
    parts: dict[tuple[int, str], list[pd.DataFrame]] = {}
    for participant in meg:
        responses = {participant: meg[participant]}
        for index, (info, groups) in enumerate(stores):
            if fused:
                table = fused_store_distances(cfg, responses, info, scheduler)
                for layer in info.layers:
                    parts.setdefault((index, layer), []).append(table[table["layer"] == layer])
                continue
            for layer in info.layers:
                parts.setdefault((index, layer), []).append(
                    seed_analysis(
                        responses,
                        groups,
                        layer=layer,
                        model=info.model,
                        weights=info.weights,
                        response=cfg.seed_method.response,
                        tmin=cfg.seed_method.tmin,
                        tmax=cfg.seed_method.tmax,
                        zscore=cfg.seed_method.zscore,
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


def fused_store_distances(
    cfg: AnalysesConfig,
    responses: Mapping[str, Any],
    info: FeatureStore,
    scheduler: Any = "serial",
) -> pd.DataFrame:
    """Seed distances of ``responses`` from the full maps of the network behind a store.

    The model, weights, seed, preprocessing, precision and source (the variants folder) are
    the store's own (its root attributes), so the distances are those of the stored path
    on an unpooled store of the same run.
    """
    from figureground.analysis.seed_fused import fused_seed_distances
    from figureground.features.store import read_root_attrs

    attrs = read_root_attrs(info.path)
    preprocessing = attrs.get("preprocessing") or {}
    return fused_seed_distances(
        dict(responses),
        attrs["source"],
        model=attrs["model"],
        weights=attrs["weights"],
        layers=tuple(info.layers),
        seed=int(attrs.get("seed", 0)),
        resize=preprocessing.get("resize"),
        crop=preprocessing.get("crop"),
        pool="none",
        response=cfg.seed_method.response,
        tmin=cfg.seed_method.tmin,
        tmax=cfg.seed_method.tmax,
        zscore=cfg.seed_method.zscore,
        batch_size=cfg.seed_method.batch_size,
        device=cfg.seed_method.device,
        precision=attrs.get("precision", "fp32"),
        scheduler=scheduler,
    )


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


IDENTITY_COLUMNS = [
    "participant", "model", "weights", "layer", "condition", "statistic", "p_perm", "n_images",
]  # fmt: skip


def identity_results(
    cfg: AnalysesConfig, meg: Mapping[str, Any], feature_stores: Mapping[str, FeatureStore]
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """The seed method's identity version for every participant, model and layer.

    Images seen by the participant and stored in every condition; more than
    ``identity_max_images`` are subsampled (seeded by ``analyses.seed_method.random_state``).
    Returns the per-condition table (:data:`IDENTITY_COLUMNS`) and the figure-vs-ground comparisons.
    """
    import numpy as np

    from figureground.analysis.seed import select_window
    from figureground.analysis.seed_identity import seed_identity
    from figureground.features.store import open_features

    sc = cfg.seed_method
    tables, comparisons = [], []
    for participant in meg:
        responses = select_window(
            meg[participant].transpose("image", "channel", "time"), sc.tmin, sc.tmax
        )
        for info in feature_stores.values():
            groups = {c: open_features(info.path, c) for c in CONDITIONS}
            for layer in info.layers:
                arrays = {c: g[layer] for c, g in groups.items()}
                common = set(map(str, responses["image"].values))
                for array in arrays.values():
                    common &= set(map(str, array["image"].values))
                ids = sorted(common)
                if len(ids) < 3:
                    raise DataError(f"{len(ids)} images have MEG and features; identity needs 3")
                if len(ids) > sc.identity_max_images:
                    rng = np.random.default_rng(sc.random_state)
                    ids = sorted(rng.choice(ids, sc.identity_max_images, replace=False))
                embeddings = {
                    c: a.assign_coords(image=[str(i) for i in a["image"].values])
                    .sel(image=ids)
                    .values
                    for c, a in arrays.items()
                }
                table, comparison = seed_identity(
                    responses.sel(image=ids).values,
                    embeddings,
                    n_permutations=sc.n_permutations,
                    n_boot=sc.n_boot,
                    seed=sc.random_state,
                )
                described = {
                    "participant": participant,
                    "model": info.model,
                    "weights": info.weights,
                    "layer": layer,
                }
                tables.append(table.assign(**described))
                if comparison:
                    comparisons.append({**described, "n_images": len(ids), **comparison})
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    return table.reindex(columns=IDENTITY_COLUMNS), comparisons
