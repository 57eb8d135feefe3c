"""``figureground run`` with the analyses of where (image grid, sensors) and when (decoding).

One study on composites with exact masks (objects at varying positions and sizes) and a
simulated brain driven by low-level descriptors of the object's pixels (no network), with
mask-aligned variance partitioning, readout maps, sensor effects and decoding switched on
with small settings. The files, the summary and the report must hold what the docs say,
and the figure brain must be read as a figure brain where the design can show it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from figureground.config import parse_study
from figureground.pipeline import run_study
from figureground.stimuli.composites import make_composite_stimuli


def _study(stimuli: Path) -> dict:
    return {
        "name": "where",
        "output": "run",
        "stimuli": {"root": str(stimuli), "layout": "things", "exemplars": 6},
        "variants": {"segmenter": f"masks:{stimuli / 'ground_truth'}", "workers": 1},
        "features": {
            "batch_size": 16,
            "models": [
                {"name": "efficientnet_lite0", "weights": "DEFAULT", "layers": ["_blocks.4"]}
            ],
        },
        "neural": {
            "source": "simulate",
            "simulate": {
                "driver": "pixels",
                "position": "tolerant",
                "fg_weight": 1.0,
                "bg_weight": 0.0,
                "snr": 1.0,
                "seed": 4,
                "participants": 3,
                "test_images": 6,
                "catch_per_session": 1,
            },
        },
        "analyses": {
            "seed_method": {"enabled": False},
            "responses": {"tmax": 0.6, "decim": 5},
            "rsa": {"enabled": False},
            "verdict": {"enabled": False},
            "encoding": {
                "variance_partition": False,
                "n_splits": 3,
                "n_components": 10,
                "inner_splits": 2,
                "n_iter": 2,
                "alphas": [1.0, 100.0, 10000.0],
            },
            "noise_ceiling": {"enabled": False},
            "strata": {"enabled": False},
            "mask_partition": {
                "enabled": True,
                "n_components": 5,
                "n_splits": 3,
                "n_boot": 100,
                "time_step": 2,
            },
            "readout": {
                "enabled": True,
                "window": 0.1,
                "n_components": 3,
                "n_channel_components": 8,
                "grid": [7, 7],
                "n_iter": 4,
                "n_null": 5,
                "n_splits": 3,
                "n_boot": 100,
            },
            "sensors": {"enabled": True, "n_permutations": 64},
            "decoding": {"enabled": True, "n_splits": 3, "n_boot": 100},
        },
        "report": {"examples": 2},
    }


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("where")
    stimuli = make_composite_stimuli(base / "stimuli", concepts=20, exemplars=6, seed=5)
    run_study(parse_study(_study(stimuli), base_dir=base))
    return base / "run"


def _csv(run_dir: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(
        run_dir / "results" / name, keep_default_na=False, na_values=[""], low_memory=False
    )


def test_mask_partition_reads_the_figure_brain(run_dir: Path) -> None:
    table = _csv(run_dir, "mask_partition.csv")
    assert {"participant", "time", "component", "value", "ci_low", "ci_high"} <= set(table)
    assert set(table["participant"]) == {"P1", "P2", "P3", "group"}
    components = set(table["component"])
    assert {"full", "unique_figure", "unique_ground", "shared", "unique_centre_bias"} <= (
        components
    )
    group = table[(table["participant"] == "group") & (table["time"] > 0.1)]
    mean = group.groupby("component")["value"].mean()
    assert mean["full"] > 0.02
    # The brain reads the object's pixels: the figure band explains more on its own.
    assert mean["unique_figure"] > mean["unique_ground"]
    finite = table.dropna(subset=["ci_low", "ci_high"])
    assert (finite["ci_low"] <= finite["ci_high"] + 1e-12).all()


def test_readout_writes_ratio_and_maps(run_dir: Path) -> None:
    import xarray as xr

    table = _csv(run_dir, "readout_ratio.csv")
    for column in ("start", "stop", "ratio", "ci_low", "ci_high", "null_low", "null_high",
                   "p_figure", "p_ground", "r_cv", "participant"):  # fmt: skip
        assert column in table, column
    assert set(table["participant"]) == {"P1", "P2", "P3"}
    assert ((table["p_figure"] > 0) & (table["p_figure"] <= 1)).all()
    assert (table["ratio"] > 0).all()
    maps = xr.open_zarr(run_dir / "results" / "readout_maps.zarr", consolidated=False)
    assert {"s_in", "s_out", "image_map", "object_map"} <= set(maps.data_vars)
    assert list(maps["participant"].values) == ["P1", "P2", "P3"]
    assert maps["s_in"].shape[-2:] == (7, 7)


def test_sensor_effects_use_the_real_sensor_names(run_dir: Path) -> None:
    table = _csv(run_dir, "sensor_effects.csv")
    assert set(table["analysis"]) == {"rsa", "encoding"}
    assert table["sensor"].str.endswith("-1609").all()
    assert table["sensor"].nunique() == 271
    assert set(table["participant"]) == {"P1", "P2", "P3", "group"}
    people = table[table["participant"] != "group"]
    mean = people.groupby(["analysis", "sensor", "time"])["value"].mean()
    group = table[table["participant"] == "group"].set_index(["analysis", "sensor", "time"])
    # The CSV keeps 6 significant digits.
    np.testing.assert_allclose(group["value"].loc[mean.index], mean.to_numpy(), atol=1e-5)
    clusters = _csv(run_dir, "sensor_clusters.csv")
    assert (clusters["min_p"] == 0.25).all()  # 3 participants, two-sided: 2 / 2**3
    notes = json.loads((run_dir / "results" / "summary.json").read_text())["notes"]
    assert any("smallest attainable cluster p is 0.25" in note for note in notes)


def test_decoding_finds_the_images_and_tells_figure_from_ground(run_dir: Path) -> None:
    table = _csv(run_dir, "decoding.csv")
    assert {"pairwise", "generalisation", "cross"} <= set(table["analysis"])
    pairwise = table[(table["analysis"] == "pairwise") & (table["participant"] == "group")]
    before = pairwise[pairwise["time"] < 0]["value"].mean()
    after = pairwise[(pairwise["time"] > 0.1) & (pairwise["time"] < 0.4)]["value"].mean()
    assert after > 0.7 and after > before + 0.15
    cross = table[(table["analysis"] == "cross") & (table["participant"] == "group")]
    late = cross[(cross["time"] > 0.1) & (cross["time"] < 0.4)]
    by_set = late.groupby("feature_set")["value"].mean()
    assert by_set["figure"] > 0.5


def test_summary_and_report_show_every_analysis(run_dir: Path) -> None:
    summary = json.loads((run_dir / "results" / "summary.json").read_text())
    for section in ("mask_partition", "readout", "sensors", "decoding"):
        assert section in summary, section
    html = (run_dir / "report.html").read_text()
    for title in ("mask-aligned variance partitioning", "readout maps", "where on the head",
                  "decoding"):  # fmt: skip
        assert title in html, title
    for stem in ("fig7_mask_partition", "fig8_readout", "fig9_sensors", "fig10_decoding"):
        assert (run_dir / "figures" / f"{stem}.png").stat().st_size > 10_000


def test_results_of_switched_off_analyses_do_not_outlive_the_setting(tmp_path: Path) -> None:
    from figureground.analysis.study.where_runner import WHERE_FILES, run_where

    for name in WHERE_FILES:
        (tmp_path / name).write_text("stale\n")
    (tmp_path / "readout_maps.zarr").mkdir()
    kept = tmp_path / "verdict.csv"
    kept.write_text("not ours\n")
    cfg = parse_study({"analyses": {"sensors": {"enabled": False}}}).analyses
    summary: dict = {"notes": []}
    run_where(cfg, {}, {}, tmp_path, summary, None)
    assert not any((tmp_path / name).exists() for name in WHERE_FILES)
    assert not (tmp_path / "readout_maps.zarr").exists()
    assert kept.exists() and summary == {"notes": []}
