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
from figureground.analysis.seed import CONDITIONS, matched_ids, select_window
from figureground.errors import DataError, UsageError
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

log = logs.get_logger(__name__)

COLUMNS = [
    "participant", "image_id", "condition", "model", "weights", "layer", "distance",
    "response", "zscore",
]  # fmt: skip
RESPONSES = ("image", "concept")
_DASK_WAVE = 16  # chunks (with their responses) held in flight at once on Dask


# ----------------------------------------------------------------------------- per batch


def lanczos_matrices(
    sensors: int, times: int, channels: int, positions: int
) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's Lanczos-4 resize from (sensors, times) to (channels, positions) as matrices.

    Returns
    -------
    rows : ndarray, float32, shape (channels, sensors)
    cols : ndarray, float32, shape (times, positions)
        ``rows @ X @ cols`` equals ``cv2.resize(X, (positions, channels), INTER_LANCZOS4)``
        up to float32 rounding.
    """
    import cv2

    if min(sensors, times, channels, positions) < 1:
        raise UsageError(
            f"resize from ({sensors}, {times}) to ({channels}, {positions}): sizes must be >= 1"
        )
    lanczos = cv2.INTER_LANCZOS4
    rows = cv2.resize(np.eye(sensors, dtype=np.float32), (sensors, channels), interpolation=lanczos)
    cols = cv2.resize(np.eye(times, dtype=np.float32), (positions, times), interpolation=lanczos)
    return rows.reshape(channels, sensors), cols.reshape(times, positions)


@dataclasses.dataclass(frozen=True)
class Resampler:
    """The Lanczos matrices of one (sensors, times) -> (channels, positions) shape on a device."""

    rows: Any  # torch tensor (channels, sensors)
    cols: Any  # torch tensor (times, positions)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(sensors, times, channels, positions)."""
        return (self.rows.shape[1], self.cols.shape[0], self.rows.shape[0], self.cols.shape[1])


def _work_dtype(device: Any) -> Any:
    import torch

    return torch.float64 if torch.device(device).type == "cuda" else torch.float32


def resampler(sensors: int, times: int, channels: int, positions: int, device: Any) -> Resampler:
    """:func:`lanczos_matrices` as torch tensors on ``device`` (float64 on CUDA)."""
    import torch

    rows, cols = lanczos_matrices(sensors, times, channels, positions)
    dtype = _work_dtype(device)
    return Resampler(
        torch.from_numpy(rows).to(device, dtype), torch.from_numpy(cols).to(device, dtype)
    )


def _zscore(matrices: Any) -> Any:
    """Z-score each matrix of a batch over all its entries (as ``seed._zscore``)."""
    mean = matrices.mean(dim=(-2, -1), keepdim=True)
    std = matrices.std(dim=(-2, -1), correction=0, keepdim=True)
    return (matrices - mean) / std.where(std > 0, 1.0)


def seed_batch_distances(
    embeddings: Any, meg: Any, *, zscore: bool = False, resample: Resampler | None = None
) -> np.ndarray:
    """Seed distances of one batch: ``||resize(meg_i) - embedding_i||`` for every image.

    Parameters
    ----------
    embeddings : torch tensor or ndarray, shape (images, channels[, height, width])
        Feature maps (or pooled features) of the batch; a tensor is used on its device.
    meg : ndarray or tensor, shape (images, sensors, times)
        The matching responses, row for row.
    zscore : bool
        Z-score both matrices before the distance (as :func:`seed.seed_distance`).
    resample : Resampler, optional
        Prebuilt matrices for these shapes on the embeddings' device (built if omitted).

    Returns
    -------
    ndarray, float64, shape (images,)
        Equal to ``seed.seed_distance(meg, embeddings, batched=True)``.
    """
    import torch

    emb = torch.as_tensor(embeddings)
    if emb.ndim not in (2, 3, 4):
        raise UsageError(
            f"embeddings must have shape (images, channels[, height, width]); got "
            f"{tuple(emb.shape)}"
        )
    emb = emb.reshape(emb.shape[0], emb.shape[1], -1)
    responses = torch.as_tensor(meg)
    if responses.ndim != 3 or responses.shape[0] != emb.shape[0]:
        raise UsageError(
            f"MEG must have shape (images, sensors, times) with {emb.shape[0]} images, one per "
            f"embedding; got {tuple(responses.shape)}"
        )
    n, channels, positions = emb.shape
    sensors, times = responses.shape[1:]
    if resample is None:
        resample = resampler(sensors, times, channels, positions, emb.device)
    elif resample.shape != (sensors, times, channels, positions):
        raise UsageError(
            f"resampler is for shape {resample.shape}; this batch needs "
            f"{(sensors, times, channels, positions)}"
        )
    dtype = resample.rows.dtype
    # MEG as float32 first, as OpenCV reads it; then the device's working precision.
    responses = responses.to(torch.float32).to(emb.device, dtype)
    resampled = resample.rows @ responses @ resample.cols  # (images, channels, positions)
    emb = emb.to(dtype)
    if zscore:
        resampled, emb = _zscore(resampled), _zscore(emb)
    diff = (resampled - emb).reshape(n, -1)
    distance = torch.linalg.vector_norm(diff, dim=1, dtype=torch.float64)
    return distance.cpu().numpy()


