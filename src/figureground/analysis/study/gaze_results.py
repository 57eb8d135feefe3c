"""Where the participants looked (``analyses.gaze``): gaze.csv, its density, and its uses.

Reads each participant's gaze epochs (``gaze_P<n>.npz``, written by the preprocessing of raw
runs) and the variants' object masks, and writes ``gaze.csv`` (one row per experiment trial,
:func:`figureground.neural.gaze_metrics.gaze_metrics`) and ``gaze_density.npz`` (the
object-centred density the report draws). Then, by ``analyses.gaze.mode``, it returns how
the analyses read each participant's responses: trials dropped (``exclude``) or gaze
regressed out (``regress``); or it runs the RSA per gaze stratum (``stratify``,
``gaze_strata.csv``).

THINGS-MEG shows each experiment image once per participant, so a participant's trial and
image are the same row; an image shown more than once (other designs) takes the mean of its
trials' metrics.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from figureground import logs
from figureground.analysis.study.tables import json_records, write_csv
from figureground.errors import DataError
from figureground.features.store import FeatureStore
from figureground.neural.recording import Recording

log = logs.get_logger(__name__)

GAZE_FILES = ("gaze.csv", "gaze_density.npz", "gaze_strata.csv")
HIGH, LOW = "gaze_on_object_high", "gaze_on_object_low"
STRATA_BY = ["participant", "model", "weights", "layer", "level", "view", "stratum"]
Adjust = Callable[[str, Any], Any]


def read_gaze_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``gaze`` (epoch, 2, time) and ``times`` of a ``gaze_P<n>.npz``; DataError if malformed."""
    try:
        with np.load(path, allow_pickle=False) as data:
            gaze, times = data["gaze"], data["times"]
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"{path}: not a gaze file ({type(exc).__name__}: {exc})") from None
    if gaze.ndim != 3 or gaze.shape[1] != 2 or gaze.shape[2] != times.size:
        raise DataError(
            f"{path}: gaze of shape {gaze.shape} with {times.size} times; expected (epoch, 2, time)"
        )
    return gaze, times


def _trials(recording: Recording) -> pd.DataFrame:
    """Epoch index and image id of each experiment trial of a THINGS-MEG entry."""
    from figureground.neural.things_meg import read_epochs_lazy, trials_table

    epochs_path = Path(recording.epochs)
    if recording.attributes:
        metadata = pd.read_csv(recording.attributes, low_memory=False)
    else:
        metadata = read_epochs_lazy(epochs_path).metadata
        if metadata is None:
            raise DataError(f"{epochs_path}: no sample attributes to tell each trial's image")
    return trials_table(metadata, "exp", epochs_path.name)


def _known_masks(variants_dir: Path) -> pd.Series:
    """Relative stimulus path of each image the variants run made, by image id."""
    table = pd.read_csv(
        variants_dir / "variants.csv",
        keep_default_na=False,
        dtype={"image_id": str, "path": str, "status": str},
    )
    return table[table["status"] == "ok"].set_index("image_id")["path"]


def participant_gaze(
    participant: str, recording: Recording, variants_dir: Path, cfg: Any
) -> tuple[pd.DataFrame, Any]:
    """One participant's gaze table (one row per trial with a mask) and gaze density."""
    from figureground.neural.gaze_metrics import gaze_density, gaze_metrics
    from figureground.variants.masks import read_mask

    gaze, times = read_gaze_file(Path(recording.gaze))
    trials = _trials(recording)
    if trials["epoch"].max() >= gaze.shape[0]:
        raise DataError(
            f"{recording.gaze}: {gaze.shape[0]} epochs, but trial {trials['epoch'].max()} "
            "exists; the gaze file and the epochs do not match"
        )
    known = _known_masks(variants_dir)
    with_mask = trials[trials["image_id"].isin(known.index)]
    if len(with_mask) < len(trials):
        log.info(
            "gaze %s: %d of %d trials show images without a mask in this run; left out",
            participant,
            len(trials) - len(with_mask),
            len(trials),
        )
    if with_mask.empty:
        raise DataError(f"{participant}: no trial shows an image of this run's variants")
    masks_by_id = {i: read_mask(variants_dir, known[i]) for i in with_mask["image_id"].unique()}
    masks = [masks_by_id[i] for i in with_mask["image_id"]]
    rows = gaze[with_mask["epoch"].to_numpy()]
    window = {"tmin": cfg.tmin, "tmax": cfg.tmax}
    table = gaze_metrics(rows, times, masks, image_ids=list(with_mask["image_id"]), **window)
    table.insert(0, "participant", participant)
    table["trial"] = with_mask["epoch"].to_numpy()
    density = gaze_density(rows, times, masks, bins=cfg.density_bins, **window)
    return table.rename(columns={"trial": "epoch"}), density


