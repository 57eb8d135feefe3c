"""The simulated brain: per-participant sensor patterns, time courses, evoked response, noise.

The generative model of :mod:`figureground.neural.simulate` (see its docstring): each code's
principal components drive smooth random sensor patterns with an early and a late temporal
bump, every image shares an evoked response, noise is spatially correlated and smooth in
time, and the epochs are z-scored against the baseline per epoch and channel.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from figureground.errors import UsageError
from figureground.neural.codes import ImageCodes
from figureground.neural.sensors import sensor_positions, smooth_kernel, things_meg_channel_names
from figureground.neural.things_meg import N_SAMPLES, SFREQ, TMIN

SIGNAL_WINDOW = (0.0, 0.8)
BASELINE = (None, 0.0)  # as step1_preprocessing.py: from the first sample to 0 s
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


def signal_window(t: np.ndarray) -> np.ndarray:
    """True for the samples of ``t`` inside ``SIGNAL_WINDOW`` (both ends inclusive)."""
    return (t >= SIGNAL_WINDOW[0]) & (t <= SIGNAL_WINDOW[1])


def participant_seeds(params: BrainParams) -> list[np.random.SeedSequence]:
    """Each participant's seed sequence (the first child of ``params.seed`` is shared)."""
    _, *people = np.random.SeedSequence(params.seed).spawn(params.participants + 1)
    return people


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
    window = signal_window(t)
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
