"""THINGS-MEG loader against direct NumPy computations on small files made here."""

from __future__ import annotations

from pathlib import Path

import mne
import numpy as np
import pandas as pd
import pytest

from figureground.errors import DataError, UsageError
from figureground.neural import things_meg

N_CH, N_T, SFREQ, TMIN = 30, 50, 100.0, -0.1


def _attributes(rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    exp = [
        ("cat", "cat_01b"),
        ("cat", "cat_02s"),
        ("dog", "dog_01a"),
        ("dog", "dog_02b"),
        ("ant", "ant_03c"),
    ]
    for session in (1, 2, 3):
        for concept, stem in exp:
            if session == 1 or stem == "dog_02b":  # dog_02b is shown in every session
                rows.append(("exp", f"images_meg/{concept}/{stem}.jpg", session))
        for stem in ("bee_13s", "owl_14s"):
            rows.append(("test", f"images_test_meg/{stem}.jpg", session))
        rows.append(("catch", f"images_catch_meg/catch{session:03d}.jpg", session))
    frame = pd.DataFrame(rows, columns=["trial_type", "image_path", "session_nr"])
    frame = frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)
    frame["image_nr"] = np.arange(len(frame)) + 101  # unique codes, also used as events
    frame["run_nr"] = 1
    return frame


