"""Tests of the mask-gated spatial readout (analysis.readout, analysis.readout_ratio).

Synthetic brains, built here: 400 images on a 14 x 14 grid, 12 random smooth channel maps,
object masks that are soft discs of radius 1.8-4.5 cells centred near the middle of the grid
(centre ~ N(6.5, 1.8) cells, as THINGS objects), 4 sessions. A brain reads
``sum_g X[i, :, g] * v[i, g]`` through 3 random channel mixtures into 20 sensors, with

- figure brain: ``v = m_i * s`` (the planted smooth non-uniform map ``s`` inside the mask),
- ground brain: ``v = (1 - m_i) * s``,
- centre brain: ``v = c`` (a fixed centre blob, whatever the mask).

Times 0..0.19 s in two 0.1 s windows, the signal in the second only (the ground and centre
brains: the second window alone). Response SNR
= 1: in the window averages, the signal's variance (over images and sensors) equals the
noise's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from scipy.ndimage import gaussian_filter
from sklearn.decomposition import PCA
from sklearn.linear_model import Ridge

from figureground.analysis import readout as ro
from figureground.analysis import readout_inputs as ri
from figureground.analysis import readout_ratio as rr
from figureground.analysis.encoding import pearson_columns
from figureground.errors import DataError

GRID = (14, 14)
N_IMAGES, N_CHANNELS, N_SENSORS, SNR = 400, 12, 20, 1.0


def _masks(n: int, rng: np.random.Generator, grid: tuple[int, int] = GRID) -> np.ndarray:
    rows, cols = np.mgrid[0 : grid[0], 0 : grid[1]].astype(float)
    centre = (np.array(grid) - 1) / 2
    centre_row = centre[0] + rng.normal(0, 1.8, n)
    centre_col = centre[1] + rng.normal(0, 1.8, n)
    radius = rng.uniform(1.8, 4.5, n)
    distance = np.hypot(rows - centre_row[:, None, None], cols - centre_col[:, None, None])
    return (1 / (1 + np.exp((distance - radius[:, None, None]) / 0.5))).astype(np.float32)


def _maps(n: int, channels: int, rng: np.random.Generator) -> np.ndarray:
    smooth = gaussian_filter(rng.standard_normal((n, channels, *GRID)), sigma=(0, 0, 1.2, 1.2))
    return (smooth / smooth.std()).astype(np.float32)


def _planted() -> np.ndarray:
    rows, cols = np.mgrid[0 : GRID[0], 0 : GRID[1]].astype(float)
    return 0.5 + np.exp(-((rows - 5) ** 2 + (cols - 8) ** 2) / 8) + 0.05 * (cols - 6.5)


def _centre() -> np.ndarray:
    rows, cols = np.mgrid[0 : GRID[0], 0 : GRID[1]].astype(float)
    return np.exp(-((rows - 6.5) ** 2 + (cols - 6.5) ** 2) / 6)


def _brain(kind: str, seed: int = 0, n_windows: int = 2) -> dict:
    rng = np.random.default_rng(seed)
    masks = _masks(N_IMAGES, rng)
    X = _maps(N_IMAGES, N_CHANNELS, rng)
    planted = _centre() if kind == "centre" else _planted()
    read = {
        "figure": masks * planted,
        "ground": (1 - masks) * planted,
        "centre": np.broadcast_to(planted, masks.shape),
    }[kind]
    latent = np.einsum("icrq,irq->ic", X, read) @ rng.standard_normal((N_CHANNELS, 3))
    signal = latent @ rng.standard_normal((3, N_SENSORS))
    signal /= signal.std()
    times = np.arange(10 * (2 - n_windows), 20) / 100.0
    course = (times >= 0.1).astype(float)
    noise = rng.standard_normal((N_IMAGES, N_SENSORS, len(times))) * np.sqrt(10)  # 10 samples
    responses = np.sqrt(SNR) * signal[:, :, None] * course + noise
    sessions = np.repeat(np.arange(4), N_IMAGES // 4)
    return {
        "X": X,
        "masks": masks,
        "responses": responses.astype(np.float32),
        "times": times,
        "sessions": sessions,
        "planted": planted,
    }


SETTINGS = rr.ReadoutSettings(n_splits=4, n_null=20, n_boot=300)


@pytest.fixture(scope="module")
def results() -> dict:
    out = {}
    for kind in ("figure", "ground", "centre"):  # the noise window in the first only
        brain = _brain(kind, n_windows=2 if kind == "figure" else 1)
        table, maps = rr.readout_table(
            brain["X"],
            brain["masks"],
            brain["responses"],
            brain["times"],
            brain["sessions"],
            SETTINGS,
        )
        out[kind] = (brain, table, maps)
    return out


def _corr(a: np.ndarray, b: np.ndarray, cells: np.ndarray) -> float:
    return float(np.corrcoef(a[cells], b[cells])[0, 1])


# ----------------------------------------------------------------------------- brains


def test_figure_brain(results):
    """Figure brain: ratio > 1 beyond the shuffled-mask null; s_in recovers the planted map
    (r >= 0.8 over cells covered by the masks on average >= 10%), s_out is small."""
    brain, table, maps = results["figure"]
    signal = table.iloc[-1]
    assert signal["ratio"] > 1 and signal["ci_low"] > signal["null_high"]
    assert signal["p_figure"] < 0.05 and signal["p_ground"] > 0.5
    assert signal["r_cv"] > 0.3
    covered = brain["masks"].mean(axis=0) >= 0.1
    s_in, s_out = maps["s_in"].values[-1], maps["s_out"].values[-1]
    assert _corr(s_in, brain["planted"], covered) >= 0.8
    assert np.abs(s_in[covered]).sum() > 2 * np.abs(s_out[covered]).sum()
    # the object-centred map is heavier inside one radius than beyond two
    offsets = maps["object_y"].values
    radius = np.hypot(offsets[:, None], offsets[None, :])
    centred = maps["object_map"].values[-1]
    assert np.nanmean(centred[radius < 1]) > 2 * np.nanmean(centred[radius > 2])


def test_ground_brain(results):
    """Ground brain: ratio < 1 below the null; s_out follows the planted map (r >= 0.5 over
    cells outside the masks >= 10% of the time on average; the planted map varies little in
    the periphery, so the bound is lower than the figure brain's)."""
    brain, table, maps = results["ground"]
    signal = table.iloc[-1]
    assert signal["ratio"] < 1 and signal["ci_high"] < signal["null_low"]
    assert signal["p_ground"] < 0.05 and signal["p_figure"] > 0.5
    outside = brain["masks"].mean(axis=0) <= 0.9
    assert _corr(maps["s_out"].values[-1], brain["planted"], outside) >= 0.5
    assert np.abs(maps["s_out"].values[-1]).sum() > np.abs(maps["s_in"].values[-1]).sum()


def test_centre_brain(results):
    """Centre brain: the raw ratio exceeds 1 (objects sit at the centre), but the shuffled
    null explains it (p_figure >= 0.05), and s_in ~ s_out where both are identifiable."""
    brain, table, maps = results["centre"]
    signal = table.iloc[-1]
    assert signal["ratio"] > 1.2
    assert signal["null_low"] <= signal["ratio"] <= signal["null_high"]
    assert signal["p_figure"] >= 0.05 and signal["p_ground"] >= 0.05
    coverage = brain["masks"].mean(axis=0)
    both = (coverage >= 0.1) & (coverage <= 0.9)
    assert _corr(maps["s_in"].values[-1], maps["s_out"].values[-1], both) >= 0.6


def test_noise_window_and_table(results):
    """The window without signal predicts nothing; the table has its columns and windows."""
    _, table, maps = results["figure"]
    assert list(table.columns) == rr.TABLE_COLUMNS
    np.testing.assert_allclose(table["time"], [0.05, 0.15])
    assert abs(table.iloc[0]["r_cv"]) < 0.1
    assert (table["n_images"] == N_IMAGES).all()
    assert ((table["p_figure"] > 0) & (table["p_figure"] <= 1)).all()
    assert maps["s_in"].shape == (2, *GRID)
    assert maps["object_map"].dims == ("time", "object_y", "object_x")


def test_gated_beats_plain_map_for_figure_only():
    """Held-out r of the gated readout exceeds a single map's for the figure brain, not for
    the centre brain (where the single map is the true model)."""
    gains = {}
    for kind in ("figure", "centre"):
        brain = _brain(kind, seed=1)
        _, means = ri.window_means(brain["responses"], brain["times"], 0.1)
        train, test = brain["sessions"] < 3, brain["sessions"] == 3
        basis = ri.fit_components(means[1][train], 5)
        scores = {}
        for gated in (True, False):
            fit = ro.fit_readout(
                brain["X"][train],
                brain["masks"][train],
                basis.transform(means[1][train]),
                gated=gated,
            )
            predicted = ro.predict(fit, brain["X"][test], brain["masks"][test])
            observed = basis.transform(means[1][test])
            scores[gated] = np.nanmean(pearson_columns(observed, predicted))
        gains[kind] = scores[True] - scores[False]
    assert gains["figure"] > 0.05
    assert gains["centre"] < 0.02


# ----------------------------------------------------------------------------- solver


def _small_problem(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = 60
    X = rng.standard_normal((n, 5, 4, 4))
    masks = rng.uniform(size=(n, 4, 4))
    s_in, s_out = rng.standard_normal(16), rng.standard_normal(16)
    w = ro.cell_weights(s_in, s_out, masks.reshape(n, -1))
    Y = ro.channel_inputs(X.reshape(n, 5, -1), w) @ rng.standard_normal((5, 1))  # rank 1
    Y = np.hstack([Y, 2 * Y]) + rng.standard_normal((n, 2)) + 3.0
    return X, masks, Y


def test_w_step_is_sklearn_ridge():
    """With the spatial map fixed, the W-step equals sklearn Ridge of Y on Z (intercept)."""
    X, masks, Y = _small_problem()
    rng = np.random.default_rng(1)
    s_in, s_out = rng.standard_normal(16), rng.standard_normal(16)
    Z = ro.channel_inputs(X.reshape(60, 5, -1), ro.cell_weights(s_in, s_out, masks.reshape(60, -1)))
    W, intercept = ro.w_step(Z, Y, alpha=3.0)
    reference = Ridge(alpha=3.0).fit(Z, Y)
    np.testing.assert_allclose(W, reference.coef_.T, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(intercept, reference.intercept_, rtol=1e-8)


@pytest.mark.parametrize("gated", [True, False])
def test_s_step_is_sklearn_ridge_on_explicit_design(gated):
    """With W fixed, the chunked normal equations solve the ridge of all y[i, k] on the
    explicitly built design (per-component intercepts), as sklearn Ridge does; torch agrees."""
    X, masks, Y = _small_problem()
    n = len(X)
    W = np.random.default_rng(2).standard_normal((5, 2))
    Xf, m = X.reshape(n, 5, -1), masks.reshape(n, -1)
    rows, targets = [], []
    for k in range(2):  # explicit design, one block of rows per component, centred per block
        block = []
        for i in range(n):
            p = W[:, k] @ Xf[i]
            block.append(np.concatenate([p * m[i], p * (1 - m[i])]) if gated else p)
        block = np.asarray(block)
        rows.append(block - block.mean(axis=0))
        targets.append(Y[:, k] - Y[:, k].mean())
    design, target = np.vstack(rows), np.concatenate(targets)
    reference = Ridge(alpha=0.7, fit_intercept=False).fit(design, target).coef_
    A, b = ro.spatial_normal_equations(Xf, m, W, Y, gated=gated, chunk=7)
    np.testing.assert_allclose(ro.ridge_solve(A, b, 0.7), reference, rtol=1e-7, atol=1e-10)
    A_t, b_t = ro.spatial_normal_equations(Xf, m, W, Y, gated=gated, chunk=7, device="cpu")
    np.testing.assert_allclose(A_t, A, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(b_t, b, rtol=1e-10, atol=1e-9)


def test_fit_is_a_fixed_point_of_both_steps():
    """At convergence W is the W-step of the final map and the map the (normalised) s-step
    of W; the map has unit norm and a positive mean weight; the fit improves on the start."""
    X, masks, Y = _small_problem()
    fit = ro.fit_readout(X, masks, Y, n_iter=200, tol=1e-10)
    assert fit.converged
    s = fit.spatial
    assert np.isclose(np.linalg.norm(s), 1.0)
    assert np.mean(ro.cell_weights(fit.s_in, fit.s_out, masks)) > 0
    Xf, m = X.reshape(60, 5, -1), masks.reshape(60, -1)
    Z = ro.channel_inputs(Xf, ro.cell_weights(fit.s_in.ravel(), fit.s_out.ravel(), m))
    Zc = Z - Z.mean(axis=0)
    W, _ = ro.w_step(Z, Y, ro.relative_penalty(Zc.T @ Zc, fit.alpha_channel))
    np.testing.assert_allclose(fit.W, W, rtol=1e-6, atol=1e-9)
    A, b = ro.spatial_normal_equations(Xf, m, fit.W, Y)
    step = ro.ridge_solve(A, b, ro.relative_penalty(A, fit.alpha_space))
    np.testing.assert_allclose(step / np.linalg.norm(step), s, atol=1e-6)
    assert fit.loss[-1] < fit.loss[0]
    plain = ro.fit_readout(X, masks, Y, gated=False)
    np.testing.assert_array_equal(plain.s_in, plain.s_out)


# ----------------------------------------------------------------------------- ratio, maps


def test_inmask_ratio_by_hand():
    """A uniform map has ratio 1 for every image; a hand-computed case; skipped images."""
    masks = np.zeros((3, 2, 2))
    masks[0, 0, 0] = 1.0  # share 0.25
    masks[1] = [[1.0, 0.5], [0.0, 0.0]]  # share 0.375
    masks[2] = 1.0  # share 1 -> skipped
    ones = np.ones((2, 2))
    np.testing.assert_allclose(rr.inmask_ratio(ones, ones, masks)[:2], [1.0, 1.0])
    s_in, s_out = np.full((2, 2), 2.0), np.full((2, 2), -1.0)
    ratio = rr.inmask_ratio(s_in, s_out, masks)
    # image 1: |w| = [2, |0.5*2 - 0.5*1| = 0.5, 1, 1]; inside mass 2*1 + 0.5*0.5 = 2.25
    np.testing.assert_allclose(ratio[1], 2.25 / 4.5 / 0.375)
    np.testing.assert_allclose(ratio[0], (2 / 5) / 0.25)
    assert np.isnan(ratio[2])
    assert rr.null_p_values(1.5, np.array([1.0, 1.5, 2.0])) == (3 / 4, 3 / 4)
    assert rr.null_p_values(3.0, np.array([1.0, 1.5, 2.0])) == (1 / 4, 1.0)


def test_object_centred_mean():
    """Masks resampled on their own object-centred grid are ~1 at the centre, ~0 beyond two
    radii; a constant map stays exactly constant (points outside images are left out)."""
    masks = _masks(50, np.random.default_rng(3))
    centred, offsets = rr.object_centred_mean(masks, masks, span=3.0, size=25)
    radius = np.hypot(offsets[:, None], offsets[None, :])
    assert centred[12, 12] > 0.85
    assert np.nanmax(centred[radius > 2]) < 0.1
    constant, _ = rr.object_centred_mean(np.ones_like(masks), masks)
    assert np.isfinite(constant).all()
    np.testing.assert_allclose(constant, 1.0)


def test_write_maps_and_figure(results, tmp_path):
    """The maps round-trip through zarr; the figure is written as PNG and SVG."""
    from figureground.report.readout_figure import readout_figure

    _, table, maps = results["figure"]
    rr.write_readout_maps(maps, tmp_path / "readout_maps.zarr")
    back = xr.open_zarr(tmp_path / "readout_maps.zarr", consolidated=False).load()
    xr.testing.assert_allclose(back, maps)
    assert back.attrs["n_null"] == SETTINGS.n_null
    png = readout_figure(maps, table, tmp_path / "readout.png")
    assert png[:4] == b"\x89PNG"
    assert (tmp_path / "readout.svg").stat().st_size > 0


# ----------------------------------------------------------------------------- reduction


class RecordingArray:
    """An array-like that records every slice read and refuses whole-array conversion."""

    def __init__(self, values: np.ndarray) -> None:
        self.values, self.reads = values, []
        self.shape, self.dtype = values.shape, values.dtype

    def __getitem__(self, key):
        if not isinstance(key, slice):
            raise TypeError(f"only slices along images, got {key!r}")
        start, stop, _ = key.indices(self.shape[0])
        self.reads.append((start, stop))
        return self.values[key]

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole array was read")


def _layer(n: int = 90, channels: int = 20, size: int = 28, seed: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mixing = rng.standard_normal((channels, 6))
    latent = gaussian_filter(rng.standard_normal((n, 6, size, size)), (0, 0, 2, 2))
    values = np.einsum("cl,nlhw->nchw", mixing, latent) + 0.1 * rng.standard_normal(
        (n, channels, size, size)
    )
    return (values + 2.0).astype(np.float32)


def test_reduce_maps_streams_and_matches_references():
    """Results do not depend on the chunk size; only slices of <= chunk images are read;
    the PCA equals sklearn's on the fit images' cells; pooling equals torch's adaptive pool."""
    values = _layer()
    outputs = []
    for chunk in (7, 32, 1000):
        lazy = RecordingArray(values)
        reduced, projection = ri.reduce_maps(
            lazy, n_channel_components=4, grid=(14, 14), chunk=chunk, fit_images=40, fit_block=16
        )
        assert all(stop - start <= max(chunk, 16) for start, stop in lazy.reads)
        if chunk < len(values):
            assert (0, len(values)) not in lazy.reads
        outputs.append(reduced)
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(outputs[0], outputs[2], rtol=1e-6, atol=1e-6)
    assert len(projection.fit_images) >= 40 and len(np.unique(projection.fit_images)) == len(
        projection.fit_images
    )
    cells = np.moveaxis(values[projection.fit_images], 1, -1).reshape(-1, values.shape[1])
    reference = PCA(4).fit(cells.astype(np.float64))
    alignment = np.abs(np.sum(reference.components_ * projection.components, axis=1))
    np.testing.assert_allclose(alignment, 1.0, atol=1e-6)
    np.testing.assert_allclose(
        projection.explained_variance_ratio, reference.explained_variance_ratio_, rtol=1e-6
    )
    projected = np.einsum(
        "kc,nchw->nkhw", projection.components, values - projection.mean[:, None, None]
    )
    pooled = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(projected), (14, 14))
    np.testing.assert_allclose(outputs[0], pooled.numpy(), rtol=1e-4, atol=1e-4)


def test_pool_masks_matches_torch_and_streams():
    masks = np.random.default_rng(5).uniform(size=(30, 28, 28)).astype(np.float32)
    lazy = RecordingArray(masks)
    pooled = ri.pool_masks(lazy, grid=(5, 7), chunk=8)
    reference = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(masks[:, None]), (5, 7))
    np.testing.assert_allclose(pooled, reference.numpy()[:, 0], rtol=1e-5, atol=1e-6)
    assert max(stop - start for start, stop in lazy.reads) <= 8


# ----------------------------------------------------------------------------- responses


def test_time_windows_of_things_meg():
    """141 samples at 100 Hz from -0.1 s: 14 windows of 10 samples, 1.3 s left over."""
    times = np.round(np.arange(141) / 100 - 0.1, 10)
    windows = ri.time_windows(times, 0.1)
    assert len(windows) == 14
    assert (windows["last"] - windows["first"] == 10).all()
    np.testing.assert_allclose(windows["time"].iloc[0], -0.05)
    assert windows["last"].iloc[-1] == 140


def test_response_components_fit_on_training_images_only():
    """PCs equal sklearn's PCA (up to sign) fitted on the training images; changing the
    test images' responses leaves the training scores unchanged."""
    rng = np.random.default_rng(6)
    responses = rng.standard_normal((50, 8, 10)) @ np.diag(np.linspace(1, 2, 10))
    times = np.arange(10) / 100
    train = np.arange(35)
    _, scores = ri.response_components(responses, times, 0.1, n_components=3, train=train)
    changed = responses.copy()
    changed[35:] *= 5
    _, scores_changed = ri.response_components(changed, times, 0.1, n_components=3, train=train)
    scale = responses.mean(axis=2).std() / changed.mean(axis=2).std()  # global rescaling
    np.testing.assert_allclose(scores_changed[0, train] / scale, scores[0, train], atol=1e-5)
    means = responses.mean(axis=2) / responses.mean(axis=2).std()
    reference = PCA(3).fit(means[train]).transform(means)
    np.testing.assert_allclose(np.abs(scores[0]), np.abs(reference), atol=1e-5)


def test_bad_inputs():
    X, masks, Y = _small_problem()
    with pytest.raises(DataError, match="masks"):
        ro.fit_readout(X, masks[:, :3], Y)
    with pytest.raises(DataError, match="responses"):
        ro.fit_readout(X, masks, Y[:10])
    with pytest.raises(DataError, match="maps"):
        ri.reduce_maps(np.zeros((4, 3, 5)))
    with pytest.raises(DataError, match="match"):
        rr.readout_table(
            X,
            masks[:, :3],
            np.zeros((60, 2, 10)),
            np.arange(10) / 100,
            np.zeros(60),
        )
    assert isinstance(rr.TABLE_COLUMNS, list) and pd.DataFrame(columns=rr.TABLE_COLUMNS).empty


@pytest.mark.parametrize(
    "device",
    [
        "cpu",
        pytest.param(
            "cuda",
            marks=pytest.mark.skipif(
                not __import__("torch").cuda.is_available(), reason="no CUDA GPU on this machine"
            ),
        ),
    ],
)
def test_torch_device_gives_the_numpy_table(device):
    """The s-step on a torch device (float64) gives the numpy path's table and maps."""
    from dataclasses import replace

    brain = _brain("figure", seed=3, n_windows=1)
    settings = replace(SETTINGS, n_null=3, n_boot=50)
    inputs = (brain["X"], brain["masks"], brain["responses"], brain["times"], brain["sessions"])
    table, maps = rr.readout_table(*inputs, settings)
    on_device, maps_device = rr.readout_table(*inputs, settings, device=device)
    numeric = table.select_dtypes("number").columns
    np.testing.assert_allclose(
        on_device[numeric].to_numpy(float), table[numeric].to_numpy(float), rtol=1e-5, atol=1e-7
    )
    # numpy sums float32 products, torch float64: the unit-norm maps agree to 1e-4
    np.testing.assert_allclose(maps_device["s_in"].values, maps["s_in"].values, atol=1e-4)
