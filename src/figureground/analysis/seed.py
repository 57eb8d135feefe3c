"""The seed method: Lanczos-resampled MEG against a network embedding, by L2 distance.

The study this project implements compares one MEG response matrix (sensors x time) with one
hidden-layer embedding (units x height x width) as follows: the embedding is seen as a 2-D
matrix (units x flattened positions), the MEG matrix is resampled onto that grid with
``cv2.resize(..., interpolation=cv2.INTER_LANCZOS4)`` and the Euclidean (Frobenius) norm of
the difference is taken, separately for the original, no-background and no-foreground images.

What the method cannot do
-------------------------
Sensors and network units share no axis, nor do time samples and spatial positions: row *i*
of the resampled MEG has no relation to unit *i* of the network, so the distance cannot say
whether the brain "follows" one image variant. With ``R`` the resampled MEG and ``E`` the
embedding, ``||R - E||^2 = ||R||^2 + ||E||^2 - 2 <R, E>``:

- ``||R||`` is the same for every condition (the same MEG);
- ``||E||`` differs between conditions because of the images, not the brain (a white
  background raises a network's activations, inpainting lowers them);
- ``<R, E>`` pairs arbitrary entries. The released THINGS-MEG epochs are z-scores against the
  baseline (not tesla), so ``R`` is not negligible; its largest part is the evoked field that
  every image shares, and the largest part of ``E`` is the mean activation map that every
  image of a condition shares. Their product differs between conditions and does not depend
  on which variant the brain follows.

So the condition means move with the embeddings and the shared evoked field; the validation
sweep measures that the seed statistic barely changes between brains that follow the figure,
the ground or nothing (docs/validation.md). :func:`seed_scale_check` shows the norm part:
with noise of small scale in place of the MEG the distances equal the embeddings' norms. The
identity version (:mod:`figureground.analysis.seed_identity`) asks the one question the
distances can answer: is an image's MEG closer to its own embedding than to the others'?
The method is kept, labelled as the seed method, for fidelity.

Options the study leaves open (defaults are faithful to it)
-----------------------------------------------------------
- ``response="image"``: each image's own (trial-averaged) response; ``"concept"`` uses the
  average response over all images of the image's concept.
- ``tmin`` / ``tmax``: the time window in seconds (default: every sample).
- ``zscore=False``: z-score both matrices (over all their entries) before the distance. A
  labelled variant, not a repair: it removes the norms but leaves the squared distance
  ``2 N (1 - r)``, with ``r`` the correlation of arbitrarily aligned entries, which the
  shared evoked field and mean activation maps still drive.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from figureground import logs
from figureground.analysis.seed_matrices import (
    embedding_matrices,
    resample_meg,
    seed_distance,
    seed_scale_check,
)
from figureground.conditions import CONDITIONS
from figureground.errors import DataError, UsageError

if TYPE_CHECKING:
    import xarray as xr

_DEFAULT_BATCH = 256

__all__ = [
    "CONDITIONS",
    "embedding_matrices",
    "matched_ids",
    "resample_meg",
    "seed_analysis",
    "seed_condition",
    "seed_distance",
    "seed_scale_check",
    "select_window",
]

log = logs.get_logger(__name__)


def _layer_array(features: xr.Dataset | xr.DataArray, layer: str) -> xr.DataArray:
    """The DataArray of ``layer`` from a features Dataset (or the DataArray itself)."""
    import xarray as xr

    if isinstance(features, xr.DataArray):
        return features
    if layer not in features.data_vars:
        raise UsageError(
            f"layer {layer!r} is not in the features store; it has "
            f"{sorted(map(str, features.data_vars))}"
        )
    return features[layer]


def select_window(meg: xr.DataArray, tmin: float | None, tmax: float | None) -> xr.DataArray:
    """Samples with tmin <= time <= tmax (seconds); a window without samples is an error."""
    if tmin is None and tmax is None:
        return meg
    times = meg["time"].values
    keep = np.ones(times.shape, bool)
    if tmin is not None:
        keep &= times >= tmin
    if tmax is not None:
        keep &= times <= tmax
    if not keep.any():
        raise UsageError(
            f"time window [{tmin}, {tmax}] s holds no sample; the data span "
            f"{times.min():.3f} to {times.max():.3f} s"
        )
    return meg.isel(time=np.flatnonzero(keep))


def matched_ids(meg_ids: np.ndarray, feature_ids: np.ndarray, what: str) -> list[str]:
    """Image ids in both (MEG order); zero matched raises a DataError naming a few of each."""
    feature_set = set(map(str, feature_ids))
    common = [str(i) for i in meg_ids if str(i) in feature_set]
    log.info(
        "%s: %d of %d MEG images and %d feature images matched by id",
        what,
        len(common),
        len(meg_ids),
        len(feature_ids),
    )
    if not common:
        raise DataError(
            f"{what}: no image id is in both the MEG data (e.g. "
            f"{[str(i) for i in meg_ids[:3]]}) and the features (e.g. "
            f"{[str(i) for i in feature_ids[:3]]})"
        )
    return common


def _responses(meg: xr.DataArray, ids: list[str], response: str) -> xr.DataArray:
    """Per-image responses for ``ids``, or their concepts' average responses."""
    if response == "image":
        return meg.sel(image=ids)
    if "concept" not in meg.coords:
        raise UsageError(
            "response='concept' needs a 'concept' coordinate along 'image' in the MEG data"
        )
    concept_mean = meg.groupby("concept").mean("image")
    concepts = meg["concept"].sel(image=ids).values
    out = concept_mean.sel(concept=concepts).rename(concept="image")
    return out.assign_coords(image=ids)


