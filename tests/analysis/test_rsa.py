"""RDM properties, independent references (scipy) and the time-resolved RSA table."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import pdist

from figureground.analysis.rdm_compare import rank_rows
from figureground.analysis.rsa import compare_rdms, compute_rdms, rsa_timecourse
from figureground.errors import DataError, UsageError


def _permute_condensed(rdm: np.ndarray, perm: np.ndarray) -> np.ndarray:
    from scipy.spatial.distance import squareform

    square = squareform(rdm, checks=False)
    return squareform(square[np.ix_(perm, perm)], checks=False)


@pytest.mark.parametrize(
    ("metric", "scipy_metric"),
    [("sqeuclidean", "sqeuclidean"), ("cosine", "cosine"), ("correlation", "correlation")],
)
def test_metrics_match_scipy_pdist(metric: str, scipy_metric: str) -> None:
    X = np.random.default_rng(0).normal(size=(12, 30))
    np.testing.assert_allclose(compute_rdms(X, metric), pdist(X, scipy_metric), atol=1e-10)
    np.testing.assert_allclose(
        compute_rdms(X, "euclidean"), pdist(X, "sqeuclidean") / 30, atol=1e-10
    )


def test_time_resolved_equals_per_time_point_and_torch_backend() -> None:
    X = np.random.default_rng(1).normal(size=(9, 6, 7)).astype(np.float32)
    rdms = compute_rdms(X, "correlation", batch_size=3)
    assert rdms.shape == (7, 36) and rdms.dtype == np.float32
    for t in range(7):
        np.testing.assert_allclose(rdms[t], pdist(X[:, :, t], "correlation"), atol=1e-5)
    np.testing.assert_allclose(
        compute_rdms(X, "correlation", backend="torch", device="cpu"), rdms, atol=1e-5
    )


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(3, 12),
    f=st.integers(2, 9),
    seed=st.integers(0, 10_000),
    scale=st.floats(0.01, 100),
    metric=st.sampled_from(["correlation", "euclidean", "sqeuclidean", "cosine"]),
)
def test_rdm_properties(n: int, f: int, seed: int, scale: float, metric: str) -> None:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, f))
    rdm = compute_rdms(X, metric)
    assert rdm.shape == (n * (n - 1) // 2,)
    assert np.all(rdm >= -1e-10)
    perm = rng.permutation(n)
    np.testing.assert_allclose(
        compute_rdms(X[perm], metric), _permute_condensed(rdm, perm), atol=1e-9
    )
    if metric in ("correlation", "cosine"):  # scale invariant (correlation: also shift)
        shifted = X * scale + (rng.normal(size=(n, 1)) if metric == "correlation" else 0)
        np.testing.assert_allclose(compute_rdms(shifted, metric), rdm, atol=1e-8)
    else:  # squared distances scale with the square
        np.testing.assert_allclose(
            compute_rdms(X * scale, metric), rdm * scale**2, rtol=1e-8, atol=1e-10
        )


@settings(max_examples=25, deadline=None)
@given(size=st.integers(2, 60), seed=st.integers(0, 10_000), levels=st.integers(1, 10))
def test_rank_rows_equals_scipy_rankdata(size: int, seed: int, levels: int) -> None:
    values = np.random.default_rng(seed).integers(0, levels, size=(3, size)).astype(np.float32)
    np.testing.assert_array_equal(rank_rows(values, n_jobs=2), stats.rankdata(values, axis=1))


def test_partial_correlation_matches_formula_and_regression() -> None:
    rng = np.random.default_rng(2)
    z = rng.normal(size=200)
    y = z + rng.normal(size=200)
    data = np.stack([y + 0.5 * z + rng.normal(size=200), rng.normal(size=200)])
    models = np.stack([y, z])
    ours = compare_rdms(data, models, "partial_pearson")
    r = np.corrcoef(np.vstack([data, models]))
    rxy, rxz, ryz = r[:2, 2], r[:2, 3], r[2, 3]
    np.testing.assert_allclose(ours[:, 0], (rxy - rxz * ryz) / np.sqrt((1 - rxz**2) * (1 - ryz**2)))
    semi = compare_rdms(data, models, "semipartial_pearson")
    np.testing.assert_allclose(semi[:, 0], (rxy - rxz * ryz) / np.sqrt(1 - ryz**2))
    # three models: residualise on the other two by least squares
    models3 = np.vstack([models, rng.normal(size=200)])
    design = np.column_stack([np.ones(200), models3[1:].T])

    def resid(v: np.ndarray) -> np.ndarray:
        return v - design @ np.linalg.lstsq(design, v, rcond=None)[0]

    expected = stats.pearsonr(resid(data[0]), resid(models3[0])).statistic
    assert compare_rdms(data, models3, "partial_pearson")[0, 0] == pytest.approx(expected)
    ranked = compare_rdms(data, models3, "partial_spearman")[0, 0]
    data_r, models_r = stats.rankdata(data[0]), stats.rankdata(models3, axis=1)
    design = np.column_stack([np.ones(200), models_r[1:].T])
    assert ranked == pytest.approx(stats.pearsonr(resid(data_r), resid(models_r[0])).statistic)


def test_errors_are_one_line() -> None:
    with pytest.raises(UsageError, match="metric"):
        compute_rdms(np.zeros((3, 4)), "manhattan")
    with pytest.raises(DataError, match="at least 2 conditions"):
        compute_rdms(np.zeros((1, 4)))
    with pytest.raises(DataError, match="NaN"):
        compute_rdms(np.full((3, 4), np.nan))
    with pytest.raises(UsageError, match="equal numbers of pairs"):
        compare_rdms(np.zeros((2, 3)), np.zeros((2, 6)), "pearson")
    with pytest.raises(UsageError, match="at least 2 model"):
        compare_rdms(np.zeros((2, 3)), np.ones(3), "partial_pearson")
    with pytest.raises(DataError, match="every condition in every fold"):
        compute_rdms(np.zeros((3, 2)), "crossnobis", folds=[0, 0, 1], conditions=[0, 1, 0])


def _study(seed: int = 0) -> tuple[xr.DataArray, dict[str, xr.DataArray]]:
    """MEG built from the no-background features at t >= 0.1 s, noise before."""
    rng = np.random.default_rng(seed)
    n_img, n_ch, n_times = 24, 10, 5
    ids = [f"k{i // 2}_{i % 2 + 1:02d}" for i in range(n_img)]
    feats = {
        c: rng.normal(size=(n_img, 8, 2, 2)).astype(np.float32)
        for c in ("original", "no_background", "no_foreground")
    }
    mix = rng.normal(size=(32, n_ch))
    signal = feats["no_background"].reshape(n_img, -1) @ mix
    data = rng.normal(size=(n_img, n_ch, n_times)) * 0.1
    data[:, :, 2:] += signal[:, :, None]
    meg = xr.DataArray(
        data.astype(np.float32),
        dims=("image", "channel", "time"),
        coords={
            "image": ids,
            "channel": [f"MEG{c}" for c in range(n_ch)],
            "time": np.arange(n_times) * 0.05,
            "concept": ("image", [i.split("_")[0] for i in ids]),
        },
        attrs={"participant": "P2"},
    )
    arrays = {
        c: xr.DataArray(
            v, dims=("image", "channel", "y", "x"), coords={"image": ids}, name="layer2"
        )
        for c, v in feats.items()
    }
    return meg, arrays


def test_rsa_timecourse_finds_planted_condition() -> None:
    meg, feats = _study()
    table = rsa_timecourse(meg, feats, method="pearson")
    assert {"participant", "condition", "time", "value", "metric", "method", "level"} <= set(
        table.columns
    )
    assert set(table.participant) == {"P2"} and set(table.level) == {"image"}
    plain = table[table.given == ""].pivot(index="time", columns="condition", values="value")
    late = plain.loc[plain.index >= 0.1]
    assert (late["no_background"] > 0.5).all()
    assert (late["no_background"] > late["no_foreground"] + 0.3).all()
    # direct reference at one time point: pdist + pearson
    t = 3
    meg_rdm = pdist(meg.values[:, :, t], "correlation")
    model_rdm = pdist(feats["original"].values.reshape(24, -1), "correlation")
    assert plain.iloc[t]["original"] == pytest.approx(
        stats.pearsonr(meg_rdm, model_rdm).statistic, abs=1e-5
    )
    partial = table[table.given != ""]
    assert set(zip(partial.condition, partial.given, strict=True)) == {
        ("no_background", "no_foreground"),
        ("no_foreground", "no_background"),
    }
    assert set(partial.method) == {"partial_pearson"}


def test_rsa_timecourse_concept_level_and_join() -> None:
    meg, feats = _study(1)
    feats["original"] = feats["original"].isel(image=slice(0, 20))  # 4 images lack features
    table = rsa_timecourse(meg, feats, level="concept", partial=False)
    assert set(table.n_conditions) == {10} and set(table.given) == {""}
    concept_meg = meg.isel(image=slice(0, 20)).groupby("concept").mean("image")
    concept_feat = (
        feats["original"]
        .assign_coords(concept=("image", meg["concept"].values[:20]))
        .groupby("concept")
        .mean("image")
    )
    ref = stats.spearmanr(
        pdist(concept_meg.values[:, :, 0], "correlation"),
        pdist(concept_feat.values.reshape(10, -1), "correlation"),
    ).statistic
    got = table[(table.condition == "original") & (table.time == 0.0)]["value"].item()
    assert got == pytest.approx(ref, abs=1e-6)
    with pytest.raises(DataError, match="at least 3 images"):
        rsa_timecourse(
            meg, {"original": feats["original"].assign_coords(image=[f"x{i}" for i in range(20)])}
        )


@pytest.mark.gpu
def test_torch_cuda_backend_equals_numpy() -> None:
    X = np.random.default_rng(3).normal(size=(300, 40, 6)).astype(np.float32)
    for metric in ("correlation", "euclidean", "cosine"):
        np.testing.assert_allclose(
            compute_rdms(X, metric, backend="torch", device="cuda"),
            compute_rdms(X, metric),
            atol=1e-4,
        )
    folds = X[:120].reshape(4, 30, 40, 6)
    np.testing.assert_allclose(
        compute_rdms(folds, "crossnobis", noise="shrinkage_diag", backend="torch", device="cuda"),
        compute_rdms(folds, "crossnobis", noise="shrinkage_diag"),
        atol=1e-4,
    )


def test_partial_correlation_is_bounded_and_nan_when_models_are_collinear() -> None:
    rng = np.random.default_rng(4)
    data = rng.standard_normal((50, 3))  # few pairs, as with six concepts
    models = rng.standard_normal((2, 3))
    values = compare_rdms(data, models, "partial_pearson")
    finite = values[np.isfinite(values)]
    assert finite.size and np.all(np.abs(finite) <= 1.0)
    collinear = np.vstack([models[0], 2.0 * models[0] + 1.0])
    assert np.isnan(compare_rdms(data, collinear, "partial_pearson")).all()


def test_spearman_partial_curves_share_ranks_and_equal_direct_references() -> None:
    """Spearman with partial curves ranks each time point once; the values are those of a
    direct scipy Spearman and of compare_rdms' partial_spearman on the same RDMs."""
    meg, feats = _study()
    table = rsa_timecourse(meg, feats, method="spearman")
    t = 3
    meg_rdm = pdist(meg.values[:, :, t], "correlation")
    model = {c: pdist(v.values.reshape(24, -1), "correlation") for c, v in feats.items()}
    at = table[np.isclose(table.time, float(meg.time[t]))].set_index(["condition", "given"])
    for condition, rdm in model.items():
        expected = stats.spearmanr(meg_rdm, rdm).statistic
        assert at.loc[(condition, ""), "value"] == pytest.approx(expected, abs=1e-6)
    pair = np.stack([model["no_background"], model["no_foreground"]])
    expected = compare_rdms(meg_rdm[None], pair, "partial_spearman")[0, 0]
    assert at.loc[("no_background", "no_foreground"), "value"] == pytest.approx(expected, abs=1e-6)
    assert set(at["method"]) == {"spearman", "partial_spearman"}
