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
from figureground.report.verdict_figure import fig_verdict
from figureground.report.where_sections import where_sections

log = logs.get_logger(__name__)

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


CLUSTER_NOTE = (
    "Across participants, each curve is tested against zero (one-sided) and figure minus "
    "ground two-sided with MNE's cluster-based sign-flip permutation test over time. With P "
    "participants there are only 2^P sign flips: the smallest attainable p-value is 2/2^P "
    "(0.5 for 2 participants, 0.125 for the 4 of THINGS-MEG), so with 4 or fewer participants "
    "no cluster can reach p < 0.05. The clusters are reported anyway (dotted bars in the mean "
    "panels); the per-participant permutation tests over images (marks under the participant "
    "curves, corrected over time by the maximum statistic) carry the inference."
)


VERDICT_CAPTION = (
    "Black: the group's RSA with the figure model (no background) minus the ground model "
    "(no foreground), with its 95% bootstrap interval over participants and images; grey: "
    "each participant. Shaded windows: times where figure minus ground is significant "
    "after family-wise correction over time (bootstrap max-t) AND the winning variant's "
    "model also beats the model of the unsegmented original image. That second test is the "
    "control for brains without a figure/ground preference: a code of the whole image "
    "follows whichever region covers more of it, usually the ground. All contrasts, "
    "per participant and group, are in verdict.csv and verdict_timecourse.csv."
)


