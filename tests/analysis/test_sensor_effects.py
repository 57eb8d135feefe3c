"""Per-sensor figure - ground effects: searchlight RSA, encoding maps, cluster tests, figure."""

from __future__ import annotations

import mne
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy.spatial.distance import pdist
from scipy.stats import spearmanr

from figureground.analysis import sensor_effects as se
from figureground.errors import DataError, UsageError
from figureground.neural.sensors import (
    things_meg_adjacency,
    things_meg_channel_names,
    things_meg_info,
)
from figureground.report.sensor_figure import sensor_figure

N_CONDITIONS, N_TIMES = 30, 20
TIMES = np.round(np.linspace(-0.1, 0.85, N_TIMES), 4)
NAMES = things_meg_channel_names()
OCCIPITAL = [i for i, name in enumerate(NAMES) if name.startswith(("MLO", "MRO", "MZO"))]
WINDOW = slice(8, 13)


@pytest.fixture(scope="module")
def adjacency():
    return things_meg_adjacency(NAMES)


@pytest.fixture(scope="module")
def rsa_inputs():
    rng = np.random.default_rng(3)
    patterns = xr.DataArray(
        rng.standard_normal((N_CONDITIONS, len(NAMES), N_TIMES)),
        dims=("image", "channel", "time"),
        coords={"channel": NAMES, "time": TIMES},
    )
    models = {
        se.FIGURE: pdist(rng.standard_normal((N_CONDITIONS, 4))),
        se.GROUND: pdist(rng.standard_normal((N_CONDITIONS, 4)), "correlation"),
    }
    return patterns, models


def _differences(n_participants: int, effect: float, seed: int) -> xr.DataArray:
    """Participants' (time, sensor) differences: noise, plus ``effect`` on occipital sensors."""
    rng = np.random.default_rng(seed)
    values = rng.standard_normal((n_participants, N_TIMES, len(NAMES)))
    values[:, WINDOW, OCCIPITAL] += effect
    return xr.DataArray(
        values,
        dims=("participant", "time", "sensor"),
        coords={"participant": [f"P{i + 1}" for i in range(n_participants)], "time": TIMES,
                "sensor": NAMES},
    )  # fmt: skip


# ---------------------------------------------------------------------------- neighbourhoods


def test_neighbourhoods_hold_each_sensor_and_its_template_neighbours(adjacency):
    groups = se.neighbourhoods(adjacency)
    assert len(groups) == len(NAMES)
    dense = adjacency.toarray()
    for i in (0, 57, 270):
        assert i in groups[i]
        assert set(groups[i]) == set(np.flatnonzero(dense[i])) | {i}
    # without the diagonal a sensor is still in its own neighbourhood
    no_self = adjacency.toarray() & ~np.eye(len(NAMES), dtype=bool)
    assert [list(g) for g in se.neighbourhoods(no_self)] == [list(g) for g in groups]


def test_adjacency_with_or_without_suffix_gives_the_same_searchlight(rsa_inputs, adjacency):
    patterns, models = rsa_inputs
    bare = things_meg_adjacency(things_meg_channel_names(suffix=False))
    assert (bare != adjacency).nnz == 0
    small = patterns.isel(time=slice(0, 3))
    np.testing.assert_array_equal(
        se.sensor_rsa(small, models, bare).values, se.sensor_rsa(small, models, adjacency).values
    )
    with pytest.raises(UsageError, match="not CTF-275 sensors"):
        things_meg_adjacency(["MLC11-1609", "MXX99-1609"])
    with pytest.raises(UsageError, match="adjacency has 270 sensors"):
        se.sensor_rsa(small, models, adjacency[:270, :270])


# ---------------------------------------------------------------------------- searchlight RSA


def test_sensor_rsa_equals_scipy_pdist_and_spearmanr_per_sensor(rsa_inputs, adjacency):
    patterns, models = rsa_inputs
    result = se.sensor_rsa(patterns, models, adjacency)
    assert result.dims == ("model", "sensor", "time")
    assert result.shape == (2, len(NAMES), N_TIMES)
    assert list(result["sensor"].values) == NAMES
    groups = se.neighbourhoods(adjacency)
    values = patterns.values
    for sensor in (0, 101, 193, 270):
        for time in (0, 9, 19):
            rdm = pdist(values[:, groups[sensor], time], "correlation")
            for name, model in models.items():
                expected = spearmanr(rdm, model).statistic
                assert result.sel(model=name).values[sensor, time] == pytest.approx(
                    expected, abs=1e-12
                )


