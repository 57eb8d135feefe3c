"""Eye tracking: conversions, the authors' cleaning, epochs, object/background gaze metrics."""

from __future__ import annotations

import dataclasses
import math

import mne
import numpy as np
import pytest
from scipy import stats
from scipy.ndimage import distance_transform_edt
from sklearn.metrics import roc_auc_score

from figureground.errors import DataError, UsageError
from figureground.neural.gaze import (
    GazeSettings,
    clean_gaze,
    degrees_to_pixels,
    epoch_gaze,
    epoch_signals,
    epoch_times,
    expand_gaps,
    pixels_to_degrees,
    pixels_to_volts,
    remove_loners,
    valid_samples,
    volts_to_pixels,
)
from figureground.neural.gaze_cleaning import _runs
from figureground.neural.gaze_metrics import (
    bcea,
    gaze_density,
    gaze_metrics,
    image_to_degrees,
)
from figureground.report.gaze_figure import gaze_figure

SETTINGS = GazeSettings()
PIX_PER_CM = 1024 / 42
HAND_PIX_PER_DEG = 1024 / (2 * math.degrees(math.atan(21 / 75)))  # authors' line 67


def _invalid_runs(valid: np.ndarray) -> list[tuple[int, int]]:
    starts, ends = _runs(~valid)
    return [(int(a), int(b)) for a, b in zip(starts, ends, strict=True)]


# ---------------------------------------------------------------- conversions


def test_known_points_of_the_conversions():
    x, y = volts_to_pixels(np.array([-5.0, 0.0, 5.0]), np.array([-5.0, 0.0, 5.0]), SETTINGS)
    # -5 V is 0.2 screens left of the screen: -0.2 * 1024 - 512 px from the centre.
    np.testing.assert_allclose(x, [-716.8, 0.0, 716.8], atol=1e-9)
    np.testing.assert_allclose(y, [-537.6, 0.0, 537.6], atol=1e-9)
    assert SETTINGS.pix_per_deg == pytest.approx(HAND_PIX_PER_DEG)
    assert SETTINGS.pix_per_deg == pytest.approx(32.7319, abs=1e-4)
    edge_px = SETTINGS.stim_size_px / 2
    assert edge_px == pytest.approx(5 * HAND_PIX_PER_DEG)
    assert pixels_to_degrees(0.0, SETTINGS) == 0.0
    assert pixels_to_degrees(edge_px, SETTINGS) == pytest.approx(5.0)
    assert pixels_to_degrees(-edge_px, SETTINGS) == pytest.approx(-5.0)
    authors = dataclasses.replace(SETTINGS, angle_method="authors")
    eccentricity = dataclasses.replace(SETTINGS, angle_method="eccentricity")
    edge_cm = edge_px / PIX_PER_CM
    assert pixels_to_degrees(edge_px, authors) == pytest.approx(
        2 * math.degrees(math.atan(edge_cm / 2 / 75))
    )
    assert pixels_to_degrees(edge_px, authors) == pytest.approx(5.1246, abs=1e-4)
    assert pixels_to_degrees(edge_px, eccentricity) == pytest.approx(
        math.degrees(math.atan(edge_cm / 75))
    )
    # The screen's edge is 21 cm from its centre at 75 cm: atan(21/75) = 15.64 deg.
    assert pixels_to_degrees(512.0, eccentricity) == pytest.approx(math.degrees(math.atan(0.28)))


@pytest.mark.parametrize("method", ["linear", "authors", "eccentricity"])
def test_volts_pixels_degrees_round_trip(method):
    settings = dataclasses.replace(SETTINGS, angle_method=method)
    rng = np.random.default_rng(1)
    vx, vy = rng.uniform(-5, 5, 200), rng.uniform(-5, 5, 200)
    px, py = volts_to_pixels(vx, vy, settings)
    dx, dy = pixels_to_degrees(px, settings), pixels_to_degrees(py, settings)
    assert np.all(np.sign(dx) == np.sign(px))
    back_x, back_y = degrees_to_pixels(dx, settings), degrees_to_pixels(dy, settings)
    np.testing.assert_allclose(back_x, px, atol=1e-9)
    vx2, vy2 = pixels_to_volts(back_x, back_y, settings)
    np.testing.assert_allclose(np.c_[vx2, vy2], np.c_[vx, vy], atol=1e-12)


