"""Time-resolved RSA over a study.

Image and concept level, partial RSA, bootstrap and permutation inference.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from figureground import logs
from figureground.analysis.study.columns import (
    ALL_IMAGES,
    RSA_COLUMNS,
)
from figureground.analysis.study.inputs import condition_features, held_first
from figureground.analysis.study.layer_views import level_patterns, region_masks, viewed_features
from figureground.analysis.study.rsa_inference import (
    partial_method_of as partial_method_of,  # (re-exported: it lived here)
)
from figureground.analysis.study.rsa_inference import (
    rsa_device,
    rsa_inference,
)
from figureground.analysis.study.scaling import scaled as scaled
from figureground.analysis.study.scaling import span_basis as span_basis
from figureground.analysis.verdict import Curves
from figureground.config import AnalysesConfig, RsaConfig
from figureground.errors import DataError
from figureground.features.store import FeatureStore
from figureground.parallel import SERIAL

log = logs.get_logger(__name__)


# ----------------------------------------------------------------------------- RSA


MODEL_RDM_CACHE_PAIRS = 2**24  # model RDM values kept for the next participant (128 MiB)


@dataclass(frozen=True)
class RsaRun:
    """One participant's RSA at one level: the tidy table, MEG RDMs, labels and curves."""

    table: pd.DataFrame
    meg_rdms: np.ndarray
    labels: list[str]
    curves: Curves | None  # None without bootstrap samples (n_boot = 0)


def rsa_curves(
    meg: Any,
    features: Mapping[str, Any],
    level: str,
    cfg: RsaConfig,
    image_ids: Sequence[str] | None = None,
    scheduler: Any = SERIAL,
    model_rdm_cache: dict[tuple[str, ...], np.ndarray] | None = None,
) -> RsaRun:
    """RSA curves of one participant at one level, with intervals and p-values.

    Returns the tidy table (:data:`RSA_COLUMNS` less model/weights/stratum/view), the MEG
    RDMs (times, pairs), the labels of their rows (image ids or concepts) and the curves
    with their bootstrap distribution for the verdict. ``scheduler`` runs the permutation
    tests. ``model_rdm_cache`` keeps the model RDMs by the labels of their conditions, so
    participants shown the same images share them (RDMs of up to
    :data:`MODEL_RDM_CACHE_PAIRS` pairs are kept).
    """
    from figureground.analysis.rsa import PARTIAL_PAIRS, rsa_timecourse

    if image_ids is not None:
        wanted = {str(i) for i in image_ids}
        meg = meg.sel(image=[i for i in map(str, meg["image"].values) if i in wanted])
    meg_values, model_values, labels = level_patterns(meg, features, level)
    if level == "concept":
        meg, features = _concept_arrays(meg, features, meg_values, model_values, labels)
    backend, device = rsa_device(cfg.backend)
    conditions = list(model_values)
    model_rdms = _model_rdms(model_values, labels, cfg, model_rdm_cache)
    n_pairs = len(labels) * (len(labels) - 1) // 2
    # Filled by rsa_timecourse as it goes (its conditions are these labels, in this order).
    meg_rdms = np.empty(
        (meg_values.shape[-1], n_pairs), dtype=np.result_type(meg_values.dtype, np.float32)
    )
    table = rsa_timecourse(
        meg,
        features,
        metric=cfg.metric,
        model_metric=cfg.model_metric,
        method=cfg.method,
        level="image",
        partial=cfg.partial,
        batch_size=cfg.batch_size,
        backend=backend,
        device=device,
        rdms_out=meg_rdms,
        model_rdms=model_rdms,
    ).assign(level=level)
    if int(table["n_conditions"].iloc[0]) != len(labels):  # an internal invariant
        raise RuntimeError(
            f"RSA used {table['n_conditions'].iloc[0]} conditions, not {len(labels)}"
        )
    partial_pairs = [
        (conditions.index(a), conditions.index(b))
        for a, b in PARTIAL_PAIRS
        if cfg.partial and a in conditions and b in conditions
    ]
    if device is not None and not np.isfinite(meg_rdms).all():
        device = None  # NaN pairs: numpy's comparisons leave them out, torch's would not
    inference = rsa_inference(
        meg_rdms, model_rdms, len(labels), cfg, partial_pairs, scheduler, device
    )
    distribution = inference.pop("distribution", None)
    curves = [(c, "") for c in conditions] + [
        (conditions[a], conditions[b]) for a, b in partial_pairs
    ]
    times = np.asarray(meg["time"].values, dtype=np.float64)
    table = _with_inference(table, inference, curves, times)
    found = None
    if distribution is not None:
        found = _curves_of(table, curves, times, distribution, labels)
    return RsaRun(table, meg_rdms, labels, found)


