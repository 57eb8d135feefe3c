"""The seed method on full feature maps, computed while the features are extracted.

:mod:`figureground.analysis.seed` reads each image's activation map from the feature store.
At THINGS size the full ResNet50 ``layer2`` map (512 x 28 x 28, 1.6 MB per image) is 35 GB
per condition, so a study that stores pooled features could only run the seed method on the
pooled map. Here each batch's maps go straight from the network into the distance and are
dropped: memory holds one batch of maps (plus the responses the caller passes), and the
distances equal the stored path's on the same maps (float32 store) to about 1e-7 relative.

How the resampling is fused
---------------------------
``cv2.resize(meg, (positions, channels), INTER_LANCZOS4)`` is linear and separable:
``resize(X) = rows @ X @ cols`` with ``rows`` (channels x sensors) the resize of an identity
matrix along the height and ``cols`` (times x positions) along the width
(:func:`lanczos_matrices`). Both are taken from OpenCV itself once per shape, so the batch
is resampled by two matrix products on the network's device (float64 on CUDA, where a
TF32 setting must not touch it; float32 elsewhere, as OpenCV computes it).

Responses
---------
``meg_by_participant`` maps participant -> DataArray (image, channel, time), as for
:func:`figureground.analysis.seed.seed_analysis`. Each batch reads its rows with
``.sel(image=ids)``: an in-memory array costs its size (6.8 GB for one THINGS-MEG participant
at full size), a lazy one (Dask / Zarr backed) only the batch's rows. Every participant is
served by one pass of the network over each condition.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from figureground import logs
from figureground.analysis.seed import CONDITIONS
from figureground.analysis.seed_fused_batch import (
    Resampler,
    lanczos_matrices,
    resampler,
    seed_batch_distances,
)
from figureground.analysis.seed_fused_plan import (
    Collected,
    check_options,
    chosen_conditions,
    chunk_members,
)
from figureground.analysis.seed_fused_responses import (
    RESPONSES,
    Responses,
    prepare_responses,
    selected_ids,
)
from figureground.features import embed, models, sources
from figureground.parallel import (
    SERIAL,
    dask_client,
    map_batches,
    parse_scheduler,
    worker_cached,
)

if TYPE_CHECKING:
    import xarray as xr

__all__ = [
    "COLUMNS",
    "CONDITIONS",
    "RESPONSES",
    "FusedSpec",
    "Resampler",
    "Responses",
    "build_network",
    "fused_seed_chunk",
    "fused_seed_distances",
    "lanczos_matrices",
    "prepare_responses",
    "resampler",
    "seed_batch_distances",
]

log = logs.get_logger(__name__)

COLUMNS = [
    "participant", "image_id", "condition", "model", "weights", "layer", "distance",
    "response", "zscore",
]  # fmt: skip
_DASK_WAVE = 16  # chunks (with their responses) held in flight at once on Dask


# ----------------------------------------------------------------------------- the driver


@dataclasses.dataclass(frozen=True)
class FusedSpec(embed.ExtractorSpec):
    """The features stage's network spec, and whether the distance z-scores (picklable)."""

    zscore: bool = False


@dataclasses.dataclass
class _Network:
    loaded: models.LoadedModel
    extractor: Any
    device: Any
    resamplers: dict[tuple[int, ...], Resampler] = dataclasses.field(default_factory=dict)


def build_network(spec: FusedSpec) -> _Network:
    """The model of ``spec`` on its device, pruned after its deepest layer."""
    return _Network(*embed.build_from_spec(spec))


def _distances(
    network: _Network, spec: FusedSpec, outputs: Mapping[str, Any], meg: np.ndarray, rows: Any
) -> dict[str, np.ndarray]:
    """Per layer, the distances of the batch rows ``rows`` to their responses ``meg``."""
    import torch

    found = {}
    for layer in spec.layers:
        maps = outputs[layer][torch.as_tensor(rows, device=outputs[layer].device)]
        flat = maps.reshape(maps.shape[0], maps.shape[1], -1)
        key = (*meg.shape[1:], *flat.shape[1:])
        if key not in network.resamplers:
            network.resamplers[key] = resampler(*key, device=maps.device)
        found[layer] = seed_batch_distances(
            flat, meg, zscore=spec.zscore, resample=network.resamplers[key]
        )
    return found