@pytest.mark.parametrize(
    ("metric", "scipy_metric", "per_channel"),
    [("cosine", "cosine", False), ("sqeuclidean", "sqeuclidean", False),
     ("euclidean", "sqeuclidean", True)],
)  # fmt: skip
def test_sensor_rsa_other_metrics_match_pdist(
    rsa_inputs, adjacency, metric, scipy_metric, per_channel
):
    patterns, models = rsa_inputs
    small = patterns.isel(time=[4])
    result = se.sensor_rsa(small, models, adjacency, metric=metric, method="pearson")
    groups = se.neighbourhoods(adjacency)
    for sensor in (5, 150):
        rdm = pdist(small.values[:, groups[sensor], 0], scipy_metric)
        rdm = rdm / len(groups[sensor]) if per_channel else rdm
        expected = np.corrcoef(rdm, models[se.FIGURE])[0, 1]
        assert result.values[0, sensor, 0] == pytest.approx(expected, abs=1e-12)


def test_sensor_rsa_finds_the_model_where_it_is_planted(adjacency):
    rng = np.random.default_rng(11)
    latent = rng.standard_normal((N_CONDITIONS, 5))
    values = 0.2 * rng.standard_normal((N_CONDITIONS, len(NAMES), 4))
    mixing = rng.standard_normal((5, len(OCCIPITAL)))
    values[:, OCCIPITAL, 2] += latent @ mixing
    models = {
        "planted": pdist(latent, "correlation"),
        "other": pdist(rng.random((N_CONDITIONS, 5))),
    }
    result = se.sensor_rsa(values, models, adjacency)
    inner = [i for i in OCCIPITAL if set(se.neighbourhoods(adjacency)[i]) <= set(OCCIPITAL)]
    assert result.sel(model="planted").values[inner, 2].min() > 0.3
    assert np.abs(result.sel(model="planted").values[:, 0]).max() < 0.3


def test_sensor_rsa_rejects_bad_inputs(rsa_inputs, adjacency):
    patterns, models = rsa_inputs
    with pytest.raises(UsageError, match="entries"):
        se.sensor_rsa(patterns, {"short": models[se.FIGURE][:-1]}, adjacency)
    with pytest.raises(UsageError, match="metric"):
        se.sensor_rsa(patterns, models, adjacency, metric="mahalanobis")
    with pytest.raises(UsageError, match="method"):
        se.sensor_rsa(patterns, models, adjacency, method="kendall")


# ---------------------------------------------------------------------------- encoding, contrast


def test_sensor_encoding_is_the_fold_mean_averaged_over_neighbours(adjacency):
    rng = np.random.default_rng(5)
    coords = {"fold": np.arange(3), "time": TIMES, "channel": NAMES}
    scores = {
        name: xr.DataArray(rng.random((3, N_TIMES, len(NAMES))), dims=("fold", "time", "channel"),
                           coords=coords)
        for name in (se.FIGURE, se.GROUND)
    }  # fmt: skip
    raw = se.sensor_encoding(scores, adjacency, smooth=False)
    smooth = se.sensor_encoding(scores, adjacency)
    assert raw.dims == ("condition", "sensor", "time")
    fold_mean = scores[se.FIGURE].values.mean(axis=0).T
    np.testing.assert_allclose(raw.sel(condition=se.FIGURE).values, fold_mean)
    groups = se.neighbourhoods(adjacency)
    for sensor in (0, 77, 270):
        expected = fold_mean[groups[sensor]].mean(axis=0)
        np.testing.assert_allclose(smooth.sel(condition=se.FIGURE).values[sensor], expected)
    difference = se.sensor_difference(smooth)
    assert difference.dims == ("sensor", "time")
    np.testing.assert_allclose(
        difference.values,
        smooth.sel(condition=se.FIGURE).values - smooth.sel(condition=se.GROUND).values,
    )
    with pytest.raises(UsageError, match="no_foreground"):
        se.sensor_difference({se.FIGURE: fold_mean})
    stacked = se.stack_participants({"P1": difference, "P2": 2 * difference})
    assert stacked.dims == ("participant", "time", "sensor")
    assert list(stacked["participant"].values) == ["P1", "P2"]
    np.testing.assert_allclose(stacked.sel(participant="P2").values, 2 * difference.values.T)
    assert list(stacked["sensor"].values) == NAMES


