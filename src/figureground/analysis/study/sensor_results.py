"""Figure minus ground per sensor neighbourhood over a study (``sensor_effects.csv``).

For every model and layer: the RSA searchlight over sensor neighbourhoods
(:func:`figureground.analysis.sensor_effects.sensor_rsa`) and, when the encoding ran, its
per-sensor accuracy, each as figure (no-background) minus ground (no-foreground) per
participant, with MNE's spatio-temporal cluster test across participants.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from figureground import logs
from figureground.analysis.study.columns import FIGURE, GROUND
from figureground.analysis.study.inputs import condition_features, held_first
from figureground.analysis.study.layer_views import level_patterns, region_masks, viewed_features
from figureground.analysis.study.rsa_results import (
    describe_store,
)
from figureground.config import AnalysesConfig
from figureground.errors import DataError, UsageError
from figureground.features.store import FeatureStore

log = logs.get_logger(__name__)

MapKey = tuple[str, str, str, str]  # (analysis, store key, layer, participant)


@dataclass
class SensorStudy:
    """Sensor-resolved results: the tidy rows, the cluster table and the group maps."""

    table: pd.DataFrame
    clusters: pd.DataFrame
    maps: dict[tuple[str, str, str], Any] = field(default_factory=dict)  # -> (diffs, clusters)
    notes: list[str] = field(default_factory=list)


def _subset(n: int, limit: int | None, seed: int) -> np.ndarray:
    """Sorted seeded subset of ``limit`` of ``n`` conditions (all when None or n <= limit)."""
    if limit is None or n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def sensor_rsa_maps(
    cfg: AnalysesConfig,
    responses: Any,
    info: FeatureStore,
    layer: str,
    mask_grids: Any,
) -> Any:
    """One participant's figure - ground searchlight RSA map (sensor, time) for a layer."""
    import xarray as xr

    from figureground.analysis.rdm_calc import compute_rdms
    from figureground.analysis.sensor_effects import sensor_difference, sensor_rsa
    from figureground.neural.sensors import things_meg_adjacency

    sensors = cfg.sensors
    features = {
        name: array
        for name, array in condition_features(info, layer).items()
        if name in (FIGURE, GROUND)
    }
    masks = region_masks(sensors.view, features, info, mask_grids)
    viewed = viewed_features(features, sensors.view, masks)
    meg_values, models, labels = level_patterns(responses, viewed, sensors.level)
    keep = _subset(len(labels), sensors.max_conditions, sensors.random_state)
    channels = [str(c) for c in responses["channel"].values]
    patterns = xr.DataArray(
        meg_values[keep],
        dims=("condition", "channel", "time"),
        coords={"channel": channels, "time": responses["time"].values},
    )
    model_rdms = {
        name: compute_rdms(values[keep].astype(np.float64), cfg.rsa.model_metric)
        for name, values in models.items()
    }
    values = sensor_rsa(
        patterns,
        model_rdms,
        things_meg_adjacency(channels),
        metric=sensors.metric,
        method=cfg.rsa.method,
    )
    return sensor_difference(values)


def sensor_results(
    cfg: AnalysesConfig,
    meg: Mapping[str, Any],
    stores: Sequence[FeatureStore],
    mask_grids: Any = None,
    encoding_maps: Mapping[tuple[str, str, str, str], Any] | None = None,
) -> SensorStudy:
    """Tidy figure - ground rows per sensor and time, and cluster tests across participants.

    ``encoding_maps`` maps (store key, layer, participant, condition) to :func:`encode`'s
    (fold, time, channel) scores; without it only the RSA searchlight runs.
    """
    study = SensorStudy(pd.DataFrame(), pd.DataFrame())
    differences: dict[SensorKey, dict[str, Any]] = {}
    described: dict[SensorKey, dict[str, str]] = {}
    if cfg.sensors.rsa:
        _rsa_differences(cfg, meg, stores, mask_grids, study, differences, described)
    if cfg.sensors.encoding and encoding_maps:
        _encoding_differences(encoding_maps, differences, described)
    if not differences:
        return study
    participants = list(meg)
    tables, cluster_tables = [], []
    for key in sorted(differences):
        per_person = {p: differences[key][p] for p in participants if p in differences[key]}
        table, cluster_table = _tested_maps(cfg.sensors, key, per_person, described[key], study)
        tables.append(table)
        if cluster_table is not None:
            cluster_tables.append(cluster_table)
    floors = [float(c.attrs.get("min_p", 0.0)) for _, c in study.maps.values() if c is not None]
    if floors and min(floors) > 0.05:
        study.notes.append(
            f"Sensor cluster tests: with {len(participants)} participants the smallest "
            f"attainable cluster p is {min(floors):.3g}, so no sensor cluster can reach "
            "p < 0.05; the topomaps are descriptive."
        )
    study.table = pd.concat(tables, ignore_index=True)
    study.clusters = (
        pd.concat(cluster_tables, ignore_index=True) if cluster_tables else pd.DataFrame()
    )
    return study


