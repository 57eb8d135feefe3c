"""Tests of the validation sweep (figureground.analysis.validation, ``figureground validate``)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats
from scipy.spatial.distance import pdist

from figureground.analysis.validation import (
    CONDITIONS,
    DATASET_COLUMNS,
    METHODS,
    SweepSettings,
    decide,
    run_sweep,
    summarise,
    synthetic_features,
    write_feature_store,
)
from figureground.cli import main
from figureground.errors import UsageError

TINY = SweepSettings(snrs=(0.1,), replicates=2, participants=4, n_images=24, sessions=3)


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Decisions and summary of a 3 conditions x 1 SNR x 2 replicates x 4 participants sweep."""
    parts = tmp_path_factory.mktemp("parts")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        decisions = run_sweep(TINY, parts_dir=parts)
    return decisions, summarise(decisions)


def test_sweep_schema(tiny_sweep):
    decisions, summary = tiny_sweep
    assert list(decisions.columns) == DATASET_COLUMNS
    assert len(decisions) == len(METHODS) * len(CONDITIONS) * len(TINY.snrs) * TINY.replicates
    assert set(decisions["decision"]) <= {"fg", "bg", "equal"}
    assert len(summary) == len(METHODS) * len(CONDITIONS) * len(TINY.snrs)
    assert (summary["n_datasets"] == TINY.replicates).all()
    rates = summary[["recovery", "power", "fpr", "wrong_direction"]].to_numpy(dtype=float)
    assert np.nanmin(rates) >= 0 and np.nanmax(rates) <= 1
    equal = summary["condition"] == "equal"
    assert summary.loc[equal, "power"].isna().all() and summary.loc[~equal, "fpr"].isna().all()
    assert np.allclose(summary.loc[equal, "recovery"], 1 - summary.loc[equal, "fpr"])


@pytest.mark.parametrize("method", ["rsa", "partial_rsa", "variance_partitioning"])
def test_geometry_methods_recover_planted_order_at_high_snr(tiny_sweep, method):
    decisions, _ = tiny_sweep
    rows = decisions[(decisions["method"] == method) & (decisions["condition"] != "equal")]
    assert (rows["decision"] == rows["planted"]).all(), rows[["condition", "p_value"]]
    # effects point the planted way: positive favours the foreground embedding
    assert (rows.loc[rows["planted"] == "fg", "effect"] > 0).all()
    assert (rows.loc[rows["planted"] == "bg", "effect"] < 0).all()


def test_seed_decision_ignores_the_brain_and_follows_embedding_norms(tiny_sweep):
    decisions, _ = tiny_sweep
    seed = decisions[decisions["method"] == "seed"]
    for _, replicate in seed.groupby("replicate"):
        # the same embeddings in every planted condition give the same answer
        assert replicate["p_value"].nunique() == 1
        assert replicate["effect"].nunique() == 1
        assert replicate["decision"].nunique() == 1
    # no_background is 1.25x larger, so it is always "farther": the seed method says "bg"
    assert (seed["decision"] == "bg").all()
    # independent reference: the effect is the mean norm difference of the embeddings
    for replicate, rows in seed.groupby("replicate"):
        arrays = synthetic_features(TINY.n_images, seed=TINY.seed + replicate)
        norm = {
            k: np.linalg.norm(v.reshape(len(v), -1).astype(np.float64), axis=1)
            for k, v in arrays.items()
        }
        expected = np.mean(norm["no_foreground"] - norm["no_background"])
        assert rows["effect"].iloc[0] == pytest.approx(expected, rel=1e-5)


def test_decide_rule():
    assert decide(0.3, 0.01, 0.05) == "fg"
    assert decide(-0.3, 0.01, 0.05) == "bg"
    assert decide(0.3, 0.05, 0.05) == "equal"
    assert decide(0.3, float("nan"), 0.05) == "equal"


