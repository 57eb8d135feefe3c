"""Run the stages of a study with caching and resume.

The run folder holds one sub-folder per stage::

    RUN/stimuli/manifest.csv        the stimulus manifest
    RUN/variants/                   no-background / no-foreground / mask images, variants.csv
    RUN/features/<key>.zarr         one store per model (and weights)
    RUN/neural/                     recordings (simulated ones are written here)
    RUN/results/                    seed_distance.csv, summary.json
    RUN/report.html                 the report
    RUN/study.json                  the validated study and provenance

Each stage records a key (a hash of its parameters and of its inputs' fingerprints) in
``RUN/.stages/<stage>.json`` after it finishes; a rerun with the same key skips the stage, so
rerunning a finished study recomputes nothing. Stages that work image by image (variants,
features) also resume inside themselves after an interruption. A lock file stops two runs
from writing the same folder at once.

The stages live in parts, re-exported here: :mod:`figureground.pipeline_state` (the run's
state, stage cache and lock), :mod:`figureground.pipeline_images` (stimuli, variants,
features) and :mod:`figureground.pipeline_neural` (the recordings).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from figureground import logs
from figureground.config import StudyConfig, earlier_key_names
from figureground.errors import FigureGroundError, UsageError
from figureground.fsutil import atomic_write_json, disk_full_as_error, params_hash
from figureground.pipeline_images import (
    VARIANTS_ADDED_LATER,
    model_key,
    stage_features,
    stage_stimuli,
    stage_variants,
)
from figureground.pipeline_neural import stage_neural
from figureground.pipeline_state import (
    RunState,
    StageCache,
    fingerprint,
    run_lock,
    run_provenance,
)

__all__ = [
    "STAGES",
    "VARIANTS_ADDED_LATER",
    "RunState",
    "StageCache",
    "check_devices",
    "fingerprint",
    "model_key",
    "run_lock",
    "run_provenance",
    "run_study",
    "stage_analyses",
    "stage_features",
    "stage_neural",
    "stage_report",
    "stage_stimuli",
    "stage_variants",
]

log = logs.get_logger(__name__)


def _timed(state: RunState, stage: str, func: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    log.info("stage %s: start", stage)
    result = func()
    state.timings[stage] = round(time.perf_counter() - start, 2)
    log.info("stage %s: done in %.1f s", stage, state.timings[stage])
    return result


# --- stages (stimuli, variants, features: pipeline_images; neural: pipeline_neural) ---


def stage_analyses(state: RunState, cache: StageCache) -> None:
    """Every configured analysis: ``RUN/results/*.csv`` and ``summary.json``."""
    from figureground.analysis import runner

    results_dir = state.run_dir / "results"
    inputs = [fingerprint(r.epochs) for r in state.neural_files.values()]
    inputs += [fingerprint(r.gaze) for r in state.neural_files.values() if r.gaze]
    for recording in state.neural_files.values():  # other sources: every file and option counts
        if recording.source != "things_meg":
            extra = [recording.attributes, recording.test, recording.test_attributes]
            inputs += [fingerprint(Path(f)) for f in extra if f]
            inputs.append(repr((recording.source, dict(recording.options))))
    inputs += [fingerprint(s.path) for s in state.feature_stores.values()]
    fields = earlier_key_names(dataclasses.asdict(state.study.analyses))
    if fields["rsa"]["backend"] == "numpy":  # (left out then: earlier runs keep their keys)
        fields["rsa"].pop("backend")
    key = params_hash([fields, inputs])
    if cache.is_done("analyses", key):
        state.skipped.append("analyses")
        return
    runner.run_analyses(
        state.study.analyses,
        state.neural_files,
        state.feature_stores,
        results_dir,
        provenance=run_provenance(state),
        scheduler=state.scheduler,
    )
    # Every result file is recorded with its hash, so an edited or damaged one is recomputed.
    cache.mark_done(
        "analyses", key, [*sorted(results_dir.glob("*.csv")), results_dir / "summary.json"]
    )


def stage_report(state: RunState, cache: StageCache) -> None:
    """``RUN/report.html`` and its figures."""
    from figureground.report.html import build_report

    results = state.run_dir / "results"
    key = params_hash(
        [
            dataclasses.asdict(state.study.report),
            fingerprint(results),
            fingerprint(state.variants_dir / "variants.csv"),
        ]
    )
    report_path = state.run_dir / "report.html"
    if cache.is_done("report", key):
        state.skipped.append("report")
        return
    build_report(state.run_dir, examples=state.study.report.examples)
    cache.mark_done("report", key, [report_path])


STAGES: tuple[tuple[str, Callable[[RunState, StageCache], None]], ...] = (
    ("stimuli", stage_stimuli),
    ("variants", stage_variants),
    ("features", stage_features),
    ("neural", stage_neural),
    ("analyses", stage_analyses),
    ("report", stage_report),
)


def check_devices(study: StudyConfig) -> None:
    """Refuse, before any work, a study that asks for a CUDA backend on a machine without one.

    Raises
    ------
    UsageError
        One line naming the setting.
    """
    wanted = [
        name
        for name, backend in (
            ("analyses.rsa.backend", study.analyses.rsa.backend),
            ("analyses.encoding.backend", study.analyses.encoding.backend),
        )
        if backend == "torch_cuda"
    ]
    if study.features.device == "cuda":
        wanted.append("features.device")
    if not wanted:
        return
    import torch

    if not torch.cuda.is_available():
        raise UsageError(
            f"{', '.join(wanted)} asks for a CUDA GPU but none is visible here; use numpy / "
            "cpu (or auto) on this machine"
        )


def run_study(
    study: StudyConfig, run_dir: Path | None = None, scheduler: str | Any = "serial"
) -> RunState:
    """Run every stage of ``study`` into ``run_dir`` (default: the study's ``output``).

    ``scheduler`` (``serial``, ``local[:N]``, a Dask scheduler address or a
    ``distributed.Client``) runs variants,
    features and permutation tests; one client serves the whole run. Outputs and their cache
    keys do not depend on it.
    """
    from figureground.parallel import dask_client, parse_scheduler

    parse_scheduler(scheduler)  # bad values fail before any work
    check_devices(study)
    run_dir = Path(run_dir) if run_dir else study.resolve(study.output)
    run_dir = run_dir.resolve()
    state = RunState(run_dir=run_dir, study=study)
    with run_lock(run_dir), disk_full_as_error(run_dir), dask_client(scheduler) as client:
        state.scheduler = client if client is not None else "serial"
        atomic_write_json(run_dir / "study.json", {"study": study.to_dict()})
        cache = StageCache(run_dir)
        for name, stage in STAGES:
            try:
                _timed(state, name, lambda stage=stage: stage(state, cache))
            except FigureGroundError as exc:
                raise type(exc)(f"stage {name}: {exc}") from None
        atomic_write_json(
            run_dir / "stages.json", {"timings_s": state.timings, "skipped": state.skipped}
        )
    return state
