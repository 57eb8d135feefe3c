"""Make the no-background / no-foreground / mask variants of every image of a manifest.

Outputs (lossless PNG, keeping each source's relative path without its suffix)::

    OUT/no_background/<rel>.png   object composited on the fill colour (alpha floored)
    OUT/no_foreground/<rel>.png   object region inpainted
    OUT/mask/<rel>.png            8-bit soft alpha of the segmenter (never floored)
    OUT/records/<rel>.json        per-image record, written LAST: marks the image done
    OUT/variants.csv              manifest + status, error, metrics, segmenter, parameters
    OUT/variants.json             source_root, params, provenance

A rerun skips images whose record matches the image's SHA-256 and the parameters' hash and
whose three outputs exist with the SHA-256 recorded for them (a damaged output is remade, with
a warning naming it). Every file is written atomically, so a run killed at any moment
leaves whole files only, and the rerun writes the same bytes as an uninterrupted run.

Records carry ``metrics_version``. A record of an earlier version (without the haze and
silhouette metrics) is still reused, its images being the same, but its metrics are computed
again from its saved images and its record rewritten, so every row of variants.csv has every
metric column.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from figureground import logs, provenance
from figureground.errors import UsageError
from figureground.fsutil import (
    atomic_path,
    atomic_write_json,
    locked_output,
    params_hash,
    resolve_inside,
)
from figureground.parallel import parse_scheduler
from figureground.variants.image import (
    FLOAT_METRICS,
    FORMAT_VERSION,
    METRIC_COLUMNS,
    RECORDS,
    VARIANTS,
    VariantParams,
    process_image,
)
from figureground.variants.segmenters import (
    Segmenter,
    SegmenterSpec,
    build_segmenter,
    is_batched_kind,
    resolve_segmenter,
)

log = logs.get_logger(__name__)


# Per-process state of a worker: its one segmenter session, built by the pool initializer.
_WORKER: dict[str, Segmenter] = {}


def _init_worker(spec: SegmenterSpec) -> None:
    _WORKER["segmenter"] = build_segmenter(spec)


def _process_in_worker(task: dict[str, Any]) -> dict[str, Any]:
    return process_image(task, _WORKER["segmenter"])


def _run_tasks(
    tasks: list[dict[str, Any]],
    spec: SegmenterSpec,
    workers: int,
    scheduler: str = "serial",
    batch_size: int = 16,
) -> Iterator[dict[str, Any]]:
    if not tasks:
        return
    if parse_scheduler(scheduler).distributed:
        from figureground.variants.distributed import run_variant_tasks

        yield from run_variant_tasks(tasks, spec, scheduler, batch_size)
        return
    if is_batched_kind(spec):
        from figureground.variants.batched import process_batches

        segmenter = build_segmenter(spec)
        threads = workers if workers > 1 else (os.cpu_count() or 1)
        yield from logs.progress(
            process_batches(tasks, segmenter, threads, batch_size),
            total=len(tasks),
            desc="variants",
        )
        return
    if workers <= 1:
        segmenter = build_segmenter(spec)
        for task in logs.progress(tasks, total=len(tasks), desc="variants"):
            yield process_image(task, segmenter)
        return
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # no fork of a process holding threads
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_init_worker, initargs=(spec,)
    ) as pool:
        futures = [pool.submit(_process_in_worker, task) for task in tasks]
        for future in logs.progress(as_completed(futures), total=len(futures), desc="variants"):
            yield future.result()


def remove_stale_temporaries(out_dir: Path) -> int:
    """Delete temporary files a killed run left (``.<name>.*.tmp``); return how many."""
    removed = 0
    for folder in (out_dir, *(out_dir / v for v in (*VARIANTS, RECORDS))):
        if not folder.is_dir():
            continue
        pattern = "*" if folder == out_dir else "**/*"
        for path in folder.glob(pattern):
            if path.is_file() and path.name.startswith(".") and path.name.endswith(".tmp"):
                path.unlink()
                removed += 1
    return removed


@locked_output("out_dir", "variants folder", beside=True)
def make_variants(
    source_root: str | os.PathLike,
    out_dir: str | os.PathLike,
    manifest: pd.DataFrame | None = None,
    layout: str = "things",
    exemplars: int = 12,
    segmenter: str = "isnet",
    inpaint: str = "telea",
    threshold: float = 0.5,
    dilate: int = 5,
    inpaint_radius: int = 3,
    inpaint_max_side: int = 1024,
    fill: tuple[int, int, int] = (255, 255, 255),
    little_background_above: float = 0.9,
    alpha_floor: float = 0.0,
    workers: int = 1,
    csv_path: str | os.PathLike | None = None,
    scheduler: str = "serial",
    batch_size: int = 16,
) -> pd.DataFrame:
    """Write the variants of every image under ``source_root`` to ``out_dir``.

    Parameters
    ----------
    source_root
        Stimulus root; the manifest's ``path`` column is relative to it.
    out_dir
        Output folder (see the module docstring for its layout).
    manifest
        A manifest from :func:`figureground.stimuli.build_manifest`; built from
        ``layout``/``exemplars``/``csv_path`` when ``None``.
    segmenter, inpaint, threshold, dilate, inpaint_radius, inpaint_max_side, fill
        Image parameters, each described in :class:`VariantParams` (as are
        ``little_background_above`` and ``alpha_floor``).
    workers
        Worker processes, each with one segmenter session. With a batched segmenter
        (``isnet-torch``) one process holds the network and ``workers`` threads load and
        finish images (default: one per CPU core).
    batch_size
        Images per batch on the device (batched segmenters) or per Dask task.
    scheduler
        ``serial`` (default: ``workers`` decides), ``local[:N]`` or a Dask scheduler address:
        batches of images go to Dask workers, one segmenter per worker process.

    Returns
    -------
    pandas.DataFrame
        The rows of ``variants.csv``: manifest columns, ``status``, ``error``, metrics
        (:data:`METRIC_COLUMNS`, see :func:`image_metrics`), ``segmenter`` and the parameter
        columns.
    """
    source_root, out_dir = Path(source_root).resolve(), Path(out_dir)
    params = VariantParams(
        segmenter=segmenter,
        threshold=threshold,
        dilate=dilate,
        inpaint=inpaint,
        inpaint_radius=inpaint_radius,
        inpaint_max_side=inpaint_max_side,
        fill=tuple(int(c) for c in fill),
        little_background_above=little_background_above,
        alpha_floor=float(alpha_floor),
    )
    _check_options(params, workers, batch_size, scheduler)
    if manifest is None:
        manifest = _manifest_of(source_root, layout, exemplars, csv_path)
    spec = resolve_segmenter(segmenter)
    key = _record_key(params, spec)
    _prepare_out_dir(out_dir)
    records, tasks = _plan_tasks(manifest, source_root, out_dir, params, key)
    log.info(
        "variants of %d images with %s (%d workers) -> %s", len(tasks), spec.spec, workers, out_dir
    )
    _collect_records(records, _run_tasks(tasks, spec, workers, scheduler, batch_size))
    table = _variants_table(manifest, records, params, spec, key)
    _write_summary(out_dir, table, source_root, params, spec, key)
    return table


def _check_options(params: VariantParams, workers: int, batch_size: int, scheduler: str) -> None:
    """Raise :class:`UsageError` naming the first bad parameter or run option."""
    params.validate()
    if workers < 1:
        raise UsageError(f"--workers {workers}: expected at least 1")
    if batch_size < 1:
        raise UsageError(f"--batch-size {batch_size}: expected at least 1")
    parse_scheduler(scheduler)


def _manifest_of(
    source_root: Path, layout: str, exemplars: int, csv_path: str | os.PathLike | None
) -> pd.DataFrame:
    from figureground.stimuli import build_manifest

    return build_manifest(source_root, layout=layout, exemplars=exemplars, csv_path=csv_path)


def _record_key(params: VariantParams, spec: SegmenterSpec) -> str:
    """The hash that marks a record as made with these parameters, model and format."""
    key_fields = {"params": params.hashed(), "model_sha256": spec.model_sha256}
    if spec.precision:  # batched torch segmenters: bf16 and fp32 masks differ slightly
        key_fields["precision"] = spec.precision
    return params_hash({**key_fields, "format": FORMAT_VERSION})


def _prepare_out_dir(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    if removed := remove_stale_temporaries(out_dir):
        log.info("removed %d temporary files left by an interrupted run", removed)


def _plan_tasks(
    manifest: pd.DataFrame, source_root: Path, out_dir: Path, params: VariantParams, key: str
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Records of the images that failed upstream, and a task for every other image."""
    records: dict[str, dict[str, Any]] = {}
    tasks = []
    for row in manifest.itertuples(index=False):
        if getattr(row, "status", "ok") != "ok":
            records[row.image_id] = {"status": "failed", "error": str(row.error)}
            continue
        tasks.append(
            {
                "image_id": row.image_id,
                "path": row.path,
                "sha256": row.sha256,
                "source": str(resolve_inside(source_root, row.path)),
                "out_dir": str(out_dir),
                "params": asdict(params),
                "params_hash": key,
            }
        )
    return records, tasks


