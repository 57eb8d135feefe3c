"""Pairwise decoding, temporal generalisation and cross-decoding on simulated recordings."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import linalg

from figureground.analysis import cross_decoding as cd
from figureground.analysis import decoding as dec
from figureground.analysis.decoding_classifiers import fold_classifiers, shrunk_covariance
from figureground.analysis.encoding import RidgeSettings
from figureground.errors import DataError, UsageError

ONSET, OFFSET = 0.1, 0.3


def simulate_test(
    n_images: int = 16,
    n_reps: int = 6,
    n_channels: int = 10,
    n_times: int = 12,
    snr: float = 1.0,
    seed: int = 0,
) -> xr.DataArray:
    """Image-specific sensor patterns from 100 to 300 ms, plus correlated noise."""
    rng = np.random.default_rng(seed)
    times = np.linspace(-0.2, 0.5, n_times)
    patterns = rng.standard_normal((n_images, n_channels))
    envelope = ((times >= ONSET) & (times <= OFFSET)).astype(float)
    mixing = np.eye(n_channels) + 0.3 * rng.standard_normal((n_channels, n_channels))
    noise = rng.standard_normal((n_images, n_reps, n_times, n_channels)) @ mixing
    data = snr * patterns[:, None, :, None] * envelope + np.moveaxis(noise, 2, 3)
    return xr.DataArray(
        1e-13 * data,  # tesla-scale, as MEG
        dims=dec.TEST_DIMS,
        coords={"image": [f"img{i:02d}" for i in range(n_images)], "time": times},
    )


def _windows(times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return times < 0, (times >= ONSET) & (times <= OFFSET)


# ----------------------------------------------------------------------------- pairwise


def test_chance_before_onset_and_decoding_during_signal() -> None:
    test = simulate_test(n_images=20, n_reps=6, seed=1)
    accuracy = dec.pairwise_decoding(test)
    before, during = _windows(accuracy["time"].values)
    # 190 pairs x 6 folds x 2 trials per time, correlated through shared trials: a loose
    # binomial-style band around chance, and the mean of the pre-onset points tighter.
    assert np.all(np.abs(accuracy.values[before] - 0.5) < 0.08)
    assert abs(accuracy.values[before].mean() - 0.5) < 0.04
    assert np.all(accuracy.values[during] > 0.8)
    assert accuracy.attrs["n_pairs"] == 190 and accuracy.attrs["n_folds"] == 6
    assert accuracy.attrs["chance"] == 0.5


def test_fast_path_equals_mne_sklearn_reference() -> None:
    test = simulate_test(n_images=10, n_reps=4, n_channels=6, n_times=8, seed=2)
    fast = dec.pair_accuracy(test, method="fast")
    reference = dec.pair_accuracy(test, method="mne")
    np.testing.assert_array_equal(fast.values, reference.values)
    assert 0.2 < fast.values.mean() < 0.95  # not a degenerate all-correct case
    subset = dec.pair_accuracy(test, method="fast", max_pairs=7, seed=3)
    subset_ref = dec.pair_accuracy(test, method="mne", max_pairs=7, seed=3)
    np.testing.assert_array_equal(subset.values, subset_ref.values)
    assert list(subset["image_a"].values) == list(subset_ref["image_a"].values)


def test_fold_covariance_is_the_residual_covariance_and_sklearn_lda() -> None:
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    values, _ = dec.prepare_test(simulate_test(n_images=6, n_reps=5, n_channels=4, seed=4))
    at_time = values[..., 7]
    shrinkage = 0.2
    for held_out, (weights, offsets) in enumerate(fold_classifiers(at_time, shrinkage)):
        train = np.delete(at_time, held_out, axis=1)
        means = train.mean(axis=1)
        residuals = (train - means[:, None]).reshape(-1, at_time.shape[-1])
        covariance = shrunk_covariance(residuals, shrinkage)
        np.testing.assert_allclose(weights, linalg.solve(covariance, means.T), rtol=1e-9)
        np.testing.assert_allclose(offsets, np.diag(means @ weights), rtol=1e-9)
        lda = LinearDiscriminantAnalysis(solver="lsqr", shrinkage=shrinkage)
        lda.fit(train.reshape(-1, at_time.shape[-1]), np.repeat(np.arange(6), 4))
        np.testing.assert_allclose(lda.covariance_, covariance, rtol=1e-9)
        np.testing.assert_allclose(lda.coef_, weights.T, rtol=1e-7, atol=1e-9)


def test_cosmo_regularisation_is_the_default_shrinkage() -> None:
    residuals = np.random.default_rng(5).standard_normal((22, 7))
    biased = residuals.T @ residuals / 22
    cosmo = biased + 0.01 * np.trace(biased) / 7 * np.eye(7)  # cosmo_classify_lda
    np.testing.assert_allclose(1.01 * shrunk_covariance(residuals, dec.COSMO_SHRINKAGE), cosmo)


def test_pair_covariance_classifier_is_close_to_the_shared_one() -> None:
    # The authors' LDA (covariance of the pair's trials only) against the shared covariance:
    # with more trials than sensors both estimate the same noise covariance.
    test = simulate_test(n_images=8, n_reps=12, n_channels=5, n_times=6, snr=0.35, seed=6)
    fast = dec.pairwise_decoding(test, max_pairs=10, seed=1)
    own = dec.pairwise_decoding(test, method="mne_pairwise", max_pairs=10, seed=1)
    _, during = _windows(fast["time"].values)
    assert 0.6 < fast.values[during].mean() < 0.95
    np.testing.assert_allclose(own.values, fast.values, atol=0.06)


# ----------------------------------------------------------------------------- generalisation


def test_temporal_generalisation_equals_mne_and_its_diagonal_the_sliding_accuracy() -> None:
    test = simulate_test(n_images=10, n_reps=4, n_channels=6, n_times=8, seed=7)
    fast = dec.temporal_generalisation(test)
    reference = dec.temporal_generalisation(test, method="mne")
    np.testing.assert_array_equal(fast.values, reference.values)
    sliding = dec.pairwise_decoding(test)
    np.testing.assert_allclose(np.diag(fast.values), sliding.values, rtol=0, atol=1e-12)


def test_sustained_pattern_generalises_only_within_the_signal() -> None:
    test = simulate_test(n_images=16, n_reps=6, n_channels=10, n_times=12, seed=8)
    matrix = dec.temporal_generalisation(test, decim=1).values
    before, during = _windows(test["time"].values)
    assert matrix[np.ix_(during, during)].min() > 0.8  # one pattern from 100 to 300 ms
    assert abs(matrix[np.ix_(during, before)].mean() - 0.5) < 0.05


def test_decim_and_table() -> None:
    test = simulate_test(n_times=12)
    accuracy = dec.pairwise_decoding(test, decim=3)
    np.testing.assert_array_equal(accuracy["time"].values, test["time"].values[::3])
    table = dec.decoding_table(accuracy, participant="P1")
    assert list(table.columns[:3]) == ["time", "metric", "value"]
    assert (table["participant"] == "P1").all() and len(table) == 4
    matrix = dec.decoding_table(dec.temporal_generalisation(test, decim=4))
    assert {"train_time", "test_time", "value"} <= set(matrix.columns) and len(matrix) == 9


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (lambda x: x.isel(repetition=[0, 1]), DataError),  # one training trial per image
        (lambda x: x.where(x["repetition"] != 1), DataError),  # missing trials are NaN
        (lambda x: x.isel(image=[0]), DataError),
        (lambda x: x.rename(repetition="session"), DataError),
        (lambda x: x.values[0], DataError),
    ],
)
def test_bad_test_arrays_raise_one_line(change, error) -> None:
    test = simulate_test(n_images=4, n_reps=3, n_channels=3, n_times=4)
    test = test.assign_coords(repetition=np.arange(3))
    with pytest.raises(error) as caught:
        dec.pairwise_decoding(change(test))
    assert "\n" not in str(caught.value)


def test_bad_options_raise() -> None:
    test = simulate_test(n_images=4, n_reps=3, n_channels=3, n_times=4)
    with pytest.raises(UsageError, match="method"):
        dec.pairwise_decoding(test, method="svm")
    with pytest.raises(UsageError, match="shrinkage"):
        dec.pairwise_decoding(test, shrinkage=1.5)
    with pytest.raises(UsageError, match="decim"):
        dec.pairwise_decoding(test, decim=0)
    wide = simulate_test(n_images=3, n_reps=3, n_channels=12, n_times=2)
    with pytest.raises(DataError, match="singular") as caught:
        dec.pairwise_decoding(wide, shrinkage=0.0)  # 6 training trials for 12 channels
    assert "\n" not in str(caught.value)


# ----------------------------------------------------------------------------- 2-vs-2


def test_identification_2v2_by_hand_on_three_images() -> None:
    rng = np.random.default_rng(9)
    predicted = rng.standard_normal((3, 5, 2))
    measured = predicted + 1.5 * rng.standard_normal((3, 5, 2))
    pairs = np.array([[0, 1], [0, 2], [1, 2]])
    votes = cd.identification_2v2(predicted, measured, pairs)
    for k, (a, b) in enumerate(pairs):
        for t in range(2):
            r = np.corrcoef(predicted[:, :, t], measured[:, :, t])[:3, 3:]  # pred x true
            expected = float(r[a, a] + r[b, b] > r[a, b] + r[b, a])
            assert votes[k, t] == expected
    # swapping the measured images turns every vote around
    swapped = cd.identification_2v2(predicted, measured[[1, 0, 2]], np.array([[0, 1]]))
    np.testing.assert_array_equal(swapped[0], 1 - votes[0])


def test_pair_bootstrap_equals_a_resampling_loop() -> None:
    rng = np.random.default_rng(10)
    n_images, pairs = 6, np.array(list(itertools.combinations(range(6), 2)))
    votes = rng.integers(0, 2, (len(pairs), 3)).astype(float)
    low, high = cd.pair_bootstrap({"x": votes}, pairs, n_images, n_boot=200, seed=4)["x"]
    draws = np.random.default_rng(4).integers(0, n_images, 200 * n_images).reshape(200, -1)
    lookup = {tuple(p): v for p, v in zip(pairs.tolist(), votes, strict=True)}
    means = []
    for draw in draws:
        chosen = [
            lookup[(min(i, j), max(i, j))] for i, j in itertools.combinations(draw, 2) if i != j
        ]
        means.append(np.mean(chosen, axis=0))
    np.testing.assert_allclose(low, np.percentile(means, 2.5, axis=0))
    np.testing.assert_allclose(high, np.percentile(means, 97.5, axis=0))


# ----------------------------------------------------------------------------- cross-decoding


def simulate_cross(source: str, n_images: int = 72, seed: int = 0) -> tuple[xr.DataArray, dict]:
    """Responses driven by one feature set only, six sessions, a 100-300 ms window."""
    rng = np.random.default_rng(seed)
    n_channels, n_times, n_features = 8, 8, 6
    times = np.linspace(-0.2, 0.5, n_times)
    figure = rng.standard_normal((n_images, n_features))
    ground = rng.standard_normal((n_images, n_features))
    features = {"figure": figure, "ground": ground, "original": figure + ground}
    loadings = rng.standard_normal((n_features, n_channels, n_times))
    envelope = ((times >= ONSET) & (times <= OFFSET)).astype(float)
    signal = np.einsum("if,fct->ict", features[source], loadings) * envelope
    responses = signal + 1.0 * rng.standard_normal(signal.shape)
    meg = xr.DataArray(
        responses,
        dims=("image", "channel", "time"),
        coords={
            "image": [f"img{i:03d}" for i in range(n_images)],
            "time": times,
            "session": ("image", np.repeat(np.arange(6), n_images // 6)),
        },
    )
    return meg, features


SETTINGS = RidgeSettings(n_components=None, alphas=(0.1, 1.0, 10.0, 100.0), inner_splits=3)


@pytest.mark.parametrize("source", ["figure", "ground"])
def test_cross_decoding_finds_the_driving_feature_set(source: str) -> None:
    meg, features = simulate_cross(source, seed=11)
    table = cd.cross_decoding(
        meg, features, settings=SETTINGS, n_splits=3, n_boot=300, seed=0, participant="P1"
    )
    other = "ground" if source == "figure" else "figure"
    wide = table.pivot(index="time", columns="feature_set", values="value")
    before, during = _windows(wide.index.to_numpy())
    assert (wide.loc[during, source] > wide.loc[during, other] + 0.2).all()
    assert (wide.loc[during, source] > 0.8).all()
    assert abs(wide.loc[before, source].mean() - 0.5) < 0.1
    diff = table[table["feature_set"] == "figure_minus_ground"].set_index("time")
    excludes_zero = (diff["ci_low"] > 0) if source == "figure" else (diff["ci_high"] < 0)
    assert excludes_zero[during].all()
    assert ((diff["ci_low"] <= diff["value"]) & (diff["value"] <= diff["ci_high"])).all()
    assert set(table["feature_set"]) == {"figure", "ground", "original", "figure_minus_ground"}
    assert (table["metric"] == "identification_2v2").all()
    assert (table["n_images"] == 72).all() and (table["participant"] == "P1").all()
    assert table["n_pairs"].iloc[0] == 3 * 276  # all pairs within each of 3 folds of 24


def test_cross_decoding_bad_inputs() -> None:
    meg, features = simulate_cross("figure", n_images=24)
    with pytest.raises(UsageError, match="contrast"):
        cd.cross_decoding(meg, {"figure": features["figure"]}, settings=SETTINGS)
    bad = meg.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        cd.cross_decoding(bad, features, settings=SETTINGS, n_boot=10)


# ----------------------------------------------------------------------------- group


def _participant_tables(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(12)
    rows = []
    for p in range(n):
        for name in ("figure", "ground"):
            for t in (0.0, 0.1):
                rows.append(
                    {
                        "time": t,
                        "feature_set": name,
                        "metric": cd.IDENTIFICATION,
                        "value": rng.uniform(0.4, 0.9),
                        "ci_low": 0.0,
                        "ci_high": 1.0,
                        "n_images": 100,
                        "participant": f"P{p}",
                    }
                )
    return pd.DataFrame(rows)


def test_group_decoding_bootstraps_participants() -> None:
    table = _participant_tables(4)
    group = cd.group_decoding(table, n_boot=500, seed=3)
    assert len(group) == 4 and (group["participant"] == "group").all()
    assert (group["n_participants"] == 4).all()
    draws = np.random.default_rng(3).integers(0, 4, (500, 4))
    for row in group.itertuples():
        own = table[(table["feature_set"] == row.feature_set) & (table["time"] == row.time)]
        values = own.sort_values("participant")["value"].to_numpy()
        assert row.value == pytest.approx(values.mean())
        means = values[draws].mean(axis=1)
        assert row.ci_low == pytest.approx(np.percentile(means, 2.5))
        assert row.ci_high == pytest.approx(np.percentile(means, 97.5))


def test_group_decoding_without_enough_participants_has_no_interval() -> None:
    group = cd.group_decoding(_participant_tables(2), n_boot=50)
    assert group["ci_low"].isna().all() and group["ci_high"].isna().all()
    assert group["value"].notna().all()
    with pytest.raises(DataError, match="lack rows"):
        cd.group_decoding(_participant_tables(3).iloc[1:], n_boot=50)


# ----------------------------------------------------------------------------- figure


def test_decoding_figure_is_written(tmp_path) -> None:
    from figureground.report.decoding_figure import decoding_figure

    test = simulate_test(n_images=8, n_reps=3, n_channels=4, n_times=6)
    pairwise = dec.decoding_table(dec.pairwise_decoding(test), participant="P1")
    generalisation = dec.temporal_generalisation(test)
    meg, features = simulate_cross("figure", n_images=24)
    cross = cd.cross_decoding(meg, features, settings=SETTINGS, n_splits=3, n_boot=20)
    png = decoding_figure(pairwise, generalisation, cross, tmp_path / "decoding.png")
    assert png[:4] == b"\x89PNG"
    assert (tmp_path / "decoding.png").stat().st_size > 10_000
    assert (tmp_path / "decoding.svg").exists()
    empty = decoding_figure(None, None, None, tmp_path / "empty")
    assert empty[:4] == b"\x89PNG"
