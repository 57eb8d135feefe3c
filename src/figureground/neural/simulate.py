"""Simulated THINGS-MEG data with a known answer: a "brain" driven by named codes.

Per-image responses are a weighted mix of codes (:mod:`figureground.neural.codes`): network
embeddings of the variants (``figure`` = no background, ``ground`` = no foreground, ``image``
= original) or pixel descriptors of the object and the rest (no network involved). Each
code's principal components drive smooth random sensor patterns with an early and a late
temporal bump; every image shares an evoked response; noise is spatially correlated and
smooth in time. The epochs are then z-scored against the baseline (-0.1 to 0 s) per epoch
and channel, as the authors' preprocessing does (``mne.baseline.rescale(..., mode='zscore')``
in THINGS-data ``MEG/step1_preprocessing.py``): the files hold dimensionless z-scores with a
baseline SD of 1, while the channels still say tesla, as in the released files.

Files follow the THINGS-MEG format and design (:mod:`figureground.neural.design`): 271 CTF
axial gradiometers named with their ``-1609`` suffix, 200 Hz, -0.1 to 1.3 s, sessions with
one exemplar of every concept, test images once per session, catch trials, 18 attribute
columns with empty fields where a value does not apply, event codes ``things_image_nr``
(999999 for catch trials), the attributes also attached to the epochs.

Signal-to-noise ratio (``snr``), precisely: before the baseline z-scoring, over the sensors
and samples of the signal window (``SIGNAL_WINDOW``, 0 to 0.8 s), the variance across images
(population variance) of the noise-free image-specific signal, averaged over those sensors
and samples, divided by the single-trial noise variance averaged over the same sensors and
samples. The evoked response (the same for every image) is not signal. ``snr=0`` gives data
without image-specific signal. The ground truth also reports the THINGS-MEG authors' noise
ceiling measured on the simulated test trials (:mod:`figureground.neural.reliability`).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from figureground import fsutil, logs, provenance
from figureground.conditions import NO_BACKGROUND, NO_FOREGROUND
from figureground.errors import DataError, UsageError
from figureground.neural.codes import ImageCodes, network_codes, pca_scores  # noqa: F401
from figureground.neural.design import (
    ATTRIBUTE_COLUMNS,  # noqa: F401  (re-exported: the CSV's columns)
    DesignParams,
    choose_test_images,
    design_trials,
    stimulus_table,
)
from figureground.neural.sensors import sensor_positions, smooth_kernel, things_meg_channel_names
from figureground.neural.things_meg import (
    N_CHANNELS,
    N_SAMPLES,
    SFREQ,
    TMIN,
    epochs_file,
    write_epochs,
)

log = logs.get_logger(__name__)

SIGNAL_WINDOW = (0.0, 0.8)
BASELINE = (None, 0.0)  # as step1_preprocessing.py: from the first sample to 0 s
FG_VARIANT, BG_VARIANT = NO_BACKGROUND, NO_FOREGROUND
DEFAULT_EVOKED = 0.5  # evoked amplitude in noise SDs (the authors' ERFs peak near 0.5 z)


def times() -> np.ndarray:
    """The 281 sample times of a THINGS-MEG epoch (-0.1 to 1.3 s at 200 Hz)."""
    return TMIN + np.arange(N_SAMPLES) / SFREQ


@dataclass(frozen=True)
class BrainParams:
    """Everything about the simulated brain except the codes themselves."""

    weights: tuple[tuple[str, float], ...]  # (code name, weight >= 0)
    snr: float
    seed: int
    participants: int = 4
    components: int = 4
    evoked_amplitude: float = DEFAULT_EVOKED

    def check(self, codes: ImageCodes) -> None:
        """One-line UsageError for a bad value or a weight on a code that is not there."""
        for name, weight in self.weights:
            if not weight >= 0:
                label = {"figure": "fg_weight", "ground": "bg_weight"}.get(name, name)
                raise UsageError(f"{label}={weight!r} is out of range; expected >= 0")
            if weight > 0 and name not in codes.scores:
                raise UsageError(
                    f"the brain weights code {name!r}, but the codes are {', '.join(codes.scores)}"
                )
        if not (self.snr >= 0 and np.isfinite(self.snr)):
            raise UsageError(f"snr={self.snr!r} is out of range; expected >= 0")
        if self.participants < 1 or self.components < 1:
            raise UsageError(
                f"participants={self.participants}, components={self.components}: expected >= 1"
            )


# ----------------------------------------------------------------------------- the "brain"
def _bump(t: np.ndarray, latency: float, width: float) -> np.ndarray:
    return np.exp(-0.5 * ((t - latency) / width) ** 2)


def _temporal_profiles(rng: np.random.Generator, k: int, t: np.ndarray) -> tuple[np.ndarray, dict]:
    early = rng.uniform(0.08, 0.16, k)
    late = rng.uniform(0.25, 0.5, k)
    early_amp = rng.uniform(0.5, 1.0, k)
    late_amp = rng.uniform(0.3, 1.0, k)
    profiles = np.array(
        [
            early_amp[c] * _bump(t, early[c], 0.025) + late_amp[c] * _bump(t, late[c], 0.07)
            for c in range(k)
        ]
    )
    info = {
        "early_latency_s": early.tolist(),
        "late_latency_s": late.tolist(),
        "early_amplitude": early_amp.tolist(),
        "late_amplitude": late_amp.tolist(),
    }
    return profiles, info


def _smooth_patterns(rng: np.random.Generator, chol: np.ndarray, k: int) -> np.ndarray:
    patterns = (chol @ rng.standard_normal((chol.shape[0], k))).T
    return patterns / np.sqrt(np.mean(patterns**2, axis=1, keepdims=True))


def _window_variance(
    scores: np.ndarray, patterns: np.ndarray, profiles: np.ndarray, window: np.ndarray
) -> float:
    """Mean over sensors and window samples of the across-image variance of
    ``sum_c scores[:, c] * patterns[c] (x) profiles[c]``, computed without forming it."""
    cov = np.cov(scores, rowvar=False, ddof=0).reshape(scores.shape[1], scores.shape[1])
    gram = (patterns @ patterns.T) * (profiles[:, window] @ profiles[:, window].T)
    return float(np.sum(cov * gram) / (patterns.shape[1] * window.sum()))


def _noise(
    rng: np.random.Generator,
    chol: np.ndarray,
    n: int,
    n_times: int,
    samples: np.ndarray | None = None,
) -> np.ndarray:
    """Unit-variance noise: smoothed in time (sigma 10 ms) and spatially mixed by ``chol``.

    ``samples`` keeps only those time samples (mixing is linear, so mixing after the
    selection gives the same values as mixing everything and selecting).
    """
    from scipy.ndimage import convolve1d

    offsets = np.arange(-6, 7)
    kernel = np.exp(-0.5 * (offsets / 2.0) ** 2)
    kernel /= np.sqrt(np.sum(kernel**2))
    white = rng.standard_normal((n, chol.shape[0], n_times))
    smooth = convolve1d(white, kernel, axis=-1, mode="wrap")
    if samples is not None:
        smooth = smooth[:, :, samples]
    return np.matmul(chol, smooth)


def zscore_baseline(data: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Each epoch and channel z-scored against its baseline samples (t <= 0), in place.

    As ``mne.baseline.rescale(data, times, (None, 0), mode="zscore")``: the baseline mean is
    subtracted and the result divided by the baseline's standard deviation (ddof 0).
    """
    base = t <= BASELINE[1] + 1e-9
    mean = data[..., base].mean(axis=-1, keepdims=True)
    sd = data[..., base].std(axis=-1, keepdims=True)
    data -= mean
    data /= np.where(sd > 0, sd, 1.0)
    return data


