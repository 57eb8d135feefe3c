"""Inputs of the study analyses: recordings, feature stores, condition features."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from figureground import logs
from figureground.config import CONDITIONS
from figureground.errors import DataError, UsageError

log = logs.get_logger(__name__)


# ----------------------------------------------------------------------------- inputs


def load_recordings(
    neural_files: Mapping[str, Mapping[str, Path | None]], **kwargs: Any
) -> dict[str, Any]:
    """Per-participant experiment responses, dims (image, channel, time)."""
    from figureground.neural import things_meg

    return {
        participant: things_meg.load(
            files["epochs"], files.get("attributes"), trial_type="exp", **kwargs
        )
        for participant, files in neural_files.items()
    }


def load_test_recordings(
    neural_files: Mapping[str, Mapping[str, Path | None]], **kwargs: Any
) -> dict[str, Any]:
    """Per-participant test responses, dims (image, repetition, channel, time).

    Participants without test trials are left out (logged).
    """
    from figureground.neural import things_meg

    found = {}
    for participant, files in neural_files.items():
        try:
            found[participant] = things_meg.load(
                files["epochs"], files.get("attributes"), trial_type="test", **kwargs
            )
        except DataError as exc:
            log.warning("%s: no usable test trials for noise ceilings (%s)", participant, exc)
    return found


def select_stores(
    feature_stores: Mapping[str, Mapping[str, Any]], wanted: Sequence[str]
) -> list[Mapping[str, Any]]:
    """The feature stores named in ``wanted`` (store key or model name); all when empty."""
    stores = list(feature_stores.values())
    if not wanted:
        return stores
    names = {s["key"] for s in stores} | {s["model"] for s in stores}
    unknown = [w for w in wanted if w not in names]
    if unknown:
        raise UsageError(
            f"analyses.models {unknown} match no feature store; have {', '.join(sorted(names))}"
        )
    return [s for s in stores if s["key"] in wanted or s["model"] in wanted]


def condition_features(info: Mapping[str, Any], layer: str) -> dict[str, Any]:
    """One layer of every condition, loaded, with model and layer in its attributes."""
    from figureground.features.store import open_features

    arrays = {}
    for condition in CONDITIONS:
        dataset = open_features(info["store"], condition)
        if layer not in dataset.data_vars:
            raise DataError(
                f"feature store {info['store']} ({condition}) has no layer {layer!r}; "
                f"it has {sorted(dataset.data_vars)}"
            )
        array = dataset[layer].load()
        # Zarr gives numpy StringDType ids, which some numpy calls cannot cast; plain str.
        ids = np.array([str(i) for i in array["image"].values])
        array = array.assign_coords(image=ids)
        if "concept" in array.coords:
            array = array.assign_coords(
                concept=("image", np.array([str(c) for c in array["concept"].values]))
            )
        array.attrs.update(model=str(info["model"]), layer=layer)
        arrays[condition] = array
    return arrays


def _post_stimulus(times: np.ndarray) -> np.ndarray:
    return np.asarray(times, dtype=np.float64) >= 0
