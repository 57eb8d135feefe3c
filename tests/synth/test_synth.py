"""Synthetic THINGS-size inputs: sizes, THINGS-MEG format read-back, split parts, determinism."""

from __future__ import annotations

import mne
import numpy as np
import pytest
from scipy.spatial.distance import pdist
from scipy.stats import spearmanr

from figureground.errors import UsageError
from figureground.features.store import open_features
from figureground.neural import things_meg
from figureground.stimuli import COLUMNS, read_manifest
from figureground.synth.data import SynthSize, make_synth

FRACTION = 1 / 400  # 5 concepts, 60 exp images, 2 test images x 12, 1 catch per session


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "data"
    return make_synth(out, fraction=FRACTION, part_epochs=64, snr=50.0, seed=3)


def test_full_size_matches_things_meg():
    size = SynthSize()
    assert size.exp_images == 22_248
    assert size.epochs == 27_048
    assert size.epochs_bytes == 27_048 * 271 * 281 * 4  # 8.2 GB


def test_manifest_has_the_contract_columns(synth):
    manifest = read_manifest(synth / "stimuli" / "manifest.csv")
    assert tuple(manifest.columns) == COLUMNS
    size = SynthSize.scaled(FRACTION)
    counts = manifest["set"].value_counts()
    assert counts["exp"] == size.exp_images == 60
    assert counts["test"] == size.test_images
    assert manifest["image_id"].is_unique


def test_epochs_read_back_through_the_things_meg_loader(synth):
    size = SynthSize.scaled(FRACTION)
    parts = sorted((synth / "meg").glob("preprocessed_P1-epo*.fif"))
    assert len(parts) == -(-size.epochs // 64)  # written as several MNE split parts
    epochs = mne.read_epochs(
        synth / "meg" / "preprocessed_P1-epo.fif", preload=False, verbose="error"
    )
    assert len(epochs) == size.epochs
    assert all(entry == () for entry in epochs.drop_log)
    exp = things_meg.load(
        synth / "meg" / "preprocessed_P1-epo.fif", synth / "meg" / "sample_attributes_P1.csv"
    )
    assert exp.shape == (size.exp_images, 271, 281)
    assert exp.dtype == np.float32
    test = things_meg.load(
        synth / "meg" / "preprocessed_P1-epo.fif",
        synth / "meg" / "sample_attributes_P1.csv",
        trial_type="test",
    )
    assert test.shape == (size.test_images, 12, 271, 281)


def test_meg_follows_the_figure_features(synth):
    meg = things_meg.load(
        synth / "meg" / "preprocessed_P1-epo.fif",
        synth / "meg" / "sample_attributes_P1.csv",
        tmin=0.0,
        tmax=0.5,
    )
    ids = list(meg["image"].values)
    meg_rdm = pdist(meg.values.reshape(len(ids), -1), "correlation")
    fg = open_features(synth / "features.zarr", "no_background")["layer2"].sel(image=ids).values
    bg = open_features(synth / "features.zarr", "no_foreground")["layer2"].sel(image=ids).values
    r_fg = spearmanr(meg_rdm, pdist(fg, "correlation"))[0]
    r_bg = spearmanr(meg_rdm, pdist(bg, "correlation"))[0]
    assert r_fg > r_bg + 0.05


def test_data_do_not_depend_on_part_size_and_rerun_is_a_no_op(synth, tmp_path):
    other = make_synth(tmp_path / "other", fraction=FRACTION, part_epochs=10_000, snr=50.0, seed=3)
    assert len(list((other / "meg").glob("*.fif"))) == 1
    a = mne.read_epochs(synth / "meg" / "preprocessed_P1-epo.fif", verbose="error").get_data()
    b = mne.read_epochs(other / "meg" / "preprocessed_P1-epo.fif", verbose="error").get_data()
    np.testing.assert_array_equal(a, b)
    stamp = (other / "synth.json").stat().st_mtime_ns
    make_synth(other, fraction=FRACTION, part_epochs=10_000, snr=50.0, seed=3)
    assert (other / "synth.json").stat().st_mtime_ns == stamp
    with pytest.raises(UsageError, match="holds something else"):
        make_synth(other, fraction=FRACTION, seed=4)


def test_fraction_out_of_range_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="fraction"):
        make_synth(tmp_path / "x", fraction=1.5)


def test_concept_rsa_on_concept_means_equals_rsa_timecourse(synth):
    """rsa_one's concept level (RSA of the concept means) matches rsa_timecourse's own."""
    from figureground.analysis.rsa import rsa_timecourse
    from figureground.analysis.study.inputs import condition_features
    from figureground.analysis.study.rsa_results import rsa_one
    from figureground.config import RsaConfig
    from figureground.synth.study import _store

    meg = things_meg.load(
        synth / "meg" / "preprocessed_P1-epo.fif", synth / "meg" / "sample_attributes_P1.csv"
    ).isel(time=slice(40, 60, 5))
    features = condition_features(_store(synth), "layer2")
    cfg = RsaConfig(levels=("concept",), n_boot=0, n_permutations=0)
    table, rdms, labels = rsa_one(meg, features, "concept", cfg)
    reference = rsa_timecourse(meg, features, level="concept")
    assert (table["level"] == "concept").all()
    assert labels == sorted(set(meg["concept"].values.astype(str)))
    assert rdms.shape == (meg.sizes["time"], len(labels) * (len(labels) - 1) // 2)
    keys = ["condition", "given", "time"]
    merged = table.merge(reference, on=keys, suffixes=("", "_ref"))
    assert len(merged) == len(reference)
    np.testing.assert_allclose(merged["value"], merged["value_ref"], atol=1e-6)


def test_study_groups_report_every_stage(synth, tmp_path):
    from figureground.synth.study import StudySettings, run_group

    settings = StudySettings(decim=4, n_permutations=5, time_step=20)
    stages = run_group("rsa", synth, settings)
    assert [s["stage"] for s in stages] == [
        "meg_exp", "features", "rsa", "permutations", "bootstrap"
    ]  # fmt: skip
    assert all(s["seconds"] > 0 and s["peak_rss_mb"] > 0 and s["work"] > 0 for s in stages)
    assert stages[0]["work"] == SynthSize.scaled(FRACTION).exp_images
    fraction = 1 / 66  # 3 test images, the fewest an RSA ceiling takes
    data = make_synth(tmp_path / "data", fraction=fraction, part_epochs=512, seed=3)
    stages = run_group("ceilings", data, settings)
    assert [s["stage"] for s in stages] == ["meg_test", "rsa_ceiling", "encoding_ceiling"]
    size = SynthSize.scaled(fraction)
    assert stages[0]["work"] == size.test_images * size.sessions == 36