_RESPONSES = ("image", "concept")


def seed_condition(
    meg: xr.DataArray,
    features: xr.Dataset | xr.DataArray,
    *,
    layer: str = "layer2",
    response: str = "image",
    tmin: float | None = None,
    tmax: float | None = None,
    zscore: bool = False,
    batch_size: int = _DEFAULT_BATCH,
) -> pd.DataFrame:
    """Seed distances of one participant's MEG to one condition's features, by image id.

    Parameters
    ----------
    meg : DataArray, dims (image, channel, time)
        Responses with image ids as coordinate (and ``concept`` for ``response="concept"``).
    features : Dataset or DataArray
        A features store group (one variable per layer) or one layer's DataArray with
        first dimension ``image``.
    layer, response, tmin, tmax, zscore
        See the module docstring.
    batch_size : int
        Images read from the (possibly lazy) feature store at a time.

    Returns
    -------
    DataFrame with columns ``image_id``, ``distance``.
    """
    if response not in _RESPONSES:
        raise UsageError(f"response must be one of {_RESPONSES}; got {response!r}")
    if tuple(meg.dims[:1]) != ("image",) or meg.ndim != 3:
        raise UsageError(f"MEG must have dims (image, channel, time); got {meg.dims}")
    arr = _layer_array(features, layer)
    ids = matched_ids(meg["image"].values, arr["image"].values, f"seed/{layer}")
    window = select_window(meg.transpose("image", "channel", "time"), tmin, tmax)
    distances = []
    for start in logs.progress(
        range(0, len(ids), batch_size), total=-(-len(ids) // batch_size), desc="seed distance"
    ):
        chunk = ids[start : start + batch_size]
        meg_chunk = _responses(window, chunk, response).values
        emb_chunk = arr.sel(image=chunk).values
        distances.append(seed_distance(meg_chunk, emb_chunk, zscore=zscore, batched=True))
    return pd.DataFrame({"image_id": ids, "distance": np.concatenate(distances)})


def seed_analysis(
    meg_by_participant: Mapping[str, xr.DataArray],
    features: Mapping[str, xr.Dataset | xr.DataArray],
    *,
    layer: str = "layer2",
    model: str | None = None,
    weights: str | None = None,
    response: str = "image",
    tmin: float | None = None,
    tmax: float | None = None,
    zscore: bool = False,
) -> pd.DataFrame:
    """The seed method for every participant and image condition.

    Parameters
    ----------
    meg_by_participant : mapping participant -> DataArray (image, channel, time)
    features : mapping condition -> Dataset / DataArray
        Conditions among ``original``, ``no_background``, ``no_foreground``.
    layer : str
        Layer variable to use from each Dataset.
    model, weights : str, optional
        Descriptors for the table; default to the features' ``model`` / ``weights`` attrs.
    response, tmin, tmax, zscore
        See the module docstring.

    Returns
    -------
    DataFrame with columns ``participant, image_id, condition, model, weights, layer,
    distance`` (plus ``response``, ``zscore``).
    """
    unknown = sorted(set(features) - set(CONDITIONS))
    if unknown:
        raise UsageError(f"unknown image condition(s) {unknown}; expected {list(CONDITIONS)}")
    if not meg_by_participant or not features:
        raise UsageError("seed_analysis needs at least one participant and one condition")
    tables = []
    for condition, feats in features.items():
        arr = _layer_array(feats, layer)
        model_name = (
            model
            if model is not None
            else str(arr.attrs.get("model", getattr(feats, "attrs", {}).get("model", "")))
        )
        weights_name = (
            weights
            if weights is not None
            else str(arr.attrs.get("weights", getattr(feats, "attrs", {}).get("weights", "")))
        )
        for participant, meg in meg_by_participant.items():
            log.info("seed distance: participant %s, condition %s", participant, condition)
            table = seed_condition(
                meg, arr, layer=layer, response=response, tmin=tmin, tmax=tmax, zscore=zscore
            )
            table.insert(0, "participant", str(participant))
            table["condition"] = condition
            table["model"] = model_name
            table["weights"] = weights_name
            table["layer"] = layer
            table["response"] = response
            table["zscore"] = zscore
            tables.append(table)
    columns = [
        "participant",
        "image_id",
        "condition",
        "model",
        "weights",
        "layer",
        "distance",
        "response",
        "zscore",
    ]
    return pd.concat(tables, ignore_index=True)[columns]
