"""THINGS-size synthetic inputs: a stimulus manifest, pooled features and THINGS-MEG epochs.

``make_synth(out, fraction=1.0)`` writes, for ``fraction`` of the THINGS-MEG sizes (1,854
concepts x 12 exemplars, 200 test images shown 12 times, 200 catch trials per session, 12
sessions: 27,048 epochs x 271 sensors x 281 samples per participant)::

    OUT/stimuli/manifest.csv               manifest columns (no image files: sha256 = sha256
                                           of the image id, width = height = 500)
    OUT/features.zarr                      feature store (original, no_background,
                                           no_foreground), pooled layer (image, channel)
    OUT/meg/preprocessed_P{n}-epo.fif      THINGS-MEG format, MNE split parts
    OUT/meg/preprocessed_P{n}-epo-{k}.fif
    OUT/meg/sample_attributes_P{n}.csv
    OUT/synth.json                         parameters, sizes, provenance (written last)

The epochs are written part by part (:func:`figureground.neural.things_meg.write_epochs_in_parts`,
MNE split parts of ``part_epochs`` epochs), so the whole file is never held in memory: peak
memory is about two copies of one part in float64 (about 4 GiB at the default 3,500 epochs),
whatever the total size (8.2 GB at full size). The data are drawn per block of :data:`BLOCK`
epochs from a generator seeded by ``(seed, participant, block)``, so they do not depend on the
part size.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from figureground import logs, provenance
from figureground.conditions import CONDITIONS, NO_BACKGROUND, NO_FOREGROUND, ORIGINAL
from figureground.errors import UsageError
from figureground.fsutil import atomic_write_json, params_hash, sha256_bytes
from figureground.neural.things_meg import N_CHANNELS, N_SAMPLES, SFREQ, TMIN

log = logs.get_logger(__name__)

BLOCK = 64  # epochs per random-number block (data independent of the part size)
VARIANTS = CONDITIONS
FORMAT_VERSION = 2  # 2: z-scored epochs, the real design and numbering


@dataclasses.dataclass(frozen=True)
class SynthSize:
    """Sizes of one synthetic THINGS-MEG data set (defaults: the real ones)."""

    concepts: int = 1854
    exemplars: int = 12
    test_images: int = 200
    sessions: int = 12
    catch_per_session: int = 200
    channels: int = N_CHANNELS

    @classmethod
    def scaled(cls, fraction: float) -> SynthSize:
        """Concepts, test images and catch trials scaled by ``fraction`` (at least 2 each)."""
        if not 0 < fraction <= 1:
            raise UsageError(f"--fraction {fraction}: expected a number in (0, 1]")
        full = cls()
        return cls(
            concepts=max(2, round(full.concepts * fraction)),
            test_images=max(2, round(full.test_images * fraction)),
            catch_per_session=max(1, round(full.catch_per_session * fraction)),
        )

    @property
    def exp_images(self) -> int:
        """Experiment images (each shown once)."""
        return self.concepts * self.exemplars

    @property
    def epochs(self) -> int:
        """Epochs per participant."""
        return self.exp_images + self.sessions * (self.test_images + self.catch_per_session)

    @property
    def epochs_bytes(self) -> int:
        """Size of one participant's epochs data on disk (float32)."""
        return self.epochs * self.channels * N_SAMPLES * 4


# ------------------------------------------------------------------------------ manifest


