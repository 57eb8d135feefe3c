"""THINGS-MEG preprocessing on a small BIDS tree made here (2 sessions x 2 runs, FIF)."""

from __future__ import annotations

import shutil
from pathlib import Path

import mne
import numpy as np
import pandas as pd
import pytest

from bids_fixture import SFREQ, SUBJECT, bids_path, events_path, make_raw, write_events, write_run
from figureground import cli
from figureground.errors import DataError, UsageError
from figureground.neural import sensors, things_meg
from figureground.neural.design import ATTRIBUTE_COLUMNS
from figureground.neural.preprocess import (
    Dropout,
    PreprocessSettings,
    RunFile,
    check_onsets,
    decimation_factor,
    find_runs,
    patch_dropouts,
    photodiode_onsets,
    preprocess_run,
)
from figureground.neural.preprocess_io import (
    authors_event_samples,
    cache_paths,
    load_cached_run,
    preprocess_participant,
)

N_SAMPLES = 5400  # 4.5 s per run
ONSETS = (360, 1500, 2580, 3720)  # photodiode onsets (events.tsv sample), > 1000 apart
TRIAL_TYPES = {"01": ("exp", "test", "exp", "catch"), "02": ("exp", "catch", "test", "exp")}
_bids_path, _write_events = bids_path, write_events


def _raw(rng: np.random.Generator, onsets: np.ndarray) -> mne.io.RawArray:
    """Noise + drift + an evoked bump after each onset; triggers and photodiode as ds004212."""
    return make_raw(rng, onsets, N_SAMPLES)


def _trials(session: int, run: str) -> pd.DataFrame:
    """The CSV rows (18 columns, design.py's format) of one run."""
    rows = []
    for k, kind in enumerate(TRIAL_TYPES[run]):
        concept = f"thing{session}{run}{k}"
        if kind == "exp":
            image_nr, path = (
                100 * session + 10 * int(run) + k,
                f"images_meg/{concept}/{concept}_01s.jpg",
            )
            category = float(image_nr)
        elif kind == "test":
            image_nr, path = 5000 + int(run), f"images_test_meg/probe{run}_13s.jpg"
            category = 900.0 + int(run)
        else:
            image_nr, path = np.nan, f"images_catch_meg/catch{session}{run}{k}.jpg"
            category = np.nan
        onset = ONSETS[k] / SFREQ
        rows.append(
            {
                "trial_type": kind,
                "image_nr": k + 1,
                "category_nr": category if kind != "catch" else 1855,
                "exemplar_nr": 1,
                "test_image_nr": int(run) if kind == "test" else np.nan,
                "things_category_nr": category,
                "things_image_nr": image_nr,
                "things_exemplar_nr": 1 if kind != "catch" else np.nan,
                "image_path": path,
                "onset": onset,
                "image_on": onset,
                "image_off": onset + 0.5,
                "responded": int(kind == "catch"),
                "key_id": 1 if kind == "catch" else np.nan,
                "key_time": onset + 0.6 if kind == "catch" else np.nan,
                "RT": 0.6 if kind == "catch" else np.nan,
                "session_nr": session,
                "run_nr": int(run),
            }
        )
    return pd.DataFrame(rows, columns=list(ATTRIBUTE_COLUMNS))