def pooled_density(densities: list[Any]) -> dict[str, np.ndarray]:
    """Participants' densities averaged with their trial counts as weights (npz-ready)."""
    weights = np.array([d.n_trials for d in densities], dtype=np.float64)
    share = weights / weights.sum()
    return {
        "density": sum(w * d.density for w, d in zip(share, densities, strict=True)),
        "mean_mask": sum(w * d.mean_mask for w, d in zip(share, densities, strict=True)),
        "edges": densities[0].edges,
        "n_trials": np.array(int(weights.sum())),
        "outside_share": np.array(float(share @ [d.outside_share for d in densities])),
    }


def _per_image(table: pd.DataFrame, column: str) -> pd.Series:
    return table.groupby("image_id")[column].mean()


def exclusion(table: pd.DataFrame, cfg: Any) -> pd.Series:
    """Whether each trial of ``table`` is kept under ``exclude`` (valid gaze, on object)."""
    keep = table["valid_share"] >= cfg.min_valid_share
    if cfg.min_on_object is not None:
        keep &= table["gaze_on_object"] >= cfg.min_on_object
    return keep.fillna(False)


def exclude_adjust(dropped: Mapping[str, set[str]]) -> Adjust:
    """Responses without each participant's ``dropped`` image ids."""

    def adjust(participant: str, responses: Any) -> Any:
        drop = dropped.get(participant, set())
        ids = [str(i) for i in responses["image"].values]
        keep = [k for k, i in enumerate(ids) if i not in drop]
        if not keep:
            raise DataError(f"{participant}: analyses.gaze excluded every trial")
        return responses.isel(image=keep) if len(keep) < len(ids) else responses

    return adjust


def regress_out(values: np.ndarray, covariates: np.ndarray, step: int = 4096) -> np.ndarray:
    """``values`` (image, ...) minus their least-squares fit on centred ``covariates``, in place.

    Each column (channel x time) keeps its mean; the fit runs in blocks of ``step`` columns.
    """
    flat = values.reshape(values.shape[0], -1)
    design = covariates - covariates.mean(axis=0)
    projector = np.linalg.pinv(design).astype(flat.dtype)
    design = design.astype(flat.dtype)
    for start in range(0, flat.shape[1], step):
        block = flat[:, start : start + step]
        block -= design @ (projector @ block)
    return values


def regress_adjust(covariates: Mapping[str, pd.DataFrame]) -> Adjust:
    """Responses with each participant's per-image gaze covariates regressed out.

    Images without gaze metrics (or with NaN) take the participant's mean, i.e. no
    correction. The responses are corrected in place when their array is writable (the
    freshly read recordings that ``LazyRecordings`` hands over: no second 6.8 GB copy at
    THINGS size), else on a copy.
    """

    def adjust(participant: str, responses: Any) -> Any:
        table = covariates.get(participant)
        if table is None:
            return responses
        ids = [str(i) for i in responses["image"].values]
        design = table.reindex(ids).to_numpy(dtype=np.float64)
        design = np.where(np.isfinite(design), design, np.nanmean(design, axis=0))
        design = np.nan_to_num(design)
        if responses.values.flags.writeable:
            regress_out(responses.values, design)
            return responses
        values = np.array(responses.values, copy=True)
        return responses.copy(data=regress_out(values, design))

    return adjust


def gaze_strata(table: pd.DataFrame, cfg: Any) -> dict[str, list[str]]:
    """High / low gaze-on-object image ids of one participant's valid trials."""
    valid = table[table["valid_share"] >= cfg.min_valid_share]
    share = _per_image(valid, "gaze_on_object").dropna()
    split = float(share.median()) if cfg.split is None else cfg.split
    high = sorted(share.index[share >= split])
    low = sorted(share.index[share < split])
    if cfg.split is None and not low:  # ties at the median: everything is "high"
        low, high = sorted(share.index[share <= split]), sorted(share.index[share > split])
    return {HIGH: high, LOW: low}


def stratified_rsa(
    analyses: Any, meg: Mapping[str, Any], stores: list, strata: Mapping[str, dict]
) -> pd.DataFrame:
    """Figure-vs-ground RSA result per participant and gaze stratum (no inference)."""
    from figureground.analysis.study.rsa_results import rsa_results
    from figureground.analysis.study.tables import curve_summary, figure_vs_ground

    light = dataclasses.replace(
        analyses,
        rsa=dataclasses.replace(analyses.rsa, n_boot=0, n_permutations=0, levels=("image",)),
        views=analyses.views[:1],
    )
    tables = []
    for participant, own in strata.items():
        runnable = {k: v for k, v in own.items() if len(v) >= analyses.gaze.min_images}
        if len(runnable) < len(own):
            log.info(
                "gaze strata %s: a stratum has fewer than %d images; skipped",
                participant,
                analyses.gaze.min_images,
            )
        if not runnable:
            continue
        found = rsa_results(light, {participant: meg[participant]}, stores, runnable)
        rows = found.table[found.table["stratum"].isin(list(runnable))]
        sizes = {name: len(ids) for name, ids in runnable.items()}
        tables.append(rows.assign(n_images=rows["stratum"].map(sizes)))
    if not tables:
        return pd.DataFrame()
    curves = pd.concat(tables, ignore_index=True)
    summary = curve_summary(curves, [*STRATA_BY, "condition", "given"])
    plain = summary[summary["given"] == ""]
    result = figure_vs_ground(plain, STRATA_BY, "condition")
    counts = curves.groupby(["participant", "stratum"], as_index=False)["n_images"].first()
    result = result[result["participant"] != "mean"]
    return result.merge(counts, on=["participant", "stratum"], how="left")


