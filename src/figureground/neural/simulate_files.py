"""Simulated THINGS-MEG files: epochs, attributes and the ground truth of a simulated brain.

Files follow the THINGS-MEG format and design (:mod:`figureground.neural.design`,
:mod:`figureground.neural.things_meg`); ``ground_truth.json`` (written last) marks a finished
simulation and records the brain, the design and each participant's measured noise level and
noise ceiling.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from figureground import fsutil, logs, provenance
from figureground.neural.codes import ImageCodes
from figureground.neural.design import (
    DesignParams,
    choose_test_images,
    design_trials,
    stimulus_table,
)
from figureground.neural.sensors import things_meg_channel_names
from figureground.neural.simulate_brain import (
    SIGNAL_WINDOW,
    BrainParams,
    ParticipantBrain,
    draw_brain,
    participant_seeds,
    signal_window,
    times,
)
from figureground.neural.things_meg import (
    N_CHANNELS,
    SFREQ,
    TMIN,
    epochs_file,
    write_epochs,
)

log = logs.get_logger(__name__)


def simulate_codes(
    codes: ImageCodes,
    out_dir: str | Path,
    params: BrainParams,
    design: DesignParams,
    chunk: int = 256,
) -> Path:
    """Write a simulated THINGS-MEG dataset driven by ``codes`` (see the module docstring).

    Files: ``preprocessed_P{n}-epo.fif``, ``sample_attributes_P{n}.csv``,
    ``ground_truth.json`` (written last: it marks a finished simulation) and
    ``ground_truth.npz``. The same inputs write the same files; a finished simulation with
    the same key is kept.
    """
    params.check(codes)
    out = Path(out_dir)
    key = _simulation_key(codes, params, design)
    if _finished(out, key, params.participants):
        log.info("%s already holds this simulation (%s); nothing to do", out, key)
        return out
    shared_seq = np.random.SeedSequence(params.seed).spawn(params.participants + 1)[0]
    shared = np.random.default_rng(shared_seq)
    stimuli = stimulus_table(list(codes.image_ids), list(codes.concepts))
    row_of = {image_id: i for i, image_id in enumerate(codes.image_ids)}
    code_rows = stimuli["image_id"].map(row_of).to_numpy()
    test_rows = choose_test_images(stimuli, design.test_images, shared)
    t = times()
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".simulate-", dir=out))
    people, brains = [], []
    try:
        for number, sequence in enumerate(participant_seeds(params), start=1):
            rng = np.random.default_rng(sequence)
            brain = draw_brain(codes, params, rng, t)
            trials = design_trials(stimuli, test_rows, design, rng)
            rows = np.where(trials["_row"] >= 0, code_rows[trials["_row"].clip(lower=0)], -1)
            people.append(_write_participant(staging, number, brain, trials, rows, rng, t, chunk))
            brains.append(brain)
        _write_truth(staging, codes, params, design, key, stimuli, test_rows, people, brains, t)
        _publish(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _simulation_key(codes: ImageCodes, params: BrainParams, design: DesignParams) -> str:
    """The hash of everything a simulation follows from (brain, design, codes)."""
    return fsutil.params_hash(
        {
            "brain": asdict(params),
            "design": asdict(design),
            "source": codes.source,
            "image_ids": list(codes.image_ids),
            "scores": [
                fsutil.sha256_bytes(np.ascontiguousarray(v).tobytes())
                for v in codes.scores.values()
            ],
        }
    )


def _write_participant(
    staging: Path,
    number: int,
    brain: ParticipantBrain,
    trials: pd.DataFrame,
    rows: np.ndarray,
    rng: np.random.Generator,
    t: np.ndarray,
    chunk: int,
) -> dict:
    """Simulate and write participant ``number``'s epochs, ``chunk`` at a time; its truth."""
    window = signal_window(t)
    data = np.empty((len(trials), N_CHANNELS, len(t)))
    noise_sum = 0.0
    for start in range(0, len(trials), chunk):
        block, summed = brain.epochs(rows[start : start + chunk], rng, t, window)
        data[start : start + len(block)] = block
        noise_sum += summed
    attributes = trials.drop(columns="_row")
    write_epochs(staging, number, data, attributes)
    reliability = _test_reliability(data, attributes, t)
    log.info("participant P%d: %d trials written", number, len(trials))
    return {
        "participant": f"P{number}",
        **brain.truth,
        "noise_window_variance_measured": noise_sum / (len(trials) * N_CHANNELS * window.sum()),
        "n_trials": len(trials),
        "reliability": reliability,
    }


