"""RSA, encoding, noise ceilings and cluster tests of a study: the careful analyses.

Writes ``rsa_timecourse.csv``, ``encoding.csv``, ``variance_partition.csv``,
``noise_ceiling.csv``, ``clusters.csv`` and the verdict's files, with their summary sections
(the results contract is described in :mod:`figureground.analysis.runner`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from figureground import logs
from figureground.analysis.study.ceilings import (
    authors_noise_ceiling,
    encoding_ceiling,
    rsa_ceiling_participants,
    rsa_ceiling_repetitions,
)
from figureground.analysis.study.clusters import cluster_tests
from figureground.analysis.study.columns import ALL_IMAGES, CEILING_COLUMNS
from figureground.analysis.study.encoding_results import encoding_results
from figureground.analysis.study.inputs import (
    load_recordings,
    load_test_recordings,
    post_stimulus,
    response_window,
    select_stores,
)
from figureground.analysis.study.masks import find_mask_grids
from figureground.analysis.study.rsa_results import rsa_results
from figureground.analysis.study.tables import (
    curve_summary,
    figure_vs_ground,
    image_strata,
    json_records,
    run_or_note,
    write_csv,
)
from figureground.analysis.study.verdict_results import headline, verdict_results
from figureground.config import AnalysesConfig, options_record
from figureground.features.store import FeatureStore
from figureground.neural.recording import Recording
from figureground.parallel import SERIAL

log = logs.get_logger(__name__)


def run_careful(
    cfg: AnalysesConfig,
    neural_files: Mapping[str, Recording],
    feature_stores: Mapping[str, FeatureStore],
    results_dir: Path,
    summary: dict[str, Any],
    variants_csv: Path | None,
    scheduler: Any = SERIAL,
    sensor_maps: dict[tuple[str, str, str, str], Any] | None = None,
) -> None:
    """RSA, encoding, noise ceilings, strata and cluster tests into ``results_dir``.

    ``scheduler`` runs the RSA permutation tests (serial, or a Dask address or client).
    ``sensor_maps`` (when given) receives the encoding's per-sensor scores.
    """
    window = response_window(cfg)
    stores = select_stores(feature_stores, cfg.models)
    meg = load_recordings(neural_files, **window)
    first = next(iter(meg.values()))
    times = np.asarray(first["time"].values, dtype=np.float64)
    summary["responses"] = {
        **window,
        "n_times": int(times.size),
        "participants": sorted(meg),
        "n_images": {p: int(m.sizes["image"]) for p, m in meg.items()},
    }
    rsa, ceilings = None, []
    if cfg.rsa.enabled:
        ids = first["image"].values
        rsa, ceilings = _rsa_part(
            cfg, meg, stores, ids, times, variants_csv, scheduler, results_dir, summary
        )
    encoding = partition = None
    if cfg.encoding.enabled:
        encoding, partition = _encoding_part(cfg, meg, stores, results_dir, summary, sensor_maps)
    if cfg.noise_ceiling.enabled:
        _ceilings_part(cfg, neural_files, window, ceilings, results_dir, summary)
    _clusters_part(cfg, len(meg), rsa, encoding, partition, results_dir, summary)


def _rsa_part(
    cfg: AnalysesConfig,
    meg: Any,
    stores: list,
    image_ids: np.ndarray,
    times: np.ndarray,
    variants_csv: Path | None,
    scheduler: Any,
    results_dir: Path,
    summary: dict[str, Any],
) -> tuple[pd.DataFrame | None, list[pd.DataFrame]]:
    """RSA, its verdict and the RSA ceilings across participants: (table, ceilings)."""
    ceilings: list[pd.DataFrame] = []
    rsa = None
    strata, summary["strata"] = image_strata(cfg, variants_csv, image_ids)
    masks = find_mask_grids(variants_csv)
    found = run_or_note(
        summary, "RSA", lambda: rsa_results(cfg, meg, stores, strata, scheduler, masks)
    )
    if found is not None:
        rsa, meg_rdms = found.table, found.meg_rdms
        for view, reason in found.skipped_views.items():
            summary["notes"].append(f"The {view} view was not analysed: {reason}.")
        write_csv(rsa, results_dir / "rsa_timecourse.csv")
        write_verdict(cfg, found, results_dir, summary)
        rsa_sum = curve_summary(
            rsa,
            [
                "participant",
                "model",
                "weights",
                "layer",
                "level",
                "view",
                "stratum",
                "condition",
                "given",
            ],
        )
        plain = rsa_sum[rsa_sum["given"] == ""]
        summary["rsa"] = {
            "options": options_record(
                cfg.rsa,
                (
                    "levels",
                    "metric",
                    "model_metric",
                    "method",
                    "partial",
                    "n_boot",
                    "n_permutations",
                    "ci",
                    "seed",
                ),
            ),
            "summary": json_records(rsa_sum),
            "figure_vs_ground": json_records(
                figure_vs_ground(
                    plain,
                    ["participant", "model", "weights", "layer", "level", "view", "stratum"],
                    "condition",
                )
            ),
        }
        if cfg.noise_ceiling.enabled:
            for (level, stratum), per_person in meg_rdms.items():
                if stratum != ALL_IMAGES:
                    continue
                table = rsa_ceiling_participants(per_person, times, level, cfg.rsa.method)
                if table is not None:
                    ceilings.append(table)
    return rsa, ceilings


def _encoding_part(
    cfg: AnalysesConfig,
    meg: Any,
    stores: list,
    results_dir: Path,
    summary: dict[str, Any],
    sensor_maps: dict[tuple[str, str, str, str], Any] | None,
) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """Encoding and variance partitioning: (encoding, partition) tables, None if skipped."""
    encoding = partition = None
    found = run_or_note(
        summary, "encoding", lambda: encoding_results(cfg, meg, stores, sensor_maps)
    )
    if found is not None:
        encoding, partition = found
        write_csv(encoding, results_dir / "encoding.csv")
        write_csv(partition, results_dir / "variance_partition.csv")
        by = ["participant", "model", "weights", "layer"]
        enc_sum = curve_summary(encoding, [*by, "condition"])
        part_sum = (
            curve_summary(partition, [*by, "component"]) if not partition.empty else pd.DataFrame()
        )
        summary["encoding"] = {
            "options": options_record(
                cfg.encoding,
                ("n_splits", "n_components", "alphas", "inner_splits", "n_iter", "backend", "seed"),
            ),
            "summary": json_records(enc_sum),
            "figure_vs_ground": json_records(figure_vs_ground(enc_sum, by, "condition")),
        }
        summary["variance_partition"] = {
            "summary": json_records(part_sum),
            "figure_vs_ground": json_records(
                figure_vs_ground(part_sum, by, "component", "unique_fg", "unique_bg")
            )
            if not part_sum.empty
            else [],
        }
    return encoding, partition


def _ceilings_part(
    cfg: AnalysesConfig,
    neural_files: Mapping[str, Recording],
    window: dict[str, Any],
    ceilings: list[pd.DataFrame],
    results_dir: Path,
    summary: dict[str, Any],
) -> None:
    """Noise ceilings from test repetitions, with ``ceilings`` found so far: noise_ceiling.csv."""
    test = load_test_recordings(neural_files, **window)
    untested = [p for p in neural_files if p not in test]
    if untested:
        summary["notes"].append(
            f"No test trials for {', '.join(untested)}: their noise ceilings from "
            "repetitions are not computed (the ceiling across participants still is)."
        )
    kinds = [
        ("the authors' noise ceiling", True, authors_noise_ceiling),
        ("RSA noise ceiling", cfg.rsa.enabled, lambda r, p: rsa_ceiling_repetitions(r, cfg, p)),
        ("encoding noise ceiling", cfg.encoding.enabled, lambda r, p: encoding_ceiling(r, cfg, p)),
    ]
    kinds = [(what, ceiling_of) for what, enabled, ceiling_of in kinds if enabled]
    for participant, responses in test.items():
        for what, ceiling_of in kinds:
            found = run_or_note(
                summary,
                f"{what} of {participant}",
                lambda r=responses, p=participant, f=ceiling_of: f(r, p),
            )
            if found is not None:
                ceilings.append(found)
    ceiling = (
        pd.concat(ceilings, ignore_index=True)
        if ceilings
        else pd.DataFrame(columns=CEILING_COLUMNS)
    )
    write_csv(ceiling, results_dir / "noise_ceiling.csv")
    summary["noise_ceiling"] = {
        "options": options_record(cfg.noise_ceiling, ("rsa_groups", "n_splits", "ci")),
        "summary": json_records(ceiling_summary(ceiling)),
        "note": (
            "RSA ceilings from the test images' repetitions bound a participant's "
            "single-presentation RDMs but are computed on the test images, not on "
            "the experiment images the RSA uses; the ceiling across participants "
            "uses the experiment RDMs themselves."
        ),
    }


def _clusters_part(
    cfg: AnalysesConfig,
    n_people: int,
    rsa: pd.DataFrame | None,
    encoding: pd.DataFrame | None,
    partition: pd.DataFrame | None,
    results_dir: Path,
    summary: dict[str, Any],
) -> None:
    """Cluster tests across participants: clusters.csv and their notes."""
    clusters = cluster_tests(cfg, rsa, encoding, partition)
    write_csv(clusters, results_dir / "clusters.csv")
    summary["clusters"] = {
        "options": options_record(cfg.stats),
        "n_participants": n_people,
        "n_clusters": len(clusters),
        "significant": json_records(clusters[clusters["significant"].astype(bool)]),
    }
    if n_people < 2:
        summary["notes"].append(
            "Cluster tests across participants need at least 2 participants; with "
            f"{n_people} only the per-participant permutation tests are reported."
        )
    elif 2.0 / 2**n_people >= cfg.stats.alpha:
        summary["notes"].append(
            f"With {n_people} participants the exact sign-flip cluster test has only "
            f"2^{n_people} = {2**n_people} distinct sign flips; its smallest attainable p-value "
            f"is {2.0 / 2**n_people:g}, so no cluster across participants can reach p < "
            f"{cfg.stats.alpha:g}. The cluster tests are reported anyway; the verdict "
            "(verdict.csv: figure minus ground per participant by a bootstrap over images, "
            "and for the group by a bootstrap over participants and images) carries the "
            "inference."
        )


def write_verdict(
    cfg: AnalysesConfig, study: Any, results_dir: Path, summary: dict[str, Any]
) -> None:
    """``verdict.csv``, ``verdict_timecourse.csv`` and the ``verdict`` section of the summary."""
    if not cfg.verdict.enabled:
        for name in ("verdict.csv", "verdict_timecourse.csv"):  # no stale verdict
            (results_dir / name).unlink(missing_ok=True)
        return
    verdict, timecourse = verdict_results(cfg, study)
    write_csv(verdict, results_dir / "verdict.csv")
    write_csv(timecourse, results_dir / "verdict_timecourse.csv")
    if not study.curves:
        summary["notes"].append("No verdict: it needs bootstrap samples (analyses.rsa.n_boot > 0).")
    summary["verdict"] = {
        "options": {
            **options_record(
                cfg.verdict, ("alpha", "tmin", "tmax", "min_conditions", "min_participants")
            ),
            "n_boot": cfg.rsa.n_boot,
            "ci": cfg.rsa.ci,
            "views": list(cfg.views),
            **options_record(cfg.verdict, ("seed",)),
        },
        "headline": headline(cfg, verdict),
        "rows": json_records(verdict[verdict["contrast"] == "verdict"]),
    }


def ceiling_summary(ceiling: pd.DataFrame) -> pd.DataFrame:
    """Post-stimulus mean of each ceiling's value and bounds, per participant and estimate."""
    if ceiling.empty:
        return pd.DataFrame()
    post = ceiling[post_stimulus(ceiling["time"].to_numpy())]
    keys = ["participant", "analysis", "estimate", "level", "method"]
    return post.groupby(keys, as_index=False, sort=True)[["value", "lower", "upper"]].mean()
