"""Decoding over a study (``decoding.csv``).

- ``pairwise``: each participant's time-resolved pairwise decoding of the test images,
  leave-one-session-out (:func:`figureground.analysis.decoding.pairwise_decoding`), and the
  mean over participants (``group``).
- ``generalisation``: the same classifier trained at ``train_time`` and tested at ``time``.
- ``cross``: 2-vs-2 identification of held-out experiment images from ridge predictions of
  the figure-only (no-background), ground-only (no-foreground) and original features, and
  figure minus ground (:func:`figureground.analysis.cross_decoding.cross_decoding`), per
  participant and for the group (bootstrap over participants).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from figureground import logs
from figureground.analysis.study.columns import FIGURE, GROUND
from figureground.analysis.study.encoding_results import ridge_settings
from figureground.analysis.study.inputs import condition_features, held_first
from figureground.analysis.study.layer_views import region_masks, viewed_features
from figureground.analysis.study.rsa_results import (
    describe_store,
)
from figureground.analysis.study.scaling import scaled
from figureground.conditions import ORIGINAL
from figureground.config import AnalysesConfig
from figureground.errors import DataError, UsageError
from figureground.features.store import FeatureStore

log = logs.get_logger(__name__)

DECODING_COLUMNS = [
    "participant",
    "analysis",
    "feature_set",
    "model",
    "weights",
    "layer",
    "view",
    "train_time",
    "time",
    "value",
    "ci_low",
    "ci_high",
    "metric",
    "n_images",
    "n_pairs",
]
FEATURE_SETS = {"figure": FIGURE, "ground": GROUND, ORIGINAL: ORIGINAL}


def _tidy(table: pd.DataFrame, **constants: Any) -> pd.DataFrame:
    """``table`` with every column of :data:`DECODING_COLUMNS` (missing ones empty)."""
    table = table.assign(**constants)
    for column in DECODING_COLUMNS:
        if column not in table:
            table[column] = np.nan if column in ("ci_low", "ci_high", "n_images") else ""
    return table[DECODING_COLUMNS]


def repetition_decoding(
    cfg: AnalysesConfig, test: Mapping[str, Any]
) -> tuple[pd.DataFrame, list[str]]:
    """Pairwise decoding and temporal generalisation of every participant's test images."""
    from figureground.analysis.decoding import (
        decoding_table,
        pairwise_decoding,
        temporal_generalisation,
    )

    dec = cfg.decoding
    options = {"max_pairs": dec.max_pairs, "seed": dec.random_state, "decim": dec.decim}
    tables, notes = [], []
    for participant, responses in test.items():
        data = responses.transpose("image", "repetition", "channel", "time")
        try:
            accuracy = pairwise_decoding(data, **options)
        except (DataError, UsageError) as exc:
            notes.append(f"pairwise decoding of {participant}: {exc}")
            continue
        n_images = int(accuracy.attrs.get("n_images", data.sizes["image"]))
        rows = decoding_table(accuracy)
        tables.append(
            _tidy(
                rows.assign(train_time=rows["time"]),
                participant=participant,
                analysis="pairwise",
                n_images=n_images,
            )
        )
        if dec.generalisation:
            matrix = temporal_generalisation(data, **options)
            rows = decoding_table(matrix).rename(columns={"test_time": "time"})
            tables.append(
                _tidy(rows, participant=participant, analysis="generalisation", n_images=n_images)
            )
    if not tables:
        return pd.DataFrame(columns=DECODING_COLUMNS), notes
    table = pd.concat(tables, ignore_index=True)
    people = table["participant"].nunique()
    if people >= 2:
        keys = ["analysis", "train_time", "time", "metric"]
        group = table.groupby(keys, as_index=False, sort=False).agg(
            value=("value", "mean"), n_images=("n_images", "max")
        )
        table = pd.concat([table, _tidy(group, participant="group")], ignore_index=True)
    return table, notes


def cross_results(
    cfg: AnalysesConfig,
    meg: Mapping[str, Any],
    stores: Sequence[FeatureStore],
    mask_grids: Any,
) -> tuple[pd.DataFrame, list[str]]:
    """Figure/ground cross-decoding per participant, model and layer, with group rows."""
    from figureground.analysis.cross_decoding import cross_decoding, group_decoding

    dec, enc = cfg.decoding, cfg.encoding
    settings = ridge_settings(cfg, enc.n_components)
    notes: list[str] = []
    if dec.view == "region" and mask_grids is None:
        return pd.DataFrame(columns=DECODING_COLUMNS), [
            "cross-decoding: the region view needs the variants' masks"
        ]
    per_person: list[pd.DataFrame] = []
    for participant in held_first(meg):
        responses = scaled(meg[participant])
        for info in stores:
            for layer in info.layers:
                features = condition_features(info, layer)
                masks = region_masks(dec.view, features, info, mask_grids)
                viewed = viewed_features(features, dec.view, masks)
                sets = {name: viewed[condition] for name, condition in FEATURE_SETS.items()}
                log.info("cross-decoding: %s %s %s", participant, info.key, layer)
                per_person.append(
                    cross_decoding(
                        responses,
                        sets,
                        settings=settings,
                        n_splits=dec.n_splits,
                        seed=dec.random_state,
                        n_boot=dec.n_boot,
                        backend=enc.backend,
                        participant=participant,
                        view=dec.view,
                        **describe_store(info, layer),
                    )
                )
    if not per_person:
        return pd.DataFrame(columns=DECODING_COLUMNS), notes
    table = pd.concat(per_person, ignore_index=True)
    tables = [_tidy(table, analysis="cross")]
    if table["participant"].nunique() >= 2:
        group = group_decoding(table, n_boot=dec.n_boot, seed=dec.random_state)
        tables.append(_tidy(group, analysis="cross"))
    return pd.concat(tables, ignore_index=True), notes


def decoding_results(
    cfg: AnalysesConfig,
    meg: Mapping[str, Any],
    test: Mapping[str, Any],
    stores: Sequence[FeatureStore],
    mask_grids: Any,
) -> tuple[pd.DataFrame, list[str]]:
    """Rows of ``decoding.csv`` and notes for what could not run."""
    tables, notes = [], []
    if cfg.decoding.pairwise:
        if not test:
            notes.append("pairwise decoding: no participant has test trials")
        else:
            table, more = repetition_decoding(cfg, test)
            tables.append(table)
            notes.extend(more)
    if cfg.decoding.cross:
        table, more = cross_results(cfg, meg, stores, mask_grids)
        tables.append(table)
        notes.extend(more)
    tables = [t for t in tables if not t.empty]
    if not tables:
        return pd.DataFrame(columns=DECODING_COLUMNS), notes
    return pd.concat(tables, ignore_index=True), notes
