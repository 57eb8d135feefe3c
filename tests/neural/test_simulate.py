"""Simulator: the THINGS-MEG format, units and design, read back by MNE and our loader."""

from __future__ import annotations

import json
from pathlib import Path

import mne
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from figureground import cli
from figureground.errors import DataError, UsageError
from figureground.fsutil import sha256_file
from figureground.neural import design, simulate, things_meg
from figureground.neural.codes import pixel_codes

N_CONCEPTS, N_EXEMPLARS = 6, 4
N_IMAGES = N_CONCEPTS * N_EXEMPLARS


def _image_ids() -> list[str]:
    return [f"thing{c}_{e + 1:02d}b" for c in range(N_CONCEPTS) for e in range(N_EXEMPLARS)]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny feature store: independent random layer2 features per variant."""
    path = tmp_path_factory.mktemp("features") / "features.zarr"
    rng = np.random.default_rng(7)
    ids = _image_ids()
    for index, variant in enumerate(("original", "no_background", "no_foreground")):
        values = rng.standard_normal((N_IMAGES, 8, 4, 4)).astype(np.float32)
        dataset = xr.Dataset(
            {"layer2": (("image", "channel", "y", "x"), values)},
            coords={"image": ids, "concept": ("image", [i.rsplit("_", 1)[0] for i in ids])},
        )
        dataset.to_zarr(
            path, group=variant, zarr_format=3, mode="w" if index == 0 else "a", consolidated=False
        )
    return path


@pytest.fixture(scope="module")
def simulated(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulate.simulate_meg(
        store,
        tmp_path_factory.mktemp("sim") / "sim",
        1.0,
        0.5,
        2.0,
        seed=1,
        participants=2,
        test_images=3,
        catch_per_session=2,
    )


def test_format_units_and_names(simulated: Path) -> None:
    epochs = mne.read_epochs(simulated / "preprocessed_P2-epo.fif", preload=True, verbose="error")
    assert len(epochs.ch_names) == 271 and "MRO11-1609" not in epochs.ch_names
    assert all(name.endswith("-1609") for name in epochs.ch_names)
    assert mne.find_layout(epochs.info).kind == "CTF-275"  # CTF axial gradiometers
    assert epochs.info["sfreq"] == 200.0 and len(epochs.times) == 281
    assert epochs.times[0] == pytest.approx(-0.1) and epochs.times[-1] == pytest.approx(1.3)
    data = epochs.get_data()
    baseline = data[:, :, epochs.times <= 0]
    # z-scored against the baseline per epoch and channel: the baseline SD is 1 per channel
    sd = baseline.transpose(1, 0, 2).reshape(271, -1).std(axis=1)
    assert np.all(np.abs(sd - 1.0) <= 0.05)
    np.testing.assert_allclose(baseline.mean(axis=2), 0.0, atol=1e-5)
    truth = json.loads((simulated / "ground_truth.json").read_text())
    assert "z-scores" in truth["units"]
    person = truth["participants"][0]
    assert person["signal_window_variance"] == pytest.approx(2.0)
    assert person["noise_window_variance_measured"] == pytest.approx(1.0, rel=0.1)
    assert person["reliability"]["n_repetitions"] == 4


def test_design_follows_things_meg(simulated: Path) -> None:
    csv = pd.read_csv(simulated / "sample_attributes_P2.csv")
    assert list(csv.columns) == list(design.ATTRIBUTE_COLUMNS)
    epochs = mne.read_epochs(simulated / "preprocessed_P2-epo.fif", preload=False, verbose="error")
    attached = epochs.metadata.reset_index(drop=True)
    pd.testing.assert_frame_equal(csv, attached, check_dtype=False)
    kinds = csv["trial_type"].value_counts()
    sessions = csv["session_nr"].nunique()
    assert sessions == N_EXEMPLARS  # default: the most exemplars of a concept
    assert kinds["exp"] == N_IMAGES - 3 and kinds["test"] == 3 * sessions
    assert kinds["catch"] == 2 * sessions
    exp = csv[csv["trial_type"] == "exp"]
    # one exemplar of a concept per session, the same exemplar number for every concept
    assert not exp.duplicated(["session_nr", "things_category_nr"]).any()
    assert (exp.groupby("session_nr")["things_exemplar_nr"].nunique() == 1).all()
    test = csv[csv["trial_type"] == "test"]
    assert (test.groupby("image_path")["session_nr"].nunique() == sessions).all()
    assert test["things_category_nr"].nunique() == 3  # distinct concepts
    assert set(test["image_path"]).isdisjoint(exp["image_path"].str.replace("images_meg/", ""))
    assert csv["run_nr"].between(1, 10).all()
    # fields that do not apply are empty (NaN), never 999999
    catch = csv[csv["trial_type"] == "catch"]
    assert catch[["things_category_nr", "things_image_nr", "test_image_nr"]].isna().all().all()
    assert exp["test_image_nr"].isna().all() and not (csv == 999999).any().any()
    assert (catch["category_nr"] == N_CONCEPTS + 1).all()
    assert test["image_path"].str.startswith("images_test_meg/").all()
    codes = epochs.events[:, 2]
    real = csv["trial_type"] != "catch"
    np.testing.assert_array_equal(codes[real], csv.loc[real, "things_image_nr"])
    assert (codes[~real] == design.CATCH_CODE).all()
    other = pd.read_csv(simulated / "sample_attributes_P1.csv")
    assert not other["image_path"].equals(csv["image_path"])  # own order per participant


def test_authors_test_array_from_the_loader(simulated: Path) -> None:
    """The authors' noise-ceiling array (channels x sessions x images x time, each session
    sorted by things_category_nr; THINGS-data MEG/step2c) equals what the loader gives."""
    epochs = mne.read_epochs(simulated / "preprocessed_P1-epo.fif", preload=True, verbose="error")
    test = epochs[epochs.metadata["trial_type"] == "test"]
    sessions = sorted(test.metadata["session_nr"].unique())
    n_images = test.metadata["things_category_nr"].nunique()
    authors = np.empty((len(test.ch_names), len(sessions), n_images, len(test.times)))
    for k, session in enumerate(sessions):
        current = test[test.metadata["session_nr"] == session]
        current = current[np.argsort(current.metadata["things_category_nr"].to_numpy())]
        authors[:, k] = np.transpose(current.get_data(), (1, 0, 2))
    ours = things_meg.load(
        simulated / "preprocessed_P1-epo.fif",
        simulated / "sample_attributes_P1.csv",
        trial_type="test",
    )
    csv = pd.read_csv(simulated / "sample_attributes_P1.csv")
    category = (
        csv[csv["trial_type"] == "test"]
        .assign(image=lambda f: f["image_path"].map(lambda p: Path(p).stem))
        .drop_duplicates("image")
        .set_index("image")["things_category_nr"]
    )
    ordered = ours.sel(image=category.sort_values().index.to_list())
    rebuilt = ordered.transpose("channel", "repetition", "image", "time").values
    np.testing.assert_allclose(rebuilt, authors, rtol=1e-6, atol=1e-6)


def _recovery(out: Path, ids: list[str], code: str) -> float:
    """Correlation of each image's projection on the planted patterns with its scores."""
    responses = things_meg.load(out / "preprocessed_P1-epo.fif", out / "sample_attributes_P1.csv")
    truth = np.load(out / "ground_truth.npz", allow_pickle=False)
    rows = [ids.index(i) for i in responses["image"].values]
    templates = np.einsum("kc,kt->kct", truth["patterns"][0], truth["profiles"][0])
    projections = np.einsum("ict,kct->ik", responses.values.astype(np.float64), templates)
    scores = truth["weighted_scores"][0][rows]
    k = truth[f"scores_{code}"].shape[1]
    return float(np.mean([np.corrcoef(projections[:, c], scores[:, c])[0, 1] for c in range(k)]))