SensorKey = tuple[str, str, str]  # (analysis, store key, layer)


def _rsa_differences(
    cfg: AnalysesConfig,
    meg: Mapping[str, Any],
    stores: Sequence[FeatureStore],
    mask_grids: Any,
    study: SensorStudy,
    differences: dict[SensorKey, dict[str, Any]],
    described: dict[SensorKey, dict[str, str]],
) -> None:
    """Each participant's searchlight figure - ground map, per store and layer."""
    for participant in held_first(meg):
        responses = meg[participant]
        for info in stores:
            for layer in info.layers:
                if cfg.sensors.view == "region" and mask_grids is None:
                    study.notes.append("sensor RSA: the region view needs the variants' masks")
                    continue
                log.info("sensor RSA: %s %s %s", participant, info.key, layer)
                try:
                    diff = sensor_rsa_maps(cfg, responses, info, layer, mask_grids)
                except (DataError, UsageError) as exc:
                    study.notes.append(f"sensor RSA of {info.key} {layer}: {exc}")
                    continue
                key = ("rsa", str(info.key), layer)
                differences.setdefault(key, {})[participant] = diff
                described[key] = describe_store(info, layer)


def _encoding_differences(
    encoding_maps: Mapping[tuple[str, str, str, str], Any],
    differences: dict[SensorKey, dict[str, Any]],
    described: dict[SensorKey, dict[str, str]],
) -> None:
    """Each participant's figure - ground map of the encoding scores, per store and layer."""
    from figureground.analysis.sensor_effects import sensor_difference, sensor_encoding
    from figureground.neural.sensors import things_meg_adjacency

    for (store_key, layer, participant, condition), _ in encoding_maps.items():
        if condition != FIGURE:
            continue
        scores = {
            name: encoding_maps[(store_key, layer, participant, name)] for name in (FIGURE, GROUND)
        }
        adjacency = things_meg_adjacency([str(c) for c in scores[FIGURE]["channel"].values])
        diff = sensor_difference(sensor_encoding(scores, adjacency, smooth=True))
        key = ("encoding", store_key, layer)
        differences.setdefault(key, {})[participant] = diff
        described[key] = {
            "model": str(scores[FIGURE].attrs.get("model", store_key)),
            "weights": str(scores[FIGURE].attrs.get("weights", "")),
            "layer": layer,
        }


def _tested_maps(
    sensors: Any,
    key: SensorKey,
    per_person: Mapping[str, Any],
    names: dict[str, str],
    study: SensorStudy,
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """One map's tidy rows and, with two participants or more, its cluster test."""
    from figureground.analysis.sensor_effects import (
        sensor_cluster_test,
        sensor_effects_table,
        stack_participants,
    )
    from figureground.neural.sensors import things_meg_adjacency

    analysis, store_key, layer = key
    stacked = stack_participants(per_person)
    adjacency = things_meg_adjacency([str(s) for s in stacked["sensor"].values])
    clusters = cluster_table = None
    if len(per_person) >= 2:
        cluster_table, clusters = sensor_cluster_test(
            stacked,
            adjacency,
            n_permutations=sensors.n_permutations,
            seed=sensors.random_state,
        )
        cluster_table = cluster_table.assign(analysis=analysis, **names, level=sensors.level)
    else:
        study.notes.append(
            f"sensor {analysis} of {store_key} {layer}: one participant, no cluster test"
        )
    table = sensor_effects_table(
        stacked,
        analysis=analysis,
        model=names["model"],
        layer=layer,
        clusters=clusters,
        weights=names["weights"],
        view=sensors.view if analysis == "rsa" else "",
        level=sensors.level if analysis == "rsa" else "image",
    )
    study.maps[key] = (stacked, clusters)
    return table, cluster_table
