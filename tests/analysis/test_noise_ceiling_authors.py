"""The THINGS-MEG authors' noise ceiling (neural/reliability.py) against their formula."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import zscore

from figureground.neural.reliability import noise_ceiling, summarise


def _authors_kknc(data: np.ndarray, n: int) -> np.ndarray:
    """MEG/step2c_data_quality-noiseceiling.py's kknc, transcribed as a reference."""
    normalized = zscore(data, axis=-1)
    noisesd = np.sqrt(np.mean(np.var(normalized, axis=-2, ddof=1), axis=-1))
    sigsd = np.sqrt(np.clip(1 - noisesd**2, 0.0, None))
    ncsnr = sigsd / noisesd
    return 100 * ((ncsnr**2) / ((ncsnr**2) + (1 / n)))


def test_equals_the_authors_formula() -> None:
    rng = np.random.default_rng(0)
    signal = rng.standard_normal((5, 1, 200))
    data = signal + 2.0 * rng.standard_normal((5, 12, 200))  # (channels, sessions, images)
    ours, ncsnr = noise_ceiling(data, n=12)
    np.testing.assert_allclose(ours, _authors_kknc(data, 12), rtol=1e-12)
    # single-trial SNR 1/4: ncsnr^2 estimates it
    assert np.mean(ncsnr**2) == pytest.approx(0.25, rel=0.25)


def test_summary_picks_the_peak_time() -> None:
    ceiling = np.array([[10.0, 50.0, 20.0], [30.0, 70.0, 40.0]])
    ncsnr = np.ones_like(ceiling)
    found = summarise(ceiling, ncsnr, np.array([-0.05, 0.1, 0.2]))
    assert found["peak_time_s"] == 0.1 and found["nc_percent_peak_channel_mean"] == 60.0
    assert found["nc_percent_max"] == 70.0 and found["single_trial_reliability_peak"] == 0.5
