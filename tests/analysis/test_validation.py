"""The validation sweep: the pipeline's verdict on brains it did not build, on a tiny pool."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from figureground import cli
from figureground.analysis.validation import (
    BRAINS,
    DECISION_COLUMNS,
    NULLS,
    PoolSettings,
    SweepSettings,
    decision,
    run_sweep,
    summarise,
)
from figureground.analysis.validation import sweep as sweep_module

POOL = PoolSettings(concepts=6, exemplars=3, size=128, other_model="resnet18",
                    other_weights="none", other_layer="layer2")  # fmt: skip
TINY = SweepSettings(
    snrs=(2.0,),
    replicates=1,
    null_replicates=2,
    participants=2,
    concepts=5,
    brains=("pixels_figure", "image", "none"),
    views=("region", "flat"),
    n_boot=40,
    pool=POOL,
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, Path]:
    base = tmp_path_factory.mktemp("validation")
    table = run_sweep(TINY, base / "pool", base / "parts")
    return table, base


def test_brains_are_not_all_built_from_the_analysed_network() -> None:
    sources = {brain.source for brain in BRAINS.values()}
    assert sources == {"analysed", "other", "pixels"}
    assert set(NULLS) == {"none", "both", "image", "centre"}
    planted = {b.planted for b in BRAINS.values() if b.source == "pixels"}
    assert planted == {"figure", "ground", "none"}


def test_sweep_rows(tiny: tuple[pd.DataFrame, Path]) -> None:
    table, base = tiny
    assert list(table.columns) == DECISION_COLUMNS
    assert set(table["view"]) == {"region", "flat", "any"}  # "any": Bonferroni over views
    assert set(table["rule"]) == {"verdict", "difference"}
    assert set(table["who"]) == {"P1", "P2", "group"}
    assert table["decision"].isin(["figure", "ground", "mixed", "none", "untestable"]).all()
    counts = table.drop_duplicates(["brain", "replicate"]).groupby("brain").size()
    assert counts["image"] == 2 and counts["none"] == 2 and counts["pixels_figure"] == 1
    assert (table["n_images"] == 15).all()
    assert len(list((base / "parts").glob("*.csv"))) == 5
    # the seed method's statistic is one number per dataset, recorded on every row
    assert table.groupby(["brain", "replicate"])["seed_effect"].nunique().eq(1).all()


def test_sweep_resumes_from_finished_datasets(
    tiny: tuple[pd.DataFrame, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    table, base = tiny

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished dataset was computed again")

    monkeypatch.setattr(sweep_module, "_dataset", fail)
    again = run_sweep(TINY, base / "pool", base / "parts")
    pd.testing.assert_frame_equal(again, table, check_dtype=False)


def test_decision_and_summary_with_exact_intervals() -> None:
    rows = pd.DataFrame({"direction": ["figure", "none"]})
    assert decision(rows) == "figure"
    assert decision(pd.DataFrame({"direction": ["figure", "ground"]})) == "mixed"
    assert decision(pd.DataFrame({"direction": ["untestable"]})) == "untestable"
    decisions = pd.DataFrame(
        {
            "brain": ["pixels_figure"] * 4 + ["image"] * 4,
            "planted": ["figure"] * 4 + ["none"] * 4,
            "snr": 0.1,
            "view": "region",
            "rule": "verdict",
            "who": "group",
            "decision": ["figure", "figure", "none", "ground", "none", "none", "none", "ground"],
        }
    )
    decisions["significant"] = decisions["decision"].isin(["figure", "ground", "mixed"])
    summary = summarise(decisions).set_index("brain")
    assert summary.loc["pixels_figure", "rate"] == 0.5
    assert summary.loc["pixels_figure", "wrong_direction"] == 1
    assert summary.loc["image", "measure"] == "fpr" and summary.loc["image", "rate"] == 0.25
    # Clopper-Pearson for 1 of 4
    assert summary.loc["image", "ci_low"] == pytest.approx(0.00631, abs=1e-4)
    assert summary.loc["image", "ci_high"] == pytest.approx(0.80587, abs=1e-4)


def test_cli_writes_tables_figure_and_settings(
    tiny: tuple[pd.DataFrame, Path], capsys: pytest.CaptureFixture
) -> None:
    _, base = tiny
    out = base / "cli"
    args = [
        "-q", "validate", "--out", str(out), "--pool", str(base / "pool"),
        "--brains", "none", "--null-replicates", "1", "--replicates", "1", "--snrs", "2",
        "--participants", "2", "--concepts", "5", "--pool-concepts", "6", "--exemplars", "3",
        "--views", "region", "--n-boot", "40", "--other-model", "resnet18",
        "--other-weights", "none", "--other-layer", "layer2", "--image-size", "128",
    ]  # fmt: skip
    assert cli.main(args) == 0  # the pool's settings are the tiny sweep's: it is reused
    assert (out / "validation.png").is_file() and (out / "validation_summary.csv").is_file()
    settings = json.loads((out / "validation.json").read_text())["settings"]
    assert settings["brains"] == ["none"] and settings["n_boot"] == 40
    assert "none" in capsys.readouterr().out
    assert cli.main(["-q", "validate", "--out", str(out), "--alpha", "2"]) == 2


def test_seed_effect_hardly_moves_with_the_brain(tiny: tuple[pd.DataFrame, Path]) -> None:
    table, _ = tiny
    first = table[table["replicate"] == 0].drop_duplicates("brain").set_index("brain")
    effects = first["seed_effect"].to_numpy(dtype=float)
    # brains following the figure, the whole image and nothing (at a very high SNR): the
    # seed statistic keeps its sign and its size within 15% (it follows the embeddings and
    # the shared evoked field, not the brain), while the verdicts differ
    assert len(set(np.sign(effects))) == 1
    assert np.ptp(effects) < 0.15 * np.abs(effects).mean()
