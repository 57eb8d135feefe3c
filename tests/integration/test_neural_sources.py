"""Every neural source end to end: THINGS-MEG files, THINGS-EEG2, MNE epochs and NumPy arrays.

The tiny study's simulated THINGS-MEG recordings are converted to each format, so every
source's responses can be checked against the THINGS-MEG reader of the same numbers.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import mne
import numpy as np
import pandas as pd
import pytest

from figureground.config import parse_study
from figureground.errors import UsageError
from figureground.neural import find_participants, read_participant, things_meg
from figureground.pipeline import run_study
from figureground.reliability.harness import tiny_study

ANALYSES = {
    "seed_method": {"n_boot": 50, "identity": False},
    "responses": {"decim": 4},
    "rsa": {"n_boot": 20, "n_permutations": 20, "levels": ["image"]},
    "encoding": {
        "time_step": 8,
        "n_splits": 2,
        "n_components": 3,
        "inner_splits": 2,
        "n_iter": 2,
        "alphas": [1.0, 100.0],
    },
    "noise_ceiling": {"n_splits": 5},
    "stats": {"n_permutations": 16},
}
N_TEST_IMAGES, N_TEST_REPS = 4, 80


def _study(neural: dict[str, Any]) -> dict[str, Any]:
    return {**tiny_study(), "neural": neural, "analyses": ANALYSES}


def _simulated(run_dir: Path, n: int) -> mne.Epochs:
    return mne.read_epochs(
        run_dir / "neural" / f"preprocessed_P{n}-epo.fif", preload=True, verbose="error"
    )


def _write_epochs(run_dir: Path, folder: Path) -> None:
    """The simulated epochs with renamed metadata columns, as ``sub_P<n>-epo.fif``."""
    folder.mkdir()
    for n in (1, 2):
        epochs = _simulated(run_dir, n)
        meta = epochs.metadata
        epochs.metadata = pd.DataFrame(
            {
                "stimulus": meta["image_path"],
                "kind": meta["trial_type"],
                "block": meta["session_nr"],
            }
        )
        epochs.save(folder / f"sub_P{n}-epo.fif", verbose="error")


def _write_arrays(run_dir: Path, folder: Path) -> None:
    """The simulated experiment trials as ``P<n>.npz`` + ``P<n>.csv`` (no test files)."""
    folder.mkdir()
    for n in (1, 2):
        epochs = _simulated(run_dir, n)
        exp = (epochs.metadata["trial_type"] == "exp").to_numpy()
        np.savez(
            folder / f"P{n}.npz",
            data=epochs.get_data()[exp],
            ch_names=np.array(epochs.ch_names),
            times=epochs.times,
        )
        meta = epochs.metadata[exp]
        pd.DataFrame({"image_id": meta["image_path"], "session": meta["session_nr"]}).to_csv(
            folder / f"P{n}.csv", index=False
        )


def _write_things_eeg2(run_dir: Path, folder: Path) -> dict[int, np.ndarray]:
    """THINGS-EEG2 pickles: 4 noisy repetitions of the simulated experiment responses and
    80 repetitions of 4 test images; returns each participant's training data."""
    rng = np.random.default_rng(0)
    training = {}
    for n in (1, 2):
        exp = things_meg.load(run_dir / "neural" / f"preprocessed_P{n}-epo.fif")
        signal = exp.values.astype(np.float32)
        train = signal[:, None] + 0.1 * rng.standard_normal((len(signal), 4, *signal.shape[1:]))
        pattern = rng.standard_normal((N_TEST_IMAGES, 1, *signal.shape[1:]))
        test = pattern + rng.standard_normal((N_TEST_IMAGES, N_TEST_REPS, *signal.shape[1:]))
        sub = folder / f"sub-{n:02d}"
        sub.mkdir(parents=True)
        content = {"ch_names": list(exp["channel"].values), "times": exp["time"].values}
        np.save(sub / "preprocessed_eeg_training.npy", {**content, "preprocessed_eeg_data": train})
        np.save(sub / "preprocessed_eeg_test.npy", {**content, "preprocessed_eeg_data": test})
        training[n] = train
        ids, concepts = list(exp["image"].values), list(exp["concept"].values)
    test_concepts = [f"probe{k}" for k in range(N_TEST_IMAGES)]
    metadata = {
        "train_img_concepts": [f"{i:05d}_{c}" for i, c in enumerate(concepts, 1)],
        "train_img_files": [
            f"{i:05d}_{c}/{d}.jpg" for i, (c, d) in enumerate(zip(concepts, ids, strict=True), 1)
        ],
        "test_img_concepts": [f"{i:05d}_{c}" for i, c in enumerate(test_concepts, 1)],
        "test_img_files": [f"{i:05d}_{c}/{c}_01b.jpg" for i, c in enumerate(test_concepts, 1)],
    }
    np.save(folder / "image_metadata.npy", metadata)
    return training


