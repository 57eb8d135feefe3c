"""The image stages of a run: stimuli, variants and features.

Part of :mod:`figureground.pipeline`, which re-exports every public name here.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from figureground import logs
from figureground.config import ModelConfig, earlier_key_names
from figureground.errors import ModelUnavailableError, UsageError
from figureground.features.store import FeatureStore
from figureground.fsutil import params_hash, sha256_file
from figureground.pipeline_state import RunState, StageCache, fingerprint

log = logs.get_logger("figureground.pipeline")  # the log lines keep the name of the stages' module


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
        earlier_key_names(_model_fields(dataclasses.asdict(model))),
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
            seed=model.random_state,
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