@pytest.fixture(scope="module")
def bids(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ds004212")
    rng = np.random.default_rng(7)
    tables = []
    for session in ("01", "02"):
        for run in ("01", "02"):
            write_run(root, session, run, _raw(rng, np.array(ONSETS)))
            trials = _trials(int(session), run)
            _write_events(events_path(root, session, run), trials, ONSETS)
            tables.append(trials)
    (root / "sourcedata").mkdir()
    pd.concat(tables).to_csv(root / "sourcedata" / "sample_attributes_P1.csv", index=False)
    return root


@pytest.fixture(scope="module")
def preprocessed(bids, tmp_path_factory):
    out = tmp_path_factory.mktemp("preprocessed")
    return out, preprocess_participant(bids, 1, out)


def _reference_epochs(raw_path: Path, samples) -> np.ndarray:
    """Filter with mne.filter.filter_data, epoch, z-score and decimate with NumPy."""
    raw = mne.io.read_raw_fif(raw_path, preload=True, verbose="error")
    picks = [raw.ch_names.index(name) for name in sensors.things_meg_channel_names()]
    data = mne.filter.filter_data(raw.get_data()[picks], SFREQ, 0.1, 40.0, verbose="error")
    out = []
    for sample in samples:
        segment = data[:, sample - 120 : sample + 1561]  # -0.1 .. 1.3 s: 1681 samples
        base = segment[:, :121]  # t <= 0
        zscored = (segment - base.mean(axis=1, keepdims=True)) / base.std(axis=1, keepdims=True)
        out.append(zscored[:, ::6])
    return np.array(out)


def test_find_runs_lists_runs_in_order_with_events(bids, tmp_path):
    runs = find_runs(bids, "1")
    assert [(r.session, r.run) for r in runs] == [
        ("01", "01"),
        ("01", "02"),
        ("02", "01"),
        ("02", "02"),
    ]
    assert all(r.raw_path.suffix == ".fif" and r.events_path.is_file() for r in runs)
    assert runs[0].name == "sub-BIGMEG1_ses-01_task-main_run-01"
    # a CTF run is a .ds folder; it is found the same way
    meg = tmp_path / "sub-BIGMEG2" / "ses-01" / "meg"
    (meg / "sub-BIGMEG2_ses-01_task-main_run-01_meg.ds").mkdir(parents=True)
    (runs_ctf,) = find_runs(tmp_path, "sub-BIGMEG2")
    assert runs_ctf.raw_path.name.endswith("_meg.ds")
    assert runs_ctf.events_path.name == "sub-BIGMEG2_ses-01_task-main_run-01_events.tsv"
    with pytest.raises(UsageError, match="participant 3 not in"):
        find_runs(bids, 3)


def test_output_matches_numpy_reference_and_loads(bids, preprocessed):
    out, result = preprocessed
    assert result.failed == () and len(result.computed) == 4 and result.n_epochs == 16
    epochs = mne.read_epochs(result.epochs_path, verbose="error")
    assert epochs.ch_names == sensors.things_meg_channel_names()  # 271, MRO11 and refs out
    assert set(epochs.get_channel_types()) == {"mag"}
    assert epochs.info["sfreq"] == 200.0 and len(epochs.times) == 281
    assert epochs.times[0] == pytest.approx(-0.1) and epochs.times[-1] == pytest.approx(1.3)
    assert epochs.info["lowpass"] == 40.0
    assert epochs.info["highpass"] == pytest.approx(0.1)
    assert epochs.get_data().shape == (16, 271, 281)
    csv = pd.read_csv(bids / "sourcedata" / "sample_attributes_P1.csv")
    expected = csv["things_image_nr"].fillna(999999).astype(int).to_numpy()
    assert np.array_equal(epochs.events[:, 2], expected)
    assert (expected == 999999).sum() == 4
    # data: a NumPy pipeline on two runs, one per session
    for row, (session, run) in ((4, ("01", "02")), (8, ("02", "01"))):
        raw_path = _bids_path(bids, session, run).fpath
        reference = _reference_epochs(raw_path, ONSETS)
        got = epochs.get_data()[row : row + 4]
        np.testing.assert_allclose(got, reference, rtol=1e-5, atol=2e-5)
    # the CSV beside the epochs is the source file, byte for byte
    copied = out / "sample_attributes_P1.csv"
    assert copied.read_bytes() == (bids / "sourcedata" / "sample_attributes_P1.csv").read_bytes()
    assert things_meg.find_attributes(result.epochs_path) == copied
    loaded = things_meg.load(result.epochs_path, copied, "exp")
    assert loaded.sizes["channel"] == 271 and loaded.sizes["time"] == 281
    assert loaded.sizes["image"] == 8
    test = things_meg.load(result.epochs_path, copied, "test")
    assert test.sizes["repetition"] == 2


def test_event_samples_equal_mnes_nested_concatenation(preprocessed):
    """Runs within sessions, then sessions, concatenated by MNE at 1200 Hz (the authors)."""
    _, result = preprocessed
    epochs = mne.read_epochs(result.epochs_path, preload=False, verbose="error")
    info = mne.create_info(1, SFREQ, "mag")

    def run_epochs():
        events = np.column_stack([ONSETS, np.zeros(4, int), np.arange(1, 5)])
        return mne.EpochsArray(np.zeros((4, 1, 1681)), info, events, tmin=-0.1, verbose="error")

    sessions = [
        mne.concatenate_epochs([run_epochs(), run_epochs()], verbose="error") for _ in range(2)
    ]
    nested = mne.concatenate_epochs(sessions, add_offset=True, verbose="error")
    assert np.array_equal(epochs.events[:, 0], nested.events[:, 0])
    flat = authors_event_samples([np.array(ONSETS)] * 4, 1.3, SFREQ)
    assert np.array_equal(flat, nested.events[:, 0])


def test_resume_recomputes_nothing(bids, preprocessed):
    out, first = preprocessed
    runs = find_runs(bids, SUBJECT)
    caches = [cache_paths(out, run)[0] for run in runs]
    before = [path.stat().st_mtime_ns for path in caches]
    data_before = mne.read_epochs(first.epochs_path, verbose="error").get_data()
    again = preprocess_participant(bids, "BIGMEG1", out)
    assert again.computed == () and len(again.reused) == 4 and again.failed == ()
    assert [path.stat().st_mtime_ns for path in caches] == before
    np.testing.assert_array_equal(
        mne.read_epochs(again.epochs_path, verbose="error").get_data(), data_before
    )
    # other settings make the cache stale instead of silently reusing it
    assert load_cached_run(out, runs[0], PreprocessSettings(lag_tolerance=0.04)) is None
    assert load_cached_run(out, runs[0], PreprocessSettings()) is not None


def test_bad_runs_are_reported_and_skipped(bids, tmp_path, capsys):
    root = tmp_path / "bids"
    shutil.copytree(bids, root)
    truncated = _bids_path(root, "01", "02").fpath
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 3])
    _bids_path(root, "02", "02").copy().update(suffix="events", extension=".tsv").fpath.unlink()
    # the last epoch of ses-02 run-01 ends after the recording: MNE drops it, its row goes too
    late = [*ONSETS[:3], 5000]
    events = _bids_path(root, "02", "01").copy().update(suffix="events", extension=".tsv")
    _write_events(events.fpath, _trials(2, "01"), late)
    out = tmp_path / "out"
    code = cli.main(["preprocess-meg", "--bids-root", str(root), "--participant", "1",
                     "--out", str(out), "--no-onset-checks"])  # fmt: skip
    assert code == cli.EXIT_PARTIAL
    warnings_text = [line for line in capsys.readouterr().err.splitlines() if "WARNING" in line]
    skipped = [line for line in warnings_text if "skipped run" in line]
    assert len(skipped) == 2
    assert "ses-01_task-main_run-02" in skipped[0] and "cannot read" in skipped[0]
    assert "ses-02_task-main_run-02" in skipped[1] and "events file" in skipped[1]
    epochs_path = out / "preprocessed_P1-epo.fif"
    epochs = mne.read_epochs(epochs_path, verbose="error")
    assert len(epochs) == 7
    attributes = pd.read_csv(out / "sample_attributes_P1.csv")
    source = pd.read_csv(root / "sourcedata" / "sample_attributes_P1.csv")
    kept = source[(source["run_nr"] == 1)].iloc[:7].reset_index(drop=True)
    pd.testing.assert_frame_equal(attributes, kept)
    assert list(attributes["trial_type"][4:]) == ["exp", "test", "exp"]  # the catch is gone
    loaded = things_meg.load(epochs_path, out / "sample_attributes_P1.csv", "exp")
    assert loaded.sizes["image"] == 4


