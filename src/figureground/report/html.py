"""``RUN/report.html``: one self-contained page with embedded figures.

The report is rebuilt from a finished run folder alone (``figureground report RUN``): it reads
``results/``, ``variants/variants.csv``, ``study.json`` and writes ``figures/`` and
``report.html``. The sections after Fig. 2 come from
:mod:`figureground.report.careful_sections` and :mod:`figureground.report.where_sections`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
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
from figureground.report.careful_sections import careful_sections
from figureground.report.sections import figure_section, png_base64, table_markup
from figureground.report.where_sections import where_sections

log = logs.get_logger(__name__)

NO_TABLE = markupsafe.Markup("")  # a table the run has none of: the template leaves it out
SEED_CAVEAT = (
    "The seed method resamples the MEG matrix (sensors x time) onto the grid of the network "
    "activation (channels x positions) and takes a Euclidean distance. Sensors and network "
    "units share no axis, so the resampling pairs unrelated numbers. The squared distance is "
    "the MEG's squared norm (the same for every condition), plus the embedding's squared "
    "norm (raised by a white background, lowered by inpainting), minus twice a product of "
    "arbitrarily paired entries that is dominated by the evoked field every image shares and "
    "by each condition's mean activation map. Differences between conditions therefore "
    "follow the embeddings, not which variant the brain follows; in the validation sweep the "
    "seed statistic hardly changes between brains that follow the figure, the ground or "
    "nothing (docs/validation.md). The identity version below asks the question the "
    "distances can answer: is an image's MEG closer to its own embedding than to the other "
    "images' embeddings? The verdict, RSA and encoding analyses answer the study's question."
)


VALIDITY_CAPTION = (
    "Haze: the background showing through the no-background image (mean soft "
    "alpha over the background; share of background pixels that are not the fill colour). "
    "Silhouette: how detectable the inpainted region of the no-foreground image is from "
    "local texture (area under the ROC curve of texture inside against a ring outside; "
    "0.5 = undetectable, detectability = 2|AUC - 0.5|). Both are per image in "
    "variants/variants.csv and can be used as strata (analyses.strata.by); "
    "variants.alpha_floor removes haze."
)


@dataclass(frozen=True)
class FinishedRun:
    """What the report reads from a finished run folder."""

    run_dir: Path
    summary: dict[str, Any]  # results/summary.json
    study: dict[str, Any]  # the study section of study.json
    variants: pd.DataFrame  # variants/variants.csv
    source_root: Path  # the folder of the original images (variants/variants.json)

    @property
    def results_dir(self) -> Path:
        return self.run_dir / "results"

    @property
    def fig_dir(self) -> Path:
        return self.run_dir / "figures"


def read_finished_run(run_dir: Path) -> FinishedRun:
    """The summary, study, variants table and image folder of ``run_dir``.

    Raises UsageError when the run has not finished (a file the report needs is missing).
    """
    summary_path = run_dir / "results" / "summary.json"
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
    return FinishedRun(run_dir, summary, study, variants, Path(variants_meta["source_root"]))


def validity_section(variants: pd.DataFrame, fig_dir: Path) -> dict[str, Any]:
    """How clean the variants are: haze in the no-background images, silhouette in the fills."""
    from figureground.report.validity import fig_stimulus_validity

    png = figures.save_figure(fig_stimulus_validity(variants), fig_dir / "fig_validity")
    columns = [
        c
        for c in ("image_id", "fg_fraction", "haze", "haze_fraction", "silhouette_auc",
                  "silhouette_detectability")
        if c in variants.columns
    ]  # fmt: skip
    numeric = variants[columns[1:]].apply(pd.to_numeric, errors="coerce")
    table = numeric.describe().T[["count", "mean", "50%", "max"]].reset_index(names="measure")
    return figure_section(
        "Stimulus validity — what leaks into each variant",
        png,
        VALIDITY_CAPTION,
        [("Per-image measures", table_markup(table))],
    )


def _examples_png(run: FinishedRun, examples: int) -> bytes:
    """Fig. 1, written to ``figures/``: ``examples`` images in their three variants."""
    chosen = figures.pick_examples(run.variants, examples)
    return figures.save_figure(
        figures.fig_examples(run.run_dir / "variants", run.source_root, chosen),
        run.fig_dir / "fig1_variants",
    )


def _seed_distance_png(
    seed: dict[str, Any] | None, seed_summary: pd.DataFrame, fig_dir: Path
) -> bytes | None:
    """Fig. 2 when the seed method ran (``seed``); else None, and an earlier run's removed."""
    if seed:
        return figures.save_figure(
            figures.fig_seed_distance(seed_summary), fig_dir / "fig2_seed_distance"
        )
    for stale in fig_dir.glob("fig2_seed_distance.*"):  # it must not outlive the setting
        stale.unlink()
    return None


