"""Encoding models over a study: ridge per sensor and time, variance partitioning."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from figureground import logs
from figureground.analysis.study.columns import ENCODING_COLUMNS, FIGURE, GROUND, PARTITION_COLUMNS
from figureground.analysis.study.inputs import condition_features, held_first
from figureground.analysis.study.rsa_results import describe_store
from figureground.analysis.study.scaling import scaled, span_basis
from figureground.conditions import CONDITIONS
from figureground.config import AnalysesConfig
from figureground.features.store import FeatureStore

log = logs.get_logger(__name__)


def ridge_settings(cfg: AnalysesConfig, n_components: int | None) -> Any:
    """``analyses.encoding``'s penalties, inner folds and band search with ``n_components``."""
    from figureground.analysis.encoding import RidgeSettings

    enc = cfg.encoding
    return RidgeSettings(
        n_components=n_components,
        alphas=enc.alphas,
        inner_splits=enc.inner_splits,
        n_iter=enc.n_iter,
    )


def encoding_results(
    cfg: AnalysesConfig,
    meg: Mapping[str, Any],
    stores: Sequence[FeatureStore],
    sensor_maps: dict[tuple[str, str, str, str], Any] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Encoding accuracy per condition and variance partitioning, for every model and layer.

    ``sensor_maps``, when given, receives each fit's (fold, time, channel) scores under
    (store key, layer, participant, condition), with the model descriptors in its attrs.

    Participants are the outer loop, so lazily read recordings are read once each; the
    features (and their PCA basis) are re-read per participant instead, which is cheap for
    pooled features and P times the feature work for full maps. Rows come out ordered by
    model, layer, participant, condition.
    """
    from figureground.analysis.encoding import (
        encode,
        encoding_table,
        variance_partition,
    )

    enc = cfg.encoding
    settings = ridge_settings(cfg, enc.n_components)
    options = {
        "n_splits": enc.n_splits,
        "settings": settings,
        "seed": enc.random_state,
        "backend": enc.backend,
    }
    encodings: dict[tuple[int, ...], pd.DataFrame] = {}
    partitions: dict[tuple[int, ...], pd.DataFrame] = {}
    participants = list(meg)
    # Participants outermost: lazily read recordings are read once each.
    for participant in held_first(meg):
        responses = scaled(meg[participant].isel(time=slice(None, None, enc.time_step)))
        p_index = participants.index(participant)
        for s_index, info in enumerate(stores):
            for l_index, layer in enumerate(info.layers):
                features = {
                    name: span_basis(array)
                    for name, array in condition_features(info, layer).items()
                }
                names = {"participant": participant, **describe_store(info, layer)}
                for c_index, condition in enumerate(CONDITIONS):
                    log.info("encoding: %s %s %s %s", participant, info.key, layer, condition)
                    scores = encode(responses, features[condition], **options)
                    if sensor_maps is not None:
                        scores.attrs.update(describe_store(info, layer))
                        sensor_maps[(str(info.key), layer, participant, condition)] = scores
                    encodings[(s_index, l_index, p_index, c_index)] = encoding_table(
                        scores,
                        condition=condition,
                        n_folds=scores.sizes["fold"],
                        folds_by=scores.attrs["folds_by"],
                        n_images=scores.attrs["n_images"],
                        **names,
                    )
                if enc.variance_partition:
                    log.info("variance partition: %s %s %s", participant, info.key, layer)
                    partitions[(s_index, l_index, p_index)] = variance_partition(
                        responses, features[FIGURE], features[GROUND], **options, **names
                    )
    encoding = pd.concat([encodings[k] for k in sorted(encodings)], ignore_index=True)
    encoding = encoding[ENCODING_COLUMNS]
    partition = (
        pd.concat([partitions[k] for k in sorted(partitions)], ignore_index=True)[PARTITION_COLUMNS]
        if partitions
        else pd.DataFrame(columns=PARTITION_COLUMNS)
    )
    return encoding, partition
