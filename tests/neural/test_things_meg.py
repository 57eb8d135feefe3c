"""THINGS-MEG loader against direct NumPy computations on small files made here."""

from __future__ import annotations

from pathlib import Path

import mne
import numpy as np
import pandas as pd
import pytest

from figureground.errors import DataError, UsageError
from figureground.neural import sensors, things_meg
from figureground.neural.aggregate import TrialSource, pick_channels

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


# THINGS numbering of the fixture's images (things_image_nr), as in the public CSV; catch
# trials have none (an empty CSV field).
THINGS_IMAGE_NR = {
    "ant_03c": 3,
    "bee_13s": 120,
    "cat_01b": 201,
    "cat_02s": 202,
    "dog_01a": 301,
    "dog_02b": 302,
    "owl_14s": 414,
}
CATCH_CODE = 999999  # the authors' event code for catch trials


def _things_columns(attributes: pd.DataFrame) -> pd.DataFrame:
    """Add the public CSV's columns with their missing values (NaN for catch rows)."""
    frame = attributes.copy()
    stems = frame["image_path"].map(_stem)
    catch = frame["trial_type"] == "catch"
    test = frame["trial_type"] == "test"
    frame["things_image_nr"] = stems.map(THINGS_IMAGE_NR).astype(float)  # NaN for catch
    frame["things_category_nr"] = (frame["things_image_nr"] // 100 + 1).where(~catch)
    frame["test_image_nr"] = np.where(test, 1.0, np.nan)
    frame["responded"] = catch.astype(int)
    frame["key_id"] = pd.Series(np.where(catch, "b", None), dtype=object)  # text, mostly empty
    frame["RT"] = np.nan  # a column that is empty throughout
    return frame


def _write(
    tmp_path: Path,
    attach: bool = True,
    seed: int = 0,
    n_ch: int = N_CH,
    bad_sample: bool = False,
    *,
    names: list[str] | None = None,
    things: bool = False,
    codes: str = "image_nr",
    info: mne.Info | None = None,
) -> tuple[Path, Path, np.ndarray, pd.DataFrame]:
    """Epochs file + attributes CSV; ``things`` adds the public CSV's sparse columns and
    ``codes="things_image_nr"`` writes the public files' event codes (999999 for catch)."""
    rng = np.random.default_rng(seed)
    attributes = _attributes(rng)
    if things:
        attributes = _things_columns(attributes)
    if info is None:
        names = names or [f"MLC{i:02d}" for i in range(n_ch)]
        info = mne.create_info(names, SFREQ, "mag")
    data = rng.standard_normal((len(attributes), len(info.ch_names), N_T)).astype(np.float32)
    if bad_sample:
        data[4, 2, 7] = np.nan
    event_codes = attributes[codes].fillna(CATCH_CODE).to_numpy().astype(int)
    events = np.column_stack([np.arange(len(data)) * 100, np.zeros(len(data), int), event_codes])
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


def test_picks_match_with_or_without_the_ctf_suffix(tmp_path: Path) -> None:
    info = sensors.things_meg_info(SFREQ)
    fif, csv, data, attributes = _write(tmp_path, info=info)
    names = info.ch_names
    result = things_meg.load(fif, csv, picks=["MLC11", "MLO12-1609"])
    assert list(result["channel"].values) == ["MLC11-1609", "MLO12-1609"]  # the file's names
    rows = np.flatnonzero(attributes["image_path"].map(_stem) == "cat_01b")
    expected = data[rows][:, [names.index("MLC11-1609"), names.index("MLO12-1609")]]
    np.testing.assert_allclose(result.sel(image="cat_01b").values, expected.mean(0), rtol=1e-6)
    prefix = things_meg.load(fif, csv, picks="MLO")
    assert prefix.sizes["channel"] == 19
    assert all(str(name).startswith("MLO") for name in prefix["channel"].values)
    with pytest.raises(UsageError, match=r"not in .*\['MLX11', 'MRO11-1609'\]"):
        things_meg.load(fif, csv, picks=["MLC11", "MLX11", "MRO11-1609"])
    with pytest.raises(UsageError, match="empty"):
        things_meg.load(fif, csv, picks=[])


def test_suffixed_picks_work_on_a_file_without_suffixes(tmp_path: Path) -> None:
    fif, csv, *_ = _write(tmp_path)  # channels MLC00..MLC29
    result = things_meg.load(fif, csv, picks=["MLC03-1609", "MLC01"])
    assert list(result["channel"].values) == ["MLC03", "MLC01"]


def test_pick_channels_prefers_exact_names_and_skips_ambiguous_bare_names() -> None:
    source = TrialSource(
        name="mixed",
        ch_names=["MLC11-1609", "MLC11-2622", "MLC12", "EEG-Fp1"],
        times=np.zeros(1),
        n_trials=0,
        read=lambda indices, channels: np.zeros((0, 0, 0)),
    )
    np.testing.assert_array_equal(pick_channels(source, ["MLC11-2622", "EEG-Fp1"]), [1, 3])
    np.testing.assert_array_equal(pick_channels(source, ["MLC12-1609"]), [2])
    with pytest.raises(UsageError, match="MLC11"):
        pick_channels(source, ["MLC11"])  # two channels share the bare name


def test_missing_values_in_attached_metadata_match_the_csv(tmp_path: Path) -> None:
    """Text and all-empty columns with missing values survive MNE's fif round trip as None
    or NaN while the CSV reads NaN; correctly ordered rows must not be called misaligned."""
    fif, csv, _, attributes = _write(tmp_path, things=True)
    attached = mne.read_epochs(fif, preload=False, verbose="error").metadata
    assert attached["key_id"].isna().any() and attached["RT"].isna().all()
    assert ",," in csv.read_text() and str(CATCH_CODE) not in csv.read_text()
    result = things_meg.load(fif, csv)
    assert result.sizes["image"] == 5
    test = things_meg.load(fif, csv, trial_type="test")
    assert test.shape[:2] == (2, 3)
    shuffled = attributes.iloc[np.r_[1, 0, 2 : len(attributes)]]  # swap the first two rows
    shuffled.to_csv(csv, index=False)
    with pytest.raises(DataError, match="misaligned"):
        things_meg.load(fif, csv)


def test_missing_value_forms_compare_equal(tmp_path: Path) -> None:
    """Empty text, 'n/a' and NaN in the CSV all equal None/NaN in the attached metadata."""
    fif, csv, _, attributes = _write(tmp_path, things=True)
    text = csv.read_text().splitlines()
    header, rows = text[0], text[1:]
    key_id = header.split(",").index("key_id")
    edited = []
    for line in rows:
        fields = line.split(",")
        if fields[key_id] == "":
            fields[key_id] = "n/a"
        edited.append(",".join(fields))
    csv.write_text("\n".join([header, *edited]) + "\n")
    assert things_meg.load(fif, csv).sizes["image"] == 5
    changed = attributes.copy()
    changed.loc[changed["trial_type"] == "catch", "key_id"] = None  # a value became missing
    changed.to_csv(csv, index=False)
    with pytest.raises(DataError, match=r"key_id.*misaligned"):
        things_meg.load(fif, csv)


def test_csv_order_checked_against_things_image_nr_codes(tmp_path: Path) -> None:
    fif, csv, _, attributes = _write(tmp_path, attach=False, things=True, codes="things_image_nr")
    events = mne.read_epochs(fif, preload=False, verbose="error").events[:, 2]
    catch = (attributes["trial_type"] == "catch").to_numpy()
    assert (events[catch] == CATCH_CODE).all()
    good = things_meg.load(fif, csv)
    assert good.sizes["image"] == 5
    exp_row = int(np.flatnonzero(attributes["trial_type"] == "exp")[0])
    other = int(np.flatnonzero(attributes["trial_type"] == "exp")[1])
    catch_row = int(np.flatnonzero(catch)[0])
    for pair in ([exp_row, other], [exp_row, catch_row]):
        swapped = attributes.copy()
        swapped.iloc[pair] = swapped.iloc[pair[::-1]].to_numpy()
        swapped.to_csv(csv, index=False)
        with pytest.raises(DataError, match=r"things_image_nr=.*different order"):
            things_meg.load(fif, csv)


def test_image_nr_codes_still_checked_when_things_columns_exist(tmp_path: Path) -> None:
    fif, csv, _, attributes = _write(tmp_path, attach=False, things=True, codes="image_nr")
    assert things_meg.load(fif, csv).sizes["image"] == 5
    attributes.iloc[::-1].to_csv(csv, index=False)
    with pytest.raises(DataError, match=r"image_nr=.*different order"):
        things_meg.load(fif, csv)


def test_unrecognised_codes_warn_and_trust_the_order(tmp_path: Path, caplog) -> None:
    fif, csv, _, attributes = _write(tmp_path, attach=False, things=True)
    attributes.drop(columns=["image_nr", "things_image_nr"]).to_csv(csv, index=False)
    with caplog.at_level("WARNING"):
        assert things_meg.load(fif, csv).sizes["image"] == 5
    assert "order not verified" in caplog.text


def test_exp_row_without_image_path_is_a_data_error(tmp_path: Path) -> None:
    fif, csv, _, attributes = _write(tmp_path, attach=False)
    broken = attributes.copy()
    row = int(np.flatnonzero(broken["trial_type"] == "exp")[0])
    broken.loc[row, "image_path"] = None
    broken.to_csv(csv, index=False)
    with pytest.raises(DataError, match=f"row {row} .*without image_path"):
        things_meg.load(fif, csv)


def test_attributes_found_beside_the_epochs(tmp_path: Path) -> None:
    fif, csv, _, _ = _write(tmp_path)
    assert things_meg.find_attributes(fif) == csv
    assert things_meg.find_participants(tmp_path) == {"P1": (fif, csv)}
    csv.unlink()
    assert things_meg.find_attributes(fif) is None
    assert things_meg.find_participants(tmp_path) == {"P1": (fif, None)}


def test_attributes_found_in_bids_sourcedata(tmp_path: Path) -> None:
    bids = tmp_path / "ds004212"
    preprocessed = bids / "derivatives" / "preprocessed"
    sourcedata = bids / "sourcedata"
    preprocessed.mkdir(parents=True)
    sourcedata.mkdir()
    for seed in (0, 1):
        _, csv, _, _ = _write(preprocessed, seed=seed, attach=False)
        csv.rename(sourcedata / csv.name)
    fif = preprocessed / "preprocessed_P2-epo.fif"
    assert things_meg.find_attributes(fif) == sourcedata / "sample_attributes_P2.csv"
    found = things_meg.find_participants(preprocessed)
    assert {name: csv for name, (_, csv) in found.items()} == {
        "P1": sourcedata / "sample_attributes_P1.csv",
        "P2": sourcedata / "sample_attributes_P2.csv",
    }
    arrays = things_meg.load_participants(preprocessed)  # no metadata attached: CSV needed
    assert list(arrays) == ["P1", "P2"]
    beside = preprocessed / "sample_attributes_P2.csv"
    beside.write_bytes((sourcedata / "sample_attributes_P2.csv").read_bytes())
    assert things_meg.find_attributes(fif) == beside  # beside the epochs wins
    assert things_meg.find_attributes(tmp_path / "epochs.fif") is None
