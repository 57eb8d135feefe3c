"""The verdict over a study: every model, layer, level and view; the report's headline."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from figureground.analysis.verdict import (
    ANY_VIEW,
    GROUP,
    TIMECOURSE_COLUMNS,
    VERDICT,
    VERDICT_COLUMNS,
    VerdictSettings,
    combine_views,
    verdict_tables,
)
from figureground.analysis.views import POSITION_TOLERANT
from figureground.config import AnalysesConfig

VIEW_PREFERENCE = ("region", "global", "grid2", "grid4", "flat")  # headline: first analysed


def settings_of(cfg: AnalysesConfig) -> VerdictSettings:
    """The verdict's settings from the study file (intervals at the RSA's coverage)."""
    v = cfg.verdict
    return VerdictSettings(
        alpha=v.alpha,
        ci=cfg.rsa.ci,
        tmin=v.tmin,
        tmax=v.tmax,
        min_conditions=v.min_conditions,
        min_participants=v.min_participants,
        seed=v.random_state,
    )


def verdict_results(cfg: AnalysesConfig, study: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``verdict.csv`` and ``verdict_timecourse.csv`` of an RSA study (``RsaStudy``)."""
    settings = settings_of(cfg)
    verdicts, courses = [], []
    for key in sorted(study.curves, key=lambda k: (k[0], k[1], cfg.views.index(k[2]), k[3])):
        found, course = verdict_tables(study.curves[key], study.descriptors[key], settings)
        verdicts.append(found)
        courses.append(course)
    if not verdicts:
        return pd.DataFrame(columns=VERDICT_COLUMNS), pd.DataFrame(columns=TIMECOURSE_COLUMNS)
    verdict = pd.concat(verdicts, ignore_index=True)
    if verdict["view"].nunique() > 1:
        verdict = pd.concat([verdict, combine_views(verdict, settings.alpha)], ignore_index=True)
    return verdict, pd.concat(courses, ignore_index=True)


def headline_view(cfg: AnalysesConfig, analysed: Sequence[str]) -> str | None:
    """The view of the headline: the configured one, else every view together (``any``,
    Bonferroni over views) when there are several, else the one analysed."""
    if cfg.verdict.headline_view in analysed:
        return cfg.verdict.headline_view
    if ANY_VIEW in analysed:
        return ANY_VIEW
    for view in VIEW_PREFERENCE:
        if view in analysed:
            return view
    return None


def _ms(seconds: float) -> str:
    return f"{round(1000 * seconds):d} ms"


def _describe_rows(rows: pd.DataFrame) -> str:
    """'the figure from 90 to 260 ms (figure - ground ...)' for the windows in ``rows``."""
    parts = []
    for row in rows.head(2).itertuples():
        span = _ms(row.start) if row.start == row.stop else f"{_ms(row.start)} to {_ms(row.stop)}"
        where = f" in the {row.note.split(';')[0]}" if row.view == ANY_VIEW else ""
        parts.append(
            f"the {row.direction} at {span}{where} (figure - ground RSA {row.estimate:+.3f}, "
            f"{100 * 0.95:.0f}% CI {row.ci_low:+.3f} to {row.ci_high:+.3f}; "
            f"p_FWER = {row.p_fwer:.3g})"
        )
    more = f", and {len(rows) - 2} more window(s)" if len(rows) > 2 else ""
    return "; ".join(parts) + more


def _sentence(row_set: pd.DataFrame, who: str) -> str:
    decided = row_set[row_set["direction"].isin(["figure", "ground"])]
    if row_set["direction"].eq("untestable").all():
        return f"{who}: not testable ({row_set['note'].iloc[0]})."
    if decided.empty:
        row = row_set.iloc[0]
        if not np.isfinite(row.estimate):
            return (
                f"{who}: no time shows a significant preference for figure or ground in any "
                f"view (smallest Bonferroni-adjusted p_FWER {row.p_fwer:.3g})."
            )
        return (
            f"{who}: no time shows a significant preference for figure or ground "
            f"(smallest p_FWER {row.p_fwer:.3g}; mean figure - ground RSA after onset "
            f"{row.estimate:+.3f}, 95% CI {row.ci_low:+.3f} to {row.ci_high:+.3f})."
        )
    return f"{who}: the responses follow {_describe_rows(decided)}."


def headline(cfg: AnalysesConfig, verdict: pd.DataFrame) -> dict[str, Any]:
    """The report's headline: which rows it reads and one sentence with their numbers."""
    rows = verdict[verdict["contrast"] == VERDICT]
    if rows.empty:
        return {"sentence": "No verdict: the RSA produced no bootstrap curves.", "view": None}
    view = headline_view(cfg, list(dict.fromkeys(rows["view"])))
    first = rows[rows["view"] == view].iloc[0]
    level = "image" if (rows["level"] == "image").any() else str(first["level"])
    chosen = rows[
        (rows["view"] == view)
        & (rows["model"] == first["model"])
        & (rows["weights"] == first["weights"])
        & (rows["layer"] == first["layer"])
        & (rows["level"] == level)
    ]
    reading = (
        f"any of {rows['view'].nunique() - 1} views (Bonferroni)"
        if view == ANY_VIEW
        else f"{view} view"
    )
    what = f"{first['model']} ({first['weights']}) {first['layer']}, {level} level, {reading}"
    group = chosen[chosen["participant"] == GROUP]
    sentences = []
    if not group.empty:
        n = int(group["n_participants"].iloc[0])
        sentences.append(_sentence(group, f"Group of {n} participants"))
    if group.empty or group["direction"].eq("untestable").all():
        for participant, own in chosen[chosen["participant"] != GROUP].groupby(
            "participant", sort=True
        ):
            sentences.append(_sentence(own, str(participant)))
    tolerant = view in POSITION_TOLERANT
    return {
        "sentence": f"{what}. " + " ".join(sentences),
        "model": str(first["model"]),
        "weights": str(first["weights"]),
        "layer": str(first["layer"]),
        "level": level,
        "view": view,
        "position_tolerant": bool(tolerant),
        "rows": chosen.replace({np.nan: None}).to_dict(orient="records"),
    }
