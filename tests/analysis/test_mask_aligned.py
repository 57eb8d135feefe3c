"""Mask-aligned features of the original images and their variance partitioning."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import ndimage
from sklearn.metrics import r2_score

from figureground.analysis import encoding, mask_aligned, mask_partition, views
from figureground.errors import DataError, UsageError
from figureground.stimuli.descriptors import centre_weight

GRID, HIRES, N_IMAGES, N_MAP_CHANNELS, N_SESSIONS = 14, 112, 300, 16, 4
N_SENSORS, N_TIMES = 3, 2
FAST = encoding.RidgeSettings(n_components=None, n_iter=6, inner_splits=3, dtype="float64")
N_BOOT = 400


# ----------------------------------------------------------------------------- synthetic data


def _blob(rng: np.random.Generator, centred: bool) -> np.ndarray:
    """A soft, wobbly object mask (HIRES, HIRES) at a random position and size."""
    jitter = 0.05 if centred else 0.22
    cy, cx = 0.5 + rng.uniform(-jitter, jitter, 2)
    radius = rng.uniform(0.1, 0.3)
    y, x = (np.mgrid[:HIRES, :HIRES] + 0.5) / HIRES
    angle = np.arctan2(y - cy, x - cx)
    edge = radius * (1 + 0.25 * np.sin(rng.integers(2, 5) * angle + rng.uniform(0, 2 * np.pi)))
    return np.clip((edge - np.hypot(y - cy, x - cx)) * HIRES / 3 + 0.5, 0, 1)


def make_masks(n: int, seed: int, centred: bool = False) -> np.ndarray:
    """(n, GRID, GRID) object coverage of the cells, through views.mask_on_grid."""
    rng = np.random.default_rng(seed)
    return np.stack(
        [views.mask_on_grid(_blob(rng, centred), (GRID, GRID), HIRES, HIRES) for _ in range(n)]
    )


def make_maps(n: int, seed: int) -> np.ndarray:
    """Spatially smooth random maps (n, channel, GRID, GRID), float32."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((n, N_MAP_CHANNELS, GRID, GRID))
    return ndimage.gaussian_filter(noise, sigma=(0, 0, 1, 1)).astype(np.float32)


def make_meg(values: np.ndarray) -> xr.DataArray:
    n = len(values)
    return xr.DataArray(
        values,
        dims=("image", "channel", "time"),
        coords={
            "image": [f"img{i:03d}" for i in range(n)],
            "channel": [f"MEG{c:04d}" for c in range(values.shape[1])],
            "time": np.arange(values.shape[2]) * 0.01,
            "session": ("image", np.arange(n) % N_SESSIONS),
        },
    )