# ---------------------------------------------------------------------------- cluster test


def test_cluster_test_finds_the_planted_occipital_cluster(adjacency):
    table, clusters = se.sensor_cluster_test(_differences(8, 1.5, seed=0), adjacency)
    assert set(se.CLUSTER_COLUMNS) == set(table.columns)
    assert table["min_p"].eq(1 / 128).all() and table["exact"].all()
    significant = table[table["p_cluster"] < 0.05]
    assert len(significant) == 1
    found = significant.iloc[0]
    sensors = set(found["sensors"].split(","))
    assert len(sensors & {NAMES[i] for i in OCCIPITAL}) >= 0.9 * len(OCCIPITAL)
    assert found["sign"] == 1
    assert TIMES[WINDOW.start] <= found["peak_time"] <= TIMES[WINDOW.stop - 1]
    label = clusters["cluster"].values == found["cluster"]
    planted = np.zeros_like(label)
    planted[WINDOW, OCCIPITAL] = True
    assert label[planted].mean() > 0.9  # covers the planted sensors x times
    assert label[~planted].sum() < 0.1 * planted.sum()  # leaks little beyond them


def test_cluster_test_on_null_data_finds_nothing_significant(adjacency):
    table, clusters = se.sensor_cluster_test(_differences(8, 0.0, seed=1), adjacency)
    assert len(table) > 0  # the threshold is crossed by chance, as it should be
    assert (table["p_cluster"] > 0.05).all()
    assert np.nanmin(clusters["p_cluster"].values) > 0.05


def test_four_participants_cannot_reach_p_below_0125(adjacency):
    table, clusters = se.sensor_cluster_test(_differences(4, 5.0, seed=2), adjacency)
    assert clusters.attrs["min_p"] == 0.125 and clusters.attrs["exact"] == 1
    assert table["min_p"].eq(0.125).all() and table["n_permutations"].eq(8).all()
    # even an effect 5 times the noise gets exactly the minimum, never less
    assert table["p_cluster"].min() == pytest.approx(0.125)
    one_sided, _ = se.sensor_cluster_test(_differences(4, 5.0, seed=2), adjacency, tail=1)
    assert one_sided["min_p"].eq(0.0625).all()
    # MNE's exact one-sided enumeration holds the unflipped data besides the observed value,
    # so the best p is 1/16 or 2/16 by rounding; never below 0.05 either way
    assert one_sided["p_cluster"].min() in (pytest.approx(0.0625), pytest.approx(0.125))
    assert se.min_attainable_p(4, 1024) == 2 / 2**4
    assert se.min_attainable_p(8, 64) == 1 / 64  # sampled, not exact: 1 / n_permutations


def test_cluster_test_matches_mne_with_combined_spacetime_adjacency(adjacency):
    differences = _differences(8, 1.0, seed=4)
    table, clusters = se.sensor_cluster_test(differences, adjacency)
    values = differences.values.reshape(8, -1)
    combined = mne.stats.combine_adjacency(N_TIMES, adjacency.toarray())
    with mne.utils.use_log_level("error"):
        t_obs, found, p_values, _ = mne.stats.permutation_cluster_1samp_test(
            values, adjacency=combined, threshold=se.default_threshold(8), n_permutations=1024,
            seed=0, out_type="indices",
        )  # fmt: skip
    np.testing.assert_allclose(clusters["t_obs"].values.ravel(), t_obs)
    assert sorted(table["p_cluster"]) == pytest.approx(sorted(p_values))
    sizes = [(clusters["cluster"].values == label).sum() for label in table["cluster"]]
    assert sorted(len(points[0]) for points in found) == sorted(sizes)


