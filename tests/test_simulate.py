"""Simulator: THINGS-MEG format read back by MNE and our loader, and a recoverable answer."""

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
from figureground.neural import simulate, things_meg

N_IMAGES = 20


def _image_ids() -> list[str]:
    return [f"thing{i % 5}_{i // 5 + 1:02d}b" for i in range(N_IMAGES)]


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


def _projections(responses: xr.DataArray, patterns: np.ndarray, profiles: np.ndarray) -> np.ndarray:
    """Per image and component: <response, pattern (x) profile> (images, components)."""
    templates = np.einsum("kc,kt->kct", patterns, profiles)
    return np.einsum("ict,kct->ik", responses.values.astype(np.float64), templates)


def _recovery(out: Path, ids: list[str]) -> tuple[float, float]:
    responses = things_meg.load(out / "preprocessed_P1-epo.fif", out / "sample_attributes_P1.csv")
    truth = np.load(out / "ground_truth.npz", allow_pickle=False)
    rows = [ids.index(i) for i in responses["image"].values]
    result = []
    for source, name in ((0, "fg_scores_z"), (1, "bg_scores_z")):
        proj = _projections(responses, truth["patterns"][0, source], truth["profiles"][0, source])
        scores = truth[name][rows]
        corr = [np.corrcoef(proj[:, c], scores[:, c])[0, 1] for c in range(scores.shape[1])]
        result.append(float(np.mean(corr)))
    return result[0], result[1]


def test_format_reads_back(store: Path, tmp_path: Path) -> None:
    out = simulate.simulate_meg(
        store,
        tmp_path / "sim",
        1.0,
        0.5,
        2.0,
        seed=1,
        participants=2,
        test_images=2,
        test_reps=3,
        catch=5,
    )
    epochs = mne.read_epochs(out / "preprocessed_P2-epo.fif", preload=False, verbose="error")
    assert len(epochs.ch_names) == 271 and "MRO11" not in epochs.ch_names
    assert epochs.info["sfreq"] == 200.0 and len(epochs.times) == 281
    assert epochs.times[0] == pytest.approx(-0.1) and epochs.times[-1] == pytest.approx(1.3)
    csv = pd.read_csv(out / "sample_attributes_P2.csv")
    assert list(csv.columns) == list(simulate.ATTRIBUTE_COLUMNS)
    pd.testing.assert_frame_equal(csv, epochs.metadata.reset_index(drop=True), check_dtype=False)
    counts = csv["trial_type"].value_counts()
    assert counts["catch"] == 5 and counts["test"] == 2 * 3 and counts["exp"] == N_IMAGES - 2
    test = csv[csv["trial_type"] == "test"]
    assert (test.groupby("image_path")["session_nr"].nunique() == 3).all()
    stems = set(csv.loc[csv["trial_type"] != "catch", "image_path"].map(lambda p: Path(p).stem))
    assert stems == set(_image_ids())
    first = pd.read_csv(out / "sample_attributes_P1.csv")
    assert not first["image_path"].equals(csv["image_path"])  # own trial order per participant
    truth = json.loads((out / "ground_truth.json").read_text())
    assert truth["params"]["fg_weight"] == 1.0 and len(truth["participants"]) == 2
    person = truth["participants"][0]
    assert person["signal_window_variance"] == pytest.approx(2.0)
    assert person["noise_window_variance_measured"] == pytest.approx(1.0, rel=0.1)


def test_signal_is_recoverable_and_absent_at_snr_zero(store: Path, tmp_path: Path) -> None:
    ids = _image_ids()
    strong = simulate.simulate_meg(
        store,
        tmp_path / "strong",
        1.0,
        0.0,
        5.0,
        seed=2,
        participants=1,
        test_images=2,
        test_reps=2,
    )
    fg, bg = _recovery(strong, ids)
    assert fg > 0.9 and abs(bg) < 0.5
    silent = simulate.simulate_meg(
        store,
        tmp_path / "silent",
        1.0,
        0.0,
        0.0,
        seed=2,
        participants=1,
        test_images=2,
        test_reps=2,
    )
    fg0, _ = _recovery(silent, ids)
    assert abs(fg0) < 0.4


def test_same_seed_same_files(store: Path, tmp_path: Path) -> None:
    kwargs = {"participants": 1, "test_images": 2, "test_reps": 2, "catch": 2}
    a = simulate.simulate_meg(store, tmp_path / "a", 0.3, 0.7, 1.0, seed=5, **kwargs)
    b = simulate.simulate_meg(store, tmp_path / "b", 0.3, 0.7, 1.0, seed=5, **kwargs)
    c = simulate.simulate_meg(store, tmp_path / "c", 0.3, 0.7, 1.0, seed=6, **kwargs)
    for name in ("preprocessed_P1-epo.fif", "sample_attributes_P1.csv", "ground_truth.npz"):
        assert sha256_file(a / name) == sha256_file(b / name)
    assert sha256_file(a / "preprocessed_P1-epo.fif") != sha256_file(c / "preprocessed_P1-epo.fif")


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
    empty = tmp_path / "empty.zarr"
    xr.Dataset().to_zarr(empty, group="original", zarr_format=3, consolidated=False)
    with pytest.raises(DataError, match="no_background"):
        simulate.simulate_meg(empty, tmp_path / "x", 1.0, 0.0, 1.0, seed=0)


def test_command_line(store: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "cli"
    code = cli.main(
        [
            "-q",
            "simulate-meg",
            "--features",
            str(store),
            "--out",
            str(out),
            "--fg-weight",
            "1",
            "--bg-weight",
            "0",
            "--snr",
            "1",
            "--seed",
            "0",
            "--participants",
            "1",
            "--test-images",
            "2",
            "--test-reps",
            "2",
        ]
    )
    assert code == 0 and (out / "ground_truth.json").is_file()
    assert capsys.readouterr().out.strip() == str(out)
    assert (
        cli.main(
            [
                "-q",
                "simulate-meg",
                "--features",
                str(tmp_path / "none.zarr"),
                "--out",
                str(out),
                "--fg-weight",
                "1",
                "--bg-weight",
                "0",
                "--snr",
                "1",
                "--seed",
                "0",
            ]
        )
        == 2
    )
