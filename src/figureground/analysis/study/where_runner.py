"""Where in the image, where on the head, when: the analyses of the original images' grid.

Files written to ``results/`` when the study file enables them:

- ``mask_partition.csv`` (``analyses.mask_partition``): unique figure, unique ground,
  shared, unique centre-bias and unique size variance over time, per participant and
  ``group``, with bootstrap intervals.
- ``readout_ratio.csv`` and ``readout_maps.zarr`` (``analyses.readout``): the mask-gated
  readout's in-mask ratio per time window against masks shuffled across images, and its
  maps.
- ``sensor_effects.csv`` and ``sensor_clusters.csv`` (``analyses.sensors``): figure minus
  ground per sensor and time (RSA searchlight, encoding), with MNE's spatio-temporal
  cluster test across participants.
- ``decoding.csv`` (``analyses.decoding``): pairwise decoding of the test images, its
  temporal generalisation, and figure/ground cross-decoding.

Each analysis adds a section to ``summary.json``; a failure is a note there, and the other
analyses go on.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from figureground import logs
from figureground.analysis.study.inputs import (
    load_recordings,
    load_test_recordings,
    response_window,
    select_stores,
)
from figureground.analysis.study.masks import find_mask_grids
from figureground.analysis.study.tables import json_records, run_or_note, write_csv
from figureground.config import AnalysesConfig, options_record
from figureground.features.store import FeatureStore
from figureground.neural.recording import Recording

log = logs.get_logger(__name__)

WHERE_FILES = (
    "mask_partition.csv",
    "readout_ratio.csv",
    "sensor_effects.csv",
    "sensor_clusters.csv",
    "decoding.csv",
)


def _clear_stale(cfg: AnalysesConfig, results_dir: Path) -> None:
    """Remove results of analyses that are switched off (no earlier run's file outlives it)."""
    off = {
        "mask_partition.csv": not cfg.mask_partition.enabled,
        "readout_ratio.csv": not cfg.readout.enabled,
        "sensor_effects.csv": not cfg.sensors.enabled,
        "sensor_clusters.csv": not cfg.sensors.enabled,
        "decoding.csv": not cfg.decoding.enabled,
    }
    for name, stale in off.items():
        if stale:
            (results_dir / name).unlink(missing_ok=True)
    if not cfg.readout.enabled:
        shutil.rmtree(results_dir / "readout_maps.zarr", ignore_errors=True)


def _post_mean(table: pd.DataFrame, by: list[str]) -> list[dict[str, Any]]:
    """Post-stimulus mean of ``value`` per group of ``by`` (records for the summary)."""
    if table.empty:
        return []
    post = table[table["time"] >= 0]
    return json_records(post.groupby(by, as_index=False, sort=True)["value"].mean())


def run_where(
    cfg: AnalysesConfig,
    neural_files: Mapping[str, Recording],
    feature_stores: Mapping[str, FeatureStore],
    results_dir: Path,
    summary: dict[str, Any],
    variants_csv: Path | None,
    sensor_maps: Mapping[tuple[str, str, str, str], Any] | None = None,
) -> None:
    """Run the enabled analyses of this module; write their files and summary sections."""
    _clear_stale(cfg, results_dir)
    sections = (cfg.mask_partition, cfg.readout, cfg.sensors, cfg.decoding)
    if not any(section.enabled for section in sections):
        return
    window = response_window(cfg)
    inputs = WhereInputs(
        cfg,
        load_recordings(neural_files, **window),
        select_stores(feature_stores, cfg.models),
        find_mask_grids(variants_csv),
        results_dir,
        summary,
    )
    if cfg.mask_partition.enabled:
        _mask_partition(inputs, variants_csv)
    if cfg.readout.enabled:
        _readout(inputs)
    if cfg.sensors.enabled:
        _sensors(inputs, sensor_maps)
    if cfg.decoding.enabled:
        test = load_test_recordings(neural_files, **window) if cfg.decoding.pairwise else {}
        _decoding(inputs, test)


@dataclasses.dataclass(frozen=True)
class WhereInputs:
    """What every analysis of this module reads, and where it writes."""

    cfg: AnalysesConfig
    meg: Mapping[str, Any]
    stores: list[FeatureStore]
    masks: Any
    results_dir: Path
    summary: dict[str, Any]


def _mask_partition(inputs: WhereInputs, variants_csv: Path | None) -> None:
    from figureground.analysis.study.mask_partition_results import mask_partition_results

    cfg, summary = inputs.cfg, inputs.summary
    found = run_or_note(
        summary,
        "mask partition",
        lambda: mask_partition_results(cfg, inputs.meg, inputs.stores, inputs.masks, variants_csv),
    )
    if found is not None:
        table, notes = found
        summary["notes"].extend(notes)
        write_csv(table, inputs.results_dir / "mask_partition.csv")
        summary["mask_partition"] = {
            "options": options_record(cfg.mask_partition),
            "post_stimulus_mean": _post_mean(
                table, ["participant", "model", "weights", "layer", "component"]
            ),
        }


def _readout(inputs: WhereInputs) -> None:
    from figureground.analysis.readout_ratio import write_readout_maps
    from figureground.analysis.study.readout_results import readout_results

    cfg, summary = inputs.cfg, inputs.summary
    found = run_or_note(
        summary,
        "readout maps",
        lambda: readout_results(cfg, inputs.meg, inputs.stores, inputs.masks),
    )
    if found is not None:
        table, maps, notes = found
        summary["notes"].extend(notes)
        write_csv(table, inputs.results_dir / "readout_ratio.csv")
        if maps is not None:
            write_readout_maps(maps, inputs.results_dir / "readout_maps.zarr")
        summary["readout"] = {
            "options": options_record(cfg.readout),
            "windows": json_records(table),
        }


def _sensors(
    inputs: WhereInputs, sensor_maps: Mapping[tuple[str, str, str, str], Any] | None
) -> None:
    from figureground.analysis.study.sensor_results import sensor_results

    cfg, summary = inputs.cfg, inputs.summary
    found = run_or_note(
        summary,
        "sensor effects",
        lambda: sensor_results(cfg, inputs.meg, inputs.stores, inputs.masks, sensor_maps),
    )
    if found is not None:
        summary["notes"].extend(found.notes)
        write_csv(found.table, inputs.results_dir / "sensor_effects.csv")
        write_csv(found.clusters, inputs.results_dir / "sensor_clusters.csv")
        summary["sensors"] = {
            "options": options_record(cfg.sensors),
            "clusters": json_records(found.clusters),
        }


def _decoding(inputs: WhereInputs, test: Mapping[str, Any]) -> None:
    from figureground.analysis.study.decoding_results import decoding_results

    cfg, summary = inputs.cfg, inputs.summary
    found = run_or_note(
        summary,
        "decoding",
        lambda: decoding_results(cfg, inputs.meg, test, inputs.stores, inputs.masks),
    )
    if found is not None:
        table, notes = found
        summary["notes"].extend(notes)
        write_csv(table, inputs.results_dir / "decoding.csv")
        summary["decoding"] = {
            "options": options_record(cfg.decoding),
            "post_stimulus_mean": _post_mean(
                table[table["analysis"] != "generalisation"] if "analysis" in table else table,
                [c for c in ("participant", "analysis", "feature_set") if c in table],
            ),
        }