def test_cluster_test_rejects_bad_inputs(adjacency):
    with pytest.raises(UsageError, match="tail"):
        se.sensor_cluster_test(_differences(4, 0, 0), adjacency, tail=2)
    with pytest.raises(DataError, match="at least 2 participants"):
        se.sensor_cluster_test(_differences(1, 0, 0), adjacency)
    with pytest.raises(UsageError, match="adjacency has"):
        se.sensor_cluster_test(_differences(4, 0, 0), adjacency[:10, :10])


# ---------------------------------------------------------------------------- table, windows


def test_effects_table_rows_and_group_clusters(adjacency):
    differences = _differences(8, 1.5, seed=0)
    table, clusters = se.sensor_cluster_test(differences, adjacency)
    tidy = se.sensor_effects_table(
        differences, analysis="rsa", model="alexnet", layer="conv5", clusters=clusters
    )
    assert list(tidy.columns) == se.TABLE_COLUMNS
    assert len(tidy) == 9 * N_TIMES * len(NAMES)
    group = tidy[tidy["participant"] == "group"]
    wide = group.pivot(index="time", columns="sensor", values="value")[NAMES]
    np.testing.assert_allclose(wide.to_numpy(), differences.values.mean(axis=0))
    labels = group.pivot(index="time", columns="sensor", values="cluster")[NAMES]
    np.testing.assert_array_equal(labels.to_numpy(), clusters["cluster"].values)
    best = table.loc[table["p_cluster"].idxmin()]
    in_best = group[group["cluster"] == best["cluster"]]
    assert len(in_best) > 150 and in_best["p_cluster"].eq(best["p_cluster"]).all()
    assert group["min_p"].eq(1 / 128).all()
    people = tidy[tidy["participant"] != "group"]
    assert people["cluster"].eq(-1).all() and people["p_cluster"].isna().all()
    assert tidy["contrast"].eq("figure_minus_ground").all()
    with pytest.raises(UsageError, match="analysis"):
        se.sensor_effects_table(differences, analysis="erp", model="m", layer="l")


def test_peak_windows_centre_on_clusters_then_on_the_mean(adjacency):
    differences = _differences(8, 1.5, seed=0)
    _, clusters = se.sensor_cluster_test(differences, adjacency)
    group = differences.mean("participant")
    windows = se.peak_windows(group, TIMES, n=3, width=0.1, clusters=clusters)
    assert len(windows) == 3
    assert windows["source"].tolist().count("cluster") == 1  # the one significant cluster
    first = windows[windows["source"] == "cluster"].iloc[0]
    assert TIMES[WINDOW.start] <= first["centre"] <= TIMES[WINDOW.stop - 1]
    assert first["p_cluster"] < 0.05
    centres = np.sort(windows["centre"].to_numpy())
    assert np.all(np.diff(centres) >= 0.1)
    plain = se.peak_windows(group, TIMES, n=1, width=0.1)
    assert plain["source"].tolist() == ["mean"]
    assert TIMES[WINDOW.start] <= plain["centre"].iloc[0] <= TIMES[WINDOW.stop - 1]


# ---------------------------------------------------------------------------- figure


def test_sensor_figure_writes_a_png(tmp_path, adjacency):
    differences = _differences(4, 1.5, seed=0)
    _, clusters = se.sensor_cluster_test(differences, adjacency)
    tidy = pd.concat(
        [
            se.sensor_effects_table(
                differences * scale, analysis=analysis, model="alexnet", layer="conv5",
                clusters=clusters,
            )
            for analysis, scale in (("rsa", 0.1), ("encoding", 0.05))
        ]
    )  # fmt: skip
    info = things_meg_info()
    path = sensor_figure(tidy, info, tmp_path / "sensors.png", n_windows=2)
    assert path.exists() and path.stat().st_size > 10_000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from_arrays = sensor_figure(
        differences, info, tmp_path / "arrays.png", clusters=clusters, n_windows=1
    )
    assert from_arrays.stat().st_size > 10_000
    bare = tidy.assign(sensor=tidy["sensor"].str.replace("-1609", ""))
    with pytest.raises(UsageError, match="-1609"):
        sensor_figure(bare, info, tmp_path / "bare.png")