def _collect_records(records: dict[str, dict[str, Any]], results: Iterator[dict[str, Any]]) -> None:
    """Add each finished image's record to ``records``; log how many were reused."""
    skipped = refreshed = 0
    for record in results:
        records[record["image_id"]] = record
        skipped += bool(record.get("skipped"))
        refreshed += bool(record.get("metrics_refreshed"))
    if skipped:
        log.info("%d images were already done with the same inputs and parameters", skipped)
    if refreshed:
        log.info(
            "%d of them were made by an earlier version: their metrics were computed from "
            "their saved images",
            refreshed,
        )


def _write_summary(
    out_dir: Path,
    table: pd.DataFrame,
    source_root: Path,
    params: VariantParams,
    spec: SegmenterSpec,
    key: str,
) -> None:
    """Write variants.csv and variants.json; warn about each failed image."""
    with atomic_path(out_dir / "variants.csv") as tmp:
        table.to_csv(tmp, index=False, lineterminator="\n")
    n_failed = int((table["status"] != "ok").sum())
    atomic_write_json(
        out_dir / "variants.json",
        {
            "source_root": str(source_root),
            "params": {**params.columns(), "params_hash": key},
            "provenance": provenance.stamp(
                stage="variants",
                segmenter=spec.provenance(),
                n_images=len(table),
                n_failed=n_failed,
            ),
        },
    )
    for row in table[table["status"] != "ok"].itertuples(index=False):
        log.warning("%s failed: %s", row.path, row.error)


def _variants_table(
    manifest: pd.DataFrame,
    records: dict[str, dict[str, Any]],
    params: VariantParams,
    spec: SegmenterSpec,
    key: str,
) -> pd.DataFrame:
    table = manifest.copy()
    rows = [
        records.get(image_id, {"status": "failed", "error": "not processed"})
        for image_id in table["image_id"]
    ]
    table["status"] = [r["status"] for r in rows]
    table["error"] = [r.get("error", "") for r in rows]
    for column in METRIC_COLUMNS:
        table[column] = [r.get(column, pd.NA) for r in rows]
    for column in FLOAT_METRICS:
        table[column] = pd.to_numeric(table[column]).astype("Float64")
    table["little_background"] = table["little_background"].astype("boolean")
    table["segmenter"] = spec.spec
    for column, value in params.columns().items():
        if column != "segmenter":
            table[column] = value
    table["params_hash"] = key
    return table