def synth_manifest(size: SynthSize) -> pd.DataFrame:
    """A THINGS-layout manifest: exp, test and catch images (no files behind it)."""
    width = len(str(size.concepts))
    concepts = [f"concept{c:0{width}d}" for c in range(1, size.concepts + 1)]
    rows = []
    for concept in concepts:
        for exemplar in range(1, size.exemplars + 1):
            image_id = f"{concept}_{exemplar:02d}s"
            rows.append(
                (image_id, concept, exemplar, f"images_meg/{concept}/{image_id}.jpg", "exp")
            )
    step = max(1, size.concepts // size.test_images)
    for k in range(size.test_images):
        concept = concepts[(k * step) % size.concepts]
        image_id = f"{concept}_{size.exemplars + 1 + k // size.concepts:02d}t"
        rows.append((image_id, concept, pd.NA, f"images_test_meg/{image_id}.jpg", "test"))
    for k in range(size.catch_per_session):
        image_id = f"catch{k + 1:03d}"
        rows.append((image_id, "catch", pd.NA, f"images_catch_meg/{image_id}.jpg", "catch"))
    table = pd.DataFrame(rows, columns=["image_id", "concept", "exemplar", "path", "set"])
    table["exemplar"] = table["exemplar"].astype("Int64")
    table["sha256"] = [sha256_bytes(i.encode()) for i in table["image_id"]]
    table["width"] = pd.array([500] * len(table), dtype="Int64")
    table["height"] = pd.array([500] * len(table), dtype="Int64")
    table["status"], table["error"] = "ok", ""
    columns = ["image_id", "concept", "exemplar", "path", "sha256", "width", "height", "set"]
    return table[[*columns, "status", "error"]]


# ------------------------------------------------------------------------------ features


def _feature_block(seed: int, start: int, concept_index: np.ndarray, channels: int) -> dict:
    """Pooled features of a block of images: concept structure, figure and ground parts."""
    rng = np.random.default_rng([seed, 1, start])
    concept_rng = [np.random.default_rng([seed, 2, int(c)]) for c in concept_index]
    concept = np.stack([r.standard_normal(channels) for r in concept_rng])
    figure = concept + 0.7 * rng.standard_normal((len(concept_index), channels))
    ground = rng.standard_normal((len(concept_index), channels))
    values = {
        NO_BACKGROUND: np.abs(figure),
        NO_FOREGROUND: np.abs(ground + 0.2 * concept),
        ORIGINAL: np.abs(0.6 * figure + 0.4 * ground),
    }
    return {k: v.astype(np.float32) for k, v in values.items()}


def write_synth_features(
    path: Path,
    manifest: pd.DataFrame,
    seed: int,
    layer: str = "layer2",
    channels: int = 512,
    chunk: int = 1024,
) -> Path:
    """Feature store of the exp and test images: one pooled ``layer`` (image, channel)."""
    from figureground.features import store

    images = manifest[manifest["set"].isin(["exp", "test"])]
    ids, concepts = list(images["image_id"]), list(images["concept"])
    concept_index = pd.factorize(pd.Series(concepts))[0]
    attrs = provenance.stamp(
        stage="features",
        synthetic=True,
        model="synthetic",
        weights="none",
        layers=[layer],
        pool="avg",
        dtype="float32",
        seed=seed,
        n_images=len(ids),
    )
    store.create_store(path, VARIANTS, ids, concepts, {layer: (channels,)}, "float32", chunk, attrs)
    writers = {v: store.GroupWriter(path, v, [layer]) for v in VARIANTS}
    for start in range(0, len(ids), chunk):
        stop = min(start + chunk, len(ids))
        block = _feature_block(seed, start, concept_index[start:stop], channels)
        digests = list(images["sha256"].iloc[start:stop])
        for variant, writer in writers.items():
            writer.write(start, {layer: block[variant]}, digests, np.full(stop - start, store.DONE))
    return path


# ------------------------------------------------------------------------------ epochs


def trial_table(
    manifest: pd.DataFrame, size: SynthSize, seed: int, participant: int
) -> pd.DataFrame:
    """THINGS-MEG sample attributes, one row per epoch in presentation order.

    The design and numbering of :mod:`figureground.neural.design`: in every session one
    exemplar of every concept (the same exemplar number for all concepts of a session), each
    test image once, ``catch_per_session`` catch trials; empty fields where they do not apply.
    """
    from figureground.neural.design import DesignParams, design_trials, stimulus_table

    rng = np.random.default_rng([seed, 3, participant])
    shown = manifest[manifest["set"].isin(["exp", "test"])]
    stimuli = stimulus_table(list(shown["image_id"]), list(shown["concept"]))
    test_ids = set(manifest.loc[manifest["set"] == "test", "image_id"])
    test_rows = [int(i) for i in stimuli.index[stimuli["image_id"].isin(test_ids)]]
    params = DesignParams(len(test_rows), size.sessions, size.catch_per_session)
    return design_trials(stimuli, test_rows, params, rng).drop(columns="_row")


def _signal_model(
    features_path: Path, layer: str, seed: int, participant: int, fg_weight: float, bg_weight: float
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Per-image scores (k components), sensor patterns (channels, k), time profiles (k, t)."""
    from figureground.features.store import open_layer

    rng = np.random.default_rng([seed, 4, participant])
    k = 4
    fg = open_layer(features_path, NO_BACKGROUND, layer)
    bg = open_layer(features_path, NO_FOREGROUND, layer)
    ids = [str(i) for i in fg["image"].values]
    mix = fg_weight * fg.values + bg_weight * bg.values
    projection = rng.standard_normal((mix.shape[1], k)) / np.sqrt(mix.shape[1])
    scores = (mix - mix.mean(axis=0)) @ projection
    scores /= scores.std(axis=0, keepdims=True) + 1e-12
    patterns = rng.standard_normal((N_CHANNELS, k))
    t = TMIN + np.arange(N_SAMPLES) / SFREQ
    latency = rng.uniform(0.1, 0.4, k)
    profiles = np.exp(-((t[None, :] - latency[:, None]) ** 2) / (2 * 0.05**2))
    return dict(zip(ids, scores, strict=True)), patterns, profiles


def _epoch_block(
    seed: int,
    participant: int,
    block: int,
    scores: np.ndarray,
    gain: float,
    patterns: np.ndarray,
    profiles: np.ndarray,
) -> np.ndarray:
    """Data of one block of epochs, float64 (MNE's in-memory dtype), z-scored against the
    baseline per epoch and channel as the released THINGS-MEG epochs are."""
    from figureground.neural.simulate import zscore_baseline

    rng = np.random.default_rng([seed, 5, participant, block])
    noise = rng.standard_normal((len(scores), N_CHANNELS, N_SAMPLES), dtype=np.float32)
    signal = gain * np.einsum("nk,ck,kt->nct", scores, patterns, profiles, optimize=True)
    data = (noise + signal).astype(np.float64)
    return zscore_baseline(data, TMIN + np.arange(N_SAMPLES) / SFREQ)


def write_synth_epochs(
    out_dir: Path,
    participant: int,
    trials: pd.DataFrame,
    features_path: Path,
    seed: int,
    snr: float = 0.1,
    fg_weight: float = 1.0,
    bg_weight: float = 0.0,
    layer: str = "layer2",
    part_epochs: int = 3500,
) -> list[Path]:
    """``preprocessed_P{participant}-epo.fif`` (+ split parts) and its attributes CSV."""
    from figureground.neural.things_meg import write_epochs_in_parts

    scores_of, patterns, profiles = _signal_model(
        features_path, layer, seed, participant, fg_weight, bg_weight
    )
    zero = np.zeros(patterns.shape[1])
    paths = trials["image_path"].astype(str)
    stems = [p.rsplit("/", 1)[-1].rsplit(".", 1)[0] for p in paths]
    scores = np.stack([scores_of.get(s, zero) for s in stems])
    gain = float(np.sqrt(snr))

    def part_data(start: int, stop: int) -> np.ndarray:
        data = np.empty((stop - start, N_CHANNELS, N_SAMPLES))
        for first in range(start, stop, BLOCK):
            last = min(first + BLOCK, stop)
            data[first - start : last - start] = _epoch_block(
                seed, participant, first // BLOCK, scores[first:last], gain, patterns, profiles
            )
        return data

    per_part = max(1, part_epochs // BLOCK) * BLOCK  # parts hold whole blocks
    return write_epochs_in_parts(out_dir, participant, trials, part_data, per_part)


# ------------------------------------------------------------------------------ entry


def make_synth(
    out: str | os.PathLike,
    fraction: float = 1.0,
    participants: int = 1,
    seed: int = 0,
    snr: float = 0.1,
    fg_weight: float = 1.0,
    bg_weight: float = 0.0,
    channels: int = 512,
    layer: str = "layer2",
    part_epochs: int = 3500,
) -> Path:
    """Write a synthetic THINGS-size data set (see the module docstring) to ``out``.

    Parameters
    ----------
    out : output folder; an existing one made with the same parameters is kept as is.
    fraction : share of the THINGS-MEG sizes, in (0, 1].
    participants : MEG participants (8.2 GB each at full size).
    seed : seeds every random draw (recorded).
    snr, fg_weight, bg_weight : signal power relative to the noise, and how the responses mix
        the no-background ("figure") and no-foreground ("ground") features.
    channels, layer : pooled feature width and the layer name in the store.
    part_epochs : epochs per FIF part (peak memory ~ part_epochs x 1.2 MB).

    Returns
    -------
    pathlib.Path
        ``out``.
    """
    size = SynthSize.scaled(fraction)
    if participants < 1 or part_epochs < BLOCK:
        raise UsageError(
            f"participants={participants}, part_epochs={part_epochs}: expected >= 1 and >= {BLOCK}"
        )
    params = {
        "fraction": fraction,
        "participants": participants,
        "seed": seed,
        "snr": snr,
        "fg_weight": fg_weight,
        "bg_weight": bg_weight,
        "channels": channels,
        "layer": layer,
        "format": FORMAT_VERSION,
    }
    key = params_hash(params)
    out = Path(out)
    stamp_path = out / "synth.json"
    if stamp_path.is_file() and json.loads(stamp_path.read_text()).get("params_hash") == key:
        log.info("%s already holds this synthetic data set", out)
        return out
    staging = _staging_folder(out)
    log.info(
        "synthetic THINGS data at fraction %g: %d images, %d epochs x %d participants "
        "(%.2f GB each)",
        fraction,
        size.exp_images,
        size.epochs,
        participants,
        size.epochs_bytes / 1e9,
    )
    _write_data_set(staging, size, params, part_epochs)
    for name in ("stimuli", "features.zarr", "meg"):
        os.replace(staging / name, out / name)
    shutil.rmtree(staging)
    atomic_write_json(
        stamp_path,
        {
            "params": params,
            "params_hash": key,
            "sizes": {**dataclasses.asdict(size), "epochs": size.epochs},
            "provenance": provenance.stamp(stage="synth", **params),
        },
    )
    return out


def _staging_folder(out: Path) -> Path:
    """A fresh staging folder inside ``out``, which must be empty or new."""
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"{out} exists and holds something else; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    staging = out / f".staging-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    return staging


def _write_data_set(staging: Path, size: SynthSize, params: dict, part_epochs: int) -> None:
    """Manifest, features and every participant's epochs under ``staging`` (``params``: those
    of :func:`make_synth`, as hashed)."""
    from figureground.stimuli import write_manifest

    seed, layer = params["seed"], params["layer"]
    manifest = synth_manifest(size)
    (staging / "stimuli").mkdir()
    write_manifest(manifest, staging / "stimuli" / "manifest.csv")
    features = write_synth_features(
        staging / "features.zarr", manifest, seed, layer, params["channels"]
    )
    (staging / "meg").mkdir()
    participants = params["participants"]
    for participant in logs.progress(range(1, participants + 1), participants, "participants"):
        trials = trial_table(manifest, size, seed, participant)
        write_synth_epochs(
            staging / "meg",
            participant,
            trials,
            features,
            seed,
            params["snr"],
            params["fg_weight"],
            params["bg_weight"],
            layer,
            part_epochs,
        )
