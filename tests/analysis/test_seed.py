"""Seed method (Lanczos-resampled MEG vs embedding) and the generic summaries."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from figureground.analysis import summaries
from figureground.analysis.seed import seed_analysis, seed_distance, seed_scale_check
from figureground.errors import DataError, UsageError


def _reference_distance(meg: np.ndarray, embedding: np.ndarray) -> float:
    """The study's computation written out for one image."""
    emb2d = embedding.reshape(embedding.shape[0], -1).astype(np.float32)
    resized = cv2.resize(
        meg.astype(np.float32), (emb2d.shape[1], emb2d.shape[0]), interpolation=cv2.INTER_LANCZOS4
    )
    return float(np.linalg.norm((resized - emb2d).astype(np.float64)))


def test_seed_distance_real_shapes_matches_loop_reference() -> None:
    rng = np.random.default_rng(1)
    meg = rng.normal(size=(3, 271, 281)).astype(np.float32)
    emb = rng.normal(size=(3, 512, 28, 28)).astype(np.float32)
    ours = seed_distance(meg, emb)
    reference = np.array([_reference_distance(meg[i], emb[i]) for i in range(3)])
    assert ours.shape == (3,)
    np.testing.assert_allclose(ours, reference, rtol=1e-6)
    # one image, single matrices
    assert seed_distance(meg[0], emb[0]) == pytest.approx(reference[0], rel=1e-6)


def test_seed_distance_shared_meg_and_batches_over_cv_channel_limit() -> None:
    rng = np.random.default_rng(2)
    meg = rng.normal(size=(130, 6, 9)).astype(np.float32)  # > 128 images: two cv2 calls
    emb = rng.normal(size=(130, 4, 3, 5)).astype(np.float32)
    reference = np.array([_reference_distance(meg[i], emb[i]) for i in range(130)])
    np.testing.assert_allclose(seed_distance(meg, emb), reference, rtol=1e-6)
    shared = seed_distance(meg[0], emb)
    np.testing.assert_allclose(shared, [_reference_distance(meg[0], e) for e in emb], rtol=1e-6)
    # (images, channels, positions) with shared MEG needs batched=True
    flat = emb.reshape(130, 4, 15)
    np.testing.assert_allclose(seed_distance(meg[0], flat, batched=True), shared, rtol=1e-6)


def test_noise_meg_distance_equals_embedding_norm() -> None:
    rng = np.random.default_rng(3)
    noise = rng.normal(size=(4, 271, 281)).astype(np.float32)
    emb = (rng.normal(size=(4, 512, 28, 28)) * 50 + 20).astype(np.float32)
    check = seed_scale_check(noise, emb)
    assert list(check.columns) == ["distance", "embedding_norm", "meg_norm", "relative_difference"]
    assert np.all(np.abs(check["relative_difference"]) < 1e-3)
    np.testing.assert_allclose(
        check["embedding_norm"],
        np.linalg.norm(emb.reshape(4, -1).astype(np.float64), axis=1),
        rtol=1e-6,
    )


def test_zscore_removes_scale() -> None:
    rng = np.random.default_rng(4)
    meg = rng.normal(size=(10, 12)).astype(np.float32)
    emb = rng.normal(size=(8, 3, 3)).astype(np.float32)
    plain = seed_distance(meg, emb)
    assert seed_distance(meg, emb * 100) > 50 * plain
    assert seed_distance(meg, emb * 100, zscore=True) == pytest.approx(
        seed_distance(meg, emb, zscore=True), rel=1e-4
    )


@settings(max_examples=25, deadline=None)
@given(
    images=st.integers(1, 5),
    sensors=st.integers(2, 9),
    times=st.integers(2, 9),
    channels=st.integers(1, 6),
    height=st.integers(1, 4),
    width=st.integers(1, 4),
)
def test_seed_distance_shapes(
    images: int, sensors: int, times: int, channels: int, height: int, width: int
) -> None:
    rng = np.random.default_rng(images * 1000 + sensors)
    meg = rng.normal(size=(images, sensors, times)).astype(np.float32)
    emb = rng.normal(size=(images, channels, height, width)).astype(np.float32)
    dist = seed_distance(meg, emb)
    assert dist.shape == (images,)
    assert np.all(dist >= 0)
    np.testing.assert_allclose(
        dist, [_reference_distance(meg[i], emb[i]) for i in range(images)], rtol=1e-5
    )
    pooled = seed_distance(meg, emb[:, :, 0, 0])  # (images, channels): one position
    assert pooled.shape == (images,)


@pytest.mark.parametrize(
    ("meg_shape", "emb_shape"),
    [
        ((5,), (2, 3, 3)),
        ((2, 4, 5), (3, 2, 3, 3)),
        ((2, 4, 5), (3, 3)),
        ((1, 2, 4, 5), (2, 3)),
    ],
)
def test_seed_distance_bad_shapes_are_one_line_errors(meg_shape: tuple, emb_shape: tuple) -> None:
    with pytest.raises(UsageError) as err:
        seed_distance(np.zeros(meg_shape), np.zeros(emb_shape))
    assert "\n" not in str(err.value)


