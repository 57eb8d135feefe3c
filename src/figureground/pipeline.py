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
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from figureground import logs
from figureground.config import ModelConfig, StudyConfig
from figureground.errors import FigureGroundError, ModelUnavailableError, UsageError
from figureground.features.store import FeatureStore
from figureground.fsutil import (
    atomic_write_json,
    disk_full_as_error,
    folder_lock,
    params_hash,
    sha256_file,
    tree_fingerprint,
)
from figureground.provenance import stamp

log = logs.get_logger(__name__)


@dataclass
class RunState:
    """What the stages of one run produced, passed from stage to stage."""

    run_dir: Path
    study: StudyConfig
    stimulus_root: Path | None = None
    manifest_path: Path | None = None
    variants_dir: Path | None = None
    feature_stores: dict[str, FeatureStore] = field(default_factory=dict)
    neural_files: dict[str, dict[str, Path]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    # Where variants, features and permutations run: "serial" or a Dask Client (not hashed:
    # results do not depend on it).
    scheduler: Any = "serial"


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``run_dir``; a second run on it stops with a clear message."""
    with folder_lock(run_dir, "run folder"):
        yield


def fingerprint(path: Path) -> str:
    """A cheap identity of a file or folder tree: names, sizes and modification times.

    Used for stage keys of large inputs (MEG files of 8 GB); content hashes are recorded by
    the stages themselves where they matter.
    """
    entries = []
    paths = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for item in paths:
        if item.name.startswith(".") or "/." in item.as_posix():
            continue
        info = item.stat()
        entries.append((item.relative_to(path.parent).as_posix(), info.st_size, info.st_mtime_ns))
    return params_hash(entries)


class StageCache:
    """Stage keys stored in ``RUN/.stages``; a stage runs only when its key changed."""

    def __init__(self, run_dir: Path) -> None:
        self.folder = run_dir / ".stages"

    def is_done(self, stage: str, key: str) -> dict[str, Any] | None:
        """The stored record when ``stage`` finished with ``key``, else None."""
        record_path = self.folder / f"{stage}.json"
        if not record_path.exists():
            return None
        try:
            record = json.loads(record_path.read_text())
        except (OSError, json.JSONDecodeError):
            log.warning("stage record %s is damaged; the stage will run again", record_path)
            return None
        if record.get("key") != key:
            return None
        for output, digest in record.get("outputs", {}).items():
            out_path = Path(output)
            if not out_path.exists():
                log.warning("%s is missing; stage %s runs again", out_path, stage)
                return None
            if digest and _output_digest(out_path) != digest:
                log.warning(
                    "%s differs from what stage %s wrote (hash mismatch); it runs again",
                    out_path,
                    stage,
                )
                return None
        return record

    def mark_done(self, stage: str, key: str, outputs: list[Path], **extra: Any) -> None:
        """Record that ``stage`` finished with ``key`` and wrote ``outputs``.

        Files are recorded by SHA-256, folders by the names and sizes of their files (a
        truncated or missing image or chunk file makes the stage run again, and the stage
        then finds the damaged piece by its own per-item hashes).
        """
        hashes = {str(p): _output_digest(p) for p in outputs}
        atomic_write_json(self.folder / f"{stage}.json", {"key": key, "outputs": hashes, **extra})


def _output_digest(path: Path) -> str:
    if path.is_file():
        return sha256_file(path)
    return f"tree:{tree_fingerprint(path)}" if path.is_dir() else ""


def _timed(state: RunState, stage: str, func: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    log.info("stage %s: start", stage)
    result = func()
    state.timings[stage] = round(time.perf_counter() - start, 2)
    log.info("stage %s: done in %.1f s", stage, state.timings[stage])
    return result


# --- stages -------------------------------------------------------------------------------


def stage_stimuli(state: RunState, cache: StageCache) -> None:
    """Build (for the demo) and index the stimuli: ``RUN/stimuli/manifest.csv``."""
    from figureground import stimuli

    cfg = state.study.stimuli
    root = state.study.resolve(cfg.root) if cfg.root else state.run_dir / "demo-stimuli"
    if cfg.demo:
        from figureground.demo_stimuli import make_demo_stimuli

        make_demo_stimuli(root)
    if not root.is_dir():
        raise UsageError(f"stimuli.root {root} is not a folder")
    state.stimulus_root = root
    manifest_path = state.run_dir / "stimuli" / "manifest.csv"
    key = params_hash([dataclasses.asdict(cfg), fingerprint(root)])
    if cache.is_done("stimuli", key):
        state.skipped.append("stimuli")
    else:
        csv_path = state.study.resolve(cfg.csv) if cfg.csv else None
        manifest = stimuli.build_manifest(
            root, layout=cfg.layout, exemplars=cfg.exemplars, csv_path=csv_path
        )
        stimuli.write_manifest(manifest, manifest_path)
        n_failed = int((manifest["status"] != "ok").sum())
        log.info("stimuli: %d images, %d failed to read", len(manifest), n_failed)
        cache.mark_done("stimuli", key, [manifest_path])
    state.manifest_path = manifest_path


# Variants fields added after runs were made, with the value those runs used.
VARIANTS_ADDED_LATER: dict[str, Any] = {
    "alpha_floor": 0.0,
    "inpaint_radius": 3,
    "inpaint_max_side": 1024,
    "fill": (255, 255, 255),
    "little_background_above": 0.9,
}


def stage_variants(state: RunState, cache: StageCache) -> None:
    """No-background, no-foreground and mask images: ``RUN/variants``."""
    from figureground import stimuli
    from figureground.variants import make_variants

    cfg = state.study.variants
    out_dir = state.run_dir / "variants"
    fields = dataclasses.asdict(cfg)
    fields.pop("batch_size")  # speed only: the images do not depend on it
    for name, earlier in VARIANTS_ADDED_LATER.items():  # at their earlier value, runs made
        if fields[name] == earlier:  # before the field existed keep their stage key
            del fields[name]
    key = params_hash([fields, sha256_file(state.manifest_path)])
    if cache.is_done("variants", key):
        state.skipped.append("variants")
    else:
        manifest = stimuli.read_manifest(state.manifest_path)
        table = make_variants(
            state.stimulus_root,
            out_dir,
            manifest=manifest,
            segmenter=cfg.segmenter,
            inpaint=cfg.inpaint,
            threshold=cfg.threshold,
            dilate=cfg.dilate,
            inpaint_radius=cfg.inpaint_radius,
            inpaint_max_side=cfg.inpaint_max_side,
            fill=cfg.fill,
            little_background_above=cfg.little_background_above,
            alpha_floor=cfg.alpha_floor,
            workers=cfg.workers,
            scheduler=state.scheduler,
            batch_size=cfg.batch_size,
        )
        failed = table[table["status"] != "ok"]
        for row in failed.itertuples():
            log.warning("variants: %s failed: %s", row.path, row.error)
        cache.mark_done("variants", key, [out_dir / "variants.csv", out_dir])
    state.variants_dir = out_dir


def model_key(model: ModelConfig) -> str:
    """Folder-safe name of a model + weights: ``resnet50__IMAGENET1K_V1``."""
    weights = Path(model.weights).stem if "/" in model.weights else model.weights
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in f"{model.name}__{weights}")
    return safe


def _model_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """A model's fields for its cache key: ``resize`` / ``crop`` only when set (earlier runs,
    made before they existed, keep their keys), in the fallback too."""
    kept = {k: v for k, v in fields.items() if not (k in ("resize", "crop") and v is None)}
    if kept.get("fallback"):
        kept["fallback"] = _model_fields(kept["fallback"])
    return kept


def _extract_one(state: RunState, cache: StageCache, model: ModelConfig) -> dict[str, Any]:
    from figureground.features.extract import extract_features

    cfg = state.study.features
    key_name = model_key(model)
    store = state.run_dir / "features" / f"{key_name}.zarr"
    stage = f"features-{key_name}"
    params = [
        _model_fields(dataclasses.asdict(model)),
        cfg.batch_size,
        cfg.dtype,
        sha256_file(state.variants_dir / "variants.csv"),
    ]
    if cfg.precision != "fp32":  # (appended only then: fp32 runs keep their earlier keys)
        params.append(cfg.precision)
    key = params_hash(params)
    if cache.is_done(stage, key):
        state.skipped.append(stage)
    else:
        extract_features(
            state.variants_dir,
            store,
            model=model.name,
            weights=model.weights,
            layers=model.layers,
            pool=model.pool,
            dtype=cfg.dtype,
            batch_size=cfg.batch_size,
            device=cfg.device,
            seed=model.seed,
            resize=model.resize,
            crop=model.crop,
            workers=cfg.workers,
            precision=cfg.precision,
            scheduler=state.scheduler,
        )
        cache.mark_done(stage, key, [store])
    return FeatureStore(store, model.name, model.weights, tuple(model.layers), key_name)


def stage_features(state: RunState, cache: StageCache) -> None:
    """One Zarr store per model: ``RUN/features/<model>__<weights>.zarr``."""
    for model in state.study.features.models:
        try:
            info = _extract_one(state, cache, model)
        except ModelUnavailableError as exc:
            if model.fallback is None:
                raise
            log.warning(
                "%s weights %s cannot be had here (%s); using %s with %s weights instead",
                model.name,
                model.weights,
                exc,
                model.fallback.name,
                model.fallback.weights,
            )
            info = dataclasses.replace(
                _extract_one(state, cache, model.fallback),
                replaces=f"{model.name} ({model.weights})",
                replaced_because=str(exc),
            )
        state.feature_stores[info.key] = info


def _simulation_inputs(state: RunState) -> tuple[dict[str, Any], str, list[Any]]:
    """(feature store info, layer, inputs to hash) of a network-driven simulation."""
    sim = state.study.neural.simulate
    stores = list(state.feature_stores.values())
    chosen = next((s for s in stores if sim.model in (None, s.key, s.model)), None)
    if chosen is None:
        raise UsageError(
            f"neural.simulate.model {sim.model!r} matches no model; "
            f"have {', '.join(s['key'] for s in stores)}"
        )
    layer = sim.layer if sim.layer in chosen.layers else chosen.layers[0]
    return chosen, layer, [fingerprint(chosen.path)]


def _pixel_inputs(state: RunState) -> tuple[dict[str, Path], dict[str, Path]]:
    """Stimulus files and mask files of the images the variants run made."""
    from figureground import stimuli
    from figureground.fsutil import resolve_inside
    from figureground.variants.masks import mask_files

    sim = state.study.neural.simulate
    manifest = stimuli.read_manifest(state.manifest_path)
    manifest = manifest[manifest["status"] == "ok"]
    if "set" in manifest.columns:
        manifest = manifest[manifest["set"].isin(["exp", "other"])]
    ids = [str(i) for i in manifest["image_id"]]
    images = {
        str(row.image_id): resolve_inside(state.stimulus_root, row.path)
        for row in manifest.itertuples()
    }
    if sim.masks:
        folder = state.study.resolve(sim.masks)
        if folder is None or not folder.is_dir():
            raise UsageError(f"neural.simulate.masks {sim.masks!r} is not a folder")
        masks = {i: folder / f"{i}.png" for i in ids}
    else:
        masks = mask_files(state.variants_dir, ids)
    return images, masks


def _simulate(state: RunState, out_dir: Path) -> dict[str, Any]:
    """Write the study's simulated recordings; return what the stage record keeps."""
    from figureground.neural import simulate

    sim = state.study.neural.simulate
    design = {
        "test_images": sim.test_images,
        "sessions": sim.sessions,
        "catch_per_session": sim.catch_per_session,
    }
    common = {
        "snr": sim.snr,
        "seed": sim.seed,
        "participants": sim.participants,
        "evoked_amplitude": sim.evoked_amplitude,
        **design,
    }
    if sim.driver == "network":
        chosen, layer, _ = _simulation_inputs(state)
        simulate.simulate_meg(
            chosen.path,
            out_dir,
            fg_weight=sim.fg_weight,
            bg_weight=sim.bg_weight,
            image_weight=sim.image_weight,
            layer=layer,
            **common,
        )
        return {"driven_by": chosen.key, "layer": layer}
    images, masks = _pixel_inputs(state)
    weights = simulate.pixel_weights(
        sim.fg_weight, sim.bg_weight, sim.image_weight, sim.centre_weight, sim.position
    )
    simulate.simulate_pixels(images, masks, out_dir, weights, **common)
    return {"driven_by": f"pixels ({sim.position})", "layer": ""}