def test_signal_is_recoverable(store: Path, tmp_path: Path) -> None:
    strong = simulate.simulate_meg(
        store, tmp_path / "strong", 1.0, 0.0, 5.0, seed=2, participants=1, test_images=2
    )
    ids = [str(i) for i in np.load(strong / "ground_truth.npz")["image_ids"]]
    assert _recovery(strong, ids, "figure") > 0.9


def test_same_seed_same_files(store: Path, tmp_path: Path) -> None:
    kwargs = {"participants": 1, "test_images": 2, "catch_per_session": 1}
    a = simulate.simulate_meg(store, tmp_path / "a", 0.3, 0.7, 1.0, seed=5, **kwargs)
    b = simulate.simulate_meg(store, tmp_path / "b", 0.3, 0.7, 1.0, seed=5, **kwargs)
    c = simulate.simulate_meg(store, tmp_path / "c", 0.3, 0.7, 1.0, seed=6, **kwargs)
    for name in ("preprocessed_P1-epo.fif", "sample_attributes_P1.csv", "ground_truth.npz"):
        assert sha256_file(a / name) == sha256_file(b / name)
    assert sha256_file(a / "preprocessed_P1-epo.fif") != sha256_file(c / "preprocessed_P1-epo.fif")


def test_in_memory_responses_match_the_file_units(store: Path) -> None:
    from figureground.neural.codes import network_codes

    codes = network_codes(store, "layer2", ("figure", "ground"))
    params = simulate.BrainParams((("figure", 1.0), ("ground", 0.0)), 3.0, seed=4, participants=2)
    responses = simulate.simulate_responses(codes, params, decim=2)
    assert set(responses) == {"P1", "P2"}
    first = responses["P1"]
    assert first.dims == ("image", "channel", "time") and first.sizes["image"] == N_IMAGES
    assert first.sizes["time"] == 141 and first["channel"].values[0].endswith("-1609")
    base = first.sel(time=slice(None, 0.0)).values
    assert abs(base.std() - 1.0) < 0.1  # z-scored against the baseline
    silent = simulate.simulate_responses(
        codes, simulate.BrainParams((("figure", 1.0),), 0.0, seed=4, participants=1)
    )["P1"]
    late = first.sel(time=slice(0.08, 0.5)).values.reshape(N_IMAGES, -1)
    quiet = silent.sel(time=slice(0.08, 0.5)).values.reshape(N_IMAGES, -1)
    assert late.std(axis=0).mean() > 1.3 * quiet.std(axis=0).mean()  # image-specific signal