@dataclass
class ParticipantBrain:
    """One participant's generative model: image scores to sensor time courses, and noise."""

    scores: np.ndarray  # (image, K) all codes' components, weighted and scaled
    patterns: np.ndarray  # (K, channel)
    profiles: np.ndarray  # (K, time)
    evoked: np.ndarray  # (channel, time)
    noise_chol: np.ndarray
    truth: dict = field(default_factory=dict)

    def epochs(
        self,
        rows: np.ndarray,
        rng: np.random.Generator,
        t: np.ndarray,
        window: np.ndarray,
        samples: np.ndarray | None = None,
    ) -> tuple[np.ndarray, float]:
        """Z-scored epochs (len(rows), channel, time) of images ``rows`` (-1: no image), and
        the noise variance summed over the signal window (for the measured noise level).

        ``samples``: compute only these time samples (they must include the baseline).
        """
        noise = _noise(rng, self.noise_chol, len(rows), len(t), samples)
        times_kept = t if samples is None else t[samples]
        in_window = window if samples is None else window[samples]
        noise_sum = float(np.sum(noise[:, :, in_window] ** 2))
        data = noise + (self.evoked if samples is None else self.evoked[:, samples])
        real = rows >= 0
        if real.any() and self.scores.size:
            profiles = self.profiles if samples is None else self.profiles[:, samples]
            data[real] += np.einsum(
                "nc,ck,ct->nkt", self.scores[rows[real]], self.patterns, profiles
            )
        return zscore_baseline(data, times_kept), noise_sum