# ----------------------------------------------------------------------------- responses


@dataclasses.dataclass(frozen=True)
class Responses:
    """One participant's responses as the seed method reads them, row by image id.

    ``data`` has dims (image | concept, channel, time); ``row_of`` maps each image id to
    its row label in ``data`` (the id itself, or its concept for ``response="concept"``).
    """

    participant: str
    data: xr.DataArray
    row_of: Mapping[str, str]

    def check(self, image_ids: Sequence[str]) -> None:
        """Raise a DataError naming the ids of ``image_ids`` this participant has no MEG for."""
        missing = [str(i) for i in image_ids if str(i) not in self.row_of]
        if missing:
            raise DataError(
                f"image id(s) {missing[:3]} are not in participant {self.participant}'s MEG "
                f"({len(self.row_of)} images); expected ids present in both the MEG and the "
                "images"
            )

    def rows(self, image_ids: Sequence[str]) -> np.ndarray:
        """Float32 rows (images, sensors, times) of ``image_ids``, read from ``data``."""
        self.check(image_ids)
        labels = [self.row_of[str(i)] for i in image_ids]
        return np.asarray(self.data.sel({self.data.dims[0]: labels}).values, dtype=np.float32)


def prepare_responses(
    meg: xr.DataArray,
    participant: str = "",
    response: str = "image",
    tmin: float | None = None,
    tmax: float | None = None,
) -> Responses:
    """A participant's responses (image, channel, time) windowed to ``tmin``..``tmax``.

    ``response="concept"`` reads each image's concept mean over all the participant's
    images (concepts x channels x times, computed here once) instead of its own response.
    """
    if response not in RESPONSES:
        raise UsageError(f"response must be one of {RESPONSES}; got {response!r}")
    if meg.ndim != 3 or "image" not in meg.dims:
        raise UsageError(f"MEG must have dims (image, channel, time); got {meg.dims}")
    window = select_window(meg.transpose("image", "channel", "time"), tmin, tmax)
    ids = [str(i) for i in window["image"].values]
    if response == "image":
        return Responses(participant, window.assign_coords(image=ids), {i: i for i in ids})
    if "concept" not in window.coords:
        raise UsageError(
            "response='concept' needs a 'concept' coordinate along 'image' in the MEG data"
        )
    means = window.groupby("concept").mean("image").load()
    means = means.assign_coords(concept=[str(c) for c in means["concept"].values])
    concepts = [str(c) for c in window["concept"].values]
    return Responses(participant, means, dict(zip(ids, concepts, strict=True)))


def _selected_ids(
    responses: Mapping[str, Responses],
    source_ids: Sequence[str],
    image_ids: Sequence[str] | None,
) -> dict[str, list[str]]:
    """Per participant, the ids to compute, in MEG order (the stored path's order)."""
    in_source = set(source_ids)
    wanted = None if image_ids is None else [str(i) for i in image_ids]
    if wanted is not None:
        absent = [i for i in wanted if i not in in_source]
        if absent:
            raise DataError(
                f"image id(s) {absent[:3]} are not among the {len(in_source)} images of the "
                "source; expected ids of images in the source"
            )
    selected = {}
    for participant, meg in responses.items():
        meg_ids = list(meg.row_of)
        if wanted is not None:
            meg.check(wanted)
        candidates = np.asarray(wanted if wanted is not None else list(source_ids))
        what = f"seed (fused), participant {participant}"
        selected[participant] = matched_ids(np.asarray(meg_ids), candidates, what)
    return selected


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
class _Collected:
    """Distances and done flags per (layer, condition, participant), in MEG order."""

    ids: dict[str, list[str]]
    positions: dict[str, dict[str, int]]
    values: dict[tuple[str, str, str], np.ndarray]
    done: dict[tuple[str, str, str], np.ndarray]

    @classmethod
    def empty(
        cls, ids: dict[str, list[str]], layers: Sequence[str], conditions: Sequence[str]
    ) -> _Collected:
        keys = [(layer, c, p) for layer in layers for c in conditions for p in ids]
        return cls(
            ids,
            {p: {i: k for k, i in enumerate(found)} for p, found in ids.items()},
            {key: np.full(len(ids[key[2]]), np.nan) for key in keys},
            {key: np.zeros(len(ids[key[2]]), bool) for key in keys},
        )

    def add(
        self, condition: str, participant: str, ids: Sequence[str], ok: np.ndarray, found: dict
    ) -> None:
        where = np.array([self.positions[participant][i] for i in ids], dtype=int)
        for layer, distances in found.items():
            key = (layer, condition, participant)
            self.values[key][where[ok]] = distances[ok]
            self.done[key][where] = ok


