"""``RUN/report.html``: one self-contained page with embedded figures.

The report is rebuilt from a finished run folder alone (``figureground report RUN``): it reads
``results/``, ``variants/variants.csv``, ``study.json`` and writes ``figures/`` and
``report.html``.
"""

from __future__ import annotations

import base64
import json
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import markupsafe
import pandas as pd

from figureground import logs
from figureground.errors import UsageError
from figureground.fsutil import atomic_write_text
from figureground.report import figures

log = logs.get_logger(__name__)

SEED_CAVEAT = (
    "The seed method resamples the MEG matrix (sensors x time) onto the grid of the network "
    "activation (channels x positions) and takes a Euclidean distance. Sensors and network "
    "units share no axis, so the resampling pairs unrelated numbers, and the distance is "
    "dominated by the overall scale of the two matrices: with pure noise in place of the MEG "
    "it equals the embedding's own norm to within a fraction of a percent and differs between "
    "conditions exactly as the norms do. Differences between conditions here therefore say "
    "how large each variant's activations are, not which one the brain follows. "
    "Use the time-resolved RSA, partial RSA and encoding analyses with noise ceilings and "
    "permutation statistics (issue [5/7]) to answer that question."
)


def _table_html(table: pd.DataFrame, float_format: str = "{:.4g}") -> str:
    if table is None or table.empty:
        return "<p>(none)</p>"
    shown = table.copy()
    for column in shown.columns:
        if pd.api.types.is_float_dtype(shown[column]):
            shown[column] = shown[column].map(
                lambda v: "" if pd.isna(v) else float_format.format(v)
            )
    return shown.to_html(index=False, escape=True, border=0)


def _b64(png: bytes) -> str:
    return base64.b64encode(png).decode("ascii")


def build_report(run_dir: Path, examples: int = 4) -> Path:
    """Render ``run_dir/report.html`` (and ``run_dir/figures``) from a finished run."""
    run_dir = Path(run_dir)
    results_dir = run_dir / "results"
    summary_path = results_dir / "summary.json"
    variants_csv = run_dir / "variants" / "variants.csv"
    for required in (summary_path, variants_csv, run_dir / "study.json"):
        if not required.exists():
            raise UsageError(f"{run_dir} is not a finished run: {required} is missing")
    summary = json.loads(summary_path.read_text())
    study = json.loads((run_dir / "study.json").read_text())["study"]
    variants = pd.read_csv(
        variants_csv, keep_default_na=False, dtype={"image_id": str, "error": str}
    )
    variants_meta = json.loads((run_dir / "variants" / "variants.json").read_text())
    source_root = Path(variants_meta["source_root"])
    fig_dir = run_dir / "figures"

    chosen = figures.pick_examples(variants, examples)
    fig1 = figures.save_figure(
        figures.fig_examples(run_dir / "variants", source_root, chosen), fig_dir / "fig1_variants"
    )
    seed_summary = pd.DataFrame(summary["seed_distance"]["summary"])
    fig2 = figures.save_figure(
        figures.fig_seed_distance(seed_summary), fig_dir / "fig2_seed_distance"
    )

    failed = variants[variants["status"] != "ok"][["image_id", "path", "error"]]
    stores = summary.get("provenance", {}).get("feature_stores", {})
    features_table = pd.DataFrame(
        [
            {
                "model": info.get("model"),
                "weights": info.get("weights"),
                "layers": info.get("layers"),
                "replaces": info.get("replaces", ""),
            }
            for info in stores.values()
        ]
    )
    participants = sorted({str(p) for p in seed_summary.get("participant", [])} - {"pooled"})
    notes: list[str] = summary.get("notes", [])
    context: dict[str, Any] = {
        "name": study.get("name", run_dir.name),
        "n_images": len(variants),
        "n_failed": len(failed),
        "participants": participants,
        "notes": notes,
        "fig1": _b64(fig1),
        "fig2": _b64(fig2),
        "caveat": SEED_CAVEAT,
        "summary_table": _table_html(seed_summary),
        "tests_table": _table_html(pd.DataFrame(summary["seed_distance"].get("paired_tests", []))),
        "ground_truth": summary.get("ground_truth"),
        "features_table": _table_html(features_table),
        "failed_table": _table_html(failed) if len(failed) else "",
        "study_json": json.dumps(study, indent=2, sort_keys=True),
        "versions_json": json.dumps(
            summary.get("provenance", {}).get("versions", {}), indent=2, sort_keys=True
        ),
    }
    template_text = (
        resources.files("figureground.report")
        .joinpath("templates/report.html")
        .read_text(encoding="utf-8")
    )
    env = jinja2.Environment(
        autoescape=jinja2.select_autoescape(default=True), undefined=jinja2.StrictUndefined
    )
    for key in ("summary_table", "tests_table", "features_table", "failed_table"):
        context[key] = markupsafe.Markup(context[key])
    html = env.from_string(template_text).render(**context)
    report_path = run_dir / "report.html"
    atomic_write_text(report_path, html)
    log.info("report written to %s", report_path)
    return report_path