def _write(
    tmp_path: Path, attach: bool = True, seed: int = 0, n_ch: int = N_CH, bad_sample: bool = False
) -> tuple[Path, Path, np.ndarray, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    attributes = _attributes(rng)
    data = rng.standard_normal((len(attributes), n_ch, N_T)).astype(np.float32)
    if bad_sample:
        data[4, 2, 7] = np.nan
    info = mne.create_info([f"MLC{i:02d}" for i in range(n_ch)], SFREQ, "mag")
    events = np.column_stack(
        [np.arange(len(data)) * 100, np.zeros(len(data), int), attributes["image_nr"]]
    )
    epochs = mne.EpochsArray(
        data,
        info,
        events=events,
        tmin=TMIN,
        metadata=attributes if attach else None,
        verbose="error",
    )
    fif = tmp_path / f"preprocessed_P{seed + 1}-epo.fif"
    epochs.save(fif, fmt="single", overwrite=True, verbose="error")
    csv = tmp_path / f"sample_attributes_P{seed + 1}.csv"
    attributes.to_csv(csv, index=False)
    return fif, csv, data, attributes


def _stem(path: str) -> str:
    return Path(path).stem


def test_exp_average_matches_numpy(tmp_path: Path) -> None:
    fif, csv, data, attributes = _write(tmp_path)
    result = things_meg.load(fif, csv, chunk_size=4)
    exp = attributes[attributes["trial_type"] == "exp"]
    expected_ids = sorted(exp["image_path"].map(_stem).unique())
    assert list(result["image"].values) == expected_ids
    assert result.dims == ("image", "channel", "time") and result.dtype == np.float32
    for image_id in expected_ids:
        rows = np.flatnonzero(
            (attributes["trial_type"] == "exp") & (attributes["image_path"].map(_stem) == image_id)
        )
        np.testing.assert_allclose(
            result.sel(image=image_id).values, data[rows].astype(np.float64).mean(axis=0), rtol=1e-6
        )
    assert result.sel(image="dog_02b")["session"].item() == 1
    assert result.sel(image="ant_03c")["concept"].item() == "ant"
    assert not any("catch" in i for i in result["image"].values)
    np.testing.assert_allclose(result["time"].values, TMIN + np.arange(N_T) / SFREQ)
    assert result.attrs["participant"] == "P1"


def test_test_trials_keep_repetitions_by_session(tmp_path: Path) -> None:
    fif, _, data, attributes = _write(tmp_path)
    result = things_meg.load(fif, trial_type="test", chunk_size=5)
    assert result.dims == ("image", "repetition", "channel", "time")
    assert result.shape == (2, 3, N_CH, N_T)
    for image_id in ("bee_13s", "owl_14s"):
        mask = attributes["image_path"].map(_stem) == image_id
        by_session = attributes[mask].sort_values("session_nr").index.to_numpy()
        np.testing.assert_array_equal(result.sel(image=image_id).values, data[by_session])
        np.testing.assert_array_equal(result.sel(image=image_id)["session"].values, [1, 2, 3])
    assert result.sel(image="bee_13s")["concept"].item() == "bee"


def test_concept_window_picks_decim(tmp_path: Path) -> None:
    fif, csv, data, attributes = _write(tmp_path)
    picks = ["MLC03", "MLC01"]
    result = things_meg.load(fif, csv, average="concept", tmin=0.0, tmax=0.3, picks=picks, decim=2)
    times = TMIN + np.arange(N_T) / SFREQ
    keep = np.flatnonzero((times > -1e-9) & (times < 0.3 + 1e-9))[::2]
    np.testing.assert_allclose(result["time"].values, times[keep])
    assert list(result["channel"].values) == picks
    mask = (attributes["trial_type"] == "exp") & attributes["image_path"].str.contains("/dog/")
    expected = data[np.flatnonzero(mask)][:, [3, 1]][:, :, keep].astype(np.float64).mean(0)
    np.testing.assert_allclose(result.sel(concept="dog").values, expected, rtol=1e-6)
    assert result.sel(concept="dog")["n_images"].item() == 2
    assert result.attrs["sfreq"] == pytest.approx(SFREQ / 2)


def test_csv_in_wrong_order_is_caught(tmp_path: Path) -> None:
    fif, csv, _, attributes = _write(tmp_path)
    attributes.iloc[::-1].to_csv(csv, index=False)
    with pytest.raises(DataError, match="misaligned"):
        things_meg.load(fif, csv)


def test_csv_order_checked_against_event_codes_without_metadata(tmp_path: Path) -> None:
    fif, csv, _, attributes = _write(tmp_path, attach=False)
    good = things_meg.load(fif, csv)
    assert good.sizes["image"] == 5
    swapped = attributes.copy()
    swapped.iloc[[0, 1]] = swapped.iloc[[1, 0]].to_numpy()
    swapped.to_csv(csv, index=False)
    with pytest.raises(DataError, match="different order"):
        things_meg.load(fif, csv)
    with pytest.raises(DataError, match="no metadata attached"):
        things_meg.load(fif)


def test_bad_inputs_are_one_line_data_errors(tmp_path: Path) -> None:
    fif, csv, _, attributes = _write(tmp_path)
    attributes.iloc[:-1].to_csv(csv, index=False)
    with pytest.raises(DataError, match="rows, but"):
        things_meg.load(fif, csv)
    with pytest.raises(DataError, match="match no given stimulus"):
        things_meg.load(fif, image_ids=["cat_01b", "cat_02s"])
    ordered = things_meg.load(
        fif, image_ids=["dog_02b", "ant_03c", "cat_01b", "cat_02s", "dog_01a", "unused_01a"]
    )
    assert list(ordered["image"].values)[:2] == ["dog_02b", "ant_03c"]
    with pytest.raises(UsageError, match="trial_type"):
        things_meg.load(fif, trial_type="catch")
    nan_dir = tmp_path / "nan"
    nan_dir.mkdir()
    nan_fif, *_ = _write(nan_dir, bad_sample=True)
    with pytest.raises(DataError, match="NaN") as info:
        things_meg.load(nan_fif, trial_type="exp")
    assert "\n" not in str(info.value)


def test_load_participants_rejects_changed_channel_count(tmp_path: Path) -> None:
    _write(tmp_path, seed=0)
    _write(tmp_path, seed=1)
    arrays = things_meg.load_participants(tmp_path)
    assert list(arrays) == ["P1", "P2"]
    _write(tmp_path, seed=1, n_ch=29)
    with pytest.raises(DataError, match="29 channels"):
        things_meg.load_participants(tmp_path)