def _publish(staging: Path, out: Path) -> None:
    """Move the staged files into ``out``, ``ground_truth.json`` last (it marks them done)."""
    truth_json = staging / "ground_truth.json"
    for path in sorted(staging.iterdir()):
        if path != truth_json:
            path.replace(out / path.name)
    truth_json.replace(out / truth_json.name)  # last: it marks a finished simulation


def _test_reliability(data: np.ndarray, attributes: pd.DataFrame, t: np.ndarray) -> dict:
    """The authors' noise ceiling on this participant's test trials (empty without them)."""
    from figureground.neural.reliability import noise_ceiling, summarise

    test = attributes["trial_type"].to_numpy() == "test"
    if not test.any():
        return {}
    frame = attributes[test].assign(_index=np.flatnonzero(test))
    sessions = sorted(frame["session_nr"].unique())
    if len(sessions) < 2:
        return {}
    per_session = [
        data[frame[frame["session_nr"] == s].sort_values("things_category_nr")["_index"]]
        for s in sessions
    ]
    stacked = np.stack(per_session, axis=1)  # (image, session, channel, time)
    array = np.transpose(stacked, (2, 3, 1, 0))  # (channel, time, session, image)
    ceiling, ncsnr = noise_ceiling(array, n=len(sessions))
    return {**summarise(ceiling, ncsnr, t), "n_repetitions": len(sessions)}


def _finished(out: Path, key: str, participants: int) -> bool:
    truth = out / "ground_truth.json"
    if not truth.is_file():
        return False
    try:
        recorded = json.loads(truth.read_text()).get("params_hash")
    except (OSError, json.JSONDecodeError):
        return False
    files = [epochs_file(out, n) for n in range(1, participants + 1)]
    return recorded == key and all(path.is_file() for path in files)


def _write_truth(
    staging: Path,
    codes: ImageCodes,
    params: BrainParams,
    design: DesignParams,
    key: str,
    stimuli: pd.DataFrame,
    test_rows: list[int],
    people: list[dict],
    brains: list[ParticipantBrain],
    t: np.ndarray,
) -> None:
    arrays = {
        "image_ids": np.array(codes.image_ids, dtype=str),
        "ch_names": np.array(things_meg_channel_names(), dtype=str),
        "times": t,
        "patterns": np.stack([b.patterns for b in brains]),
        "profiles": np.stack([b.profiles for b in brains]),
        "weighted_scores": np.stack([b.scores for b in brains]),
        "evoked": np.stack([b.evoked for b in brains]),
    }
    for name, scores in codes.scores.items():
        arrays[f"scores_{name}"] = scores
    np.savez(staging / "ground_truth.npz", **arrays)
    weights = dict(params.weights)
    truth = {
        "params": {
            **asdict(params),
            "weights": weights,
            "fg_weight": weights.get("figure", 0.0),
            "bg_weight": weights.get("ground", 0.0),
            "design": asdict(design),
        },
        "params_hash": key,
        "codes_source": codes.source,
        "codes": list(codes.scores),
        "explained_variance_ratio": {k: v.tolist() for k, v in codes.explained.items()},
        "snr_definition": "before the baseline z-scoring: mean over sensors and samples in "
        "signal_window_s of the across-image (population) variance of the image-specific "
        "signal, divided by the mean single-trial noise variance over the same sensors and "
        "samples",
        "units": "z-scores against the baseline (-0.1..0 s) per epoch and channel, as the "
        "released THINGS-MEG epochs; the file labels the channels in tesla like the real files",
        "signal_window_s": list(SIGNAL_WINDOW),
        "n_images": len(codes.image_ids),
        "n_concepts": len(set(codes.concepts)),
        "test_image_ids": [str(stimuli.loc[r, "image_id"]) for r in test_rows],
        "patterns_layout": "npz 'patterns' (participant, component, channel) and 'profiles' "
        "(participant, component, time) of every weighted code's components in turn; "
        "'weighted_scores' (participant, image, component) are the scores they multiply",
        "participants": people,
        "sfreq": SFREQ,
        "tmin": TMIN,
        "n_channels": N_CHANNELS,
        "provenance": provenance.stamp(stage="simulate_meg"),
    }
    fsutil.atomic_write_json(staging / "ground_truth.json", truth)
    (staging / "ground_truth.json").chmod(0o644)