def test_summarise_counts_and_exact_intervals():
    rows = []
    for k, decision in enumerate(["fg", "fg", "fg", "equal"]):
        rows.append(("rsa", "fg_only", 0.1, k, "fg", decision))
    for k, decision in enumerate(["equal", "bg", "equal", "equal", "equal"]):
        rows.append(("rsa", "equal", 0.1, k, "equal", decision))
    table = pd.DataFrame(
        rows, columns=["method", "condition", "snr", "replicate", "planted", "decision"]
    )
    table["effect"] = 0.0
    table["correct"] = table["decision"] == table["planted"]
    table["significant"] = table["decision"] != "equal"
    summary = summarise(table).set_index("condition")
    assert summary.loc["fg_only", "power"] == 0.75
    assert summary.loc["equal", "fpr"] == 0.2
    assert summary.loc["equal", "recovery"] == 0.8
    # Clopper-Pearson by its beta-quantile definition
    low = stats.beta.ppf(0.025, 3, 4 - 3 + 1)
    high = stats.beta.ppf(0.975, 3 + 1, 4 - 3)
    assert summary.loc["fg_only", "rate_ci_low"] == pytest.approx(low, rel=1e-6)
    assert summary.loc["fg_only", "rate_ci_high"] == pytest.approx(high, rel=1e-6)


def test_synthetic_features_scale_changes_norms_not_geometry(tmp_path):
    plain = synthetic_features(20, seed=3, norm_ratio=1.0)
    scaled = synthetic_features(20, seed=3, norm_ratio=1.25)
    flat = {k: v.reshape(20, -1).astype(np.float64) for k, v in scaled.items()}
    ratio = np.linalg.norm(flat["no_background"], axis=1) / np.linalg.norm(
        plain["no_background"].reshape(20, -1), axis=1
    )
    assert np.allclose(ratio, 1.25, rtol=1e-6)
    assert np.allclose(
        pdist(flat["no_background"], "correlation"),
        pdist(plain["no_background"].reshape(20, -1), "correlation"),
        atol=1e-5,
    )
    # foreground and background share their spectrum (same singular values of the latent)
    spectra = [
        np.linalg.svd(f - f.mean(0), compute_uv=False)[:4]
        for f in (plain["no_background"].reshape(20, -1), plain["no_foreground"].reshape(20, -1))
    ]
    assert np.allclose(spectra[0], spectra[1], rtol=0.05)
    store = write_feature_store(scaled, tmp_path / "f.zarr")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        array = xr.open_zarr(store, group="no_background", consolidated=False)["layer2"]
    assert array.dims == ("image", "channel", "y", "x")
    assert list(array["concept"].values[:5]) == ["c00"] * 4 + ["c01"]
    np.testing.assert_array_equal(array.values, scaled["no_background"])


def test_cli_writes_tables_figure_and_resumes(tmp_path, capsys):
    out = tmp_path / "val"
    argv = [
        "-q",
        "validate",
        "--out",
        str(out),
        "--replicates",
        "1",
        "--snrs",
        "0.1",
        "--images",
        "24",
        "--methods",
        "seed",
        "rsa",
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(argv) == 0
        first = (out / "validation.csv").read_bytes()
        assert main(argv) == 0  # every dataset is cached: a rerun writes the same bytes
    assert (out / "validation.csv").read_bytes() == first
    summary = pd.read_csv(out / "validation_summary.csv")
    assert set(summary["method"]) == {"seed", "rsa"}
    assert (out / "validation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "rsa" in capsys.readouterr().out


@pytest.mark.parametrize("extra", [["--alpha", "2"], ["--methods", "nope"], ["--replicates", "0"]])
def test_cli_usage_errors_exit_2(tmp_path, capsys, extra):
    assert main(["validate", "--out", str(tmp_path / "v"), *extra]) == 2
    err = capsys.readouterr().err
    assert "error" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_given_feature_store_is_used_for_every_replicate(tmp_path):
    store = write_feature_store(synthetic_features(24, seed=7, norm_ratio=1.0), tmp_path / "f.zarr")
    settings = SweepSettings(
        snrs=(0.1,),
        replicates=1,
        n_images=24,
        sessions=3,
        conditions=("fg_only",),
        methods=("rsa",),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        decisions = run_sweep(settings, features=store)
    assert decisions["features"].tolist() == [str(store.resolve())]
    assert decisions["decision"].tolist() == ["fg"]
    with pytest.raises(UsageError, match="not found"):
        run_sweep(settings, features=tmp_path / "missing.zarr")
