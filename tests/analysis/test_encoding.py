"""Encoding models: ridge scores, variance partitioning, fold hygiene, alignment."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy.stats import pearsonr
from sklearn.metrics import r2_score

from figureground.analysis import encoding
from figureground.errors import DataError, UsageError

N_IMAGES, N_FEATURES, N_CHANNELS, N_TIMES, N_SESSIONS = 120, 8, 3, 4, 4
FAST = encoding.RidgeSettings(n_components=None, n_iter=8, inner_splits=3, dtype="float64")


def _ids(n: int) -> list[str]:
    return [f"img{i:03d}" for i in range(n)]


def _features(values: np.ndarray) -> xr.DataArray:
    return xr.DataArray(values, dims=("image", "unit"), coords={"image": _ids(len(values))})


def _meg(values: np.ndarray, sessions: bool = True) -> xr.DataArray:
    n = len(values)
    coords = {
        "image": _ids(n),
        "channel": [f"MEG{c:04d}" for c in range(values.shape[1])],
        "time": np.arange(values.shape[2]) * 0.01,
    }
    if sessions:
        coords["session"] = ("image", np.arange(n) % N_SESSIONS)
    return xr.DataArray(values, dims=("image", "channel", "time"), coords=coords)


@pytest.fixture(scope="module")
def bands() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (
        rng.standard_normal((N_IMAGES, N_FEATURES)),
        rng.standard_normal((N_IMAGES, N_FEATURES)),
    )


def _responses(driver: np.ndarray, noise: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    weights = rng.standard_normal((driver.shape[1], N_CHANNELS * N_TIMES))
    clean = driver @ weights
    noisy = clean + noise * clean.std() * rng.standard_normal(clean.shape)
    return noisy.reshape(len(driver), N_CHANNELS, N_TIMES)


@pytest.mark.parametrize("driven_by", ["fg", "bg"])
def test_variance_partition_gives_unique_variance_to_the_driving_band(bands, driven_by):
    fg, bg = bands
    meg = _meg(_responses(fg if driven_by == "fg" else bg, noise=0.5, seed=1))
    table = encoding.variance_partition(
        meg, _features(fg), _features(bg), n_splits=4, settings=FAST, participant=1
    )
    assert set(table["component"]) == set(encoding.PARTITION_COMPONENTS)
    assert (table["participant"] == 1).all()
    assert len(table) == len(encoding.PARTITION_COMPONENTS) * N_TIMES
    value = table.groupby("component")["value"].mean()
    other = "bg" if driven_by == "fg" else "fg"
    # noise sd = half the signal sd -> ceiling R² = 0.8
    assert value[f"unique_{driven_by}"] > 0.6
    assert abs(value[f"unique_{other}"]) < 0.05
    assert value[driven_by] > 0.7
    assert value[other] < 0.05
    joint = table[table["component"] == "joint"]["value"].to_numpy()
    fg_r2 = table[table["component"] == "fg"]["value"].to_numpy()
    bg_r2 = table[table["component"] == "bg"]["value"].to_numpy()
    shared = table[table["component"] == "shared"]["value"].to_numpy()
    np.testing.assert_allclose(shared, fg_r2 + bg_r2 - joint)


def test_encoding_scores_equal_scipy_pearson_on_each_held_out_fold(bands):
    fg, _ = bands
    meg = _meg(_responses(fg, noise=1.0, seed=2))
    scores = encoding.encode(meg, _features(fg), n_splits=4, settings=FAST, seed=3)
    assert scores.dims == ("fold", "time", "channel")
    assert scores.attrs["folds_by"] == "session"
    Y = meg.values.reshape(N_IMAGES, -1)
    splits = encoding.outer_splits(meg, 4, seed=3)
    assert len(splits) == scores.sizes["fold"]
    train, test = splits[1]
    with encoding.ridge_backend("numpy"):
        predicted = encoding.fit_predict(
            [fg[train]], Y[train], [fg[test]], meg["session"].values[train], FAST, seed=3
        )
    expected = np.array([pearsonr(Y[test][:, j], predicted[:, j])[0] for j in range(Y.shape[1])])
    got = scores.isel(fold=1).transpose("channel", "time").values.ravel()
    np.testing.assert_allclose(got, expected, atol=1e-10)
    assert got.mean() > 0.4  # the features do predict the responses
    table = encoding.encoding_table(scores, participant=2, layer="layer2")
    np.testing.assert_allclose(table["value"], scores.mean(("fold", "channel")).values)
    assert (table["layer"] == "layer2").all()


def test_pearson_and_r2_columns_match_references():
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((30, 5)), rng.standard_normal((30, 5))
    b[:, 0] += 2 * a[:, 0]
    expected = [pearsonr(a[:, j], b[:, j])[0] for j in range(5)]
    np.testing.assert_allclose(encoding.pearson_columns(a, b), expected, atol=1e-12)
    np.testing.assert_allclose(
        encoding.r2_columns(a, b), r2_score(a, b, multioutput="raw_values"), atol=1e-12
    )


def test_pca_is_fitted_on_training_images_only(bands, monkeypatch):
    fg, _ = bands
    meg = _meg(_responses(fg, noise=1.0, seed=5))
    fitted: list[np.ndarray] = []

    class SpyPCA(encoding.PCA):
        def fit_transform(self, X, y=None):
            fitted.append(np.array(X))
            return super().fit_transform(X, y)

        def fit(self, X, y=None):
            fitted.append(np.array(X))
            return super().fit(X, y)

    monkeypatch.setattr(encoding, "PCA", SpyPCA)
    settings = encoding.RidgeSettings(n_components=4, inner_splits=3)
    encoding.encode(meg, _features(fg), n_splits=4, settings=settings)
    splits = encoding.outer_splits(meg, 4, seed=0)
    assert len(fitted) == len(splits)
    for X_fit, (train, test) in zip(fitted, splits, strict=True):
        np.testing.assert_array_equal(X_fit, fg[train])
        assert not set(map(tuple, X_fit)) & set(map(tuple, fg[test]))


def test_outer_folds_keep_sessions_apart_and_fall_back_to_images(bands, caplog):
    fg, _ = bands
    meg = _meg(_responses(fg, noise=1.0, seed=6))
    sessions = meg["session"].values
    for train, test in encoding.outer_splits(meg, 5):
        assert not set(sessions[train]) & set(sessions[test])
    assert len(encoding.outer_splits(meg, 5)) == N_SESSIONS  # capped at the session count
    no_sessions = _meg(meg.values, sessions=False)
    with caplog.at_level("INFO", logger="figureground"):
        splits = encoding.outer_splits(no_sessions, 5, seed=0)
    assert "no 'session' coordinate" in caplog.text
    assert len(splits) == 5
    tested = np.sort(np.concatenate([test for _, test in splits]))
    np.testing.assert_array_equal(tested, np.arange(N_IMAGES))


def test_features_are_aligned_by_image_id(bands):
    fg, _ = bands
    meg = _meg(_responses(fg, noise=1.0, seed=7))
    shuffled = np.random.default_rng(8).permutation(N_IMAGES)
    extra = xr.DataArray(
        np.vstack([fg[shuffled], np.zeros((2, N_FEATURES))]),
        dims=("image", "unit"),
        coords={"image": [*np.array(_ids(N_IMAGES))[shuffled], "unknown_a", "unknown_b"]},
    )
    subset = meg.isel(image=slice(0, 100))
    aligned_meg, (X,) = encoding.align(subset, extra)
    assert aligned_meg.sizes["image"] == 100
    np.testing.assert_array_equal(X, fg[:100])
    direct = encoding.encode(meg, _features(fg), n_splits=4, settings=FAST)
    via_ids = encoding.encode(meg, extra, n_splits=4, settings=FAST)
    np.testing.assert_allclose(direct.values, via_ids.values, atol=1e-12)


def test_alignment_errors_name_the_problem(bands):
    fg, _ = bands
    meg = _meg(_responses(fg, noise=1.0, seed=9))
    other = xr.DataArray(fg, dims=("image", "unit"), coords={"image": [f"x{i}" for i in fg[:, 0]]})
    with pytest.raises(DataError, match="no image id"):
        encoding.align(meg, other)
    with pytest.raises(DataError, match="plain array"):
        encoding.align(meg, fg[:10])
    with pytest.raises(DataError, match="dims"):
        encoding.align(meg.transpose("channel", "image", "time"), fg)


def test_ridge_backend_is_restored_and_checked():
    from himalaya.backend import get_backend

    before = get_backend().name
    with encoding.ridge_backend("torch") as backend:
        assert backend.name == "torch"
        assert get_backend().name == "torch"
    assert get_backend().name == before
    with pytest.raises(UsageError, match="ridge backend"), encoding.ridge_backend("jax"):
        pass


def test_torch_backend_matches_numpy(bands):
    fg, _ = bands
    meg = _meg(_responses(fg, noise=1.0, seed=10))
    numpy_scores = encoding.encode(meg, _features(fg), n_splits=4, settings=FAST)
    torch_scores = encoding.encode(meg, _features(fg), n_splits=4, settings=FAST, backend="torch")
    np.testing.assert_allclose(torch_scores.values, numpy_scores.values, atol=1e-6)
