"""``neural.source: bids`` end to end: raw runs whose images are the study's own stimuli.

The tiny study runs once on simulated recordings (stimuli, variants, features). A BIDS tree
is then written whose experiment trials show those images, each once, with the eyes planted
deep inside the object on half the trials and well away from it on the rest. The same run
folder is rerun with the raw tree as its recordings: preprocessing, gaze metrics, RSA by gaze
stratum and the report's gaze figure, then bad raw inputs through ``figureground run``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml
from scipy.ndimage import distance_transform_edt

from bids_fixture import SFREQ, events_path, make_raw, write_events, write_run
from figureground import cli
from figureground.analysis.study.gaze_results import HIGH, LOW, regress_adjust, regress_out
from figureground.config import parse_study
from figureground.neural.design import ATTRIBUTE_COLUMNS
from figureground.neural.gaze import GazeSettings
from figureground.neural.gaze_metrics import image_to_degrees
from figureground.pipeline import run_study
from figureground.reliability.harness import tiny_study
from figureground.variants.masks import read_mask

N_SAMPLES = 24000  # 20 s per run, mostly at the fixation point (as real runs are, so the
ONSETS = (2400, 10800, 19200)  # authors' per-run drift correction barely moves the trials)
RUNS = (("01", "01"), ("01", "02"), ("02", "01"), ("02", "02"))
ANALYSES = {
    "seed_method": {"enabled": False},
    "responses": {"decim": 4},
    "rsa": {"n_boot": 0, "n_permutations": 0, "levels": ["image"]},
    "gaze": {"enabled": True, "mode": "stratify", "min_images": 4},
}


def _study(neural: dict[str, Any] | None = None, gaze: dict[str, Any] | None = None) -> dict:
    study = tiny_study()
    study["stimuli"]["exemplars"] = 2  # 12 images
    if neural is not None:
        analyses = {**study["analyses"], **ANALYSES}
        analyses["gaze"] = {**ANALYSES["gaze"], **(gaze or {})}
        study.update(neural=neural, analyses=analyses)
    return study


def _target(mask: np.ndarray, on_object: bool) -> tuple[float, float]:
    """Degrees of the image pixel deepest inside the object, or farthest from it."""
    inside = mask >= 0.5 if on_object else np.pad(mask < 0.5, 1)  # the image edge counts
    depth = distance_transform_edt(inside)
    if not on_object:
        depth = depth[1:-1, 1:-1]
    row, col = np.unravel_index(np.argmax(depth), depth.shape)
    x, y = image_to_degrees(row, col, mask.shape, GazeSettings())
    return float(x), float(y)


def _trials(session: int, run: int, images: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for k, image in enumerate(images.itertuples()):
        number = 100 + int(image.Index)
        onset = ONSETS[k] / SFREQ
        rows.append(
            {
                "trial_type": "exp",
                "image_nr": k + 1,
                "category_nr": float(number),
                "exemplar_nr": 1,
                "test_image_nr": np.nan,
                "things_category_nr": float(number),
                "things_image_nr": float(number),
                "things_exemplar_nr": 1,
                "image_path": f"images_meg/{image.image_id}.jpg",
                "onset": onset,
                "image_on": onset,
                "image_off": onset + 0.5,
                "responded": 0,
                "key_id": np.nan,
                "key_time": np.nan,
                "RT": np.nan,
                "session_nr": session,
                "run_nr": run,
            }
        )
    return pd.DataFrame(rows, columns=list(ATTRIBUTE_COLUMNS))


def _write_bids(root: Path, variants_dir: Path) -> pd.DataFrame:
    """The BIDS tree; returns the planted images (image_id, on_object, run)."""
    table = pd.read_csv(variants_dir / "variants.csv", keep_default_na=False, dtype=str)
    images = table[table["status"] == "ok"].sort_values("image_id").reset_index(drop=True)
    images["on_object"] = np.arange(len(images)) % 2 == 0
    images["run"] = np.repeat(np.arange(len(RUNS)), len(ONSETS))[: len(images)]
    rng = np.random.default_rng(3)
    tables = []
    for index, (session, run) in enumerate(RUNS):
        shown = images[images["run"] == index]
        targets = np.array(
            [
                _target(read_mask(variants_dir, row.path), row.on_object)
                for row in shown.itertuples()
            ]
        )
        raw = make_raw(rng, np.array(ONSETS), N_SAMPLES, gaze_deg=targets)
        write_run(root, session, run, raw)
        trials = _trials(int(session), int(run), shown)
        write_events(events_path(root, session, run), trials, ONSETS)
        tables.append(trials)
    (root / "sourcedata").mkdir()
    pd.concat(tables).to_csv(root / "sourcedata" / "sample_attributes_P1.csv", index=False)
    return images


@pytest.fixture(scope="module")
def bids_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("bids_study")
    run_study(parse_study(_study(), base))
    images = _write_bids(base / "ds004212", base / "run" / "variants")
    neural = {"source": "bids", "path": "ds004212"}
    run_study(parse_study(_study(neural), base))
    results = base / "run" / "results"
    kept = base / "kept"
    shutil.copytree(results, kept / "results")
    shutil.copy(base / "run" / "report.html", kept / "report.html")
    return {"base": base, "images": images, "kept": kept, "neural": neural}


def test_run_preprocesses_and_writes_results_and_report(bids_run: dict[str, Any]) -> None:
    results = bids_run["kept"] / "results"
    summary = json.loads((results / "summary.json").read_text())
    assert summary["provenance"]["study"]["neural"]["source"] == "bids"
    assert summary["responses"]["participants"] == ["P1"]
    assert summary["responses"]["n_images"] == {"P1": 12}
    assert summary["responses"]["n_times"] > 0
    rsa = pd.read_csv(results / "rsa_timecourse.csv")
    assert set(rsa["participant"]) == {"P1"} and rsa["value"].notna().any()
    report = (bids_run["kept"] / "report.html").read_text()
    assert "Fig. 11" in report and "Figure vs ground by gaze stratum" in report


def test_gaze_recovers_the_planted_fixations(bids_run: dict[str, Any]) -> None:
    gaze = pd.read_csv(bids_run["kept"] / "results" / "gaze.csv", dtype={"image_id": str})
    planted = bids_run["images"].set_index("image_id")["on_object"]
    assert sorted(gaze["image_id"]) == sorted(planted.index)
    on = gaze["image_id"].map(planted).astype(bool)
    assert (gaze["valid_share"] > 0.9).all()
    assert (gaze.loc[on, "gaze_on_object"] >= 0.95).all()
    assert (gaze.loc[~on, "gaze_on_object"] <= 0.05).all()
    assert (gaze.loc[on, "distance_from_mask"] == 0).all()
    assert (gaze.loc[~on, "distance_from_mask"] > 0.5).all()


def test_figure_vs_ground_by_gaze_stratum(bids_run: dict[str, Any]) -> None:
    results = bids_run["kept"] / "results"
    strata = pd.read_csv(results / "gaze_strata.csv")
    assert set(strata["stratum"]) == {HIGH, LOW}
    assert set(strata["n_images"]) == {6}
    assert strata["figure_minus_ground"].notna().all()
    np.testing.assert_allclose(
        strata["figure_minus_ground"], strata["figure"] - strata["ground"], atol=1e-5
    )
    summary = json.loads((results / "summary.json").read_text())
    assert summary["gaze"]["strata"] == {"P1": {HIGH: 6, LOW: 6}}


def test_exclude_drops_the_trials_off_the_object(bids_run: dict[str, Any]) -> None:
    base = bids_run["base"]
    gaze = {"mode": "exclude", "min_on_object": 0.5}
    run_study(parse_study(_study(bids_run["neural"], gaze), base))
    summary = json.loads((base / "run" / "results" / "summary.json").read_text())
    assert summary["gaze"]["excluded_trials"] == {"P1": 6}
    assert summary["responses"]["n_images"] == {"P1": 6}
    assert not (base / "run" / "results" / "gaze_strata.csv").exists()


def test_regress_out_matches_least_squares_residuals() -> None:
    rng = np.random.default_rng(0)
    covariates = rng.standard_normal((40, 2))
    values = rng.standard_normal((40, 3, 5)) + covariates[:, :1, None] * 2.0
    design = np.column_stack([np.ones(40), covariates])
    flat = values.reshape(40, -1)
    beta, *_ = np.linalg.lstsq(design, flat, rcond=None)
    centred = covariates - covariates.mean(axis=0)
    expected = flat - centred @ beta[1:]  # the fit without its intercept: the means stay
    got = regress_out(values.copy(), covariates, step=4)
    np.testing.assert_allclose(got.reshape(40, -1), expected, atol=1e-10)
    responses = xr.DataArray(
        values.astype(np.float32),
        dims=("image", "channel", "time"),
        coords={"image": [f"i{k}" for k in range(40)]},
    )
    table = pd.DataFrame(covariates, index=[f"i{k}" for k in range(40)], columns=["a", "b"])
    table.iloc[0] = np.nan  # an image without gaze keeps its values relative to the fit
    adjusted = regress_adjust({"P1": table})("P1", responses)
    assert adjusted.dims == responses.dims and adjusted.dtype == np.float32
    assert abs(np.corrcoef(adjusted.values[1:, 0, 0], covariates[1:, 0])[0, 1]) < 1e-4
    assert regress_adjust({})("P2", responses) is responses


def test_bad_raw_inputs_are_reported_and_the_rest_goes_on(
    bids_run: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import mne

    base = bids_run["base"]
    root = tmp_path / "ds004212"
    shutil.copytree(base / "ds004212", root)
    meg = root / "sub-BIGMEG1"
    truncated = next(meg.rglob("*ses-01_task-main_run-02_meg.fif"))
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 3])
    events = events_path(root, "02", "01")
    shifted = pd.read_csv(events, sep="\t")
    shifted.loc[1, "sample"] += 240  # 0.2 s late: no photodiode onset, no trigger there
    shifted.to_csv(events, sep="\t", index=False)
    no_eye = next(meg.rglob("*ses-02_task-main_run-02_meg.fif"))
    raw = mne.io.read_raw_fif(no_eye, preload=True, verbose="error")
    raw.drop_channels(["UADC009-2104"]).save(no_eye, overwrite=True, verbose="error")
    orphan = events_path(root, "02", "03")
    shutil.copy(events_path(root, "02", "02"), orphan)  # a run whose recording is missing
    study = _study({"source": "bids", "path": str(root)})
    study["output"] = str(tmp_path / "run")
    shutil.copytree(base / "stimuli", tmp_path / "stimuli")
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    capsys.readouterr()
    assert cli.main(["run", str(path)]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "WARNING" in line]
    skipped = [line for line in lines if "skipped run" in line]
    assert len(skipped) == 3

    def line_of(run: str) -> str:
        (line,) = [line for line in skipped if f"_{run}" in line]
        return line

    assert "cannot read" in line_of("ses-01_task-main_run-02")
    assert "photodiode" in line_of("ses-02_task-main_run-01")
    assert "no raw recording" in line_of("ses-02_task-main_run-03")
    eye = [line for line in lines if "eye-tracking channel" in line]
    assert len(eye) == 1 and "ses-02_task-main_run-02" in eye[0]
    results = tmp_path / "run" / "results"
    summary = json.loads((results / "summary.json").read_text())
    assert summary["responses"]["n_images"] == {"P1": 6}  # runs 1 and 4
    gaze = pd.read_csv(results / "gaze.csv")
    assert len(gaze) == 6 and (gaze["valid_share"] == 0).sum() == 3