def test_settings_reject_bad_values():
    with pytest.raises(UsageError, match="angle_method"):
        GazeSettings(angle_method="cosine")
    with pytest.raises(UsageError, match="distance_cm"):
        GazeSettings(distance_cm=0)


# ---------------------------------------------------------------- cleaning steps


def test_expand_gaps_pads_as_the_script():
    valid = np.ones(6000, bool)
    valid[1000:1100] = False  # borders 999, 1100: 101 samples = 84.2 ms > 75 -> padded
    valid[2000:2089] = False  # borders 1999, 2089: 90 samples = 75.0 ms, not > 75 -> kept
    valid[3000:3720] = False  # 601 ms > 500 ms -> twice the padding
    # Pads: valid samples later than 100 ms (120 samples) before the first border and
    # earlier than 150 ms (180 samples) after the last, borders included.
    expected = [(880, 1279), (2000, 2088), (2999 - 239, 3720 + 359)]
    assert _invalid_runs(expand_gaps(valid, SETTINGS)) == expected
    too_long = np.ones(6000, bool)
    too_long[1000:3500] = False  # 2084 ms >= 2000 ms: the script leaves it unpadded
    assert _invalid_runs(expand_gaps(too_long, SETTINGS)) == [(1000, 3499)]


def test_remove_loners_drops_short_chunks_after_the_first():
    valid = np.zeros(3000, bool)
    valid[0:50] = True  # short but the first chunk: kept (script)
    valid[100:200] = True  # last - first = 99 samples = 82.5 ms < 100: dropped
    valid[300:420] = True  # 119 samples = 99.2 ms < 100: dropped
    valid[500:621] = True  # 120 samples = 100 ms: kept
    valid[700:2000] = True
    out = remove_loners(valid, SETTINGS)
    assert _invalid_runs(out) == [(50, 499), (621, 699), (2000, 2999)]


def _fixating_run(rng: np.random.Generator, seconds: float = 12.0):
    """Centred pixels and pupil of a steady fixation with noise and a slow pupil wave."""
    n = int(seconds * 1200)
    x = rng.normal(0, 5, n)
    y = rng.normal(0, 5, n)
    pupil = 1.0 + 0.01 * rng.standard_normal(n) + 0.05 * np.sin(np.arange(n) / 1200)
    return x, y, pupil


def test_cleaning_removes_blink_and_out_of_range_with_padding():
    x, y, pupil = _fixating_run(np.random.default_rng(2))
    pupil[3000:3240] = -1.0  # a 200 ms blink seen only in the pupil
    x[7000:7180] = 400.0  # 150 ms beyond the stimulus square (> 163.7 px)
    valid = valid_samples(x, y, pupil, SETTINGS)
    # Blink: the speed step drops the drop's edge samples (2999, 3000, 3239, 3240), the
    # deviation step the rest; its padding then runs from the borders 2998 and 3241:
    # 120 samples back (100 ms) and 180 forward (150 ms).
    # Out of range: step 1 drops 7000..7179; step 2 pads it (borders 6999, 7180 ->
    # 6880..7359) and step 3 pads the padded gap again (borders 6879, 7360 -> 6760..7539).
    # The last samples after the 62.5 ms trend grid's last point (11937.5 ms) get no trend.
    assert _invalid_runs(valid) == [(2879, 3420), (6760, 7539), (14326, 14399)]
    cleaned = clean_gaze(x, y, pupil, SETTINGS)
    assert cleaned.shape == (3, x.size)
    assert np.array_equal(np.isnan(cleaned[0]), ~valid)
    assert np.array_equal(np.isnan(cleaned[2]), ~valid)