def _preprocess_bids(state: RunState, cache: StageCache, out_dir: Path) -> tuple[int, ...]:
    """Preprocess the BIDS root's participants into ``out_dir``; their numbers.

    Cached as the ``neural`` stage on the options and the BIDS tree's names, sizes and
    times; inside, each run is resumed on its own (``preprocess_participant``). A bad run
    is logged in one line and left out; the participant's other runs go on.
    """
    from figureground.neural.preprocess import PreprocessSettings, participant_number
    from figureground.neural.preprocess_io import preprocess_participant

    cfg = state.study.neural
    root = state.study.resolve(cfg.path)
    if not root.is_dir():
        raise UsageError(f"neural.path {cfg.path!r} is not a BIDS folder (expected ds004212)")
    labels = sorted(p.name.removeprefix("sub-") for p in root.glob("sub-*") if p.is_dir())
    numbers = cfg.participants or tuple(int(participant_number(label)) for label in labels)
    options = dataclasses.asdict(cfg.bids)
    key = params_hash([options, list(numbers), fingerprint(root)])
    outputs = [out_dir / f"preprocessed_P{n}-epo.fif" for n in numbers]
    if cache.is_done("neural", key) and all(path.exists() for path in outputs):
        state.skipped.append("neural")
        return tuple(numbers)
    settings = PreprocessSettings(**{**options, "bad_channels": tuple(cfg.bids.bad_channels)})
    failed = []
    for number in numbers:
        result = preprocess_participant(root, number, out_dir, settings, scheduler=state.scheduler)
        failed += [f"P{number} {run}: {reason}" for run, reason in result.failed]
    cache.mark_done("neural", key, outputs, failed_runs=failed)
    return tuple(numbers)


