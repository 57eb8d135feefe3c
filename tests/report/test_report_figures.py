"""Report figures of the careful analyses: they render, with the right panels, from tidy tables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from figureground.analysis.study import ceilings, columns
from figureground.conditions import CONDITIONS
from figureground.report import figures, timecourse_figures
from figureground.report.careful_sections import careful_sections

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TIMES = np.round(np.arange(-0.1, 0.5, 0.05), 3)
PARTICIPANTS = ("P1", "P2", "P3")


def _rsa_table() -> pd.DataFrame:
    rows = []
    rng = np.random.default_rng(0)
    for participant in PARTICIPANTS:
        for level in ("image", "concept"):
            curves = [(c, "") for c in CONDITIONS] + [
                ("no_background", "no_foreground"),
                ("no_foreground", "no_background"),
            ]
            for condition, given in curves:
                value = rng.normal(0.1, 0.05, TIMES.size)
                rows.append(
                    pd.DataFrame(
                        {
                            "participant": participant,
                            "model": "m",
                            "weights": "w",
                            "layer": "l",
                            "level": level,
                            "view": "flat",
                            "stratum": "all",
                            "condition": condition,
                            "given": given,
                            "time": TIMES,
                            "value": value,
                            "ci_low": value - 0.05,
                            "ci_high": value + 0.05,
                            "p_perm": 0.01 if not given else np.nan,
                            "p_perm_fwer": 0.02 if not given else np.nan,
                            "metric": "correlation",
                            "method": "spearman",
                            "model_metric": "correlation",
                            "n_conditions": 10,
                        }
                    )
                )
    return pd.concat(rows, ignore_index=True)[columns.RSA_COLUMNS]


def _ceiling() -> pd.DataFrame:
    parts = [
        ceilings._ceiling_rows(
            p, "rsa", "test_repetitions", "image", "spearman", TIMES, np.nan, 0.2, 0.4, 5, 4
        )
        for p in PARTICIPANTS
    ]
    parts += [
        ceilings._ceiling_rows(
            "mean", "rsa", "participants", level, "spearman", TIMES, np.nan, 0.3, 0.5, 10, 3
        )
        for level in ("image", "concept")
    ]
    parts += [
        ceilings._ceiling_rows(
            p, "encoding", "single_trial_r", "image", "spearman_brown", TIMES, 0.4, 0.35, 0.45, 5, 4
        )
        for p in PARTICIPANTS
    ]
    return pd.concat(parts, ignore_index=True)


def _clusters() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "analysis": "rsa",
                "model": "m",
                "weights": "w",
                "layer": "l",
                "level": "image",
                "view": "flat",
                "stratum": "all",
                "curve": "no_background",
                "tail": 1,
                "cluster": 0,
                "start": 0.1,
                "stop": 0.3,
                "p_value": 0.25,
                "t_sum": 12.0,
                "n_participants": 3,
                "min_p_attainable": 0.25,
                "significant": False,
            },
        ]
    )[columns.CLUSTER_COLUMNS]


def _encoding() -> pd.DataFrame:
    rows = [
        pd.DataFrame(
            {
                "participant": p,
                "model": "m",
                "weights": "w",
                "layer": "l",
                "condition": c,
                "time": TIMES,
                "value": 0.1,
                "metric": "pearson_r",
                "n_folds": 3,
                "folds_by": "session",
                "n_images": 20,
            }
        )
        for p in PARTICIPANTS
        for c in CONDITIONS
    ]
    return pd.concat(rows, ignore_index=True)


def _partition() -> pd.DataFrame:
    rows = [
        pd.DataFrame(
            {
                "participant": p,
                "model": "m",
                "weights": "w",
                "layer": "l",
                "component": c,
                "time": TIMES,
                "value": 0.01,
                "metric": "r2_cv",
            }
        )
        for p in PARTICIPANTS
        for c in ("joint", "fg", "bg", "unique_fg", "unique_bg", "shared")
    ]
    return pd.concat(rows, ignore_index=True)


def _png(fig) -> bytes:
    data = figures.figure_png(fig, dpi=40)
    figures.plt.close(fig)
    return data


@pytest.mark.parametrize("partial", [False, True])
def test_rsa_figure_panels(partial: bool) -> None:
    fig = timecourse_figures.fig_rsa(_rsa_table(), _ceiling(), _clusters(), partial=partial)
    # rows: 2 levels; columns: 3 participants + mean
    assert len(fig.axes) == 2 * (len(PARTICIPANTS) + 1)
    mean_panel = next(ax for ax in fig.axes if ax.get_title().startswith("mean: m, w, l, image"))
    assert len(mean_panel.lines) >= 2  # curves (and cluster bars)
    labels = {text.get_text() for text in fig.legends[0].get_texts()}
    assert "noise ceiling" in labels
    assert ("figure | ground" in labels) == partial
    assert _png(fig).startswith(PNG_SIGNATURE)


def test_encoding_and_partition_figures() -> None:
    fig = timecourse_figures.fig_encoding(_encoding(), _ceiling(), _clusters())
    assert len(fig.axes) == len(PARTICIPANTS) + 1
    assert len(fig.axes[0].collections) >= 1  # ceiling band
    assert _png(fig).startswith(PNG_SIGNATURE)
    fig = timecourse_figures.fig_variance_partition(_partition(), None)
    assert len(fig.axes) == len(PARTICIPANTS) + 1
    assert {line.get_label() for line in fig.axes[0].lines} >= {"unique fg", "unique bg"}
    assert len(_png(fig)) > 1000


def test_careful_sections_from_results(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    _rsa_table().to_csv(results / "rsa_timecourse.csv", index=False)
    _ceiling().to_csv(results / "noise_ceiling.csv", index=False)
    _clusters().to_csv(results / "clusters.csv", index=False)
    _encoding().to_csv(results / "encoding.csv", index=False)
    _partition().to_csv(results / "variance_partition.csv", index=False)
    summary = {
        "noise_ceiling": {"summary": []},
        "clusters": {"options": {"alpha": 0.05}},
        "strata": {"ran": False, "reason": "not run: too few", "counts": {"a": 1}},
    }
    sections = careful_sections(results, json.loads(json.dumps(summary)), tmp_path / "figures")
    titles = [s["title"] for s in sections]
    assert titles[:4] == [
        "Fig. 3 — time-resolved RSA",
        "Fig. 4 — partial RSA",
        "Fig. 5 — encoding models",
        "Fig. 6 — variance partitioning",
    ]
    assert all(s["figure"] for s in sections[:4])
    assert (tmp_path / "figures" / "fig3_rsa.png").stat().st_size > 0
    assert "not run: too few" in str(sections[-1]["tables"])
    # without results files there are no sections (old runs still render)
    assert careful_sections(tmp_path / "missing", {}, tmp_path / "figs") == []


def test_each_panel_draws_the_ceiling_of_its_own_level() -> None:
    """The test-repetition ceiling is image level: concept-level panels must not draw it."""
    lookup = timecourse_figures._ceiling_lookup(
        _ceiling(), "rsa", {"participant": "test_repetitions", "mean": "participants"}
    )
    image = lookup({"level": "image", "stratum": "all"}, PARTICIPANTS[0])
    concept = lookup({"level": "concept", "stratum": "all"}, PARTICIPANTS[0])
    assert len(image) > 0 and (image["level"] == "image").all()
    assert concept.empty
    mean_concept = lookup({"level": "concept", "stratum": "all"}, "mean")
    assert len(mean_concept) > 0 and (mean_concept["level"] == "concept").all()
