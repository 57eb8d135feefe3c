"""Other recordings: MNE epochs with an image column, NumPy arrays + CSV, THINGS-EEG2 pickles."""

from __future__ import annotations

from pathlib import Path

import mne
import numpy as np
import pandas as pd
import pytest

from figureground.errors import DataError, UsageError
from figureground.neural import arrays, load_responses


def test_numpy_npy_average_and_repetitions(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = rng.standard_normal((6, 4, 10)).astype(np.float32)
    ids = ["b_01", "a_01", "b_01", "a_02", "a_01", "a_02"]
    np.save(tmp_path / "data.npy", data)
    pd.DataFrame({"image_id": ids, "session": [1, 1, 2, 1, 2, 2]}).to_csv(
        tmp_path / "items.csv", index=False
    )
    result = load_responses(
        "numpy", tmp_path / "data.npy", tmp_path / "items.csv", sfreq=100.0, first_time=-0.02
    )
    assert list(result["image"].values) == ["a_01", "a_02", "b_01"]
    np.testing.assert_allclose(
        result.sel(image="a_01").values, data[[1, 4]].astype(np.float64).mean(0), rtol=1e-6
    )
    np.testing.assert_allclose(result["time"].values, -0.02 + np.arange(10) / 100.0)
    assert list(result["concept"].values) == ["a", "a", "b"]
    reps = arrays.load_numpy(
        tmp_path / "data.npy",
        tmp_path / "items.csv",
        sfreq=100.0,
        first_time=-0.02,
        repetitions=True,
        tmin=0.0,
        picks=["ch001", "ch003"],
    )
    assert reps.dims == ("image", "repetition", "channel", "time")
    np.testing.assert_array_equal(reps.sel(image="b_01").values, data[[0, 2]][:, [1, 3], 2:])
    np.testing.assert_array_equal(reps["session"].values, [[1, 2]] * 3)


def test_numpy_npz_with_names_and_bad_inputs(tmp_path: Path) -> None:
    data = np.arange(2 * 3 * 5, dtype=np.float64).reshape(2, 3, 5)
    np.savez(
        tmp_path / "d.npz",
        data=data,
        ch_names=np.array(["Fz", "Cz", "Pz"]),
        times=np.linspace(0, 0.4, 5),
    )
    pd.DataFrame({"image_id": ["x/dog_01b.jpg", "cat_01a"]}).to_csv(tmp_path / "i.csv", index=False)
    result = arrays.load_numpy(tmp_path / "d.npz", tmp_path / "i.csv")
    assert list(result["channel"].values) == ["Fz", "Cz", "Pz"]
    assert list(result["image"].values) == ["cat_01a", "dog_01b"]
    np.testing.assert_array_equal(result.sel(image="dog_01b").values, data[0])
    assert result.dtype == np.float32
    pd.DataFrame({"image_id": ["a_01"]}).to_csv(tmp_path / "short.csv", index=False)
    with pytest.raises(DataError, match="1 rows, but"):
        arrays.load_numpy(tmp_path / "d.npz", tmp_path / "short.csv")
    np.save(tmp_path / "flat.npy", np.zeros((2, 5)))
    with pytest.raises(DataError, match="items x channels x times"):
        arrays.load_numpy(tmp_path / "flat.npy", tmp_path / "i.csv", sfreq=1.0)
    bad = data.copy()
    bad[1, 0, 0] = np.inf
    np.save(tmp_path / "inf.npy", bad)
    with pytest.raises(DataError, match="infinite"):
        arrays.load_numpy(tmp_path / "inf.npy", tmp_path / "i.csv", sfreq=1.0)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}, {"b": 2}], dtype=object))
    with pytest.raises(DataError, match="not a plain NumPy"):
        arrays.load_numpy(tmp_path / "obj.npy", tmp_path / "i.csv", sfreq=1.0)
    with pytest.raises(UsageError, match="sfreq"):
        arrays.load_numpy(tmp_path / "inf.npy", tmp_path / "i.csv")


def test_epochs_with_image_column(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    data = rng.standard_normal((5, 3, 8)).astype(np.float32)
    meta = pd.DataFrame(
        {
            "stim": ["img/a_1.png", "img/b_1.png", "img/a_1.png", "img/c_1.png", "img/b_1.png"],
            "cat": ["A", "B", "A", "C", "B"],
        }
    )
    epochs = mne.EpochsArray(
        data,
        mne.create_info(["E1", "E2", "E3"], 50.0, "eeg"),
        tmin=-0.04,
        metadata=meta,
        verbose="error",
    )
    path = tmp_path / "sub-01-epo.fif"
    epochs.save(path, fmt="single", verbose="error")
    result = arrays.load_epochs(path, "stim", concept_column="cat")
    np.testing.assert_allclose(
        result.sel(image="b_1").values, data[[1, 4]].astype(np.float64).mean(0), rtol=1e-6
    )
    assert result.sel(image="a_1")["concept"].item() == "A"
    by_concept = arrays.load_epochs(path, "stim", concept_column="cat", average="concept")
    assert list(by_concept["concept"].values) == ["A", "B", "C"]
    with pytest.raises(UsageError, match="no column 'image'"):
        arrays.load_epochs(path, "image")


def _eeg2_files(tmp_path: Path) -> tuple[Path, Path, np.ndarray]:
    rng = np.random.default_rng(2)
    data = rng.standard_normal((3, 4, 17, 100))
    eeg = tmp_path / "preprocessed_eeg_test.npy"
    np.save(
        eeg,
        {
            "preprocessed_eeg_data": data,
            "ch_names": [f"O{i}" for i in range(17)],
            "times": np.linspace(-0.2, 0.79, 100),
        },
        allow_pickle=True,
    )
    meta = tmp_path / "image_metadata.npy"
    np.save(
        meta,
        {
            "test_img_files": ["zebra_13s.jpg", "ant_14s.jpg", "yak_13s.jpg"],
            "test_img_concepts": ["00003_zebra", "00001_ant", "00002_yak"],
            "train_img_files": [],
            "train_img_concepts": [],
        },
        allow_pickle=True,
    )
    return eeg, meta, data


def test_things_eeg2_needs_trust_and_matches_numpy(tmp_path: Path) -> None:
    eeg, meta, data = _eeg2_files(tmp_path)
    with pytest.raises(UsageError, match=r"arbitrary code.*--trust-pickle"):
        arrays.load_things_eeg2(eeg, meta)
    mean = arrays.load_things_eeg2(eeg, meta, trust_pickle=True)
    assert list(mean["image"].values) == ["ant_14s", "yak_13s", "zebra_13s"]
    np.testing.assert_allclose(
        mean.sel(image="zebra_13s").values, data[0].mean(0), rtol=1e-5, atol=1e-6
    )
    assert mean.sel(image="zebra_13s")["concept"].item() == "zebra"
    reps = arrays.load_things_eeg2(eeg, meta, trust_pickle=True, repetitions=True)
    assert reps.shape == (3, 4, 17, 100)
    np.testing.assert_allclose(reps.sel(image="ant_14s").values, data[1], rtol=1e-6, atol=1e-6)
    with pytest.raises(DataError, match="0 train images"):
        arrays.load_things_eeg2(eeg, meta, trust_pickle=True, partition="train")