def _keep(run_dir: Path, target: Path) -> Path:
    target.mkdir()
    shutil.copytree(run_dir / "results", target / "results")
    shutil.copy(run_dir / "report.html", target / "report.html")
    return target


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The simulated study, then the same run folder on each converted source (the stimuli,
    variants and features stages are cached, so only the recordings and analyses change)."""
    base = tmp_path_factory.mktemp("sources")
    run_study(parse_study(tiny_study(), base))
    run_dir = base / "run"
    _write_epochs(run_dir, base / "epochs")
    _write_arrays(run_dir, base / "arrays")
    training = _write_things_eeg2(run_dir, base / "eeg2")
    (base / "meg").mkdir()
    for file in (run_dir / "neural").glob("*P[0-9]*"):  # epochs and attributes, no truth
        shutil.copy(file, base / "meg" / file.name)
    neural = {
        "things_meg": {"source": "things_meg", "path": "meg"},
        "epochs": {
            "source": "epochs",
            "path": "epochs",
            "epochs": {
                "image_column": "stimulus",
                "session_column": "block",
                "experiment_query": "kind == 'exp'",
                "test_query": "kind == 'test'",
            },
        },
        "things_eeg2": {
            "source": "things_eeg2",
            "path": "eeg2",
            "things_eeg2": {"trust_pickle": True},
        },
        "arrays": {"source": "arrays", "path": "arrays"},
    }
    found: dict[str, Any] = {"base": base, "training": training, "studies": {}}
    for source, section in neural.items():
        study = parse_study(_study(section), base)
        run_study(study)
        found[source] = _keep(run_dir, base / f"kept_{source}")
        found["studies"][source] = study
    return found


def _entries(runs: dict[str, Any], source: str) -> dict[str, dict[str, Any]]:
    cfg = runs["studies"][source].neural
    return find_participants(source, runs["base"] / cfg.path, cfg.options())


@pytest.mark.parametrize("source", ["things_meg", "epochs", "things_eeg2", "arrays"])
def test_run_writes_results_and_report(runs: dict[str, Any], source: str) -> None:
    results = runs[source] / "results"
    rsa = pd.read_csv(results / "rsa_timecourse.csv")
    assert set(rsa["participant"]) >= {"P1", "P2"}
    assert rsa["value"].notna().any()
    encoding = pd.read_csv(results / "encoding.csv")
    assert set(encoding["participant"]) >= {"P1", "P2"}
    assert encoding["value"].notna().any()
    summary = json.loads((results / "summary.json").read_text())
    assert summary["responses"]["participants"] == ["P1", "P2"]
    assert summary["responses"]["n_images"] == {"P1": 5, "P2": 5}
    assert summary["provenance"]["study"]["neural"]["source"] == source
    assert "ground_truth" not in summary  # only the simulator's folder has one
    assert "What this method cannot do" in (runs[source] / "report.html").read_text()


def test_epochs_source_matches_the_things_meg_reader(runs: dict[str, Any]) -> None:
    entries = _entries(runs, "epochs")
    sim = runs["base"] / "run" / "neural"
    for participant, n in (("P1", 1), ("P2", 2)):
        meg_file = sim / f"preprocessed_P{n}-epo.fif"
        for trial_type in ("exp", "test"):
            ours = read_participant(entries[participant], trial_type, decim=2)
            reference = things_meg.load(meg_file, trial_type=trial_type, decim=2)
            assert ours.dims == reference.dims
            assert list(ours["image"].values) == list(reference["image"].values)
            np.testing.assert_allclose(ours.values, reference.values, rtol=1e-6)
            np.testing.assert_array_equal(ours["session"].values, reference["session"].values)


def test_things_eeg2_training_mean_and_80_test_repetitions(runs: dict[str, Any]) -> None:
    entries = _entries(runs, "things_eeg2")
    exp = read_participant(entries["P2"], "exp")
    np.testing.assert_allclose(exp.values, runs["training"][2].mean(axis=1), rtol=1e-5, atol=1e-6)
    test = read_participant(entries["P2"], "test", tmin=0.0)
    assert test.dims == ("image", "repetition", "channel", "time")
    assert test.sizes["image"] == N_TEST_IMAGES and test.sizes["repetition"] == N_TEST_REPS
    ceiling = pd.read_csv(runs["things_eeg2"] / "results" / "noise_ceiling.csv")
    # The repetitions feed the per-participant ceilings (the simulated run has too few).
    for participant in ("P1", "P2"):
        mine = ceiling[ceiling["participant"] == participant]
        assert {"test_repetitions", "split_half_reliability", "authors_nc_percent"} <= set(
            mine["estimate"]
        )
        assert mine["value"].notna().any()


def test_sources_without_test_trials_skip_with_a_note(
    runs: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    from figureground.analysis.study.inputs import load_test_recordings

    entries = _entries(runs, "arrays")
    with caplog.at_level("INFO"):
        assert load_test_recordings(entries) == {}
    lines = [r.getMessage() for r in caplog.records if "no test trials" in r.getMessage()]
    assert len(lines) == 1 and "P1, P2" in lines[0] and "arrays" in lines[0]
    ceiling = pd.read_csv(runs["arrays"] / "results" / "noise_ceiling.csv")
    assert not ceiling["participant"].isin(["P1", "P2"]).any()  # no per-person ceilings
    notes = json.loads((runs["arrays"] / "results" / "summary.json").read_text())["notes"]
    assert any(note.startswith("No test trials for P1, P2") for note in notes)


@pytest.mark.parametrize(
    ("neural", "message"),
    [
        ({"source": "eeg"}, "neural.source: 'eeg' is not one of"),
        ({"source": "epochs"}, "neural.path is missing"),
        ({"source": "epochs", "path": "x"}, "neural.epochs.image_column is missing"),
        ({"source": "things_eeg2", "path": "x"}, "neural.things_eeg2.trust_pickle is false"),
        ({"source": "arrays", "path": "x", "arrays": {"sfreq": 0}}, "neural.arrays.sfreq"),
        ({"epochs": {"image_col": "x"}}, "did you mean 'image_column'"),
        ({"things_eeg2": {"trust_pickle": "yes"}}, "is not true or false"),
    ],
)
def test_neural_config_is_validated(neural: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        parse_study({"neural": neural})
    assert "\n" not in str(caught.value)


def test_participants_are_found_per_source(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="holds no arrays recordings"):
        find_participants("arrays", tmp_path, {})
    np.save(tmp_path / "P3.npy", np.zeros((2, 1, 3)))
    with pytest.raises(UsageError, match=r"no P3\.csv beside it"):
        find_participants("arrays", tmp_path, {})
    pd.DataFrame({"image_id": ["a_01", "b_01"]}).to_csv(tmp_path / "P3.csv", index=False)
    found = find_participants("arrays", tmp_path, {"sfreq": 100.0})
    assert list(found) == ["P3"] and found["P3"].test is None
    assert found["P3"].epochs == tmp_path / "P3.npy"
    assert found["P3"].source == "arrays" and found["P3"].options == {"sfreq": 100.0}
    with pytest.raises(UsageError, match=r"neural.participants \[1\] not found"):
        find_participants("arrays", tmp_path, {}, (1,))
    with pytest.raises(UsageError, match="image metadata"):
        find_participants("things_eeg2", tmp_path, {"trust_pickle": True})
    with pytest.raises(UsageError, match="unknown"):
        find_participants("bids", tmp_path, {})


def test_changed_source_files_or_options_recompute_the_analyses(runs: dict[str, Any]) -> None:
    """The analyses' cache key holds every file and option of a non-THINGS-MEG source."""
    base = runs["base"]
    run_study(runs["studies"]["arrays"])  # the fixture's last run, unchanged: all cached
    stages = json.loads((base / "run" / "stages.json").read_text())
    assert "analyses" in stages["skipped"]
    changed = {"source": "arrays", "path": "arrays", "arrays": {"first_time": -0.05}}
    run_study(parse_study(_study(changed), base))
    stages = json.loads((base / "run" / "stages.json").read_text())
    assert "analyses" not in stages["skipped"]
