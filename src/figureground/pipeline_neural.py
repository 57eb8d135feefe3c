"""The neural stage of a run: simulated recordings, preprocessed BIDS runs or found files.

Part of :mod:`figureground.pipeline`, which re-exports every public name here.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from figureground.config import earlier_key_names
from figureground.errors import UsageError
from figureground.features.store import FeatureStore
from figureground.fsutil import params_hash, sha256_file
from figureground.pipeline_state import RunState, StageCache, fingerprint


def _simulation_inputs(state: RunState) -> tuple[FeatureStore, str, list[Any]]:
    """(feature store info, layer, inputs to hash) of a network-driven simulation."""
    sim = state.study.neural.simulate
    stores = list(state.feature_stores.values())
    chosen = next((s for s in stores if sim.model in (None, s.key, s.model)), None)
    if chosen is None:
        raise UsageError(
            f"neural.simulate.model {sim.model!r} matches no model; "
            f"have {', '.join(s.key for s in stores)}"
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
        "seed": sim.random_state,
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
        key = params_hash([earlier_key_names(dataclasses.asdict(sim)), layer, *inputs])
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
