"""The THINGS-MEG authors' data-quality measure: the noise ceiling of repeated test images.

``MEG/step2c_data_quality-noiseceiling.py`` in ViCCo-Group/THINGS-data arranges the test
trials of a participant as (channels, 12 sessions, 200 images, time), the images of each
session sorted by ``things_category_nr``, and computes per channel and time the noise
ceiling of Allen et al. (2022, NSD): responses z-scored over images within each session, the
noise SD the root mean variance over sessions, the signal SD ``sqrt(1 - noise SD^2)``,
``ncsnr = signal SD / noise SD`` and ``NC = 100 ncsnr^2 / (ncsnr^2 + 1 / n)`` (percent of
variance explainable in responses averaged over ``n`` repetitions).

``ncsnr^2`` estimates the single-trial image-specific signal-to-noise ratio at a sensor and
time, and ``ncsnr^2 / (1 + ncsnr^2)`` the single-trial reliability (the correlation of two
single trials, the ``R1`` the encoding ceiling estimates by split halves). The simulator's
``snr`` is that ratio averaged over sensors and the 0-0.8 s window before the baseline
z-scoring, so simulated data and real data can be compared on the authors' own measure.
"""

from __future__ import annotations

import numpy as np


def noise_ceiling(data: np.ndarray, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Noise ceiling (percent) and ``ncsnr`` of (targets..., repetitions, observations) data.

    The last axis holds the images (observations), the one before it the repetitions
    (sessions); ``n`` (default: the number of repetitions) is the number of trials averaged.
    """
    values = np.asarray(data, dtype=np.float64)
    n = values.shape[-2] if n is None else int(n)
    mean = values.mean(axis=-1, keepdims=True)
    sd = values.std(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        normalised = (values - mean) / sd
        noise_sd = np.sqrt(np.mean(np.var(normalised, axis=-2, ddof=1), axis=-1))
        signal_sd = np.sqrt(np.clip(1 - noise_sd**2, 0.0, None))
        ncsnr = signal_sd / noise_sd
        ceiling = 100 * ncsnr**2 / (ncsnr**2 + 1 / n)
    return ceiling, ncsnr


def test_array(test: np.ndarray) -> np.ndarray:
    """(image, repetition, channel, time) test responses as the authors' (channel, repetition,
    image, time) array; images must already be in ``things_category_nr`` order."""
    return np.transpose(np.asarray(test), (2, 1, 0, 3))


def summarise(ceiling: np.ndarray, ncsnr: np.ndarray, times: np.ndarray) -> dict[str, float]:
    """Channel-mean noise ceiling at its peak time, and the largest value of any channel."""
    mean = np.nanmean(ceiling, axis=0)
    peak = int(np.nanargmax(mean)) if np.isfinite(mean).any() else 0
    post = times >= 0
    return {
        "nc_percent_peak_channel_mean": float(mean[peak]),
        "peak_time_s": float(times[peak]),
        "nc_percent_max": float(np.nanmax(ceiling)) if np.isfinite(ceiling).any() else np.nan,
        "nc_percent_post_mean": float(np.nanmean(mean[post])) if post.any() else np.nan,
        "single_trial_snr_peak": float(np.nanmean(ncsnr[:, peak] ** 2)),
        "single_trial_reliability_peak": float(
            np.nanmean(ncsnr[:, peak] ** 2 / (1 + ncsnr[:, peak] ** 2))
        ),
    }
