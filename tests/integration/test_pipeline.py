"""A tiny study end to end: every stage, the results contract, caching, the run lock."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from figureground.config import parse_study
from figureground.errors import UsageError
from figureground.pipeline import run_lock, run_study
from figureground.reliability.harness import tiny_study

# The reliability trials' tiny study, with every analysis on (small settings).
TINY_STUDY = {
    **tiny_study(),
    "analyses": {
        "seed_method": {"n_boot": 200},
        "responses": {"decim": 4},
        "rsa": {"n_boot": 50, "n_permutations": 50, "levels": ["image"]},
        "encoding": {
            "time_step": 8,
            "n_splits": 2,
            "n_components": 3,
            "inner_splits": 2,
            "n_iter": 2,
            "alphas": [1.0, 100.0],
        },
        "noise_ceiling": {"n_splits": 5},
        "stats": {"n_permutations": 64},
    },
}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("study")
    study = parse_study(TINY_STUDY, base_dir=base)
    run_study(study)
    return base / "run"


def test_results_contract(finished_run: Path) -> None:
    run_dir = finished_run
    table = pd.read_csv(run_dir / "results" / "seed_distance.csv")
    assert list(table.columns) == [
        "participant",
        "image_id",
        "condition",
        "model",
        "weights",
        "layer",
        "distance",
    ]
    assert set(table["condition"]) == {"original", "no_background", "no_foreground"}
    assert set(table["participant"]) == {"P1", "P2"}
    assert (table["model"] == "resnet18").all() and (table["layer"] == "layer2").all()
    assert (table["distance"] > 0).all()
    # 6 concepts x 1 exemplar, one of them shown as a test image: 5 experiment images.
    assert table.groupby(["participant", "condition"]).size().eq(5).all()
    summary = json.loads((run_dir / "results" / "summary.json").read_text())
    assert summary["provenance"]["study"]["name"] == "tiny"
    assert "torch" in summary["provenance"]["versions"]
    pooled = [row for row in summary["seed_distance"]["summary"] if row["participant"] == "pooled"]
    assert {row["condition"] for row in pooled} == {"original", "no_background", "no_foreground"}
    assert all(row["ci_low"] <= row["mean"] <= row["ci_high"] for row in pooled)
    assert summary["ground_truth"]["fg_weight"] == 1.0
    html = (run_dir / "report.html").read_text()
    assert "What this method cannot do" in html
    assert html.count("data:image/png;base64,") >= 2
    identity = pd.read_csv(run_dir / "results" / "seed_identity.csv")
    assert list(identity.columns) == [
        "participant", "model", "weights", "layer", "condition", "statistic", "p_perm",
        "n_images",
    ]  # fmt: skip
    assert identity["p_perm"].between(0, 1).all()
    verdict = pd.read_csv(run_dir / "results" / "verdict.csv")
    from figureground.analysis.verdict import VERDICT_COLUMNS

    assert list(verdict.columns) == VERDICT_COLUMNS
    # 5 experiment images: the design cannot answer, and the verdict says so
    assert (verdict["direction"] == "untestable").all()
    assert summary["verdict"]["headline"]["sentence"] in html
    assert "not testable" in summary["verdict"]["headline"]["sentence"]
    assert "Stimulus validity" in html


def test_rerun_recomputes_nothing(finished_run: Path) -> None:
    run_dir = finished_run
    outputs = [
        run_dir / "results" / "seed_distance.csv",
        run_dir / "results" / "summary.json",
        run_dir / "report.html",
        run_dir / "stimuli" / "manifest.csv",
        run_dir / "variants" / "variants.csv",
    ]
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in outputs}
    study = parse_study(TINY_STUDY, base_dir=run_dir.parent)
    state = run_study(study)
    assert set(state.skipped) >= {
        "stimuli",
        "variants",
        "neural",
        "analyses",
        "report",
        "features-resnet18__none",
    }
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in outputs} == before


def test_edited_result_is_detected_and_recomputed(finished_run: Path) -> None:
    run_dir = finished_run
    csv_path = run_dir / "results" / "seed_distance.csv"
    original = csv_path.read_bytes()
    csv_path.write_bytes(original.replace(b"P1", b"P9", 1))
    study = parse_study(TINY_STUDY, base_dir=run_dir.parent)
    state = run_study(study)
    assert "analyses" not in state.skipped
    assert csv_path.read_bytes() == original


def test_second_run_on_same_folder_is_refused(tmp_path: Path) -> None:
    with (
        run_lock(tmp_path),
        pytest.raises(UsageError, match="in use by another"),
        run_lock(tmp_path),
    ):
        pass
    with run_lock(tmp_path):  # released: usable again
        assert (tmp_path / ".lock").read_text().strip() == str(os.getpid())


_BROWSER = next(
    (Path(p) for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if Path(p).exists()), None
)
_IMAGE_PROBE = (
    '<script>window.addEventListener("load", function () {'
    "var imgs = [].slice.call(document.images);"
    "var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;"
    'document.title = "IMAGES " + ok + "/" + imgs.length; });</script>'
)
_CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.mark.skipif(
    _BROWSER is None,
    reason="no headless browser: install Debian's chromium "
    "(.ci/run does) to check that the report renders",
)
def test_report_renders_in_headless_chromium(finished_run: Path, tmp_path: Path) -> None:
    import subprocess

    run_dir = finished_run
    probe = tmp_path / "probe.html"
    html = (run_dir / "report.html").read_text()
    probe.write_text(html.replace("</body>", _IMAGE_PROBE + "</body>"))
    dom = subprocess.run(
        [
            str(_BROWSER),
            *_CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile1'}",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
            "--dump-dom",
            probe.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    images = html.count("<img ")
    assert images >= 2
    assert f"<title>IMAGES {images}/{images}</title>" in dom.stdout, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            str(_BROWSER),
            *_CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile2'}",
            f"--screenshot={shot}",
            "--window-size=1200,1600",
            (run_dir / "report.html").as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert shot.exists() and shot.stat().st_size > 20_000
    from PIL import Image

    with Image.open(shot) as image:
        pixels = image.convert("L")
        assert image.size == (1200, 1600)
        assert pixels.getextrema()[0] < 100  # something dark (text, figures) was drawn


@pytest.mark.skipif(
    __import__("torch").cuda.is_available(), reason="a CUDA GPU is present: nothing to refuse"
)
def test_cuda_backend_without_a_gpu_is_refused_before_any_work(tmp_path: Path) -> None:
    spec = {**TINY_STUDY, "analyses": {**TINY_STUDY["analyses"], "rsa": {"backend": "torch_cuda"}}}
    study = parse_study(spec, base_dir=tmp_path)
    with pytest.raises(UsageError, match=r"analyses\.rsa\.backend asks for a CUDA GPU"):
        run_study(study)
    assert not (tmp_path / "run").exists()