def _meg(ids: list[str], concepts: list[str], seed: int) -> xr.DataArray:
    rng = np.random.default_rng(seed)
    return xr.DataArray(
        rng.normal(size=(len(ids), 5, 7)).astype(np.float32),
        dims=("image", "channel", "time"),
        coords={
            "image": ids,
            "channel": [f"MEG{i}" for i in range(5)],
            "time": np.linspace(-0.1, 0.5, 7),
            "concept": ("image", concepts),
        },
    )


def _features(ids: list[str], seed: int) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    data = xr.DataArray(
        rng.normal(size=(len(ids), 4, 2, 2)).astype(np.float32),
        dims=("image", "channel", "y", "x"),
        coords={"image": ids},
    )
    return xr.Dataset({"layer2": data}, attrs={"model": "resnet50", "weights": "W"})


def test_seed_analysis_table_joins_by_id() -> None:
    meg = {"P1": _meg(["a_01", "a_02", "b_01"], ["a", "a", "b"], 0)}
    feats = {
        c: _features(["b_01", "a_01", "zz"], i)
        for i, c in enumerate(["original", "no_background", "no_foreground"])
    }
    table = seed_analysis(meg, feats)
    assert {"participant", "image_id", "condition", "model", "weights", "layer", "distance"} <= set(
        table.columns
    )
    assert len(table) == 6 and set(table["image_id"]) == {"a_01", "b_01"}
    assert set(table["model"]) == {"resnet50"}
    row = table[(table.condition == "no_background") & (table.image_id == "b_01")]
    expected = _reference_distance(
        meg["P1"].sel(image="b_01").values,
        feats["no_background"]["layer2"].sel(image="b_01").values,
    )
    assert row["distance"].item() == pytest.approx(expected, rel=1e-6)
    # concept-average response and a time window
    concept = seed_analysis(
        meg, {"original": feats["original"]}, response="concept", tmin=0.0, tmax=0.4
    )
    window = meg["P1"].sel(time=slice(0.0, 0.4))
    mean_a = window.sel(image=["a_01", "a_02"]).mean("image").values
    got = concept.set_index("image_id").loc["a_01", "distance"]
    assert got == pytest.approx(
        _reference_distance(mean_a, feats["original"]["layer2"].sel(image="a_01").values), rel=1e-6
    )


def test_seed_analysis_no_match_is_data_error() -> None:
    meg = {"P1": _meg(["a_01"], ["a"], 0)}
    with pytest.raises(DataError, match=r"a_01.*zz"):
        seed_analysis(meg, {"original": _features(["zz"], 1)})


def test_describe_matches_scipy() -> None:
    rng = np.random.default_rng(5)
    table = pd.DataFrame(
        {
            "participant": ["P1"] * 40,
            "condition": ["x"] * 20 + ["y"] * 20,
            "distance": rng.normal(10, 2, 40),
        }
    )
    out = summaries.describe(table, n_boot=999, seed=3)
    x = table.distance[:20].to_numpy()
    first = out.iloc[0]
    assert first["mean"] == pytest.approx(x.mean())
    assert first["sem"] == pytest.approx(stats.sem(x))
    ref = stats.bootstrap((x,), np.mean, n_resamples=999, rng=np.random.default_rng(3))
    assert first["ci_low"] == pytest.approx(ref.confidence_interval.low)
    assert first["ci_high"] == pytest.approx(ref.confidence_interval.high)
    assert first["ci_low"] < first["mean"] < first["ci_high"]


def test_paired_tests_wilcoxon_and_rank_biserial() -> None:
    rng = np.random.default_rng(6)
    a = rng.normal(size=15)
    b = a + rng.normal(0.5, 1, size=15)
    table = pd.DataFrame(
        {
            "participant": "P1",
            "image_id": [f"i{k}" for k in range(15)] * 2,
            "condition": ["a"] * 15 + ["b"] * 15,
            "distance": np.concatenate([a, b]),
        }
    )
    out = summaries.paired_tests(table, n_boot=999)
    row = out.iloc[0]
    ref = stats.wilcoxon(a, b)
    assert (row.condition_a, row.condition_b) == ("a", "b")
    assert row.statistic == pytest.approx(ref.statistic)
    assert row.p_value == pytest.approx(ref.pvalue)
    # hand computation: rank |d|, sum positive and negative ranks
    d = a - b
    ranks = stats.rankdata(np.abs(d))
    r_plus, r_minus = ranks[d > 0].sum(), ranks[d < 0].sum()
    assert row.rank_biserial == pytest.approx((r_plus - r_minus) / ranks.sum())
    assert row.mean_difference == pytest.approx(d.mean())
    assert row.diff_ci_low < row.mean_difference < row.diff_ci_high


def test_rank_biserial_drops_zeros_and_is_signed() -> None:
    assert summaries.rank_biserial(np.array([0.0, 1.0, 2.0, 3.0])) == 1.0
    assert summaries.rank_biserial(np.array([-1.0, -2.0])) == -1.0
    assert summaries.rank_biserial(np.array([-1.0, 1.0])) == 0.0