def stage_neural(state: RunState, cache: StageCache) -> None:
    """The recordings: simulated into ``RUN/neural`` or found at ``neural.path``.

    Each participant's entry names its files, its ``source`` and that source's options
    (:func:`figureground.neural.find_participants`); the simulator writes THINGS-MEG files.
    """
    from figureground.neural import find_participants

    cfg = state.study.neural
    if cfg.source == "simulate":
        sim = cfg.simulate
        out_dir = state.run_dir / "neural"
        if sim.driver == "network":
            _, layer, inputs = _simulation_inputs(state)
        else:
            layer, inputs = "", [sha256_file(state.manifest_path)]
            inputs.append(fingerprint(state.variants_dir / "variants.csv"))
            if sim.masks:
                inputs.append(fingerprint(state.study.resolve(sim.masks)))
        key = params_hash([dataclasses.asdict(sim), layer, *inputs])
        if cache.is_done("neural", key):
            state.skipped.append("neural")
        else:
            extra = _simulate(state, out_dir)
            cache.mark_done("neural", key, [out_dir / "ground_truth.json"], **extra)
        numbers = tuple(range(1, sim.participants + 1))
        state.neural_files.update(find_participants("things_meg", out_dir, {}, numbers))
        return
    if cfg.source == "bids":
        out_dir = state.run_dir / "neural" / "preprocessed"
        numbers = _preprocess_bids(state, cache, out_dir)
        state.neural_files.update(find_participants("things_meg", out_dir, {}, numbers))
        return
    options = cfg.options()
    if cfg.source == "things_eeg2" and options.get("metadata"):
        options["metadata"] = str(state.study.resolve(options["metadata"]))
    path = state.study.resolve(cfg.path)
    state.neural_files.update(find_participants(cfg.source, path, options, cfg.participants))


