"""Run a study's analyses on its recordings and feature stores; write the results contract.

Files written to ``results/``:

- ``seed_distance.csv``: participant, image_id, condition, model, weights, layer, distance.
- ``rsa_timecourse.csv``: one row per participant, model, layer, level, stratum, condition
  (``given`` names the condition partialled out, "" otherwise) and time, with the RSA value,
  its bootstrap interval over images (``ci_low``, ``ci_high``) and the permutation p-value
  per time point (``p_perm``) and corrected over time by the maximum statistic
  (``p_perm_fwer``).
- ``encoding.csv``: cross-validated Pearson r per participant, model, layer, condition and
  time (mean over folds and sensors).
- ``variance_partition.csv``: cross-validated R² of the joint, figure-only and ground-only
  models and the unique figure, unique ground and shared components over time.
- ``noise_ceiling.csv``: RSA ceilings (lower/upper bounds, rsatoolbox definitions) from the
  test images' repetitions and across participants, and the encoding ceilings from split-half
  reliability (band over random splits).
- ``clusters.csv``: cluster-based sign-flip permutation tests over time across participants,
  for each curve (against 0) and for figure minus ground.
- ``summary.json``: every analysis's summary numbers, notes and the run's provenance.

The "foreground" (figure) model is the ``no_background`` condition, the "background"
(ground) model the ``no_foreground`` condition. The "pooled" participant of the seed
summaries averages each image's distance over participants first; the ``mean`` participant
of the other summaries averages curves over participants.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from figureground import logs
from figureground.analysis.study.careful_runner import run_careful
from figureground.analysis.study.columns import SEED_COLUMNS
from figureground.analysis.study.gaze_results import run_gaze
from figureground.analysis.study.inputs import (
    load_recordings,
)
from figureground.analysis.study.seed_results import (
    identity_results,
    seed_results,
    seed_summary,
)
from figureground.analysis.study.tables import (
    ground_truth_summary,
    json_records,
    run_or_note,
    write_csv,
)
from figureground.analysis.study.where_runner import run_where
from figureground.config import AnalysesConfig
from figureground.features.store import FeatureStore
from figureground.fsutil import atomic_write_json
from figureground.neural.recording import Recording, as_recordings
from figureground.parallel import SERIAL

log = logs.get_logger(__name__)

# ----------------------------------------------------------------------------- entry point


def run_analyses(
    cfg: AnalysesConfig,
    neural_files: Mapping[str, Recording],
    feature_stores: Mapping[str, FeatureStore],
    results_dir: Path,
    provenance: Mapping[str, Any],
    variants_csv: Path | None = None,
    scheduler: Any = SERIAL,
) -> dict[str, Any]:
    """Run the configured analyses; write the results files; return the summary.

    ``variants_csv`` (default ``results_dir/../variants/variants.csv``, the run folder's)
    gives the foreground fractions for the stratified RSA. ``scheduler`` (serial, a Dask
    address or a ``Client``) runs the permutation tests; results do not depend on it.
    """
    results_dir = Path(results_dir)
    if variants_csv is None:
        variants_csv = results_dir.parent / "variants" / "variants.csv"
    summary: dict[str, Any] = {"provenance": dict(provenance), "notes": []}
    for info in feature_stores.values():
        if info.replaces:
            summary["notes"].append(
                f"{info.replaces} could not be used here; {info.model} "
                f"({info.weights}) replaces it. Reason: {info.replaced_because}"
            )
    neural_files = as_recordings(neural_files)
    truth = ground_truth_summary(neural_files)
    if truth is not None:
        summary["ground_truth"] = truth
    neural_files = run_gaze(
        cfg, neural_files, feature_stores, results_dir, summary, variants_csv
    )  # analyses.gaze: gaze.csv, and trials excluded or gaze regressed out for what follows
    _seed_method_part(cfg, neural_files, feature_stores, results_dir, summary, scheduler)
    sensor_maps: dict[tuple[str, str, str, str], Any] | None = (
        {} if cfg.sensors.enabled and cfg.sensors.encoding else None
    )
    if cfg.rsa.enabled or cfg.encoding.enabled or cfg.noise_ceiling.enabled:
        run_careful(
            cfg,
            neural_files,
            feature_stores,
            results_dir,
            summary,
            variants_csv,
            scheduler,
            sensor_maps,
        )
    run_where(cfg, neural_files, feature_stores, results_dir, summary, variants_csv, sensor_maps)
    atomic_write_json(results_dir / "summary.json", summary)
    return summary


def _seed_method_part(
    cfg: AnalysesConfig,
    neural_files: Mapping[str, Recording],
    feature_stores: Mapping[str, FeatureStore],
    results_dir: Path,
    summary: dict[str, Any],
    scheduler: Any,
) -> None:
    """The study's own method and its identity version: seed_distance.csv, seed_identity.csv.

    An earlier run's seed results do not outlive the setting: they are removed when off.
    """
    method = cfg.seed_method
    if not method.enabled:
        (results_dir / "seed_distance.csv").unlink(missing_ok=True)
    if method.enabled:
        meg = load_recordings(neural_files)
        table = seed_results(cfg, meg, feature_stores, scheduler)
        write_csv(table[SEED_COLUMNS], results_dir / "seed_distance.csv")
        summary["seed_distance"] = {
            "options": {
                "response": method.response,
                "tmin": method.tmin,
                "tmax": method.tmax,
                "zscore": method.zscore,
                "mode": method.mode,
            },
            **seed_summary(table, n_boot=method.n_boot, seed=method.random_state),
        }
        if method.identity:
            found = run_or_note(
                summary, "seed identity", lambda: identity_results(cfg, meg, feature_stores)
            )
            if found is not None:
                write_csv(found[0], results_dir / "seed_identity.csv")
                summary["seed_identity"] = {
                    "options": {
                        "max_images": method.identity_max_images,
                        "n_permutations": method.n_permutations,
                    },
                    "conditions": json_records(found[0]),
                    "figure_vs_ground": found[1],
                }
    if not (method.enabled and method.identity):
        (results_dir / "seed_identity.csv").unlink(missing_ok=True)
