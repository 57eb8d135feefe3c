"""Run a study's analyses on its recordings and feature stores; write the results contract.

Writes ``results/seed_distance.csv`` (columns ``participant, image_id, condition, model,
weights, layer, distance``) and ``results/summary.json`` (every analysis's summary numbers and
the run's provenance).

The "pooled" participant of the summaries averages each image's distance over participants
first, then summarises over images.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from figureground import logs
from figureground.config import CONDITIONS, AnalysesConfig
from figureground.errors import DataError
from figureground.fsutil import atomic_path, atomic_write_json

log = logs.get_logger(__name__)

SEED_COLUMNS = ["participant", "image_id", "condition", "model", "weights", "layer", "distance"]
POOLED = "pooled"


def load_recordings(neural_files: Mapping[str, Mapping[str, Path | None]],
                    **kwargs: Any) -> dict[str, Any]:
    """Per-participant experiment responses, dims (image, channel, time)."""
    from figureground.neural import things_meg

    return {participant: things_meg.load(files["epochs"], files.get("attributes"),
                                         trial_type="exp", **kwargs)
            for participant, files in neural_files.items()}


def seed_results(cfg: AnalysesConfig, meg: Mapping[str, Any],
                 feature_stores: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Seed distances for every participant, model, layer and condition."""
    from figureground.analysis.seed import seed_analysis
    from figureground.features.store import open_features

    tables = []
    for info in feature_stores.values():
        groups = {condition: open_features(info["store"], condition) for condition in CONDITIONS}
        for layer in info["layers"]:
            tables.append(seed_analysis(meg, groups, layer=layer, model=info["model"],
                                        weights=info["weights"], response=cfg.seed.response,
                                        tmin=cfg.seed.tmin, tmax=cfg.seed.tmax,
                                        zscore=cfg.seed.zscore))
    if not tables:
        raise DataError("no feature stores to analyse")
    return pd.concat(tables, ignore_index=True)


def with_pooled(table: pd.DataFrame) -> pd.DataFrame:
    """Add a ``pooled`` participant: each image's distance averaged over participants."""
    keys = ["image_id", "condition", "model", "weights", "layer"]
    pooled = table.groupby(keys, sort=True, as_index=False)["distance"].mean()
    pooled.insert(0, "participant", POOLED)
    return pd.concat([table[SEED_COLUMNS], pooled[SEED_COLUMNS]], ignore_index=True)


def seed_summary(table: pd.DataFrame, n_boot: int, seed: int) -> dict[str, Any]:
    """Mean, SEM, bootstrap CI per group, and paired Wilcoxon tests between conditions."""
    from figureground.analysis.summaries import describe, paired_tests

    groups = ("participant", "model", "weights", "layer")
    full = with_pooled(table)
    summary = describe(full, value="distance", by=(*groups, "condition"), n_boot=n_boot,
                       seed=seed)
    tests = paired_tests(full, value="distance", item="image_id", between="condition",
                         within=groups, n_boot=n_boot, seed=seed)
    return {"summary": summary.to_dict(orient="records"),
            "paired_tests": tests.to_dict(orient="records")}


def _ground_truth(neural_files: Mapping[str, Mapping[str, Path | None]]) -> dict | None:
    folders = {Path(files["epochs"]).parent for files in neural_files.values()}
    for folder in folders:
        truth = folder / "ground_truth.json"
        if truth.exists():
            data = json.loads(truth.read_text())
            params = data.get("params", data)
            keep = ("fg_weight", "bg_weight", "snr", "seed", "participants", "layer")
            return {**{k: params[k] for k in keep if k in params},
                    "features": data.get("features"), "snr_definition": data.get("snr_definition")}
    return None


def run_analyses(cfg: AnalysesConfig, neural_files: Mapping[str, Mapping[str, Path | None]],
                 feature_stores: Mapping[str, Mapping[str, Any]], results_dir: Path,
                 provenance: Mapping[str, Any]) -> dict[str, Any]:
    """Run the configured analyses; write the results files; return the summary."""
    results_dir = Path(results_dir)
    meg = load_recordings(neural_files)
    summary: dict[str, Any] = {"provenance": dict(provenance), "notes": []}
    for info in feature_stores.values():
        if "replaces" in info:
            summary["notes"].append(
                f"{info['replaces']} could not be used here; {info['model']} "
                f"({info['weights']}) replaces it. Reason: {info.get('replaced_because', '')}")
    truth = _ground_truth(neural_files)
    if truth is not None:
        summary["ground_truth"] = truth
    if cfg.seed.enabled:
        table = seed_results(cfg, meg, feature_stores)
        with atomic_path(results_dir / "seed_distance.csv") as tmp:
            table[SEED_COLUMNS].to_csv(tmp, index=False, float_format="%.6g")
        summary["seed_distance"] = {
            "options": {"response": cfg.seed.response, "tmin": cfg.seed.tmin,
                        "tmax": cfg.seed.tmax, "zscore": cfg.seed.zscore},
            **seed_summary(table, n_boot=cfg.seed.n_boot, seed=cfg.seed.seed)}
    atomic_write_json(results_dir / "summary.json", summary)
    return summary