def _concept_arrays(
    meg: Any,
    features: Mapping[str, Any],
    meg_values: np.ndarray,
    model_values: Mapping[str, np.ndarray],
    labels: list[str],
) -> tuple[Any, dict[str, Any]]:
    """The concept means as (image, ...) arrays labelled by concept.

    The concept level is the image-level RSA of the concept means; passing the means spares
    ``rsa_timecourse`` a second copy of every image's responses.
    """
    import xarray as xr

    meg = xr.DataArray(
        meg_values,
        dims=("image", "channel", "time"),
        coords={"image": labels, "channel": meg["channel"].values, "time": meg["time"].values},
        attrs=meg.attrs,
    )
    features = {
        name: xr.DataArray(model_values[name], dims=("image", "feature"),
                           coords={"image": labels}, attrs=array.attrs)
        for name, array in features.items()
    }  # fmt: skip
    return meg, features


def _model_rdms(
    model_values: Mapping[str, np.ndarray],
    labels: list[str],
    cfg: RsaConfig,
    cache: dict[tuple[str, ...], np.ndarray] | None,
) -> np.ndarray:
    """The model RDMs (conditions, pairs), from ``cache`` when these labels were seen."""
    from figureground.analysis.rdm_calc import compute_rdms

    conditions = list(model_values)
    cache_key = (*conditions, *labels)
    model_rdms = None if cache is None else cache.get(cache_key)
    if model_rdms is None:
        model_rdms = np.stack([compute_rdms(model_values[c], cfg.model_metric) for c in conditions])
        if cache is not None and model_rdms.size <= MODEL_RDM_CACHE_PAIRS:
            cache[cache_key] = model_rdms
    return model_rdms


def _with_inference(
    table: pd.DataFrame,
    inference: Mapping[str, np.ndarray],
    curves: Sequence[tuple[str, str]],
    times: np.ndarray,
) -> pd.DataFrame:
    """``table`` with the intervals and p-values of each (condition, given) curve and time."""
    extra = pd.DataFrame(
        {
            "condition": np.repeat([c for c, _ in curves], times.size),
            "given": np.repeat([g for _, g in curves], times.size),
            "time": np.tile(times, len(curves)),
            **{key: values.T.reshape(-1) for key, values in inference.items()},
        }
    )
    return table.merge(extra, on=["condition", "given", "time"], how="left", validate="1:1")


def _curves_of(
    table: pd.DataFrame,
    curves: Sequence[tuple[str, str]],
    times: np.ndarray,
    distribution: np.ndarray,
    labels: list[str],
) -> Curves:
    """The verdict's curves: each curve's estimate over time and its bootstrap samples."""
    names = tuple(f"{c}|{g}" if g else c for c, g in curves)
    estimate = np.stack(
        [
            table[(table["condition"] == c) & (table["given"] == g)]
            .sort_values("time")["value"]
            .to_numpy(dtype=np.float64)
            for c, g in curves
        ],
        axis=1,
    )
    return Curves(times, names, estimate, distribution, tuple(labels))


def rsa_one(
    meg: Any,
    features: Mapping[str, Any],
    level: str,
    cfg: RsaConfig,
    image_ids: Sequence[str] | None = None,
    scheduler: Any = SERIAL,
) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    """:func:`rsa_curves` without the bootstrap distribution: (table, MEG RDMs, labels)."""
    run = rsa_curves(meg, features, level, cfg, image_ids, scheduler)
    return run.table, run.meg_rdms, run.labels


def describe_store(info: FeatureStore, layer: str) -> dict[str, str]:
    return {"model": str(info.model), "weights": str(info.weights), "layer": layer}


RunKey = tuple[int, str, str, str]  # (store index, layer, view, level)


@dataclass
class RsaStudy:
    """Every participant's RSA of a study: the table, MEG RDMs and the verdict's curves."""

    table: pd.DataFrame
    meg_rdms: dict[tuple[str, str], dict[str, tuple[list[str], np.ndarray]]]
    curves: dict[RunKey, dict[str, Curves]] = field(default_factory=dict)
    descriptors: dict[RunKey, dict[str, str]] = field(default_factory=dict)
    skipped_views: dict[str, str] = field(default_factory=dict)