def test_clean_gaze_detrends_like_linregress():
    rng = np.random.default_rng(3)
    x, y, pupil = _fixating_run(rng, seconds=6.0)
    x = x + np.linspace(-30, 30, x.size)  # a drift that stays inside the stimulus
    cleaned = clean_gaze(x, y, pupil, SETTINGS)
    valid = np.isfinite(cleaned[0])
    index = np.arange(x.size)
    fit = stats.linregress(index[valid], x[valid])
    expected = (x - (fit.slope * index + fit.intercept)) / HAND_PIX_PER_DEG
    np.testing.assert_allclose(cleaned[0][valid], expected[valid], atol=1e-9)
    assert abs(np.mean(cleaned[0][valid])) < 1e-9


# ---------------------------------------------------------------- epochs


def _raw_with_eyes(volts: np.ndarray, first_samp: int) -> mne.io.RawArray:
    info = mne.create_info(SETTINGS.channels, 1200.0, "misc")
    return mne.io.RawArray(volts, info, first_samp=first_samp, verbose="error")


def test_epoching_matches_numpy_slice_and_mne_epochs():
    rng = np.random.default_rng(4)
    first_samp, n = 700, 8 * 1200
    volts = rng.normal(0, 0.1, (3, n))
    raw = _raw_with_eyes(volts, first_samp)
    onsets = first_samp + np.array([600, 1900, 3700, 5300])
    events = np.c_[onsets, np.zeros(4, int), np.ones(4, int)]
    tmin, tmax = -0.1, 1.3
    epochs = mne.Epochs(raw, events, tmin=tmin, tmax=tmax, baseline=None, verbose="error")
    reference = epochs.get_data(picks="misc")
    cut = epoch_signals(volts, events, first_samp, 1200.0, tmin, tmax)
    np.testing.assert_array_equal(cut, reference)
    np.testing.assert_allclose(epoch_times(tmin, tmax, 1200.0), epochs.times)
    sliced = np.stack([volts[:, e - first_samp - 120 : e - first_samp + 1561] for e in onsets])
    np.testing.assert_array_equal(cut, sliced)

    plain = dataclasses.replace(SETTINGS, median_centre=False)
    gaze = epoch_gaze(raw, events, tmin, tmax, plain, clean=False, pupil=True)
    px, py = volts_to_pixels(sliced[:, 0], sliced[:, 1], plain)
    np.testing.assert_allclose(gaze[:, 0], px / HAND_PIX_PER_DEG, atol=1e-9)
    np.testing.assert_allclose(gaze[:, 1], py / HAND_PIX_PER_DEG, atol=1e-9)
    np.testing.assert_array_equal(gaze[:, 2], sliced[:, 2])
    with pytest.raises(DataError, match="outside the recording"):
        epoch_signals(volts, events, first_samp, 1200.0, -1.0, 0.5)


def test_epoch_gaze_cleans_a_planted_blink_into_its_epoch():
    rng = np.random.default_rng(5)
    x, y, pupil = _fixating_run(rng, seconds=10.0)
    pupil[4000:4240] = -1.0  # blink 0.5 .. 0.7 s after the event at sample 3400
    vx, vy = pixels_to_volts(x, y, SETTINGS)
    raw = _raw_with_eyes(np.vstack([vx, vy, pupil]), first_samp=0)
    events = np.array([[1200, 0, 1], [3400, 0, 1], [6000, 0, 1]])
    gaze = epoch_gaze(raw, events, -0.1, 1.3, SETTINGS)
    assert gaze.shape == (3, 2, 1681)
    times = epoch_times(-0.1, 1.3, 1200.0)
    missing = np.isnan(gaze[1, 0])
    assert missing[(times >= 0.5) & (times < 0.7)].all()
    assert not missing[times < 0.35].any()
    assert not np.isnan(gaze[0]).any()
    bad = mne.io.RawArray(np.zeros((1, 100)), mne.create_info(["MLC11-1609"], 1200.0, "mag"))
    with pytest.raises(DataError, match="UADC009-2104"):
        epoch_gaze(bad, events[:1], -0.01, 0.01)
    with pytest.raises(UsageError, match="sfreq"):
        epoch_gaze(raw, events, -0.1, 1.3, dataclasses.replace(SETTINGS, sfreq=1000.0))