def draw_brain(
    codes: ImageCodes, params: BrainParams, rng: np.random.Generator, t: np.ndarray
) -> ParticipantBrain:
    """A participant's sensor patterns, time courses, evoked response and noise."""
    names = things_meg_channel_names()
    positions = sensor_positions(names)
    pattern_chol = np.linalg.cholesky(smooth_kernel(positions, 0.35) + 1e-6 * np.eye(len(names)))
    window = (t >= SIGNAL_WINDOW[0]) & (t <= SIGNAL_WINDOW[1])
    parts, truth = [], {"codes": {}}
    for name, weight in params.weights:
        z = codes.scores[name][:, : params.components] if name in codes.scores else None
        if z is None or weight <= 0 or z.shape[1] == 0:
            continue
        patterns = _smooth_patterns(rng, pattern_chol, z.shape[1])
        profiles, info = _temporal_profiles(rng, z.shape[1], t)
        variance = _window_variance(z, patterns, profiles, window)
        parts.append((z * weight / np.sqrt(variance), patterns, profiles))
        truth["codes"][name] = {"weight": weight, "window_variance": variance, **info}
    if parts:
        scores = np.hstack([p[0] for p in parts])
        patterns = np.vstack([p[1] for p in parts])
        profiles = np.vstack([p[2] for p in parts])
        mixed = _window_variance(scores, patterns, profiles, window)
        gain = np.sqrt(params.snr / mixed) if mixed > 0 and params.snr > 0 else 0.0
        scores = scores * gain
    else:
        scores = np.zeros((len(codes.image_ids), 0))
        patterns, profiles = np.zeros((0, len(names))), np.zeros((0, len(t)))
        gain, mixed = 0.0, 0.0
    evoked_pattern = _smooth_patterns(rng, pattern_chol, 1)[0]
    evoked_profile, evoked_info = _temporal_profiles(rng, 1, t)
    evoked = params.evoked_amplitude * np.outer(evoked_pattern, evoked_profile[0])
    noise_length = rng.uniform(0.4, 0.7)
    noise_cov = 0.6 * smooth_kernel(positions, noise_length) + 0.4 * np.eye(len(names))
    truth.update(
        signal_gain=float(gain),
        signal_window_variance=float(gain**2 * mixed),
        noise_window_variance_expected=1.0,
        noise_spatial_length=float(noise_length),
        evoked_profile=evoked_info,
    )
    return ParticipantBrain(
        scores, patterns, profiles, evoked, np.linalg.cholesky(noise_cov), truth
    )


# ----------------------------------------------------------------------------- in memory
def simulate_responses(
    codes: ImageCodes,
    params: BrainParams,
    tmin: float | None = None,
    tmax: float | None = None,
    decim: int = 1,
) -> dict[str, object]:
    """Per-participant responses to every image seen once, in memory, as the loader returns
    them: ``{"P1": DataArray (image, channel, time)}``, z-scored against the baseline.

    The same generative model and seeds as :func:`simulate_codes` (brains, not trial
    orders), without files: for validation sweeps that analyse thousands of datasets.
    """
    import xarray as xr

    from figureground.neural.aggregate import select_times

    params.check(codes)
    t = times()
    window = (t >= SIGNAL_WINDOW[0]) & (t <= SIGNAL_WINDOW[1])
    keep = select_times(t, tmin, tmax, decim)
    # the baseline samples (for the z-scoring) and the kept ones; nothing else is computed
    samples = np.union1d(np.flatnonzero(t <= BASELINE[1] + 1e-9), keep)
    position = np.searchsorted(samples, keep)
    names = things_meg_channel_names()
    order = np.argsort(np.asarray(codes.image_ids))
    out = {}
    for number, sequence in enumerate(_participant_seeds(params), start=1):
        rng = np.random.default_rng(sequence)
        brain = draw_brain(codes, params, rng, t)
        data, _ = brain.epochs(order, rng, t, window, samples)
        out[f"P{number}"] = xr.DataArray(
            data[:, :, position].astype(np.float32),
            dims=("image", "channel", "time"),
            coords={
                "image": np.asarray(codes.image_ids)[order],
                "channel": names,
                "time": t[keep],
                "concept": ("image", np.asarray(codes.concepts)[order]),
            },
            attrs={"participant": f"P{number}", "sfreq": SFREQ / decim},
        )
    return out