def _read_csv(path: Path) -> pd.DataFrame | None:
    if not path.exists():
        return None
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def careful_sections(results_dir: Path, summary: dict[str, Any], fig_dir: Path) -> list[dict]:
    """Figures and tables of RSA, encoding, variance partitioning, ceilings and clusters.

    Each section is a dict with ``title``, ``figure`` (base64 PNG or ""), ``caption`` and
    ``tables`` (list of (heading, HTML)); sections whose results are absent are left out.
    """
    alpha = summary.get("clusters", {}).get("options", {}).get("alpha", 0.05)
    rsa = _read_csv(results_dir / "rsa_timecourse.csv")
    ceiling = _read_csv(results_dir / "noise_ceiling.csv")
    clusters = _read_csv(results_dir / "clusters.csv")
    encoding = _read_csv(results_dir / "encoding.csv")
    partition = _read_csv(results_dir / "variance_partition.csv")

    def records(section: str, key: str) -> pd.DataFrame:
        return pd.DataFrame(summary.get(section, {}).get(key, []))

    sections = []
    verdict = _read_csv(results_dir / "verdict.csv")
    course = _read_csv(results_dir / "verdict_timecourse.csv")
    if verdict is not None and not verdict.empty and course is not None:
        figv = figures.save_figure(fig_verdict(course, verdict), fig_dir / "fig_verdict")
        shown = verdict[verdict["contrast"] == "verdict"]
        sections.append(
            {
                "title": "The verdict — figure or ground, and when",
                "figure": _b64(figv),
                "caption": VERDICT_CAPTION,
                "tables": [("Verdict windows (contrast verdict)", _table_html(shown))],
            }
        )
    if rsa is not None and not rsa.empty:
        fig3 = figures.save_figure(
            figures.fig_rsa(rsa, ceiling, clusters, alpha), fig_dir / "fig3_rsa"
        )
        sections.append(
            {
                "title": "Fig. 3 — time-resolved RSA",
                "figure": _b64(fig3),
                "caption": "MEG RDMs (per time point) against each condition's model RDM, per "
                "participant (band: bootstrap interval over images) and averaged over "
                "participants (band: SEM). Squares under a participant's curve mark the times "
                "where that curve's permutation test (model RDM rows and columns permuted) "
                f"gives p < {alpha} corrected over time by the maximum statistic: each marks a "
                "model that fits better than chance, not a difference between figure and "
                "ground (the verdict figure tests that). Bars in the mean panels: clusters of "
                "each curve against zero across participants (solid when significant). Grey: "
                "noise ceiling at the panel's own level (participants: from the test images' "
                "repetitions, image level only; mean: across participants).",
                "tables": [
                    (
                        "Post-stimulus mean RSA: figure (no background) vs ground (no foreground)",
                        _table_html(records("rsa", "figure_vs_ground")),
                    )
                ],
            }
        )
        if (rsa["given"].fillna("") != "").any():
            fig4 = figures.save_figure(
                figures.fig_rsa(rsa, ceiling, clusters, alpha, partial=True),
                fig_dir / "fig4_partial_rsa",
            )
            sections.append(
                {
                    "title": "Fig. 4 — partial RSA",
                    "figure": _b64(fig4),
                    "caption": "Partial correlation of the MEG RDM with the figure model RDM "
                    "given the ground model RDM, and vice versa.",
                    "tables": [],
                }
            )
    if encoding is not None and not encoding.empty:
        fig5 = figures.save_figure(
            figures.fig_encoding(encoding, ceiling, clusters, alpha), fig_dir / "fig5_encoding"
        )
        sections.append(
            {
                "title": "Fig. 5 — encoding models",
                "figure": _b64(fig5),
                "caption": "Ridge regression from each condition's features (PCA fitted on the "
                "training folds) to every sensor and time; folds grouped by session; Pearson r on "
                "held-out images, averaged over sensors. Grey: ceiling on single-trial r from the "
                "split-half reliability of the test images.",
                "tables": [
                    (
                        "Post-stimulus mean encoding r: figure vs ground",
                        _table_html(records("encoding", "figure_vs_ground")),
                    )
                ],
            }
        )
    if partition is not None and not partition.empty:
        fig6 = figures.save_figure(
            figures.fig_variance_partition(partition, clusters, alpha),
            fig_dir / "fig6_variance_partition",
        )
        sections.append(
            {
                "title": "Fig. 6 — variance partitioning",
                "figure": _b64(fig6),
                "caption": "Cross-validated R² of banded ridge on figure + ground features and of "
                "each alone: unique figure = joint - ground, unique ground = joint - figure, "
                "shared = figure + ground - joint. Held-out R² can be negative with few images.",
                "tables": [
                    (
                        "Post-stimulus mean unique variance: figure vs ground",
                        _table_html(records("variance_partition", "figure_vs_ground")),
                    )
                ],
            }
        )
    tables = []
    if summary.get("noise_ceiling"):
        tables.append(
            (
                "Noise ceilings (post-stimulus means)",
                _table_html(records("noise_ceiling", "summary")),
            )
        )
    if clusters is not None:
        tables.append(("Clusters across participants", _table_html(clusters)))
    strata = summary.get("strata")
    if strata:
        counts = ", ".join(f"{k}: {v}" for k, v in strata.get("counts", {}).items())
        text = (
            f"Foreground-fraction threshold {strata.get('threshold', '')}; images per "
            f"stratum {counts or 'unknown'}. "
            + (
                "Results per stratum are in rsa_timecourse.csv (column stratum) and the "
                "figures' stratum rows."
                if strata.get("ran")
                else strata.get("reason", "")
            )
        )
        tables.append(("Strata by foreground fraction", f"<p>{markupsafe.escape(text)}</p>"))
    if tables:
        sections.append(
            {
                "title": "Statistics, noise ceilings and strata",
                "figure": "",
                "caption": CLUSTER_NOTE,
                "tables": tables,
            }
        )
    for section in sections:
        section["tables"] = [(h, markupsafe.Markup(t)) for h, t in section["tables"]]
    return sections


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
    return {
        "title": "Stimulus validity — what leaks into each variant",
        "figure": _b64(png),
        "caption": "Haze: the background showing through the no-background image (mean soft "
        "alpha over the background; share of background pixels that are not the fill colour). "
        "Silhouette: how detectable the inpainted region of the no-foreground image is from "
        "local texture (area under the ROC curve of texture inside against a ring outside; "
        "0.5 = undetectable, detectability = 2|AUC - 0.5|). Both are per image in "
        "variants/variants.csv and can be used as strata (analyses.strata.by); "
        "variants.alpha_floor removes haze.",
        "tables": [("Per-image measures", markupsafe.Markup(_table_html(table)))],
    }


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
    seed = summary.get("seed_distance")  # absent when the study switched the seed method off
    seed_summary = pd.DataFrame(seed["summary"]) if seed else pd.DataFrame()
    fig2 = (
        figures.save_figure(figures.fig_seed_distance(seed_summary), fig_dir / "fig2_seed_distance")
        if seed
        else None
    )
    if not seed:  # an earlier run's figure must not outlive the setting
        for stale in fig_dir.glob("fig2_seed_distance.*"):
            stale.unlink()

    careful = careful_sections(results_dir, summary, fig_dir)
    for section in where_sections(results_dir, fig_dir):
        section["tables"] = [(h, markupsafe.Markup(_table_html(t))) for h, t in section["tables"]]
        careful.append(section)
    careful.insert(0, validity_section(variants, fig_dir))

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
    participants = sorted(
        {str(p) for p in seed_summary.get("participant", [])} - {"pooled"}
        or set(summary.get("responses", {}).get("participants", []))
    )
    notes: list[str] = summary.get("notes", [])
    context: dict[str, Any] = {
        "name": study.get("name", run_dir.name),
        "n_images": len(variants),
        "n_failed": len(failed),
        "participants": participants,
        "notes": notes,
        "fig1": _b64(fig1),
        "fig2": _b64(fig2) if fig2 else "",
        "caveat": SEED_CAVEAT,
        "summary_table": _table_html(seed_summary),
        "tests_table": _table_html(pd.DataFrame((seed or {}).get("paired_tests", []))),
        "identity_table": _table_html(
            pd.DataFrame((summary.get("seed_identity") or {}).get("conditions", []))
        )
        if summary.get("seed_identity")
        else "",
        "identity_compare": _table_html(
            pd.DataFrame((summary.get("seed_identity") or {}).get("figure_vs_ground", []))
        )
        if summary.get("seed_identity")
        else "",
        "ground_truth": summary.get("ground_truth"),
        "features_table": _table_html(features_table),
        "failed_table": _table_html(failed) if len(failed) else "",
        "study_json": json.dumps(study, indent=2, sort_keys=True),
        "versions_json": json.dumps(
            summary.get("provenance", {}).get("versions", {}), indent=2, sort_keys=True
        ),
    }
    context["careful"] = careful
    context["headline"] = (summary.get("verdict") or {}).get("headline", {}).get("sentence", "")
    template_text = (
        resources.files("figureground.report")
        .joinpath("templates/report.html")
        .read_text(encoding="utf-8")
    )
    env = jinja2.Environment(
        autoescape=jinja2.select_autoescape(default=True), undefined=jinja2.StrictUndefined
    )
    for key in (
        "summary_table",
        "tests_table",
        "identity_table",
        "identity_compare",
        "features_table",
        "failed_table",
    ):
        context[key] = markupsafe.Markup(context[key])
    html = env.from_string(template_text).render(**context)
    report_path = run_dir / "report.html"
    atomic_write_text(report_path, html)
    log.info("report written to %s", report_path)
    return report_path