# ---------------------------------------------------------------- metrics


def _ellipse_mask(rng: np.random.Generator, shape=(96, 96)) -> np.ndarray:
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    cr, cc = rng.uniform(0.3, 0.7) * shape[0], rng.uniform(0.3, 0.7) * shape[1]
    ar, ac = rng.uniform(0.12, 0.25) * shape[0], rng.uniform(0.12, 0.25) * shape[1]
    return (((rows - cr) / ar) ** 2 + ((cols - cc) / ac) ** 2 <= 1).astype(np.float32)


def _planted_trials(n_trials: int = 24, seed: int = 6):
    """Half the trials fixate deep inside the object, half well away from it."""
    rng = np.random.default_rng(seed)
    times = epoch_times(-0.1, 0.5, 1200.0)
    masks, gaze, on_object = [], np.empty((n_trials, 2, times.size)), []
    for trial in range(n_trials):
        mask = _ellipse_mask(rng)
        fixate_object = trial % 2 == 0
        depth = distance_transform_edt(mask >= 0.5 if fixate_object else mask < 0.5)
        candidates = np.argwhere(depth >= (6 if fixate_object else 12))
        row, col = candidates[rng.integers(len(candidates))]
        x0, y0 = image_to_degrees(row, col, mask.shape, SETTINGS)
        gaze[trial, 0] = x0 + rng.normal(0, 0.05, times.size)
        gaze[trial, 1] = y0 + rng.normal(0, 0.05, times.size)
        gaze[trial, :, times < 0] = 0.0  # before onset: at the fixation point
        gaze[trial, :, rng.choice(np.flatnonzero(times >= 0), 30, replace=False)] = np.nan
        masks.append(mask)
        on_object.append(fixate_object)
    return gaze, times, masks, np.array(on_object)


