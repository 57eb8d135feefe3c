"""Mask-aligned variance partitioning over a study (``mask_partition.csv``).

For each feature store, one spatial layer of the original images is pooled in the regions of
:func:`figureground.analysis.mask_aligned.region_weights` (once, for all participants), and
each participant's responses are partitioned among the figure, ground, edge, ring and
nuisance bands (:func:`figureground.analysis.mask_partition.mask_partition`); the group rows
average the participants (:func:`group_partition`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from figureground import logs
from figureground.analysis.study.encoding_results import ridge_settings
from figureground.analysis.study.inputs import held_first
from figureground.analysis.study.scaling import scaled
from figureground.analysis.study.spatial_inputs import (
    SpatialLayer,
    original_images,
    spatial_layer,
)
from figureground.config import AnalysesConfig
from figureground.features.store import FeatureStore

log = logs.get_logger(__name__)

NUISANCE_REPORTED = ("centre_bias", "size")


def mask_bands(
    layer: SpatialLayer,
    masks: np.ndarray,
    cfg: AnalysesConfig,
    variants_csv: Path | None,
) -> dict[str, Any]:
    """Every band of the partition as (image, k) DataArrays over the layer's images.

    Figure, ground, the edge bands and the rings are the layer pooled in those regions; the
    nuisance bands are object size, silhouette, centre bias and (when the original photos
    can be read) low-level image statistics. Images whose photo cannot be read are left out
    of every band.
    """
    import xarray as xr

    from figureground.analysis.mask_aligned import (
        image_statistics,
        nuisance_bands,
        pooled_features,
        region_weights,
    )

    part = cfg.mask_partition
    weights = region_weights(masks, edge_bands=part.edge_bands, rings=part.rings)
    pooled = pooled_features(layer.maps, weights)
    bands: dict[str, np.ndarray] = {
        name: values for name, values in pooled.items() if name != "centre"
    }
    bands.update(nuisance_bands(masks, pooled=pooled))
    keep = np.ones(len(layer.image_ids), dtype=bool)
    if variants_csv is not None:
        stats = np.zeros((len(layer.image_ids), 5))
        for row, (_, rgb) in enumerate(original_images(variants_csv, layer.image_ids)):
            if rgb is None:
                keep[row] = False
            else:
                stats[row] = image_statistics(rgb)
        bands["low_level"] = stats
    ids = np.array(layer.image_ids)[keep]
    return {
        name: xr.DataArray(
            np.asarray(values)[keep].reshape(int(keep.sum()), -1),
            dims=("image", "feature"),
            coords={"image": ids},
        )
        for name, values in bands.items()
    }


def mask_partition_results(
    cfg: AnalysesConfig,
    meg: Mapping[str, Any],
    stores: Sequence[FeatureStore],
    mask_grids: Any,
    variants_csv: Path | None,
) -> tuple[pd.DataFrame, list[str]]:
    """Rows of ``mask_partition.csv`` for every store, participant and the group; notes."""
    from figureground.analysis.mask_partition import group_partition, mask_partition

    part, enc = cfg.mask_partition, cfg.encoding
    settings = ridge_settings(cfg, part.n_components)
    notes: list[str] = []
    tables = []
    if mask_grids is None:
        return pd.DataFrame(), ["mask partition: no object masks (variants/mask) to read"]
    for info in stores:
        layer = spatial_layer(info, part.layer)
        if layer is None:
            notes.append(f"mask partition: {info.key} has no layer with a spatial map")
            continue
        masks = mask_grids.on_grid(layer.attrs, layer.image_ids, layer.grid)
        log.info("mask partition: pooling %s %s in the mask's regions", layer.key, layer.layer)
        bands = mask_bands(layer, masks, cfg, variants_csv)
        per_person = []
        for participant in held_first(meg):
            responses = scaled(meg[participant].isel(time=slice(None, None, part.time_step)))
            log.info("mask partition: %s %s %s", participant, layer.key, layer.layer)
            per_person.append(
                mask_partition(
                    responses,
                    bands,
                    focus=("figure", "ground"),
                    report_unique=NUISANCE_REPORTED,
                    settings=settings,
                    n_splits=part.n_splits,
                    seed=part.random_state,
                    n_boot=part.n_boot,
                    ci=part.ci,
                    backend=enc.backend,
                    participant=participant,
                    **layer.descriptors(),
                )
            )
        table = pd.concat(per_person, ignore_index=True)
        group = group_partition(table, n_boot=part.n_boot, seed=part.random_state, ci=part.ci)
        tables.append(pd.concat([table, group], ignore_index=True))
    return (pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()), notes
