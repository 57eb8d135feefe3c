"""Our RDMs and comparisons equal rsatoolbox's on random data (float64 1e-8, float32 1e-4)."""

from __future__ import annotations

import numpy as np
import pytest
from rsatoolbox.data import Dataset, TemporalDataset
from rsatoolbox.data.noise import cov_from_residuals, prec_from_residuals
from rsatoolbox.rdm import RDMs, calc_rdm, calc_rdm_movie, compare

from figureground.analysis.rdm_calc import fold_residuals
from figureground.analysis.rsa import (
    compare_rdms,
    compute_rdms,
    from_rsatoolbox,
    noise_covariance,
    noise_precision,
    to_rsatoolbox,
)

# rsatoolbox's own crossnobis code casts NaN descriptors internally
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered in cast")
TOL = {np.float64: 1e-8, np.float32: 1e-4}
SHARED_METRICS = ("correlation", "euclidean")
SHARED_METHODS = {
    "cosine": "cosine",
    "pearson": "corr",
    "spearman": "spearman",
    "kendall_tau_a": "tau-a",
}
NOISE_METHODS = ("shrinkage_diag", "shrinkage_eye", "diag", "full")


def _conds(n: int) -> np.ndarray:
    return np.array([f"c{i:03d}" for i in range(n)])  # sorts like its index, as rsatoolbox sorts


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("metric", SHARED_METRICS)
def test_calc_rdm_single(metric: str, dtype: type) -> None:
    X = np.random.default_rng(0).normal(size=(15, 23)).astype(dtype)
    ref = calc_rdm(Dataset(X.astype(np.float64)), method=metric).get_vectors()[0]
    ours = compute_rdms(X, metric)
    assert ours.shape == ref.shape and ours.dtype == dtype
    np.testing.assert_allclose(ours, ref, rtol=0, atol=TOL[dtype])


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("metric", SHARED_METRICS)
def test_calc_rdm_movie(metric: str, dtype: type, backend: str) -> None:
    X = np.random.default_rng(1).normal(size=(14, 9, 11)).astype(dtype)
    dataset = TemporalDataset(
        X.astype(np.float64),
        obs_descriptors={"cond": _conds(14)},
        time_descriptors={"time": np.arange(11) * 0.01},
    )
    ref = calc_rdm_movie(dataset, method=metric, descriptor="cond").get_vectors()
    ours = compute_rdms(X, metric, batch_size=4, backend=backend)
    assert ours.shape == (11, 91)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=TOL[dtype])


@pytest.mark.parametrize("noise", [None, *NOISE_METHODS])
def test_crossnobis_matches_rsatoolbox(noise: str | None) -> None:
    rng = np.random.default_rng(2)
    n_folds, n_cond, n_ch = 4, 10, 6
    folds = rng.normal(size=(n_folds, n_cond, n_ch)) + rng.normal(size=(1, n_cond, n_ch))
    residuals, dof = fold_residuals(folds)
    precision = None if noise is None else prec_from_residuals(residuals, dof=dof, method=noise)
    rows = folds.reshape(-1, n_ch)
    fold_labels = np.repeat(np.arange(n_folds), n_cond)
    cond_labels = np.tile(_conds(n_cond), n_folds)
    dataset = Dataset(rows, obs_descriptors={"cond": cond_labels, "fold": fold_labels})
    ref = calc_rdm(
        dataset, method="crossnobis", descriptor="cond", cv_descriptor="fold", noise=precision
    ).get_vectors()[0]
    np.testing.assert_allclose(compute_rdms(folds, "crossnobis", noise=noise), ref, atol=1e-8)
    # rows with fold and condition labels (shuffled) give the same
    order = rng.permutation(rows.shape[0])
    labelled = compute_rdms(
        rows[order],
        "crossnobis",
        noise=noise,
        folds=fold_labels[order],
        conditions=cond_labels[order],
    )
    np.testing.assert_allclose(labelled, ref, atol=1e-8)
    # an explicit precision matrix, float32 data
    if precision is not None:
        ours32 = compute_rdms(folds.astype(np.float32), "crossnobis", noise=precision)
        np.testing.assert_allclose(ours32, ref, atol=1e-4)