def stage_analyses(state: RunState, cache: StageCache) -> None:
    """Every configured analysis: ``RUN/results/*.csv`` and ``summary.json``."""
    from figureground.analysis import runner

    results_dir = state.run_dir / "results"
    inputs = [fingerprint(p["epochs"]) for p in state.neural_files.values()]
    inputs += [fingerprint(Path(p["gaze"])) for p in state.neural_files.values() if p.get("gaze")]
    for files in state.neural_files.values():  # other sources: every file and option counts
        if files.get("source", "things_meg") != "things_meg":
            extra = [files.get(k) for k in ("attributes", "test", "test_attributes")]
            inputs += [fingerprint(Path(f)) for f in extra if f]
            inputs.append(repr((files["source"], files.get("options"))))
    inputs += [fingerprint(s.path) for s in state.feature_stores.values()]
    fields = dataclasses.asdict(state.study.analyses)
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


def run_provenance(state: RunState) -> dict[str, Any]:
    """The study, its inputs and library versions, for summary.json and the report."""
    stores = {key: info.record() for key, info in state.feature_stores.items()}
    return stamp(
        study=state.study.to_dict(),
        stimulus_root=str(state.stimulus_root),
        feature_stores=stores,
        neural_files={p: {k: str(v) for k, v in f.items()} for p, f in state.neural_files.items()},
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
