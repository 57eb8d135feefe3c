"""Strata by foreground fraction and tidy summaries of result tables."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from figureground import logs
from figureground.analysis.study.columns import FIGURE, GROUND, MEAN
from figureground.analysis.study.inputs import post_stimulus
from figureground.config import AnalysesConfig
from figureground.errors import DataError
from figureground.fsutil import atomic_path
from figureground.neural.recording import Recording

log = logs.get_logger(__name__)


# ----------------------------------------------------------------------------- strata


def image_strata(
    cfg: AnalysesConfig, variants_csv: Path | None, image_ids: Sequence[str]
) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """Strata of the analysed images by foreground fraction, and what was decided.

    Returns the strata to run (empty when disabled, without a variants table, or when a
    stratum holds fewer than ``min_images`` images) and a summary of the decision.
    """
    from figureground.analysis.stats import strata_from_variants

    st = cfg.strata
    info: dict[str, Any] = {"enabled": st.enabled, "min_images": st.min_images, "ran": False}
    if not st.enabled:
        info["reason"] = "disabled in the study file"
        return {}, info
    if variants_csv is None or not Path(variants_csv).exists():
        info["reason"] = "no variants table (variants/variants.csv) to read foreground fractions"
        return {}, info
    variants = pd.read_csv(
        variants_csv, keep_default_na=False, na_values=[""], dtype={"image_id": str, "error": str}
    )
    threshold = st.threshold
    if st.by == "fg_fraction":
        if threshold is None:
            column = variants.get("little_background_above")
            threshold = float(column.iloc[0]) if column is not None and len(column) else 0.9
        strata = strata_from_variants(variants, threshold)
    else:
        strata, threshold = _strata_by_measure(variants, st.by, threshold)
        if strata is None:
            info["reason"] = f"variants.csv has no {st.by} column (made by an older version)"
            return {}, info
    info["by"] = st.by
    wanted = {str(i) for i in image_ids}
    chosen = {name: [i for i in ids if i in wanted] for name, ids in strata.items()}
    info.update(threshold=threshold, counts={name: len(ids) for name, ids in chosen.items()})
    small = {name: len(ids) for name, ids in chosen.items() if len(ids) < st.min_images}
    if small:
        info["reason"] = (
            "not run: "
            + ", ".join(f"{name} has {n} image(s)" for name, n in small.items())
            + f"; each stratum needs at least {st.min_images} (analyses.strata.min_images)"
        )
        log.info("strata %s", info["reason"])
        return {}, info
    info["ran"] = True
    return chosen, info


def _strata_by_measure(
    variants: pd.DataFrame, measure: str, threshold: float | None
) -> tuple[dict[str, list[str]] | None, float | None]:
    """``<measure>_low`` / ``<measure>_high`` image ids split at ``threshold`` (default:
    the median over the successful images); None when the column is absent."""
    if measure not in variants.columns:
        return None, threshold
    rows = variants[variants["status"] == "ok"] if "status" in variants else variants
    values = pd.to_numeric(rows[measure], errors="coerce")
    known = values.notna()
    if threshold is None:
        threshold = float(values[known].median()) if known.any() else 0.0
    ids = rows["image_id"].astype(str)
    return {
        f"{measure}_low": list(ids[known & (values < threshold)]),
        f"{measure}_high": list(ids[known & (values >= threshold)]),
    }, threshold


# ----------------------------------------------------------------------------- summaries


def curve_summary(table: pd.DataFrame, by: Sequence[str], value: str = "value") -> pd.DataFrame:
    """Peak (value, time) and post-stimulus mean of each curve, per participant and the mean.

    The ``mean`` participant averages the curves over participants first.
    """
    keys = [k for k in by if k != "participant"]
    mean_curve = table.groupby([*keys, "time"], as_index=False, sort=True)[value].mean()
    mean_curve["participant"] = MEAN
    rows = []
    for source in (table, mean_curve):
        for key, group in source.groupby(["participant", *keys], sort=True):
            group = group.sort_values("time")
            values = group[value].to_numpy(dtype=np.float64)
            times = group["time"].to_numpy(dtype=np.float64)
            post = post_stimulus(times)
            finite = np.isfinite(values)
            peak = int(np.nanargmax(values)) if finite.any() else 0
            rows.append(
                {
                    **dict(zip(["participant", *keys], key, strict=True)),
                    "peak": float(values[peak]) if finite.any() else float("nan"),
                    "peak_time": float(times[peak]),
                    "mean_post": float(np.nanmean(values[post])) if post.any() else float("nan"),
                }
            )
    return pd.DataFrame(rows)


def figure_vs_ground(
    summary: pd.DataFrame,
    by: Sequence[str],
    column: str,
    figure: str = FIGURE,
    ground: str = GROUND,
) -> pd.DataFrame:
    """Post-stimulus mean of the figure curve minus the ground curve, per group."""
    wide = summary.pivot_table(index=list(by), columns=column, values="mean_post", aggfunc="first")
    if figure not in wide.columns or ground not in wide.columns:
        return pd.DataFrame()
    out = wide[[figure, ground]].rename(columns={figure: "figure", ground: "ground"})
    out["figure_minus_ground"] = out["figure"] - out["ground"]
    return out.reset_index()


def json_records(table: pd.DataFrame | None) -> list[dict[str, Any]]:
    if table is None or table.empty:
        return []
    return json.loads(table.to_json(orient="records", double_precision=6))


def write_csv(table: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")


def ground_truth_summary(neural_files: Mapping[str, Recording]) -> dict | None:
    """The simulator's ground truth beside the recordings (``ground_truth.json``), if any."""
    folders = {Path(recording.epochs).parent for recording in neural_files.values()}
    for folder in folders:
        truth = folder / "ground_truth.json"
        if truth.exists():
            data = json.loads(truth.read_text())
            params = data.get("params", data)
            keep = ("fg_weight", "bg_weight", "weights", "snr", "seed", "participants", "layer")
            return {
                **{k: params[k] for k in keep if k in params},
                "codes_source": data.get("codes_source", "network"),
                "features": data.get("features"),
                "snr_definition": data.get("snr_definition"),
                "reliability": [p.get("reliability", {}) for p in data.get("participants", [])],
            }
    return None


def run_or_note(summary: dict[str, Any], what: str, func: Callable[[], Any]) -> Any:
    """Run one analysis; a data problem skips it with a logged warning and a note."""
    try:
        return func()
    except DataError as exc:
        message = f"{what} skipped: {exc}"
        log.warning(message)
        summary["notes"].append(message)
        return None
