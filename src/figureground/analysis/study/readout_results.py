"""Mask-gated readout maps over a study (``readout_ratio.csv``, ``readout_maps.zarr``).

For each feature store, one spatial layer of the original images is reduced once (channel
PCA, area pooling to ``analyses.readout.grid``); each participant's responses are then read
out per time window by :func:`figureground.analysis.readout_ratio.readout_table`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from figureground import logs
from figureground.analysis.study.inputs import held_first
from figureground.analysis.study.spatial_inputs import aligned_rows, spatial_layer
from figureground.config import AnalysesConfig
from figureground.errors import UsageError
from figureground.features.store import FeatureStore

log = logs.get_logger(__name__)


def _sessions(responses: Any) -> np.ndarray:
    """Each image's session (outer folds); each image its own group when there is none."""
    if "session" in responses.coords:
        return np.asarray(responses["session"].values)
    return np.arange(responses.sizes["image"])


def readout_results(
    cfg: AnalysesConfig,
    meg: Mapping[str, Any],
    stores: Sequence[FeatureStore],
    mask_grids: Any,
) -> tuple[pd.DataFrame, Any, list[str]]:
    """Rows of ``readout_ratio.csv``, the maps (one Dataset, dims participant, ...) and notes."""
    import xarray as xr

    from figureground.analysis.readout_inputs import pool_masks, reduce_maps
    from figureground.analysis.readout_ratio import ReadoutSettings, readout_table

    ro = cfg.readout
    if ro.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UsageError("analyses.readout.device is cuda but no CUDA GPU is visible")
    if mask_grids is None:
        return pd.DataFrame(), None, ["readout: no object masks (variants/mask) to read"]
    settings = ReadoutSettings(
        window_length=ro.window,
        n_components=ro.n_components,
        n_iter=ro.n_iter,
        n_splits=ro.n_splits,
        n_null=ro.n_null,
        n_boot=ro.n_boot,
        seed=ro.random_state,
    )
    notes: list[str] = []
    tables, maps = [], []
    for info in stores:
        layer = spatial_layer(info, ro.layer)
        if layer is None:
            notes.append(f"readout: {info.key} has no layer with a spatial map")
            continue
        grid = (min(ro.grid[0], layer.grid[0]), min(ro.grid[1], layer.grid[1]))
        log.info("readout: reducing %s %s to %s", layer.key, layer.layer, grid)
        reduced, _ = reduce_maps(
            layer.maps,
            n_channel_components=min(ro.n_channel_components, layer.maps.shape[1]),
            grid=grid,
            seed=ro.random_state,
        )
        masks = pool_masks(mask_grids.on_grid(layer.attrs, layer.image_ids, layer.grid), grid)
        for participant in held_first(meg):
            responses = meg[participant]
            rows, ids = aligned_rows(layer.image_ids, [str(i) for i in responses["image"].values])
            responses = responses.sel(image=ids).transpose("image", "channel", "time")
            log.info("readout: %s %s %s", participant, layer.key, layer.layer)
            table, dataset = readout_table(
                reduced[rows],
                masks[rows],
                np.asarray(responses.values, dtype=np.float64),
                np.asarray(responses["time"].values, dtype=np.float64),
                _sessions(responses),
                settings,
                ro.device,
            )
            described = {"participant": participant, **layer.descriptors()}
            tables.append(table.assign(**described))
            dataset = dataset.expand_dims(participant=[participant])
            dataset.attrs.update(layer.descriptors())
            maps.append(dataset)
        break  # the first store with a spatial layer: one set of maps per run
    if not tables:
        return pd.DataFrame(), None, notes
    order = {p: i for i, p in enumerate(meg)}  # participants in study order, held one first
    maps.sort(key=lambda one: order[str(one["participant"].values[0])])
    tables.sort(key=lambda one: order[str(one["participant"].iloc[0])])
    joined = xr.concat(maps, dim="participant")
    # Variable-length strings: zarr v3 has a specification for them (not for fixed-length).
    names = np.array([str(p) for p in joined["participant"].values], dtype=object)
    return pd.concat(tables, ignore_index=True), joined.assign_coords(participant=names), notes