def simulated_reliability(
    codes: ImageCodes, params: BrainParams, test_images: int, sessions: int = 12
) -> dict[str, float]:
    """The THINGS-MEG authors' noise ceiling of this brain, measured in memory.

    ``test_images`` images of distinct concepts are each shown once in each of ``sessions``
    sessions to the first participant's brain (the same generative model and z-scoring as
    the files), and :func:`figureground.neural.reliability.noise_ceiling` is computed as in
    the authors' ``step2c`` script. Returns its summary (peak channel-mean NC in percent for
    ``sessions`` repetitions, the single-trial SNR and reliability at that peak).
    """
    from figureground.neural.reliability import noise_ceiling, summarise

    params.check(codes)
    t = times()
    window = (t >= SIGNAL_WINDOW[0]) & (t <= SIGNAL_WINDOW[1])
    rng = np.random.default_rng(_participant_seeds(params)[0])
    brain = draw_brain(codes, params, rng, t)
    concepts = np.asarray(codes.concepts)
    first = [int(np.flatnonzero(concepts == c)[0]) for c in dict.fromkeys(concepts)]
    if test_images > len(first):
        raise UsageError(f"{test_images} test images, but only {len(first)} concepts")
    rows = np.asarray(first[:test_images])
    per_session = [brain.epochs(rows, rng, t, window)[0] for _ in range(sessions)]
    stacked = np.stack(per_session, axis=1)  # (image, session, channel, time)
    ceiling, ncsnr = noise_ceiling(np.transpose(stacked, (2, 3, 1, 0)), n=sessions)
    return {**summarise(ceiling, ncsnr, t), "n_repetitions": sessions, "n_images": len(rows)}


def _participant_seeds(params: BrainParams) -> list[np.random.SeedSequence]:
    _, *people = np.random.SeedSequence(params.seed).spawn(params.participants + 1)
    return people


# ----------------------------------------------------------------------------- files
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
    key = fsutil.params_hash(
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
    window = (t >= SIGNAL_WINDOW[0]) & (t <= SIGNAL_WINDOW[1])
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".simulate-", dir=out))
    people, brains = [], []
    try:
        for number, sequence in enumerate(_participant_seeds(params), start=1):
            rng = np.random.default_rng(sequence)
            brain = draw_brain(codes, params, rng, t)
            trials = design_trials(stimuli, test_rows, design, rng)
            rows = np.where(trials["_row"] >= 0, code_rows[trials["_row"].clip(lower=0)], -1)
            data = np.empty((len(trials), N_CHANNELS, len(t)))
            noise_sum = 0.0
            for start in range(0, len(trials), chunk):
                block, summed = brain.epochs(rows[start : start + chunk], rng, t, window)
                data[start : start + len(block)] = block
                noise_sum += summed
            attributes = trials.drop(columns="_row")
            write_epochs(staging, number, data, attributes)
            reliability = _test_reliability(data, attributes, t)
            people.append(
                {
                    "participant": f"P{number}",
                    **brain.truth,
                    "noise_window_variance_measured": noise_sum
                    / (len(trials) * N_CHANNELS * window.sum()),
                    "n_trials": len(trials),
                    "reliability": reliability,
                }
            )
            brains.append(brain)
            log.info("participant P%d: %d trials written", number, len(trials))
        _write_truth(staging, codes, params, design, key, stimuli, test_rows, people, brains, t)
        truth_json = staging / "ground_truth.json"
        for path in sorted(staging.iterdir()):
            if path != truth_json:
                path.replace(out / path.name)
        truth_json.replace(out / truth_json.name)  # last: it marks a finished simulation
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


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