def _brute_force_distance(mask: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(mask >= 0.5)
    px, py = image_to_degrees(rows, cols, mask.shape, SETTINGS)
    return np.min(np.hypot(x[:, None] - px[None], y[:, None] - py[None]), axis=1)


def test_planted_fixation_pattern_is_recovered():
    gaze, times, masks, on_object = _planted_trials()
    ids = [f"img{i:02d}" for i in range(len(masks))]
    table = gaze_metrics(gaze, times, masks, SETTINGS, tmin=0.0, image_ids=ids)
    assert list(table["trial"]) == list(range(len(masks)))
    assert list(table["image_id"]) == ids
    share = table["gaze_on_object"].to_numpy()
    assert (share[on_object] > 0.8).all() and (share[~on_object] < 0.2).all()
    assert roc_auc_score(on_object, share) == 1.0
    assert share[on_object].min() > share[~on_object].max()
    np.testing.assert_array_equal(table["distance_from_mask"][on_object], 0.0)
    n_post = int((times >= 0).sum())
    np.testing.assert_allclose(table["valid_share"], (n_post - 30) / n_post)
    for trial in np.flatnonzero(~on_object)[:4]:
        post = (times >= 0) & np.isfinite(gaze[trial, 0])
        x, y = gaze[trial, 0, post], gaze[trial, 1, post]
        expected = _brute_force_distance(masks[trial], x, y).mean()
        assert table["distance_from_mask"][trial] == pytest.approx(expected, rel=1e-9)
        assert expected > 0.9  # 12 px = 1.25 deg from the object, minus noise
    # Noise of 0.05 deg per axis: RMS about 0.05 * sqrt(2) = 0.071 deg.
    np.testing.assert_allclose(table["gaze_rms"], 0.0707, atol=0.01)


def test_non_square_mask_is_fitted_inside_the_stimulus_square():
    # 60 x 120: the width fills the 10-degree square; the height spans 5 degrees.
    x, y = image_to_degrees(np.array([-0.5, 59.5]), np.array([-0.5, 119.5]), (60, 120), SETTINGS)
    np.testing.assert_allclose(x, [-5.0, 5.0])
    np.testing.assert_allclose(y, [-2.5, 2.5])
    mask = np.zeros((60, 120), np.float32)
    mask[:, 60:] = 1.0  # right half is object
    gaze = np.zeros((1, 2, 4))
    gaze[0, 0] = [4.0, 1.0, -1.0, -4.0]
    gaze[0, 1] = [0.0, 2.4, -2.4, 2.6]  # the last sample lies below the image
    table = gaze_metrics(gaze, np.arange(4.0), [mask], SETTINGS)
    assert table["gaze_on_object"][0] == 0.5
    off = _brute_force_distance(mask, gaze[0, 0, 2:], gaze[0, 1, 2:])  # the first two are on
    assert table["distance_from_mask"][0] == pytest.approx(off.sum() / 4, rel=1e-9)
    # (-1, -2.4): the nearest object pixel centre (pixels are 1/12 deg) is at x = 1/24,
    # y = -2.375 (row 1).
    assert off[0] == pytest.approx(math.hypot(1 + 1 / 24, 0.025), rel=1e-9)


def test_bcea_matches_the_chi_square_ellipse():
    rng = np.random.default_rng(7)
    samples = rng.multivariate_normal([0, 0], [[0.04, 0.015], [0.015, 0.02]], 5000)
    expected = np.pi * stats.chi2.ppf(0.682, 2) * np.sqrt(np.linalg.det(np.cov(samples.T)))
    assert bcea(samples[:, 0], samples[:, 1], 0.682) == pytest.approx(expected, rel=1e-9)
    assert math.isnan(bcea(np.zeros(2), np.zeros(2)))


def test_metrics_reject_mismatched_inputs():
    gaze, times, masks, _ = _planted_trials(n_trials=2)
    with pytest.raises(DataError, match="masks"):
        gaze_metrics(gaze, times, masks[:1], SETTINGS)
    with pytest.raises(DataError, match="times"):
        gaze_metrics(gaze, times[:-1], masks, SETTINGS)


def test_density_peaks_at_the_object_centre_and_figure_is_written(tmp_path):
    rng = np.random.default_rng(8)
    times = epoch_times(0.0, 0.2, 1200.0)
    masks = [_ellipse_mask(rng) for _ in range(10)]
    gaze = np.empty((len(masks), 2, times.size))
    for trial, mask in enumerate(masks):
        rows, cols = np.nonzero(mask >= 0.5)
        x0, y0 = image_to_degrees(rows.mean(), cols.mean(), mask.shape, SETTINGS)
        gaze[trial, 0] = x0 + rng.normal(0, 0.03, times.size)
        gaze[trial, 1] = y0 + rng.normal(0, 0.03, times.size)
    density = gaze_density(gaze, times, masks, SETTINGS, extent=2.0, bins=16)
    assert density.n_trials == len(masks)
    assert density.density.sum() + density.outside_share == pytest.approx(1.0)
    peak = np.unravel_index(np.argmax(density.density), density.density.shape)
    assert set(peak) <= {7, 8}  # the bins next to 0 on a 16-bin grid of -2..2
    assert density.mean_mask[7:9, 7:9].min() > 0.99
    assert density.mean_mask[0, 0] == 0.0
    table = gaze_metrics(gaze, times, masks, SETTINGS)
    png = gaze_figure(density, table, tmp_path / "gaze")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "gaze.png").read_bytes() == png
    assert (tmp_path / "gaze.svg").stat().st_size > 0
    with pytest.raises(UsageError, match="gaze_on_object"):
        gaze_figure(density, table.drop(columns="gaze_on_object"), tmp_path / "bad")