def gaze_tables(
    cfg: Any, neural_files: Mapping[str, Recording], variants_dir: Path
) -> tuple[pd.DataFrame, dict[str, np.ndarray], list[str]]:
    """Every participant's gaze table, the pooled density and one note per skipped one."""
    tables, densities, notes = [], [], []
    for participant, recording in neural_files.items():
        if not recording.gaze:
            notes.append(f"{participant} has no eye tracking (gaze_P<n>.npz); left out")
            continue
        try:
            table, density = participant_gaze(participant, recording, variants_dir, cfg)
        except DataError as exc:
            notes.append(f"{participant}: {exc}")
            continue
        tables.append(table)
        densities.append(density)
    if not tables:
        return pd.DataFrame(), {}, notes
    return pd.concat(tables, ignore_index=True), pooled_density(densities), notes


def _participant_summary(table: pd.DataFrame) -> dict[str, Any]:
    return {
        "n_trials": len(table),
        "mean_valid_share": float(table["valid_share"].mean()),
        "mean_gaze_on_object": float(table["gaze_on_object"].mean()),
        "mean_object_share": float(table["object_share"].mean()),
        "mean_distance_from_mask": float(table["distance_from_mask"].mean()),
    }


def run_gaze(
    analyses: Any,
    neural_files: Mapping[str, Recording],
    feature_stores: Mapping[str, FeatureStore],
    results_dir: Path,
    summary: dict[str, Any],
    variants_csv: Path | None,
) -> dict[str, Recording]:
    """The gaze analysis; returns the neural entries the other analyses should read.

    With ``exclude`` or ``regress`` each recording gains ``adjust`` (applied by
    :class:`~figureground.analysis.study.inputs.LazyRecordings` on reading). Earlier gaze
    outputs are removed first, so a disabled or failed analysis leaves none behind.
    """
    cfg = analyses.gaze
    for name in GAZE_FILES:
        (results_dir / name).unlink(missing_ok=True)
    entries = dict(neural_files)
    if not cfg.enabled:
        return entries
    if variants_csv is None or not Path(variants_csv).is_file():
        summary["notes"].append("The gaze analysis needs the variants' object masks; none here.")
        return entries
    table, density, notes = gaze_tables(cfg, neural_files, Path(variants_csv).parent)
    summary["notes"] += [f"Gaze: {note}." for note in notes]
    for note in notes:
        log.info("gaze: %s", note)
    if table.empty:
        return entries
    write_csv(table, results_dir / "gaze.csv")
    np.savez(results_dir / "gaze_density.npz", **density)
    info: dict[str, Any] = {
        "options": dataclasses.asdict(cfg),
        "participants": {
            p: _participant_summary(rows) for p, rows in table.groupby("participant", sort=True)
        },
    }
    by_participant = dict(iter(table.groupby("participant", sort=True)))
    if cfg.mode == "exclude":
        dropped = {
            p: set(rows.loc[~exclusion(rows, cfg), "image_id"])
            for p, rows in by_participant.items()
        }
        info["excluded_trials"] = {p: len(ids) for p, ids in dropped.items()}
        adjust = exclude_adjust(dropped)
        for p in dropped:
            entries[p] = entries[p].with_adjust(adjust)
    elif cfg.mode == "regress":
        columns = ["gaze_on_object", "distance_from_mask"]
        covariates = {
            p: rows.groupby("image_id")[columns].mean() for p, rows in by_participant.items()
        }
        adjust = regress_adjust(covariates)
        for p in covariates:
            entries[p] = entries[p].with_adjust(adjust)
        info["regressed_out"] = columns
    elif cfg.mode == "stratify":
        from figureground.analysis.study.inputs import (
            load_recordings,
            response_window,
            select_stores,
        )

        strata = {p: gaze_strata(rows, cfg) for p, rows in by_participant.items()}
        meg = load_recordings({p: neural_files[p] for p in strata}, **response_window(analyses))
        stores = select_stores(feature_stores, analyses.models)
        result = stratified_rsa(analyses, meg, stores, strata)
        info["strata"] = {p: {k: len(v) for k, v in s.items()} for p, s in strata.items()}
        if result.empty:
            summary["notes"].append(
                f"Gaze strata were not run: each needs {cfg.min_images} images "
                "(analyses.gaze.min_images)."
            )
        else:
            write_csv(result, results_dir / "gaze_strata.csv")
            info["figure_vs_ground"] = json_records(result)
    summary["gaze"] = info
    return entries