def _chunk_members(
    ids: Sequence[str], selected: Mapping[str, list[str]]
) -> dict[str, tuple[np.ndarray, list[str]]]:
    """Per participant, the positions in ``ids`` it has responses for, and those ids."""
    members = {}
    for participant, wanted in selected.items():
        keep = set(wanted)
        rows = np.array([k for k, i in enumerate(ids) if i in keep], dtype=int)
        if rows.size:
            members[participant] = (rows, [ids[k] for k in rows])
    return members


def _run_serial(
    spec: FusedSpec,
    jobs: list[tuple[str, list[int]]],
    feature_source: sources.FeatureSource,
    responses: Mapping[str, Responses],
    collected: _Collected,
    settings: dict[str, Any],
) -> None:
    network = build_network(spec)
    for condition, indices in jobs:
        paths = [feature_source.paths[condition][k] for k in indices]
        ids = [feature_source.image_ids[k] for k in indices]
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
            for participant, (rows, members) in _chunk_members(batch_ids, collected.ids).items():
                meg = responses[participant].rows(members)
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
                for p, (rows, members) in _chunk_members(ids, selected).items()
            }
            yield {
                "condition": condition,
                "start": start,
                "paths": [str(feature_source.paths[condition][k]) for k in part],
                "participants": participants,
            }


def _run_dask(
    spec: FusedSpec,
    jobs: list[tuple[str, list[int]]],
    feature_source: sources.FeatureSource,
    responses: Mapping[str, Responses],
    collected: _Collected,
    chunk: int,
    scheduler: Any,
) -> None:
    pending = _dask_jobs(jobs, feature_source, responses, collected.ids, chunk)
    with dask_client(scheduler) as client:
        while wave := [job for _, job in zip(range(_DASK_WAVE), pending, strict=False)]:
            members = {(job["condition"], job["start"]): job["participants"] for job in wave}
            for result in map_batches(fused_seed_chunk, wave, client, spec, desc="seed (fused)"):
                for participant, part in members[(result["condition"], result["start"])].items():
                    found = result["distances"][participant]
                    ok = result["ok"][part["rows"]]
                    collected.add(result["condition"], participant, part["ids"], ok, found)


def _table(
    collected: _Collected, spec: FusedSpec, conditions: Sequence[str], response: str
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
    if not meg_by_participant:
        raise UsageError("fused_seed_distances needs at least one participant's MEG")
    if batch_size < 1:
        raise UsageError(f"batch size must be at least 1, got {batch_size}")
    if precision not in embed.PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}; expected fp32, bf16 or fp16")
    embed.pooling(pool)
    distributed = parse_scheduler(scheduler).distributed
    feature_source = (
        source if isinstance(source, sources.FeatureSource) else sources.open_source(source)
    )
    conditions = list(feature_source.variants if conditions is None else conditions)
    unknown = [c for c in conditions if c not in feature_source.variants]
    if unknown or not conditions:
        raise UsageError(
            f"condition(s) {unknown or conditions} not in the source; it has "
            f"{list(feature_source.variants)} (of {list(CONDITIONS)})"
        )
    responses = {
        str(p): prepare_responses(m, str(p), response, tmin, tmax)
        for p, m in meg_by_participant.items()
    }
    selected = _selected_ids(responses, feature_source.image_ids, image_ids)
    wanted = set().union(*map(set, selected.values()))
    indices = [k for k, i in enumerate(feature_source.image_ids) if i in wanted]
    jobs = [(condition, indices) for condition in conditions]
    spec = FusedSpec(
        model, weights, seed, resize, crop, tuple(layers), pool, precision, channels_last,
        device, zscore,
    )  # fmt: skip
    collected = _Collected.empty(selected, spec.layers, conditions)
    if distributed:
        _run_dask(spec, jobs, feature_source, responses, collected, batch_size, scheduler)
    else:
        settings = {"batch_size": batch_size, "workers": workers, "gpu_decode": gpu_decode}
        _run_serial(spec, jobs, feature_source, responses, collected, settings)
    return _table(collected, spec, conditions, response)