def unit_drive(features: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(images, sensors * times) unit-variance linear read-outs of ``features``."""
    drive = features @ rng.standard_normal((features.shape[1], N_SENSORS * N_TIMES))
    return (drive - drive.mean(axis=0)) / drive.std(axis=0)


def brain(shares: dict[str, float], pooled: dict[str, np.ndarray], seed: int) -> xr.DataArray:
    """Responses whose variance is ``shares[region]`` from each region's read-out + noise."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((len(next(iter(pooled.values()))), N_SENSORS * N_TIMES))
    values = np.sqrt(1 - sum(shares.values())) * noise
    for region, share in shares.items():
        values = values + np.sqrt(share) * unit_drive(pooled[region], rng)
    return make_meg(values.reshape(-1, N_SENSORS, N_TIMES))


@pytest.fixture(scope="module")
def scattered() -> dict[str, np.ndarray]:
    """Objects anywhere: pooled figure, ground and centre features of 300 images."""
    masks = make_masks(N_IMAGES, seed=1)
    maps = make_maps(N_IMAGES, seed=2)
    weights = mask_aligned.region_weights(masks)
    return mask_aligned.pooled_features(maps, weights)


@pytest.fixture(scope="module")
def centred() -> dict[str, np.ndarray]:
    """Objects near the centre, so that figure and centre features correlate."""
    masks = make_masks(N_IMAGES, seed=3, centred=True)
    maps = make_maps(N_IMAGES, seed=4)
    return mask_aligned.pooled_features(maps, mask_aligned.region_weights(masks))


def partition(meg, pooled, names=("figure", "ground"), **kwargs) -> pd.DataFrame:
    bands = {name: pooled[name] for name in names}
    options = {"settings": FAST, "n_splits": N_SESSIONS, "n_boot": N_BOOT, "seed": 0}
    return mask_partition.mask_partition(meg, bands, **(options | kwargs))


def rows(table: pd.DataFrame, component: str) -> pd.DataFrame:
    return table[table["component"] == component].sort_values("time")


# ----------------------------------------------------------------------------- pooling


class RecordingMaps:
    """A lazy (image, channel, rows, cols) array: hands out slices and records each request.

    It has no ``__array__``: code that loaded it whole would fail.
    """

    def __init__(self, values: np.ndarray) -> None:
        self._values = values
        self.shape = values.shape
        self.requests: list[tuple[int, int]] = []

    def __getitem__(self, key: slice) -> np.ndarray:
        assert isinstance(key, slice), f"asked for {key!r}, not a slice of images"
        start, stop, step = key.indices(self.shape[0])
        assert step == 1
        self.requests.append((start, stop))
        return self._values[key]


def direct_pool(maps: np.ndarray, weight: np.ndarray) -> np.ndarray:
    values, weight = maps.astype(np.float64), weight.astype(np.float64)
    return np.einsum("nchw,nhw->nc", values, weight) / weight.sum(axis=(1, 2))[:, None]


def test_pooled_features_match_a_direct_computation_for_every_chunk():
    masks = make_masks(40, seed=5)
    maps = make_maps(40, seed=6)
    weights = mask_aligned.region_weights(masks)
    reference = mask_aligned.pooled_features(maps, weights, chunk=1000)
    for name in ("figure", "ground", "edge_out_1", "ring_3", "centre"):
        np.testing.assert_allclose(reference[name], direct_pool(maps, weights[name]), rtol=1e-10)
    # views.weighted_pool is the region view's pooling: the same numbers where both apply
    np.testing.assert_allclose(
        reference["figure"], views.weighted_pool(maps.astype(np.float64), masks), rtol=1e-5
    )
    for chunk in (1, 7):
        pooled = mask_aligned.pooled_features(maps, weights, chunk=chunk)
        for name, values in reference.items():
            np.testing.assert_allclose(pooled[name], values, rtol=1e-12, atol=1e-15)


def test_pooled_features_stream_over_image_chunks():
    maps = make_maps(23, seed=7)
    lazy = RecordingMaps(maps)
    weights = mask_aligned.region_weights(make_masks(23, seed=8))
    pooled = mask_aligned.pooled_features(lazy, weights, chunk=5)
    assert lazy.requests == [(0, 5), (5, 10), (10, 15), (15, 20), (20, 23)]
    np.testing.assert_allclose(pooled["ground"], direct_pool(maps, weights["ground"]), rtol=1e-10)


def test_pooled_features_read_a_zarr_array_in_chunks(tmp_path):
    zarr = pytest.importorskip("zarr")
    maps = make_maps(20, seed=17)
    stored = zarr.create_array(
        str(tmp_path / "maps.zarr"), shape=maps.shape, chunks=(4, *maps.shape[1:]), dtype="f4"
    )
    stored[:] = maps
    weights = mask_aligned.region_weights(make_masks(20, seed=18))
    pooled = mask_aligned.pooled_features(stored, weights, chunk=8)
    np.testing.assert_allclose(pooled["figure"], direct_pool(maps, weights["figure"]), rtol=1e-10)


def test_an_absent_region_gives_zeros_and_is_reported(caplog):
    maps = make_maps(6, seed=9)
    masks = make_masks(6, seed=10)
    masks[2] = 0.0  # no object: no figure, no edges
    weights = mask_aligned.region_weights(masks)
    with caplog.at_level(logging.WARNING, logger="figureground"):
        pooled = mask_aligned.pooled_features(maps, weights)
    assert np.isfinite(pooled["figure"]).all()
    np.testing.assert_array_equal(pooled["figure"][2], 0.0)
    assert np.abs(pooled["figure"][[0, 1, 3]]).sum() > 0
    assert "region 'figure' is absent" in caplog.text and "in 1 of 6 images" in caplog.text


def test_pooled_features_reject_mismatched_or_negative_weights():
    maps = make_maps(4, seed=11)
    weights = mask_aligned.region_weights(make_masks(4, seed=12))
    with pytest.raises(DataError, match="weights 'figure'"):
        mask_aligned.pooled_features(maps, {"figure": weights["figure"][:3]})
    with pytest.raises(DataError, match="negative"):
        mask_aligned.pooled_features(maps, {"bad": -weights["figure"]})
    with pytest.raises(DataError, match="expected \\(image, channel, rows, cols\\)"):
        mask_aligned.pooled_features(maps[:, 0], weights)


# ----------------------------------------------------------------------------- regions


def test_region_weights_partition_the_grid():
    masks = make_masks(30, seed=13)
    weights = mask_aligned.region_weights(masks, edge_bands=(1, 2), rings=3)
    assert set(weights) == {
        "figure", "ground", "edge_in_1", "edge_in_2", "edge_out_1", "edge_out_2",
        "ring_1", "ring_2", "ring_3", "centre",
    }  # fmt: skip
    np.testing.assert_allclose(weights["figure"] + weights["ground"], 1.0, atol=1e-6)
    np.testing.assert_array_equal(weights["figure"], masks)
    rings = np.stack([weights[f"ring_{i}"] for i in (1, 2, 3)])
    assert set(np.unique(rings)) == {0.0, 1.0}
    np.testing.assert_array_equal(rings.sum(axis=0), 1.0)
    distance = np.hypot(*(np.mgrid[:GRID, :GRID] + 0.5 - GRID / 2))
    ring_means = [distance[ring[0] > 0].mean() for ring in rings]
    assert ring_means == sorted(ring_means)
    # the centre weight is the descriptors' centre window, whatever the mask
    np.testing.assert_allclose(weights["centre"][0], centre_weight(GRID), rtol=1e-6)
    np.testing.assert_array_equal(weights["centre"][0], weights["centre"][-1])


def test_edge_bands_are_disjoint_and_on_their_side_of_the_edge():
    masks = make_masks(30, seed=14)
    weights = mask_aligned.region_weights(masks)
    edges = np.stack([weights[n] for n in ("edge_in_1", "edge_in_2", "edge_out_1", "edge_out_2")])
    assert set(np.unique(edges)) <= {0.0, 1.0}
    assert edges.sum(axis=0).max() == 1.0  # disjoint
    inside = masks >= mask_aligned.MASK_THRESHOLD
    assert not (weights["edge_in_1"] + weights["edge_in_2"])[~inside].any()
    assert not (weights["edge_out_1"] + weights["edge_out_2"])[inside].any()
    # band 1 = the cells with a 4-neighbour across the edge (scipy morphology as reference)
    cross = ndimage.generate_binary_structure(2, 1)
    for i, cells in enumerate(inside):
        eroded = ndimage.binary_erosion(cells, cross, border_value=1)
        dilated = ndimage.binary_dilation(cells, cross)
        np.testing.assert_array_equal(weights["edge_in_1"][i] > 0, cells & ~eroded)
        np.testing.assert_array_equal(weights["edge_out_1"][i] > 0, dilated & ~cells)
    assert weights["edge_in_2"].sum() > 0 and weights["edge_out_2"].sum() > 0


def test_empty_and_full_masks_have_no_edges():
    masks = np.stack([np.zeros((GRID, GRID)), np.ones((GRID, GRID))]).astype(np.float32)
    weights = mask_aligned.region_weights(masks)
    for name in ("edge_in_1", "edge_in_2", "edge_out_1", "edge_out_2"):
        assert not weights[name].any()
    with pytest.raises(UsageError, match="edge_bands"):
        mask_aligned.region_weights(masks, edge_bands=(2, 1))
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        mask_aligned.region_weights(masks * 2)


# ----------------------------------------------------------------------------- nuisance


def grey_image(values: np.ndarray) -> np.ndarray:
    return np.repeat(np.clip(values, 0, 255).round().astype(np.uint8)[..., None], 3, axis=2)


def grating(height: int, width: int, cycles: float, angle: float = 0.0) -> np.ndarray:
    """Sinusoidal grating with ``cycles`` per image along the direction ``angle``."""
    y, x = np.mgrid[:height, :width]
    phase = 2 * np.pi * cycles * (np.cos(angle) * x / width + np.sin(angle) * y / height)
    return grey_image(127.5 + 100 * np.sin(phase))


def test_a_flat_image_has_no_contrast_and_no_spectral_energy():
    stats = mask_aligned.image_statistics(grey_image(np.full((120, 90), 128.0)))
    np.testing.assert_allclose(stats, [128 / 255, 0, 0, 0, 0], atol=1e-12)


@pytest.mark.parametrize(
    ("cycles", "band"),
    [(3, "energy_low"), (16, "energy_mid"), (20, "energy_mid"), (70, "energy_high")],
)
@pytest.mark.parametrize("angle", [0.0, np.pi / 2, np.pi / 4])
def test_a_grating_puts_its_energy_in_its_frequency_band(cycles, band, angle):
    image = grating(256, 256, cycles, angle)
    stats = dict(
        zip(mask_aligned.LOW_LEVEL_NAMES, mask_aligned.image_statistics(image), strict=True)
    )
    assert stats[band] > 0.9
    assert stats["energy_low"] + stats["energy_mid"] + stats["energy_high"] == pytest.approx(1)
    grey = image[..., 0] / 255.0
    assert stats["mean_luminance"] == pytest.approx(grey.mean(), abs=1e-12)
    assert stats["rms_contrast"] == pytest.approx(grey.std(), abs=1e-12)


def test_a_grating_on_a_wide_image_counts_cycles_per_image():
    stats = mask_aligned.image_statistics(grating(180, 320, 16))
    assert stats[3] > 0.9  # mid band: 16 cycles across the width, whatever its pixels


def test_nuisance_bands():
    masks = make_masks(5, seed=15)
    pooled = mask_aligned.pooled_features(make_maps(5, seed=16), mask_aligned.region_weights(masks))
    images = [grating(64, 64 + 8 * i, 2 + 10 * i) for i in range(5)]
    bands = mask_aligned.nuisance_bands(masks, iter(images), pooled=pooled)
    np.testing.assert_allclose(bands["size"][:, 0], masks.mean(axis=(1, 2)), rtol=1e-6)
    np.testing.assert_array_equal(bands["silhouette"], masks.reshape(5, -1))
    np.testing.assert_array_equal(bands["centre_bias"], pooled["centre"])
    np.testing.assert_array_equal(bands["low_level"][3], mask_aligned.image_statistics(images[3]))
    assert set(mask_aligned.nuisance_bands(masks)) == {"size", "silhouette"}
    with pytest.raises(DataError, match="4 images but 5 masks"):
        mask_aligned.nuisance_bands(masks, images[:4])
    with pytest.raises(DataError, match="uint8 RGB"):
        mask_aligned.image_statistics(images[0].astype(float))


# ----------------------------------------------------------------------------- partitioning


@pytest.mark.parametrize(("driver", "other"), [("figure", "ground"), ("ground", "figure")])
def test_the_driving_region_gets_the_unique_variance(scattered, driver, other):
    table = partition(brain({driver: 0.5}, scattered, seed=5), scattered)
    assert set(table.columns) >= {
        "time", "component", "value", "ci_low", "ci_high", "metric", "n_images",
    }  # fmt: skip
    assert (table["metric"] == "r2_cv").all() and (table["n_images"] == N_IMAGES).all()
    driving, idle = rows(table, f"unique_{driver}"), rows(table, f"unique_{other}")
    assert (driving["ci_low"] > 0.3).all()
    assert (driving["ci_low"] <= driving["value"]).all()
    assert (driving["value"] <= driving["ci_high"]).all()
    assert (idle["ci_low"] <= 0).all() and (idle["value"].abs() < 0.05).all()


def test_planted_unique_shares_fall_inside_the_intervals():
    """Figure and ground codes made independent: hard masks and spatially white maps."""
    masks = (make_masks(N_IMAGES, seed=11) >= 0.5).astype(np.float32)
    maps = np.random.default_rng(12).standard_normal((N_IMAGES, N_MAP_CHANNELS, GRID, GRID))
    pooled = mask_aligned.pooled_features(maps, mask_aligned.region_weights(masks))
    planted = {"figure": 0.4, "ground": 0.25}
    table = partition(brain(planted, pooled, seed=100), pooled)
    for region, share in planted.items():
        course = rows(table, f"unique_{region}")
        assert ((course["ci_low"] <= share) & (share <= course["ci_high"])).all(), course
    # shared is biased below 0 by the estimation cost of single-band models (see docs)
    assert (rows(table, "shared")["value"].abs() < 0.1).all()
    full = rows(table, "full")["value"]
    assert (full > 0.5).all() and (full < 0.65 + 0.03).all()


def test_a_centre_brain_is_given_to_the_centre_band_when_it_is_in_the_model(centred):
    assert np.corrcoef(centred["figure"][:, 0], centred["centre"][:, 0])[0, 1] > 0.8
    meg = brain({"centre": 0.5}, centred, seed=6)
    without = partition(meg, centred)
    with_centre = partition(
        meg, centred, names=("figure", "ground", "centre"), report_unique=("centre",)
    )
    # without the centre band the figure band takes the centre brain's variance ...
    confounded = rows(without, "unique_figure")
    assert (confounded["ci_low"] > 0.2).all()
    # ... with it, the variance goes to the centre band and the figure's share vanishes
    figure, centre = rows(with_centre, "unique_figure"), rows(with_centre, "unique_centre")
    assert (centre["ci_low"] > 0).all()
    assert (figure["ci_high"].to_numpy() < centre["ci_low"].to_numpy()).all()
    assert (figure["value"].to_numpy() < 0.1 * confounded["value"].to_numpy()).all()


def test_a_null_brain_gets_no_variance(scattered):
    rng = np.random.default_rng(7)
    meg = make_meg(rng.standard_normal((N_IMAGES, N_SENSORS, N_TIMES)))
    table = partition(meg, scattered)
    for component in ("full", "unique_figure", "unique_ground"):
        assert (rows(table, component)["ci_low"] <= 0).all(), component
    assert (rows(table, "full")["value"] < 0.01).all()
    # shared (a difference of four R²) carries estimation biases of order features / images
    # that a bootstrap over held-out images does not see: near 0, its interval may miss 0
    assert (rows(table, "shared")["value"].abs() < 0.02).all()


def test_r2_and_interval_match_sklearn_on_the_pooled_held_out_predictions(scattered):
    n_boot = 30
    meg = brain({"figure": 0.3, "ground": 0.2}, scattered, seed=8)
    table = partition(meg, scattered, n_boot=n_boot, seed=3)
    bands = {name: scattered[name] for name in ("figure", "ground")}
    Y = encoding.response_targets(meg, "float64")
    models = mask_partition._models(list(bands), ("figure", "ground"), ())
    predicted = {m: np.empty_like(Y) for m in models}
    for train, test in encoding.outer_splits(meg, N_SESSIONS, 3):
        fold = mask_partition._fold_predictions(
            bands, Y, train, test, meg["session"].values[train], models,
            settings=FAST, seed=3, n_times=N_TIMES, n_target_components=None, standardise=True,
        )  # fmt: skip
        for model, values in fold:
            predicted[model][test] = values

    def per_time(model: str, index: np.ndarray) -> np.ndarray:
        r2 = r2_score(Y[index], predicted[model][index], multioutput="raw_values")
        return r2.reshape(N_SENSORS, N_TIMES).mean(axis=0)

    everything = np.arange(N_IMAGES)
    full = per_time("full", everything)
    unique_figure = full - per_time("without_figure", everything)
    np.testing.assert_allclose(rows(table, "full")["value"], full, rtol=1e-9)
    np.testing.assert_allclose(rows(table, "unique_figure")["value"], unique_figure, rtol=1e-9)
    counts = mask_partition._bootstrap_counts(N_IMAGES, n_boot, 3)[1:].astype(int)
    resampled = [np.repeat(everything, c) for c in counts]
    boot = np.array([per_time("full", index) for index in resampled])
    low, high = np.percentile(boot, [2.5, 97.5], axis=0)
    np.testing.assert_allclose(rows(table, "full")["ci_low"], low, rtol=1e-9)
    np.testing.assert_allclose(rows(table, "full")["ci_high"], high, rtol=1e-9)


def test_folds_never_show_test_images_to_pca_penalty_or_scaling(scattered, monkeypatch):
    meg = brain({"figure": 0.5}, scattered, seed=9)
    Y = encoding.response_targets(meg, "float64")
    splits = encoding.outer_splits(meg, N_SESSIONS, 0)
    sessions = meg["session"].values
    seen_fits, seen_bases = [], []
    fit_predict, fit_basis = encoding.fit_predict, mask_partition._fit_target_basis

    def spy_fit(bands_train, Y_train, bands_test, groups_train, settings, seed):
        seen_fits.append((bands_train, Y_train, bands_test, groups_train))
        return fit_predict(bands_train, Y_train, bands_test, groups_train, settings, seed)

    def spy_basis(Y_train, n_components):
        seen_bases.append(Y_train.copy())
        return fit_basis(Y_train, n_components)

    monkeypatch.setattr(encoding, "fit_predict", spy_fit)
    monkeypatch.setattr(mask_partition, "_fit_target_basis", spy_basis)
    partition(meg, scattered, n_boot=5)  # no target reduction: the responses are Y itself
    assert len(seen_fits) == 3 * len(splits)  # full, without figure, without ground
    for k, (train, test) in enumerate(splits):
        assert not set(sessions[train]) & set(sessions[test])
        x = scattered["figure"]
        scaled = (x[test] - x[train].mean(0)) / x[train].std(0)
        for _, Y_train, bands_test, groups_train in seen_fits[3 * k : 3 * k + 3]:
            np.testing.assert_array_equal(Y_train, Y[train])  # penalty chosen on these only
            np.testing.assert_array_equal(groups_train, sessions[train])
            assert all(len(b) == len(test) for b in bands_test)
        np.testing.assert_allclose(seen_fits[3 * k][2][0], scaled, rtol=1e-10)
    seen_fits.clear()
    partition(meg, scattered, n_boot=5, n_target_components=2)
    assert len(seen_bases) == len(splits)
    for (train, _), basis_input in zip(splits, seen_bases, strict=True):
        np.testing.assert_array_equal(basis_input, Y[train].reshape(len(train), N_SENSORS, N_TIMES))
    assert all(Y_train.shape == (len(train), 2 * N_TIMES) for _, Y_train, _, _ in seen_fits[:3])


def test_target_reduction_keeps_a_low_rank_brain_and_round_trips(scattered):
    rng = np.random.default_rng(10)
    latent = unit_drive(scattered["figure"], rng)[:, :N_TIMES]  # one source per time
    gains = rng.standard_normal((N_SENSORS, 1))
    clean = gains[None] * latent[:, None, :]
    meg = make_meg(clean + 0.5 * rng.standard_normal(clean.shape))
    full = rows(partition(meg, scattered, n_boot=20), "full")["value"].to_numpy()
    reduced = partition(meg, scattered, n_boot=20, n_target_components=1)
    np.testing.assert_allclose(rows(reduced, "full")["value"], full, atol=0.03)
    Y3 = rng.standard_normal((50, N_SENSORS, N_TIMES))
    mean, basis = mask_partition._fit_target_basis(Y3, N_SENSORS)
    scores = mask_partition._project(Y3, mean, basis)
    np.testing.assert_allclose(mask_partition._back(scores, mean, basis), Y3.reshape(50, -1))


def test_mask_partition_rejects_unknown_bands(scattered):
    meg = brain({"figure": 0.5}, scattered, seed=5)
    with pytest.raises(UsageError, match="'ground'"):
        mask_partition.mask_partition(meg, {"figure": scattered["figure"]})
    with pytest.raises(UsageError, match="n_target_components"):
        partition(meg, scattered, n_target_components=0)


# ----------------------------------------------------------------------------- group


def participant_tables(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for p in range(n):
        for component in ("unique_figure", "unique_ground", "shared"):
            frames.append(
                pd.DataFrame(
                    {
                        "time": [0.0, 0.1],
                        "component": component,
                        "value": rng.normal(0.1, 0.05, 2),
                        "ci_low": 0.0,
                        "ci_high": 0.2,
                        "metric": "r2_cv",
                        "n_images": 100,
                        "participant": f"P{p}",
                        "layer": "layer2",
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def test_group_partition_averages_participants_with_a_bootstrap():
    table = participant_tables(4, seed=0)
    group = mask_partition.group_partition(table, n_boot=500, seed=1)
    assert len(group) == 6 and (group["participant"] == "group").all()
    assert (group["n_participants"] == 4).all() and (group["n_images"] == 400).all()
    expected = table.groupby(["component", "time"])["value"].mean()
    got = group.set_index(["component", "time"])["value"]
    np.testing.assert_allclose(got.loc[expected.index], expected)
    assert (group["ci_low"] <= group["value"]).all() and (group["value"] <= group["ci_high"]).all()
    assert (group["ci_low"] < group["ci_high"]).all() and (group["layer"] == "layer2").all()


def test_group_partition_of_two_participants_has_no_interval():
    group = mask_partition.group_partition(participant_tables(2, seed=0), n_boot=100)
    assert group["ci_low"].isna().all() and group["ci_high"].isna().all()
    assert (group["note"] == mask_partition.NO_GROUP_INTERVAL).all()
    uneven = participant_tables(3, seed=0).iloc[:-1]
    with pytest.raises(DataError, match="differ"):
        mask_partition.group_partition(uneven, n_boot=10)


def test_mask_partition_figure_is_drawn(tmp_path):
    from figureground.report.mask_partition_figure import mask_partition_figure

    table = participant_tables(3, seed=0)
    both = pd.concat([table, mask_partition.group_partition(table, n_boot=50)], ignore_index=True)
    path = mask_partition_figure(both, tmp_path / "mask_partition.png")
    assert path.exists() and path.with_suffix(".svg").exists()
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
