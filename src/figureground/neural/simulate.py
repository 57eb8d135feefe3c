"""Simulated THINGS-MEG data with a known answer: a "brain" that sees figure and ground.

Per-image responses are a weighted mix of the foreground-only embedding (the ``no_background``
variant, weight ``fg_weight``) and the background-only embedding (``no_foreground``, weight
``bg_weight``). Each embedding is reduced to a few principal components over images; each
component drives a smooth random sensor pattern with an early and a late temporal bump. Noise
is spatially correlated across sensors and smooth in time. Files are written in exactly the
THINGS-MEG format, so the real loader reads them back.

Signal-to-noise ratio (``snr``), precisely: over the sensors and the samples of the signal
window (``SIGNAL_WINDOW``, 0 to 0.8 s), the variance across images (population variance) of the
noise-free image-specific signal, averaged over those sensors and samples, divided by the
variance of the single-trial noise averaged over the same sensors and samples. The common
evoked response (the same for every image) is not counted as signal. ``snr=0`` gives data
without any image-specific signal.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from figureground import fsutil, logs, provenance
from figureground.errors import DataError, UsageError
from figureground.neural.aggregate import concept_of_id
from figureground.neural.sensors import sensor_positions, smooth_kernel, things_meg_channel_names

log = logs.get_logger(__name__)

SFREQ = 200.0
TMIN = -0.1
N_SAMPLES = 281
SIGNAL_WINDOW = (0.0, 0.8)
NA_CODE = 999999  # integer attribute that does not apply (e.g. test_image_nr of an exp trial)
UNIT_T = 1e-13  # noise standard deviation in tesla (100 fT)
FG_VARIANT, BG_VARIANT = "no_background", "no_foreground"
ATTRIBUTE_COLUMNS = (
    "trial_type",
    "image_nr",
    "category_nr",
    "exemplar_nr",
    "test_image_nr",
    "things_category_nr",
    "things_image_nr",
    "image_path",
    "session_nr",
    "run_nr",
)
_EXEMPLAR = re.compile(r"_(\d+)[A-Za-z]*$")


@dataclass(frozen=True)
class SimulationParams:
    """Everything that determines the simulated files (hashed to skip finished work)."""

    fg_weight: float
    bg_weight: float
    snr: float
    seed: int
    participants: int = 4
    layer: str = "layer2"
    test_images: int | None = None
    test_reps: int = 12
    catch: int = 0
    components: int = 4
    runs_per_session: int = 10
    evoked_amplitude: float = 1.0


def times() -> np.ndarray:
    """The 281 sample times of a THINGS-MEG epoch (-0.1 to 1.3 s at 200 Hz)."""
    return TMIN + np.arange(N_SAMPLES) / SFREQ


# --------------------------------------------------------------------------- features -> PCA
def _open_layer(features_path: Path, variant: str, layer: str):
    import xarray as xr

    try:
        dataset = xr.open_zarr(features_path, group=variant)
    except Exception as exc:
        raise DataError(
            f"{features_path}: no readable group {variant!r} ({type(exc).__name__});"
            f" expected a feature store with groups original/no_background/"
            f"no_foreground"
        ) from None
    if layer not in dataset.data_vars:
        raise UsageError(
            f"{features_path} group {variant!r} has no layer {layer!r} "
            f"(it has {sorted(dataset.data_vars)})"
        )
    array = dataset[layer]
    if array.dims[0] != "image":
        raise DataError(
            f"{features_path}/{variant}/{layer}: first dimension is "
            f"{array.dims[0]!r}, expected 'image'"
        )
    return array


def _blocks(array, chunk: int):
    n = array.sizes["image"]
    for start in range(0, n, chunk):
        block = np.asarray(array.isel(image=slice(start, start + chunk)).values, dtype=np.float64)
        block = block.reshape(len(block), -1)
        if not np.isfinite(block).all():
            raise DataError(
                f"features {array.name!r}: NaN or infinite values in images "
                f"{start}..{start + len(block) - 1}"
            )
        yield start, block


def pca_scores(
    array,
    n_components: int,
    rng: np.random.Generator,
    chunk: int = 256,
    dense_limit: int = 2**25,
    power_iterations: int = 3,
) -> tuple[np.ndarray, np.ndarray]:
    """Principal component scores over images of a (image, ...) array, read in chunks.

    Small arrays (images x features <= ``dense_limit``) use an exact SVD; larger ones a
    randomized SVD (range finder with ``power_iterations`` passes, 10 extra dimensions) that
    never holds more than one chunk of images. Signs: the largest-magnitude score of each
    component is positive.

    Returns
    -------
    scores (n_images, k) and explained-variance ratios (k,), k = min(n_components, n - 1).
    """
    n = array.sizes["image"]
    k = max(1, min(n_components, n - 1))
    n_features = int(np.prod([array.sizes[d] for d in array.dims[1:]]))
    mean = np.zeros(n_features)
    total = 0.0
    for _, block in _blocks(array, chunk):
        mean += block.sum(axis=0)
    mean /= n
    if n * n_features <= dense_limit:
        centred = np.asarray(array.values, dtype=np.float64).reshape(n, -1) - mean
        u, s, _ = np.linalg.svd(centred, full_matrices=False)
        total = float(np.sum(centred**2))
    else:
        width = min(k + 10, n)
        omega = rng.standard_normal((n_features, width))
        y = np.vstack([(block - mean) @ omega for _, block in _blocks(array, chunk)])
        for _ in range(power_iterations):
            q, _ = np.linalg.qr(y)
            z = np.zeros((n_features, width))
            for start, block in _blocks(array, chunk):
                z += (block - mean).T @ q[start : start + len(block)]
            z, _ = np.linalg.qr(z)
            y = np.vstack([(block - mean) @ z for _, block in _blocks(array, chunk)])
        q, _ = np.linalg.qr(y)
        b = np.zeros((q.shape[1], n_features))
        for start, block in _blocks(array, chunk):
            centred_block = block - mean
            b += q[start : start + len(block)].T @ centred_block
            total += float(np.sum(centred_block**2))
        ub, s, _ = np.linalg.svd(b, full_matrices=False)
        u = q @ ub
    scores = u[:, :k] * s[:k]
    flip = np.sign(scores[np.argmax(np.abs(scores), axis=0), np.arange(k)])
    scores *= np.where(flip == 0, 1.0, flip)
    ratio = s[:k] ** 2 / total if total > 0 else np.zeros(k)
    return scores, ratio


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


def _noise(rng: np.random.Generator, chol: np.ndarray, n: int, n_times: int) -> np.ndarray:
    """Unit-variance noise: spatially mixed by ``chol`` and smoothed in time (sigma 10 ms)."""
    from scipy.ndimage import convolve1d

    offsets = np.arange(-6, 7)
    kernel = np.exp(-0.5 * (offsets / 2.0) ** 2)
    kernel /= np.sqrt(np.sum(kernel**2))
    white = rng.standard_normal((n, chol.shape[0], n_times))
    return convolve1d(np.matmul(chol, white), kernel, axis=-1, mode="wrap")


# ------------------------------------------------------------------------------ trials
def _image_table(image_ids: list[str], concepts: list[str]) -> pd.DataFrame:
    unique = sorted(set(concepts))
    category = {concept: i + 1 for i, concept in enumerate(unique)}
    exemplar = []
    for image_id in image_ids:
        match = _EXEMPLAR.search(image_id)
        exemplar.append(int(match.group(1)) if match else NA_CODE)
    return pd.DataFrame(
        {
            "image_id": image_ids,
            "concept": concepts,
            "image_nr": np.arange(1, len(image_ids) + 1),
            "category_nr": [category[c] for c in concepts],
            "exemplar_nr": exemplar,
        }
    )


def _session_trials(
    rng: np.random.Generator, images: pd.DataFrame, test_rows: np.ndarray, params: SimulationParams
) -> pd.DataFrame:
    """Attribute rows for all trials of one participant, in presentation order."""
    n_sessions = max(1, params.test_reps)
    exp_rows = np.setdiff1d(np.arange(len(images)), test_rows)
    exp_split = np.array_split(rng.permutation(exp_rows), n_sessions)
    catch_split = np.array_split(np.arange(params.catch), n_sessions)
    test_nr = {row: i + 1 for i, row in enumerate(test_rows)}
    records = []
    for session in range(n_sessions):
        kinds = (
            [("exp", r) for r in exp_split[session]]
            + ([("test", r) for r in test_rows] if params.test_reps > 0 else [])
            + [("catch", c) for c in catch_split[session]]
        )
        order = rng.permutation(len(kinds))
        n_runs = max(1, min(params.runs_per_session, len(kinds)))
        run_of = np.repeat(np.arange(n_runs), [len(a) for a in np.array_split(order, n_runs)])
        for position, pick in enumerate(order):
            kind, row = kinds[pick]
            if kind == "catch":
                records.append(
                    {
                        "trial_type": "catch",
                        "image_nr": NA_CODE,
                        "category_nr": NA_CODE,
                        "exemplar_nr": NA_CODE,
                        "test_image_nr": NA_CODE,
                        "things_category_nr": NA_CODE,
                        "things_image_nr": NA_CODE,
                        "image_path": f"images_catch_meg/catch{row % 100 + 1:03d}.jpg",
                        "session_nr": session + 1,
                        "run_nr": int(run_of[position]) + 1,
                        "_row": -1,
                    }
                )
                continue
            image = images.iloc[row]
            folder = f"images_meg/{image['concept']}" if kind == "exp" else "images_test_meg"
            records.append(
                {
                    "trial_type": kind,
                    "image_nr": int(image["image_nr"]),
                    "category_nr": int(image["category_nr"]),
                    "exemplar_nr": int(image["exemplar_nr"]),
                    "test_image_nr": test_nr[row] if kind == "test" else NA_CODE,
                    "things_category_nr": int(image["category_nr"]),
                    "things_image_nr": int(image["image_nr"]),
                    "image_path": f"{folder}/{image['image_id']}.jpg",
                    "session_nr": session + 1,
                    "run_nr": int(run_of[position]) + 1,
                    "_row": int(row),
                }
            )
    return pd.DataFrame.from_records(records)


# ------------------------------------------------------------------------------ main entry
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
    test_reps: int = 12,
    catch: int = 0,
    components: int = 4,
    runs_per_session: int = 10,
    evoked_amplitude: float = 1.0,
    chunk: int = 256,
) -> Path:
    """Write a simulated THINGS-MEG dataset with a known figure/ground answer.

    Parameters
    ----------
    features_path : feature store (Zarr) with groups ``no_background`` and ``no_foreground``.
    out_dir : folder for ``preprocessed_P{n}-epo.fif``, ``sample_attributes_P{n}.csv``,
        ``ground_truth.json`` and ``ground_truth.npz``.
    fg_weight, bg_weight : weights (>= 0) of the foreground and background signal, each first
        normalised to unit windowed variance; the mix is then scaled to ``snr``.
    snr : signal-to-noise ratio as defined in the module docstring (>= 0).
    seed : everything random follows from it; the same seed writes the same files.
    test_images : K stimuli shown ``test_reps`` times (once per session); default
        min(200, n_images // 10). The other stimuli are experiment images, seen once.
    catch : number of catch trials per participant (noise and evoked response only).
    components : principal components kept per embedding.

    Returns
    -------
    ``out_dir``.
    """
    params = SimulationParams(
        float(fg_weight),
        float(bg_weight),
        float(snr),
        int(seed),
        int(participants),
        layer,
        test_images,
        int(test_reps),
        int(catch),
        int(components),
        int(runs_per_session),
        float(evoked_amplitude),
    )
    _check_params(params)
    features_path, out = Path(features_path), Path(out_dir)
    if not features_path.exists():
        raise UsageError(f"feature store {features_path} not found")
    fg = _open_layer(features_path, FG_VARIANT, layer)
    bg = _open_layer(features_path, BG_VARIANT, layer)
    image_ids = [str(v) for v in fg["image"].values]
    bg_ids = [str(v) for v in bg["image"].values]
    if set(image_ids) != set(bg_ids):
        raise DataError(
            f"{features_path}: {FG_VARIANT} and {BG_VARIANT} hold different images "
            f"({len(set(image_ids) ^ set(bg_ids))} differ)"
        )
    if len(image_ids) < 3:
        raise DataError(f"{features_path}: {len(image_ids)} images; need at least 3")
    bg = bg.sel(image=image_ids)
    concepts = (
        [str(v) for v in fg["concept"].values]
        if "concept" in fg.coords
        else [concept_of_id(i) for i in image_ids]
    )
    n_test = min(200, len(image_ids) // 10) if test_images is None else int(test_images)
    if not 0 <= n_test < len(image_ids):
        raise UsageError(f"test_images={n_test}; expected 0 <= K < {len(image_ids)} images")

    key = fsutil.params_hash(
        {
            **asdict(params),
            "test_images": n_test,
            "features": str(features_path.resolve()),
            "image_ids": image_ids,
        }
    )
    if _finished(out, key, params.participants):
        log.info("%s already holds this simulation (%s); nothing to do", out, key)
        return out

    root = np.random.SeedSequence(params.seed)
    shared_seq, *participant_seqs = root.spawn(params.participants + 1)
    shared = np.random.default_rng(shared_seq)
    fg_scores, fg_ratio = pca_scores(fg, params.components, shared, chunk)
    bg_scores, bg_ratio = pca_scores(bg, params.components, shared, chunk)
    test_rows = np.sort(shared.choice(len(image_ids), n_test, replace=False))
    images = _image_table(image_ids, concepts)
    z_fg = (fg_scores - fg_scores.mean(0)) / np.where(fg_scores.std(0) > 0, fg_scores.std(0), 1)
    z_bg = (bg_scores - bg_scores.mean(0)) / np.where(bg_scores.std(0) > 0, bg_scores.std(0), 1)

    import mne

    from figureground.neural.sensors import things_meg_info

    names = things_meg_channel_names()
    positions = sensor_positions(names)
    pattern_chol = np.linalg.cholesky(smooth_kernel(positions, 0.35) + 1e-6 * np.eye(len(names)))
    t = times()
    window = (t >= SIGNAL_WINDOW[0]) & (t <= SIGNAL_WINDOW[1])
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".simulate-", dir=out))
    truth_people, patterns_all, profiles_all, evoked_all = [], [], [], []
    try:
        for index, sequence in enumerate(participant_seqs):
            number = index + 1
            rng = np.random.default_rng(sequence)
            k_fg, k_bg = z_fg.shape[1], z_bg.shape[1]
            p_fg = _smooth_patterns(rng, pattern_chol, k_fg)
            p_bg = _smooth_patterns(rng, pattern_chol, k_bg)
            prof_fg, info_fg = _temporal_profiles(rng, k_fg, t)
            prof_bg, info_bg = _temporal_profiles(rng, k_bg, t)
            v_fg = _window_variance(z_fg, p_fg, prof_fg, window)
            v_bg = _window_variance(z_bg, p_bg, prof_bg, window)
            coef = np.r_[
                np.full(k_fg, params.fg_weight / np.sqrt(v_fg)),
                np.full(k_bg, params.bg_weight / np.sqrt(v_bg)),
            ]
            scores = np.hstack([z_fg, z_bg]) * coef
            patterns, profiles = np.vstack([p_fg, p_bg]), np.vstack([prof_fg, prof_bg])
            v_mix = _window_variance(scores, patterns, profiles, window)
            gain = np.sqrt(params.snr / v_mix) if v_mix > 0 and params.snr > 0 else 0.0
            if gain == 0.0 and params.snr > 0:
                log.warning("fg_weight and bg_weight are 0: participant %d gets no signal", number)
            evoked_pattern = _smooth_patterns(rng, pattern_chol, 1)[0]
            evoked_profile, evoked_info = _temporal_profiles(rng, 1, t)
            evoked = params.evoked_amplitude * np.outer(evoked_pattern, evoked_profile[0])
            noise_length = rng.uniform(0.4, 0.7)
            noise_cov = 0.6 * smooth_kernel(positions, noise_length) + 0.4 * np.eye(len(names))
            noise_chol = np.linalg.cholesky(noise_cov)
            trials = _session_trials(rng, images, test_rows, params)
            data = np.empty((len(trials), len(names), len(t)), dtype=np.float64)
            rows = trials["_row"].to_numpy()
            noise_var = 0.0
            for start in range(0, len(trials), chunk):
                stop = min(start + chunk, len(trials))
                noise = _noise(rng, noise_chol, stop - start, len(t))
                noise_var += float(np.sum(noise[:, :, window] ** 2))
                block_rows = rows[start:stop]
                signal = np.zeros_like(noise)
                real = block_rows >= 0
                if real.any() and gain > 0:
                    signal[real] = gain * np.einsum(
                        "nc,ck,ct->nkt", scores[block_rows[real]], patterns, profiles
                    )
                data[start:stop] = (evoked + signal + noise) * UNIT_T
            measured_noise = noise_var / (len(trials) * len(names) * window.sum())
            metadata = trials.drop(columns="_row")
            events = np.column_stack(
                [
                    np.arange(len(trials)) * 300 + 1000,
                    np.zeros(len(trials), dtype=int),
                    metadata["image_nr"].to_numpy(),
                ]
            ).astype(int)
            info = things_meg_info(SFREQ)
            with info._unlock():
                info["lowpass"], info["highpass"] = 40.0, 0.1
            epochs = mne.EpochsArray(
                data, info, events=events, tmin=TMIN, metadata=metadata, verbose="error"
            )
            epochs.save(
                staging / f"preprocessed_P{number}-epo.fif",
                fmt="single",
                overwrite=True,
                split_size="2GB",
                verbose="error",
            )
            metadata.to_csv(staging / f"sample_attributes_P{number}.csv", index=False)
            truth_people.append(
                {
                    "participant": f"P{number}",
                    "signal_gain": float(gain),
                    "fg_window_variance": v_fg,
                    "bg_window_variance": v_bg,
                    "signal_window_variance": float(gain**2 * v_mix),
                    "noise_window_variance_expected": 1.0,
                    "noise_window_variance_measured": measured_noise,
                    "noise_spatial_length": noise_length,
                    "n_trials": len(trials),
                    "fg_profiles": info_fg,
                    "bg_profiles": info_bg,
                    "evoked_profile": evoked_info,
                }
            )
            patterns_all.append(np.stack([p_fg, p_bg]) if k_fg == k_bg else patterns)
            profiles_all.append(np.stack([prof_fg, prof_bg]) if k_fg == k_bg else profiles)
            evoked_all.append(evoked_pattern)
            log.info("participant P%d: %d trials written", number, len(trials))
        _write_truth(
            staging,
            params,
            key,
            features_path,
            image_ids,
            concepts,
            test_rows,
            fg_scores,
            bg_scores,
            z_fg,
            z_bg,
            fg_ratio,
            bg_ratio,
            truth_people,
            patterns_all,
            profiles_all,
            evoked_all,
            names,
            t,
        )
        truth_json = staging / "ground_truth.json"
        for path in sorted(staging.iterdir()):
            if path != truth_json:
                path.replace(out / path.name)
        truth_json.replace(out / truth_json.name)  # last: it marks a finished simulation
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _check_params(params: SimulationParams) -> None:
    checks = {
        "fg_weight": params.fg_weight >= 0,
        "bg_weight": params.bg_weight >= 0,
        "snr": params.snr >= 0 and np.isfinite(params.snr),
        "participants": params.participants >= 1,
        "test_reps": params.test_reps >= 0,
        "catch": params.catch >= 0,
        "components": params.components >= 1,
        "runs_per_session": params.runs_per_session >= 1,
    }
    for name, ok in checks.items():
        if not ok:
            raise UsageError(f"{name}={getattr(params, name)!r} is out of range")


def _finished(out: Path, key: str, participants: int) -> bool:
    truth = out / "ground_truth.json"
    if not truth.is_file():
        return False
    try:
        recorded = json.loads(truth.read_text()).get("params_hash")
    except (OSError, json.JSONDecodeError):
        return False
    files = [out / f"preprocessed_P{n}-epo.fif" for n in range(1, participants + 1)]
    return recorded == key and all(path.is_file() for path in files)


def _write_truth(
    staging: Path,
    params: SimulationParams,
    key: str,
    features_path: Path,
    image_ids: list[str],
    concepts: list[str],
    test_rows: np.ndarray,
    fg_scores: np.ndarray,
    bg_scores: np.ndarray,
    z_fg: np.ndarray,
    z_bg: np.ndarray,
    fg_ratio: np.ndarray,
    bg_ratio: np.ndarray,
    people: list[dict],
    patterns: list[np.ndarray],
    profiles: list[np.ndarray],
    evoked: list[np.ndarray],
    names: list[str],
    t: np.ndarray,
) -> None:
    np.savez(
        staging / "ground_truth.npz",
        image_ids=np.array(image_ids, dtype=str),
        fg_scores=fg_scores,
        bg_scores=bg_scores,
        fg_scores_z=z_fg,
        bg_scores_z=z_bg,
        patterns=np.stack(patterns),
        profiles=np.stack(profiles),
        evoked_patterns=np.stack(evoked),
        ch_names=np.array(names, dtype=str),
        times=t,
    )
    truth = {
        "params": asdict(params),
        "params_hash": key,
        "snr_definition": "mean over sensors and samples in signal_window_s of the across-image "
        "(population) variance of the image-specific signal, divided by the "
        "mean single-trial noise variance over the same sensors and samples",
        "signal_window_s": list(SIGNAL_WINDOW),
        "unit_tesla": UNIT_T,
        "fg_variant": FG_VARIANT,
        "bg_variant": BG_VARIANT,
        "features": str(features_path.resolve()),
        "n_images": len(image_ids),
        "n_concepts": len(set(concepts)),
        "test_image_ids": [image_ids[r] for r in test_rows],
        "fg_explained_variance_ratio": fg_ratio.tolist(),
        "bg_explained_variance_ratio": bg_ratio.tolist(),
        "patterns_layout": "npz 'patterns' (participant, source [fg, bg], component, channel), "
        "'profiles' (participant, source, component, time); response = "
        "signal_gain * sum_c weight_s / sqrt(window_variance_s) * "
        "scores_z[:, c] * pattern (x) profile",
        "participants": people,
        "sfreq": SFREQ,
        "tmin": TMIN,
        "n_channels": len(names),
        "na_code": NA_CODE,
        "provenance": provenance.stamp(stage="simulate_meg"),
    }
    fsutil.atomic_write_json(staging / "ground_truth.json", truth)
    (staging / "ground_truth.json").chmod(0o644)