def fused_seed_chunk(job: dict[str, Any], spec: FusedSpec) -> dict[str, Any]:
    """Dask task: embed one chunk of one condition and return its seed distances.

    ``job`` holds ``condition``, ``start``, ``paths`` and, per participant, ``rows`` (the
    chunk positions it saw) and ``meg`` (their responses). Returns ``ok`` per image and
    ``distances[participant][layer]`` for its rows.
    """
    network = worker_cached(("seed-fused", spec), lambda: build_network(spec))
    paths = [Path(p) for p in job["paths"]]
    _, outputs, ok = next(
        embed.embedded_batches(
            paths,
            network.loaded,
            network.extractor,
            network.device,
            batch_size=len(paths),
            pool=embed.pooling(spec.pool),
            precision=spec.precision,
            channels_last=spec.channels_last,
            gpu_decode="off",
            on_device=True,
        )
    )
    distances = {
        participant: _distances(network, spec, outputs, part["meg"], part["rows"])
        for participant, part in job["participants"].items()
    }
    return {"condition": job["condition"], "start": job["start"], "ok": ok, "distances": distances}


@dataclasses.dataclass
class _Run:
    """What one fused run computes: the network spec, (condition, source indices) jobs, the
    source, the participants' responses and where the distances are collected."""

    spec: FusedSpec
    jobs: list[tuple[str, list[int]]]
    feature_source: sources.FeatureSource
    responses: Mapping[str, Responses]
    collected: Collected


