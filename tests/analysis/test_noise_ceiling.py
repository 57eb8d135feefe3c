"""Noise ceilings: RSA bounds against rsatoolbox, split-half reliability against hand values."""

from __future__ import annotations

import numpy as np
import pytest
import rsatoolbox
import xarray as xr
from rsatoolbox.inference import boot_noise_ceiling
from scipy.stats import pearsonr

from figureground.analysis import noise_ceiling as nc
from figureground.errors import DataError, UsageError


def _random_rdms(seed: int, n_rdms: int = 5, n_times: int = 3, n_pairs: int = 45) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shared = rng.random((1, n_times, n_pairs))
    return shared + 0.7 * rng.random((n_rdms, n_times, n_pairs))


@pytest.mark.parametrize("method", ["corr", "spearman", "cosine"])
def test_rdm_noise_ceiling_equals_rsatoolbox(method):
    rdms = _random_rdms(seed=1)
    lower, upper = nc.rdm_noise_ceiling(rdms, method)
    for t in range(rdms.shape[1]):
        ref_lower, ref_upper = boot_noise_ceiling(rsatoolbox.rdm.RDMs(rdms[:, t]), method=method)
        assert lower[t] == pytest.approx(ref_lower, abs=1e-8)
        assert upper[t] == pytest.approx(ref_upper, abs=1e-8)
    assert np.all(lower < upper)


def test_rdm_noise_ceiling_2d_input_and_table():
    rdms = _random_rdms(seed=2, n_times=1)[:, 0]
    lower, upper = nc.rdm_noise_ceiling(rdms, "spearman")
    assert np.ndim(lower) == 0
    assert 0 < lower < upper < 1
    table = nc.rdm_noise_ceiling_table(
        _random_rdms(seed=2), times=[0.0, 0.1, 0.2], method="corr", participant=3
    )
    assert list(table.columns) == ["time", "lower", "upper", "method", "participant"]
    assert (table["lower"] < table["upper"]).all()


def test_rdm_noise_ceiling_rejects_bad_input():
    with pytest.raises(UsageError, match="kendall"):
        nc.rdm_noise_ceiling(_random_rdms(seed=3), "kendall")
    with pytest.raises(DataError, match="n_rdms >= 2"):
        nc.rdm_noise_ceiling(_random_rdms(seed=3, n_rdms=1), "corr")


def _repeated(values: np.ndarray) -> xr.DataArray:
    n_images, n_reps, n_channels, n_times = values.shape
    return xr.DataArray(
        values,
        dims=("image", "repetition", "channel", "time"),
        coords={
            "image": [f"test{i:03d}" for i in range(n_images)],
            "repetition": np.arange(n_reps),
            "channel": [f"MEG{c}" for c in range(n_channels)],
            "time": np.arange(n_times) * 0.01,
        },
    )


def test_split_half_reliability_of_perfect_data_is_one():
    rng = np.random.default_rng(4)
    signal = rng.standard_normal((40, 1, 2, 3))
    data = _repeated(np.repeat(signal, 6, axis=1))
    reliability = nc.split_half_reliability(data, n_splits=5, seed=0)
    assert reliability.dims == ("split", "channel", "time")
    np.testing.assert_allclose(reliability.values, 1.0, atol=1e-12)


def test_split_half_reliability_of_noise_is_near_zero():
    data = _repeated(np.random.default_rng(5).standard_normal((200, 12, 2, 3)))
    reliability = nc.split_half_reliability(data, n_splits=20, seed=0).mean("split")
    assert abs(float(reliability.mean())) < 0.1


def test_split_half_reliability_equals_hand_computation():
    rng = np.random.default_rng(6)
    values = rng.standard_normal((30, 1, 1, 2)) + 0.8 * rng.standard_normal((30, 2, 1, 2))
    data = _repeated(values)
    # two repetitions: every split compares repetition 0 with repetition 1
    reliability = nc.split_half_reliability(data, n_splits=3, seed=1).mean("split")
    for t in range(2):
        r = pearsonr(values[:, 0, 0, t], values[:, 1, 0, t])[0]
        assert float(reliability.isel(channel=0, time=t)) == pytest.approx(2 * r / (1 + r))


def test_reliability_band_is_ordered_and_reproducible():
    rng = np.random.default_rng(7)
    values = rng.standard_normal((50, 1, 3, 4)) + rng.standard_normal((50, 8, 3, 4))
    data = _repeated(values)
    band = nc.reliability_band(data, n_splits=30, seed=2, participant=1)
    assert list(band["time"]) == list(data["time"].values)
    assert (band["lower"] <= band["value"]).all()
    assert (band["value"] <= band["upper"]).all()
    assert (band["lower"] < band["upper"]).all()
    assert band.equals(nc.reliability_band(data, n_splits=30, seed=2, participant=1))
    assert not band.equals(nc.reliability_band(data, n_splits=30, seed=3, participant=1))


def test_repetition_groups_partition_the_repetitions():
    values = np.random.default_rng(8).standard_normal((5, 12, 2, 3))
    data = _repeated(values)
    groups = nc.average_repetition_groups(data, n_groups=3, seed=0)
    assert len(groups) == 3
    assert groups[0].dims == ("image", "channel", "time")
    # equal-size groups: the mean of the group means is the mean of all repetitions
    mean_of_groups = np.mean([g.values for g in groups], axis=0)
    np.testing.assert_allclose(mean_of_groups, values.mean(axis=1), atol=1e-12)
    with pytest.raises(UsageError, match="n_groups"):
        nc.average_repetition_groups(data, n_groups=13)
    with pytest.raises(DataError, match="dims"):
        nc.split_half_reliability(data.isel(repetition=0), n_splits=2)