# ----------------------------------------------------------------------------- entry points
def simulate_meg(
    features_path: str | Path,
    out_dir: str | Path,
    fg_weight: float,
    bg_weight: float,
    snr: float,
    seed: int,
    participants: int = 4,
    layer: str = "layer2",
    test_images: int | None = None,
    sessions: int | None = None,
    catch_per_session: int | None = None,
    components: int = 4,
    evoked_amplitude: float = DEFAULT_EVOKED,
    image_weight: float = 0.0,
    chunk: int = 256,
) -> Path:
    """A simulated THINGS-MEG dataset whose brain follows a feature store's embeddings.

    Parameters
    ----------
    features_path : feature store (Zarr) with groups ``no_background`` and ``no_foreground``
        (and ``original`` when ``image_weight`` > 0).
    out_dir : output folder (see :func:`simulate_codes`).
    fg_weight, bg_weight, image_weight : weights (>= 0) of the figure (no-background),
        ground (no-foreground) and whole-image (original) embeddings, each first scaled to
        unit windowed variance; the mix is then scaled to ``snr``.
    snr : signal-to-noise ratio as defined in the module docstring (>= 0).
    seed : everything random follows from it; the same seed writes the same files.
    test_images : stimuli of distinct concepts shown once per session; default
        min(200, concepts, n_images // 10).
    sessions, catch_per_session : the design (:class:`figureground.neural.design.DesignParams`).
    components : principal components kept per embedding.
    """
    weights = (("figure", float(fg_weight)), ("ground", float(bg_weight)))
    if image_weight:
        weights += (("image", float(image_weight)),)
    for name, value in weights:
        if not value >= 0:
            label = {"figure": "fg_weight", "ground": "bg_weight"}.get(name, "image_weight")
            raise UsageError(f"{label}={value!r} is out of range; expected >= 0")
    names = [n for n, _ in weights]
    shared = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
    codes = network_codes(features_path, layer, names, components, shared)
    brain = BrainParams(
        weights, float(snr), int(seed), int(participants), int(components), float(evoked_amplitude)
    )
    design = _design(codes, test_images, sessions, catch_per_session)
    return simulate_codes(codes, out_dir, brain, design, chunk)


def _design(
    codes: ImageCodes,
    test_images: int | None,
    sessions: int | None,
    catch_per_session: int | None,
) -> DesignParams:
    n_concepts = len(set(codes.concepts))
    n_test = (
        min(200, n_concepts, len(codes.image_ids) // 10) if test_images is None else test_images
    )
    if not 0 <= n_test < len(codes.image_ids):
        raise UsageError(f"test_images={n_test}; expected 0 <= K < {len(codes.image_ids)} images")
    if sessions is not None and sessions < 1:
        raise UsageError(f"sessions={sessions}; expected >= 1")
    if catch_per_session is not None and catch_per_session < 0:
        raise UsageError(f"catch_per_session={catch_per_session}; expected >= 0")
    return DesignParams(int(n_test), sessions, catch_per_session)


def pixel_weights(
    fg_weight: float,
    bg_weight: float,
    image_weight: float = 0.0,
    centre_weight: float = 0.0,
    position: str = "tolerant",
) -> dict[str, float]:
    """Pixel-code weights of a brain: figure / ground pooled over their regions
    (``position`` ``tolerant``) or per grid cell (``grid``), whole image, image centre."""
    if position not in ("tolerant", "grid"):
        raise UsageError(f"position {position!r} is not one of tolerant, grid")
    suffix = "_grid" if position == "grid" else ""
    return {
        f"figure{suffix}": fg_weight,
        f"ground{suffix}": bg_weight,
        "image": image_weight,
        "centre": centre_weight,
    }


def simulate_pixels(
    images: Mapping[str, Path],
    masks: Mapping[str, Path],
    out_dir: str | Path,
    weights: Mapping[str, float],
    snr: float,
    seed: int,
    participants: int = 4,
    test_images: int | None = None,
    sessions: int | None = None,
    catch_per_session: int | None = None,
    components: int = 4,
    evoked_amplitude: float = DEFAULT_EVOKED,
) -> Path:
    """A simulated THINGS-MEG dataset whose brain follows pixel descriptors (no network).

    ``weights`` maps regions of :mod:`figureground.stimuli.descriptors` (``figure``,
    ``ground``, ``figure_grid``, ``ground_grid``, ``image``, ``centre``) to weights.
    """
    from figureground.neural.codes import pixel_codes

    regions = [r for r, w in weights.items() if w > 0] or ["image"]
    codes = pixel_codes(images, masks, regions, n_components=components)
    brain = BrainParams(
        tuple((str(k), float(v)) for k, v in weights.items()),
        float(snr),
        int(seed),
        int(participants),
        int(components),
        float(evoked_amplitude),
    )
    if not codes.image_ids:
        raise DataError("no images to simulate from")
    return simulate_codes(
        codes, out_dir, brain, _design(codes, test_images, sessions, catch_per_session)
    )