def test_trigger_photodiode_mismatch_raises_one_line(bids, tmp_path):
    path = _bids_path(bids, "01", "01")
    events = tmp_path / "sub-BIGMEG1_ses-01_task-main_run-01_events.tsv"
    shifted = np.array(ONSETS)
    shifted[2] += 240  # 0.2 s late: no photodiode onset there
    _write_events(events, _trials(1, "01"), shifted)
    with pytest.raises(DataError, match=r"trial 3 .* photodiode") as error:
        preprocess_run(path.fpath, events)
    assert "sub-BIGMEG1_ses-01_task-main_run-01" in str(error.value)
    assert "\n" not in str(error.value)
    _write_events(events, _trials(1, "01").iloc[:3], ONSETS[:3])  # a row missing
    with pytest.raises(DataError, match="4 triggers of amplitude 64 on UPPT001 but 3"):
        preprocess_run(path.fpath, events)


def test_check_onsets_lag_and_tolerances():
    settings = PreprocessSettings()
    onsets = np.array([1000, 3000, 5000])
    photodiode = onsets + 1
    check_onsets(onsets, onsets - 36, photodiode, SFREQ, settings, "run")
    with pytest.raises(DataError, match="trial 2 starts 113 ms after its UPPT001 trigger"):
        check_onsets(onsets, onsets - [36, 136, 36], photodiode, SFREQ, settings, "run")
    check_onsets(onsets, onsets - [36, 136, 36], None, SFREQ, settings, "run")  # no photodiode
    with pytest.raises(DataError, match="no photodiode onset"):
        check_onsets(onsets, onsets - 36, np.array([], int), SFREQ, settings, "run")