def _run_serial(run: _Run, settings: dict[str, Any]) -> None:
    spec, collected = run.spec, run.collected
    network = build_network(spec)
    for condition, indices in run.jobs:
        paths = [run.feature_source.paths[condition][k] for k in indices]
        ids = [run.feature_source.image_ids[k] for k in indices]
        batches = embed.embedded_batches(
            paths,
            network.loaded,
            network.extractor,
            network.device,
            pool=embed.pooling(spec.pool),
            precision=spec.precision,
            channels_last=spec.channels_last,
            on_device=True,
            **settings,
        )
        total = -(-len(paths) // settings["batch_size"])
        for batch_indices, outputs, ok in logs.progress(
            batches, total=total, desc=f"seed (fused) {condition} ({len(paths)} images)"
        ):
            batch_ids = [ids[k] for k in batch_indices]
            for participant, (rows, members) in chunk_members(batch_ids, collected.ids).items():
                meg = run.responses[participant].rows(members)
                found = _distances(network, spec, outputs, meg, rows)
                collected.add(condition, participant, members, ok[rows], found)
            del outputs


def _dask_jobs(
    jobs: list[tuple[str, list[int]]],
    feature_source: sources.FeatureSource,
    responses: Mapping[str, Responses],
    selected: Mapping[str, list[str]],
    chunk: int,
) -> Iterator[dict[str, Any]]:
    """One task per chunk of ``chunk`` images, its responses read when it is built."""
    for condition, indices in jobs:
        for start in range(0, len(indices), chunk):
            part = indices[start : start + chunk]
            ids = [feature_source.image_ids[k] for k in part]
            participants = {
                p: {"rows": rows, "ids": members, "meg": responses[p].rows(members)}
                for p, (rows, members) in chunk_members(ids, selected).items()
            }
            yield {
                "condition": condition,
                "start": start,
                "paths": [str(feature_source.paths[condition][k]) for k in part],
                "participants": participants,
            }


def _run_dask(run: _Run, chunk: int, scheduler: Any) -> None:
    spec, collected = run.spec, run.collected
    pending = _dask_jobs(run.jobs, run.feature_source, run.responses, collected.ids, chunk)
    with dask_client(scheduler) as client:
        while wave := [job for _, job in zip(range(_DASK_WAVE), pending, strict=False)]:
            members = {(job["condition"], job["start"]): job["participants"] for job in wave}
            for result in map_batches(fused_seed_chunk, wave, client, spec, desc="seed (fused)"):
                for participant, part in members[(result["condition"], result["start"])].items():
                    found = result["distances"][participant]
                    ok = result["ok"][part["rows"]]
                    collected.add(result["condition"], participant, part["ids"], ok, found)


def _table(
    collected: Collected, spec: FusedSpec, conditions: Sequence[str], response: str
) -> pd.DataFrame:
    """Rows per layer, condition, participant, image (MEG order), as the stored path."""
    tables = []
    for layer in spec.layers:
        for condition in conditions:
            for participant, ids in collected.ids.items():
                key = (layer, condition, participant)
                done = collected.done[key]
                if not done.all():
                    log.warning(
                        "seed (fused) %s/%s: %d images could not be decoded and are left out",
                        condition,
                        participant,
                        int((~done).sum()),
                    )
                tables.append(
                    pd.DataFrame(
                        {
                            "participant": str(participant),
                            "image_id": np.asarray(ids, dtype=object)[done],
                            "condition": condition,
                            "model": spec.model,
                            "weights": spec.weights,
                            "layer": layer,
                            "distance": collected.values[key][done],
                            "response": response,
                            "zscore": spec.zscore,
                        }
                    )
                )
    return pd.concat(tables, ignore_index=True)[COLUMNS]


def fused_seed_distances(
    meg_by_participant: Mapping[str, xr.DataArray],
    source: str | os.PathLike | sources.FeatureSource,
    *,
    model: str = models.DEFAULT_MODEL,
    weights: str = models.DEFAULT_WEIGHTS,
    layers: Sequence[str] = (models.DEFAULT_LAYER,),
    seed: int = 0,
    resize: int | None = None,
    crop: int | None = None,
    pool: str = "none",
    conditions: Sequence[str] | None = None,
    image_ids: Sequence[str] | None = None,
    response: str = "image",
    tmin: float | None = None,
    tmax: float | None = None,
    zscore: bool = False,
    batch_size: int = 32,
    device: str = "auto",
    precision: str = "fp32",
    workers: int = 0,
    channels_last: bool = True,
    gpu_decode: str = "auto",
    scheduler: str | Any = SERIAL,
) -> pd.DataFrame:
    """The seed method on the full maps of ``layers``, computed as the images are embedded.

    Parameters
    ----------
    meg_by_participant : mapping participant -> DataArray (image, channel, time)
        Responses with image ids (and ``concept`` for ``response="concept"``); lazy arrays
        are read one batch of rows at a time.
    source : path or FeatureSource
        A variants folder (conditions original, no_background, no_foreground) or an image
        folder (original), as for :func:`figureground.features.extract.extract_features`.
    model, weights, seed, resize, crop, layers, pool, precision, channels_last, gpu_decode,
    device, workers, batch_size
        As for :func:`~figureground.features.extract.extract_features` (``pool="none"``:
        the full map, the faithful method). ``batch_size`` images per forward pass (serial)
        or per Dask task.
    conditions : sequence of str, optional
        Conditions to run (default: every variant of the source).
    image_ids : sequence of str, optional
        Images to run; each must be in the source and in every participant's MEG. Default:
        the images in both (as the stored path matches them).
    response, tmin, tmax, zscore
        As for :func:`figureground.analysis.seed.seed_analysis`.
    scheduler : str or Client
        ``serial`` (this process), ``local[:N]`` or a Dask address: one task per chunk of
        ``batch_size`` images, each carrying its images' responses.

    Returns
    -------
    DataFrame with the columns of :func:`~figureground.analysis.seed.seed_analysis`
    (``participant, image_id, condition, model, weights, layer, distance, response,
    zscore``), rows ordered by layer, condition, participant and image (MEG order).
    """
    check_options(meg_by_participant, batch_size, precision, pool)
    distributed = parse_scheduler(scheduler).distributed
    feature_source = (
        source if isinstance(source, sources.FeatureSource) else sources.open_source(source)
    )
    conditions = chosen_conditions(feature_source, conditions)
    responses = {
        str(p): prepare_responses(m, str(p), response, tmin, tmax)
        for p, m in meg_by_participant.items()
    }
    selected = selected_ids(responses, feature_source.image_ids, image_ids)
    spec = FusedSpec(
        model, weights, seed, resize, crop, tuple(layers), pool, precision, channels_last,
        device, zscore,
    )  # fmt: skip
    run = _planned_run(spec, feature_source, conditions, responses, selected)
    if distributed:
        _run_dask(run, batch_size, scheduler)
    else:
        settings = {"batch_size": batch_size, "workers": workers, "gpu_decode": gpu_decode}
        _run_serial(run, settings)
    return _table(run.collected, spec, conditions, response)


def _planned_run(
    spec: FusedSpec,
    feature_source: sources.FeatureSource,
    conditions: Sequence[str],
    responses: Mapping[str, Responses],
    selected: dict[str, list[str]],
) -> _Run:
    """The run of every selected image (source order) in each condition, nothing collected."""
    wanted = set().union(*map(set, selected.values()))
    indices = [k for k, i in enumerate(feature_source.image_ids) if i in wanted]
    jobs = [(condition, indices) for condition in conditions]
    collected = Collected.empty(selected, spec.layers, conditions)
    return _Run(spec, jobs, feature_source, responses, collected)
