"""``figureground run`` reads brains it did not build right: figure, ground, both, neither.

The stimuli are composites with exact masks (objects at varying positions and sizes). The
simulated brains follow low-level descriptors of the object's pixels and of the background's
pixels, pooled over each region wherever the object sits (position- and size-tolerant), not
any network the analysis uses. The study runs every stage with its verdict, and
``results/verdict.csv`` must say: figure, ground, neither preferred (both fit), nothing.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from figureground.config import parse_study
from figureground.pipeline import run_study
from figureground.stimuli.composites import make_composite_stimuli

BRAINS = {  # name -> (fg_weight, bg_weight)
    "figure": (1.0, 0.0),
    "ground": (0.0, 1.0),
    "both": (1.0, 1.0),
    "neither": (0.0, 0.0),
}


def _study(base: Path, stimuli: Path, fg: float, bg: float) -> dict:
    return {
        "name": "verdict",
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
                "fg_weight": fg,
                "bg_weight": bg,
                "snr": 0.5,
                "seed": 3,
                "participants": 3,
                "test_images": 4,
                "catch_per_session": 1,
            },
        },
        "analyses": {
            "seed_method": {"enabled": False},
            "responses": {"tmax": 0.6, "decim": 10},
            "rsa": {"levels": ["image"], "n_boot": 200, "n_permutations": 0},
            "views": ["region", "global"],
            "encoding": {"enabled": False},
            "noise_ceiling": {"enabled": False},
            "strata": {"enabled": False},
        },
        "report": {"examples": 2},
    }


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    base = tmp_path_factory.mktemp("verdict")
    stimuli = make_composite_stimuli(base / "stimuli", concepts=20, exemplars=6, seed=5)
    found = {}
    for name, (fg, bg) in BRAINS.items():
        run_study(parse_study(_study(base, stimuli, fg, bg), base_dir=base))
        found[name] = pd.read_csv(
            base / "run" / "results" / "verdict.csv", keep_default_na=False, na_values=[""]
        )
        assert "Verdict." in (base / "run" / "report.html").read_text()
    return found


def _group(table: pd.DataFrame, contrast: str, view: str = "any") -> set[str]:
    rows = table[
        (table["participant"] == "group")
        & (table["contrast"] == contrast)
        & (table["view"] == view)
    ]
    assert len(rows) > 0
    return set(rows["direction"])


def test_figure_brain_reads_figure(verdicts: dict[str, pd.DataFrame]) -> None:
    assert _group(verdicts["figure"], "verdict") == {"figure"}


def test_ground_brain_reads_ground(verdicts: dict[str, pd.DataFrame]) -> None:
    assert _group(verdicts["ground"], "verdict") == {"ground"}


def test_both_brain_fits_both_and_prefers_neither(verdicts: dict[str, pd.DataFrame]) -> None:
    table = verdicts["both"]
    assert _group(table, "verdict") == {"none"}
    assert "figure" in _group(table, "figure_fit") and "ground" in _group(table, "ground_fit")


def test_neither_brain_has_no_significant_window(verdicts: dict[str, pd.DataFrame]) -> None:
    """No verdict window for anyone in any view, and no group window in any contrast.

    (Each participant's other contrasts are separate families at 5% each: over 3
    participants x 6 contrasts x 2 views a stray window somewhere is expected by design.)
    """
    table = verdicts["neither"]
    verdict = table[table["contrast"] == "verdict"]
    assert set(verdict["direction"]) == {"none"}, verdict[verdict["direction"] != "none"]
    group = table[table["participant"] == "group"]
    assert set(group["direction"]) == {"none"}, group[group["direction"] != "none"]