def test_crossnobis_time_resolved_matches_movie_per_time_point() -> None:
    rng = np.random.default_rng(3)
    folds = rng.normal(size=(3, 8, 5, 4))
    ours = compute_rdms(folds, "crossnobis", batch_size=3)
    torch_cpu = compute_rdms(folds, "crossnobis", backend="torch", device="cpu")
    np.testing.assert_allclose(torch_cpu, ours, atol=1e-10)
    assert ours.shape == (4, 28)
    for t in range(4):
        rows = folds[..., t].reshape(-1, 5)
        dataset = Dataset(
            rows,
            obs_descriptors={"cond": np.tile(_conds(8), 3), "fold": np.repeat(np.arange(3), 8)},
        )
        ref = calc_rdm(
            dataset, method="crossnobis", descriptor="cond", cv_descriptor="fold"
        ).get_vectors()[0]
        np.testing.assert_allclose(ours[t], ref, atol=1e-8)


@pytest.mark.parametrize("method", NOISE_METHODS)
def test_noise_estimates_match_rsatoolbox(method: str) -> None:
    residuals = np.random.default_rng(4).normal(size=(40, 7)) @ np.diag(np.arange(1, 8))
    np.testing.assert_allclose(
        noise_covariance(residuals, method),
        cov_from_residuals(residuals, method=method),
        atol=1e-10,
    )
    np.testing.assert_allclose(
        noise_precision(residuals, method, dof=30),
        prec_from_residuals(residuals, dof=30, method=method),
        rtol=1e-8,
        atol=1e-10,
    )


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("method", list(SHARED_METHODS))
def test_compare_matches_rsatoolbox(method: str, dtype: type) -> None:
    rng = np.random.default_rng(5)
    data = rng.normal(size=(7, 66)).astype(dtype)
    models = rng.normal(size=(3, 66)).astype(dtype)
    models[1, :20] = models[1, 0]  # a model predicting ties
    data[2, :6] = data[2, 0]
    models[2] = np.round(models[2])  # many ties
    ref = compare(RDMs(data), RDMs(models), method=SHARED_METHODS[method])
    ours = compare_rdms(data, models, method, batch_size=3)
    assert ours.shape == (7, 3)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=TOL[dtype])


def test_compare_drops_nan_pairs_like_rsatoolbox() -> None:
    rng = np.random.default_rng(6)
    data, models = rng.normal(size=(2, 45)), rng.normal(size=(2, 45))
    data[:, 3] = np.nan
    models[:, 3] = np.nan
    ref = compare(RDMs(data), RDMs(models), method="corr")
    np.testing.assert_allclose(compare_rdms(data, models, "pearson"), ref, atol=1e-12)


def test_rsatoolbox_round_trip() -> None:
    rdms = compute_rdms(np.random.default_rng(7).normal(size=(6, 8, 3)))
    obj = to_rsatoolbox(
        rdms,
        {"participant": "P1"},
        dissimilarity_measure="correlation",
        rdm_descriptors={"time": [0.0, 0.1, 0.2]},
        pattern_descriptors={"image": list("abcdef")},
    )
    assert obj.n_rdm == 3 and obj.n_cond == 6
    np.testing.assert_array_equal(obj.get_matrices()[1][0, 2], rdms[1, 1])
    vectors, info = from_rsatoolbox(obj)
    np.testing.assert_array_equal(vectors, rdms)
    assert info["descriptors"]["participant"] == "P1"
    assert list(info["rdm_descriptors"]["time"]) == [0.0, 0.1, 0.2]
    assert info["dissimilarity_measure"] == "correlation"