def test_pca_scores_match_numpy_svd() -> None:
    rng = np.random.default_rng(3)
    n, d = 30, 200
    spectrum = 0.7 ** np.arange(n)  # decaying, as in real embeddings
    matrix = (rng.standard_normal((n, n)) * spectrum) @ rng.standard_normal((n, d))
    array = xr.DataArray(matrix.reshape(n, 8, 25), dims=("image", "channel", "x"))
    centred = matrix - matrix.mean(0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    reference = u[:, :3] * s[:3]
    for limit in (2**25, 0):  # exact path, then the chunked randomized path
        scores, ratio = simulate.pca_scores(
            array, 3, np.random.default_rng(0), chunk=7, dense_limit=limit
        )
        np.testing.assert_allclose(np.abs(scores), np.abs(reference), rtol=1e-4, atol=1e-6)
        assert (scores[np.argmax(np.abs(scores), axis=0), [0, 1, 2]] > 0).all()
        np.testing.assert_allclose(ratio, s[:3] ** 2 / np.sum(s**2), rtol=1e-4)


def test_bad_inputs(store: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="fg_weight"):
        simulate.simulate_meg(store, tmp_path / "x", -1.0, 0.0, 1.0, seed=0)
    with pytest.raises(UsageError, match="no layer 'layer9'"):
        simulate.simulate_meg(store, tmp_path / "x", 1.0, 0.0, 1.0, seed=0, layer="layer9")
    with pytest.raises(UsageError, match="distinct concepts"):
        simulate.simulate_meg(store, tmp_path / "x", 1.0, 0.0, 1.0, seed=0, test_images=7)
    empty = tmp_path / "empty.zarr"
    xr.Dataset().to_zarr(empty, group="original", zarr_format=3, consolidated=False)
    with pytest.raises(DataError, match="no_background"):
        simulate.simulate_meg(empty, tmp_path / "x", 1.0, 0.0, 1.0, seed=0)


def _composites(tmp_path: Path) -> Path:
    from figureground.stimuli.composites import make_composite_stimuli

    return make_composite_stimuli(tmp_path / "stim", concepts=4, exemplars=3, size=96, seed=1)


def test_pixel_driver_uses_no_network(tmp_path: Path) -> None:
    root = _composites(tmp_path)
    images = {p.stem: p for p in sorted((root / "object_images").rglob("*.png"))}
    masks = {i: root / "ground_truth" / f"{i}.png" for i in images}
    codes = pixel_codes(images, masks, ("figure", "ground", "centre"))
    assert set(codes.scores) == {"figure", "ground", "centre"} and codes.source == "pixels"
    out = simulate.simulate_pixels(
        images,
        masks,
        tmp_path / "pixels",
        {"figure": 1.0, "ground": 0.0},
        snr=5.0,
        seed=3,
        participants=1,
        test_images=2,
    )
    truth = json.loads((out / "ground_truth.json").read_text())
    assert truth["codes_source"] == "pixels" and truth["params"]["weights"]["figure"] == 1.0
    ids = [str(i) for i in np.load(out / "ground_truth.npz")["image_ids"]]
    assert _recovery(out, ids, "figure") > 0.8


def test_command_line(store: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "cli"
    base = ["-q", "simulate-meg", "--out", str(out), "--fg-weight", "1", "--bg-weight", "0"]
    code = cli.main(
        [*base, "--features", str(store), "--snr", "1", "--seed", "0", "--participants", "1",
         "--test-images", "2", "--sessions", "4"]
    )  # fmt: skip
    assert code == 0 and (out / "ground_truth.json").is_file()
    assert capsys.readouterr().out.strip() == str(out)
    missing = [*base, "--features", str(tmp_path / "none.zarr"), "--snr", "1", "--seed", "0"]
    assert cli.main(missing) == 2
    root = _composites(tmp_path)
    pixels = [
        "-q", "simulate-meg", "--out", str(tmp_path / "cli-pixels"), "--driver", "pixels",
        "--stimuli", str(root), "--masks", str(root / "ground_truth"), "--fg-weight", "0",
        "--bg-weight", "0", "--centre-weight", "1", "--snr", "1", "--seed", "0",
        "--participants", "1", "--test-images", "1",
    ]  # fmt: skip
    assert cli.main(pixels) == 0
    truth = json.loads((tmp_path / "cli-pixels" / "ground_truth.json").read_text())
    assert truth["params"]["weights"]["centre"] == 1.0
    masks = str(root / "ground_truth")
    bad = [str(tmp_path / "nowhere") if arg == masks else arg for arg in pixels]
    assert cli.main(bad) == 2
    assert "nowhere" in capsys.readouterr().err


def test_reliability_rises_with_the_snr(store: Path) -> None:
    """The authors' noise ceiling of a simulated brain: near 0 without signal, higher with it."""
    from figureground.neural.codes import network_codes

    codes = network_codes(store, "layer2", ("figure",))
    found = [
        simulate.simulated_reliability(
            codes, simulate.BrainParams((("figure", 1.0),), snr, seed=1, participants=1), 6
        )
        for snr in (0.0, 0.5, 5.0)
    ]
    peaks = [f["nc_percent_peak_channel_mean"] for f in found]
    assert peaks[0] < peaks[1] < peaks[2] and peaks[2] > 80
    assert found[2]["single_trial_snr_peak"] > found[1]["single_trial_snr_peak"]
    assert found[0]["n_repetitions"] == 12 and found[0]["n_images"] == 6