def rsa_results(
    cfg: AnalysesConfig,
    meg: Mapping[str, Any],
    stores: Sequence[FeatureStore],
    strata: Mapping[str, Sequence[str]],
    scheduler: Any = SERIAL,
    mask_grids: Any = None,
) -> RsaStudy:
    """RSA for every model, layer, view, participant, level and stratum.

    ``strata`` maps a stratum name to its image ids (image level only); ``all`` uses every
    image at every level. ``cfg.views`` are the views of each layer
    (:mod:`figureground.analysis.views`); ``region`` needs ``mask_grids``
    (:class:`figureground.analysis.study.masks.MaskGrids`) and is skipped, with a reason in
    ``skipped_views``, without them. Also returns the MEG RDMs per (level, stratum) and
    participant (labels, rdms) for the noise ceiling across participants, and the curves
    with their bootstrap distributions (stratum ``all``) for the verdict. Participants are
    the outer loop, so lazily read recordings are read once each; rows come out ordered by
    model, layer, view, participant. ``scheduler`` runs the permutation tests.
    """
    tables: dict[tuple[int, int, int, int, int], pd.DataFrame] = {}
    study = RsaStudy(pd.DataFrame(columns=RSA_COLUMNS), {})
    runs = [(level, ALL_IMAGES, None) for level in cfg.rsa.levels]
    runs += [("image", name, ids) for name, ids in strata.items()]
    participants = list(meg)
    model_rdms: dict[tuple[int, ...], dict] = {}  # shared by participants shown the same images
    for participant in held_first(meg):
        responses = meg[participant]
        p_index = participants.index(participant)
        for s_index, info in enumerate(stores):
            for l_index, layer in enumerate(info.layers):
                features = condition_features(info, layer)
                for v_index, view, viewed in _viewed_layers(
                    study, info, layer, features, list(cfg.views), mask_grids
                ):
                    for r_index, (level, stratum, ids) in enumerate(runs):
                        log.info(
                            "RSA: %s %s %s (%s view), %s level, %s",
                            participant, info.key, layer, view, level, stratum,
                        )  # fmt: skip
                        run = rsa_curves(
                            responses,
                            viewed,
                            level,
                            cfg.rsa,
                            ids,
                            scheduler=scheduler,
                            model_rdm_cache=model_rdms.setdefault(
                                (s_index, l_index, v_index, r_index), {}
                            ),
                        )
                        described = {**describe_store(info, layer), "level": level, "view": view}
                        table = run.table.assign(
                            participant=participant, stratum=stratum, **described
                        )
                        tables[(s_index, l_index, v_index, p_index, r_index)] = table[RSA_COLUMNS]
                        key = (s_index, layer, view, level)
                        _keep_run(study, run, participant, key, stratum, v_index, described)
    _in_participant_order(study, participants)
    if tables:
        study.table = pd.concat([tables[k] for k in sorted(tables)], ignore_index=True)
    return study


def _viewed_layers(
    study: RsaStudy,
    info: FeatureStore,
    layer: str,
    features: Mapping[str, Any],
    views: list[str],
    mask_grids: Any,
) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """(view index, view, viewed features) of each view that applies to this layer.

    The others are noted in ``study.skipped_views`` with the reason: a pooled layer (every
    view equals the first), or a ``region`` view without object masks.
    """
    spatial = next(iter(features.values())).ndim >= 4
    for v_index, view in enumerate(views):
        if not spatial and v_index > 0:  # pooled features: every view is the same
            study.skipped_views[view] = (
                f"{info.key} {layer} is pooled (no map), so it equals the {views[0]} view"
            )
            continue
        if view == "region" and mask_grids is None:
            study.skipped_views[view] = "no object masks (variants/mask) to read"
            continue
        try:
            masks = region_masks(view, features, info, mask_grids)
        except DataError as exc:
            study.skipped_views[view] = str(exc)
            continue
        yield v_index, view, viewed_features(features, view, masks)


def _keep_run(
    study: RsaStudy,
    run: RsaRun,
    participant: str,
    key: RunKey,
    stratum: str,
    v_index: int,
    described: dict[str, str],
) -> None:
    """Keep a run's MEG RDMs (first view of a level and stratum) and curves (stratum all)."""
    level = key[3]
    if v_index == 0 or (level, stratum) not in study.meg_rdms:
        study.meg_rdms.setdefault((level, stratum), {})[participant] = (run.labels, run.meg_rdms)
    if stratum == ALL_IMAGES and run.curves is not None:
        study.curves.setdefault(key, {})[participant] = run.curves
        study.descriptors[key] = described


def _in_participant_order(study: RsaStudy, participants: list[str]) -> None:
    """Order the kept MEG RDMs and curves by participant (they were read held-first)."""
    study.meg_rdms = {
        run: {p: per_person[p] for p in participants if p in per_person}
        for run, per_person in study.meg_rdms.items()
    }
    study.curves = {
        key: {p: per_person[p] for p in participants if p in per_person}
        for key, per_person in study.curves.items()
    }