def test_photodiode_onsets_first_rise_of_each_burst():
    signal = np.zeros(5000)
    signal[100:700] = 4.0
    signal[300] = 0.0  # a flicker within the burst is ignored (closer than 1000 samples)
    signal[2100:2700] = 4.0
    assert photodiode_onsets(signal, 1.5, 1000).tolist() == [100, 2100]


def test_dropout_is_replaced_by_channel_medians():
    rng = np.random.default_rng(0)
    data = rng.standard_normal((3, 2400))
    raw = mne.io.RawArray(data.copy(), mne.create_info(3, SFREQ, "mag"), verbose="error")
    run = RunFile("BIGMEG1", "11", "05", Path("x.fif"), Path("x.tsv"), "run")
    patch_dropouts(raw, run, PreprocessSettings(dropouts=(Dropout("BIGMEG1", "11", "05", 1.0),)))
    patched = raw.get_data()
    first = int(np.argmin(np.abs(raw.times - 1.0)))
    assert first == 1200
    np.testing.assert_array_equal(
        patched[:, 1200:1440], np.repeat(np.median(data, axis=1)[:, None], 240, axis=1)
    )
    np.testing.assert_array_equal(patched[:, :1200], data[:, :1200])
    np.testing.assert_array_equal(patched[:, 1440:], data[:, 1440:])


def test_settings_are_checked():
    assert decimation_factor(1200.0, PreprocessSettings()) == 6
    with pytest.raises(DataError, match="not an integer multiple"):
        decimation_factor(1200.0, PreprocessSettings(sfreq=250.0))
    with pytest.raises(UsageError, match="h_freq"):
        PreprocessSettings(h_freq=0.05)


def test_bids_source_preprocesses_in_the_run_and_caches(bids, tmp_path):
    """``neural.source: bids``: the neural stage preprocesses into RUN/neural/preprocessed,
    the entries load as THINGS-MEG, and an unchanged second run reuses the stage."""
    from figureground.analysis.study.inputs import load_recordings
    from figureground.config import parse_study
    from figureground.pipeline import RunState, StageCache, stage_neural

    study = parse_study(
        {"neural": {"source": "bids", "path": str(bids), "bids": {"onset_tolerance": 0.02}}},
        tmp_path,
    )
    run_dir = tmp_path / "run"
    state = RunState(run_dir=run_dir, study=study)
    stage_neural(state, StageCache(run_dir))
    assert list(state.neural_files) == ["P1"]
    assert state.neural_files["P1"].epochs == (
        run_dir / "neural" / "preprocessed" / "preprocessed_P1-epo.fif"
    )
    responses = load_recordings(state.neural_files)["P1"]
    assert responses.sizes["channel"] == 271 and responses.sizes["time"] == 281
    again = RunState(run_dir=run_dir, study=study)
    stage_neural(again, StageCache(run_dir))
    assert again.skipped == ["neural"] and again.neural_files == state.neural_files


def test_gaze_file_holds_each_epochs_eye_tracking(bids, preprocessed):
    """gaze_P1.npz: one row per saved epoch, the run's cleaned gaze at the output times."""
    from figureground.neural.gaze import epoch_gaze

    out, result = preprocessed
    assert result.gaze_path == out / "gaze_P1.npz"
    with np.load(result.gaze_path, allow_pickle=False) as data:
        gaze, times = data["gaze"], data["times"]
    epochs = mne.read_epochs(result.epochs_path, preload=False, verbose="error")
    assert gaze.shape == (16, 2, 281) and gaze.dtype == np.float32
    assert np.isfinite(gaze).all()  # the fixture's eyes rest at the centre (noise only)
    np.testing.assert_allclose(times, epochs.times)
    raw = mne.io.read_raw_fif(_bids_path(bids, "01", "02").fpath, preload=True, verbose="error")
    reference = epoch_gaze(raw, np.array(ONSETS) + raw.first_samp, -0.1, 1.3)[..., ::6]
    np.testing.assert_allclose(gaze[4:8], reference, rtol=1e-5, atol=1e-6)


def test_runs_on_dask_equal_the_serial_output(bids, preprocessed, tmp_path):
    """One task per run on a LocalCluster: the same epochs and gaze as in this process."""
    _, serial = preprocessed
    parallel = preprocess_participant(bids, 1, tmp_path, scheduler="local:2")
    assert sorted(parallel.computed) == sorted(serial.computed) and parallel.failed == ()
    np.testing.assert_array_equal(
        mne.read_epochs(parallel.epochs_path, verbose="error").get_data(),
        mne.read_epochs(serial.epochs_path, verbose="error").get_data(),
    )
    with np.load(parallel.gaze_path) as a, np.load(serial.gaze_path) as b:
        np.testing.assert_array_equal(a["gaze"], b["gaze"])