def report_sections(run: FinishedRun) -> list[dict[str, Any]]:
    """Every section after Fig. 2: stimulus validity, the careful analyses, the where ones."""
    sections = careful_sections(run.results_dir, run.summary, run.fig_dir)
    for section in where_sections(run.results_dir, run.fig_dir):
        section["tables"] = [(h, table_markup(t)) for h, t in section["tables"]]
        sections.append(section)
    sections.insert(0, validity_section(run.variants, run.fig_dir))
    return sections


def _features_table(summary: dict[str, Any]) -> pd.DataFrame:
    """Model, weights, layers (and which condition it replaces) of each feature store."""
    stores = summary.get("provenance", {}).get("feature_stores", {})
    return pd.DataFrame(
        [
            {
                "model": store.get("model"),
                "weights": store.get("weights"),
                "layers": store.get("layers"),
                "replaces": store.get("replaces", ""),
            }
            for store in stores.values()
        ]
    )


def _participants(seed_summary: pd.DataFrame, summary: dict[str, Any]) -> list[str]:
    """The participants of the seed summary, else those whose responses were read."""
    return sorted(
        {str(p) for p in seed_summary.get("participant", [])} - {"pooled"}
        or set(summary.get("responses", {}).get("participants", []))
    )


def _seed_tables(summary: dict[str, Any], seed_summary: pd.DataFrame) -> dict[str, Any]:
    """The seed method's tables as HTML ("" for the identity tables when it did not run)."""
    seed = summary.get("seed_distance")
    identity = summary.get("seed_identity")
    return {
        "summary_table": table_markup(seed_summary),
        "tests_table": table_markup(pd.DataFrame((seed or {}).get("paired_tests", []))),
        "identity_table": table_markup(pd.DataFrame(identity.get("conditions", [])))
        if identity
        else NO_TABLE,
        "identity_compare": table_markup(pd.DataFrame(identity.get("figure_vs_ground", [])))
        if identity
        else NO_TABLE,
    }


def _render(context: dict[str, Any]) -> str:
    """The report template filled with ``context``."""
    template_text = (
        resources.files("figureground.report")
        .joinpath("templates/report.html")
        .read_text(encoding="utf-8")
    )
    env = jinja2.Environment(
        autoescape=jinja2.select_autoescape(default=True), undefined=jinja2.StrictUndefined
    )
    return env.from_string(template_text).render(**context)


def build_report(run_dir: Path, examples: int = 4) -> Path:
    """Render ``run_dir/report.html`` (and ``run_dir/figures``) from a finished run."""
    run = read_finished_run(Path(run_dir))
    summary = run.summary
    fig1 = _examples_png(run, examples)
    seed = summary.get("seed_distance")  # absent when the study switched the seed method off
    seed_summary = pd.DataFrame(seed["summary"]) if seed else pd.DataFrame()
    fig2 = _seed_distance_png(seed, seed_summary, run.fig_dir)
    sections = report_sections(run)
    failed = run.variants[run.variants["status"] != "ok"][["image_id", "path", "error"]]
    context: dict[str, Any] = {
        "name": run.study.get("name", run.run_dir.name),
        "n_images": len(run.variants),
        "n_failed": len(failed),
        "participants": _participants(seed_summary, summary),
        "notes": summary.get("notes", []),
        "fig1": png_base64(fig1),
        "fig2": png_base64(fig2) if fig2 else "",
        "caveat": SEED_CAVEAT,
        **_seed_tables(summary, seed_summary),
        "ground_truth": summary.get("ground_truth"),
        "features_table": table_markup(_features_table(summary)),
        "failed_table": table_markup(failed) if len(failed) else NO_TABLE,
        "study_json": json.dumps(run.study, indent=2, sort_keys=True),
        "versions_json": json.dumps(
            summary.get("provenance", {}).get("versions", {}), indent=2, sort_keys=True
        ),
        "careful": sections,
        "headline": (summary.get("verdict") or {}).get("headline", {}).get("sentence", ""),
    }
    report_path = run.run_dir / "report.html"
    atomic_write_text(report_path, _render(context))
    log.info("report written to %s", report_path)
    return report_path
