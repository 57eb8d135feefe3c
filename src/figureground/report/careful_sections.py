"""Report sections of the careful analyses: the verdict, RSA, encoding, variance
partitioning, and the statistics / noise ceilings / strata tables.

Each section is a dict (:mod:`figureground.report.sections`) whose tables are HTML markup;
sections whose results are absent are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import markupsafe
import pandas as pd

from figureground.report import figures, timecourse_figures
from figureground.report.sections import figure_section, read_results_csv, table_html
from figureground.report.verdict_figure import fig_verdict

if TYPE_CHECKING:
    from matplotlib.figure import Figure

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
PARTIAL_RSA_CAPTION = (
    "Partial correlation of the MEG RDM with the figure model RDM "
    "given the ground model RDM, and vice versa."
)
ENCODING_CAPTION = (
    "Ridge regression from each condition's features (PCA fitted on the "
    "training folds) to every sensor and time; folds grouped by session; Pearson r on "
    "held-out images, averaged over sensors. Grey: ceiling on single-trial r from the "
    "split-half reliability of the test images."
)
PARTITION_CAPTION = (
    "Cross-validated R² of banded ridge on figure + ground features and of "
    "each alone: unique figure = joint - ground, unique ground = joint - figure, "
    "shared = figure + ground - joint. Held-out R² can be negative with few images."
)


def rsa_caption(alpha: float) -> str:
    """The caption of Fig. 3, naming the permutation test's ``alpha``."""
    return (
        "MEG RDMs (per time point) against each condition's model RDM, per "
        "participant (band: bootstrap interval over images) and averaged over "
        "participants (band: SEM). Squares under a participant's curve mark the times "
        "where that curve's permutation test (model RDM rows and columns permuted) "
        f"gives p < {alpha} corrected over time by the maximum statistic: each marks a "
        "model that fits better than chance, not a difference between figure and "
        "ground (the verdict figure tests that). Bars in the mean panels: clusters of "
        "each curve against zero across participants (solid when significant). Grey: "
        "noise ceiling at the panel's own level (participants: from the test images' "
        "repetitions, image level only; mean: across participants)."
    )


@dataclass(frozen=True)
class CarefulResults:
    """The results tables the careful sections draw (None where a file is absent)."""

    summary: dict[str, Any]  # results/summary.json
    alpha: float  # the cluster tests' alpha
    rsa: pd.DataFrame | None
    ceiling: pd.DataFrame | None
    clusters: pd.DataFrame | None
    encoding: pd.DataFrame | None
    partition: pd.DataFrame | None

    @classmethod
    def read(cls, results_dir: Path, summary: dict[str, Any]) -> CarefulResults:
        """The tables of ``results_dir`` and the alpha of ``summary``."""
        return cls(
            summary=summary,
            alpha=summary.get("clusters", {}).get("options", {}).get("alpha", 0.05),
            rsa=read_results_csv(results_dir / "rsa_timecourse.csv"),
            ceiling=read_results_csv(results_dir / "noise_ceiling.csv"),
            clusters=read_results_csv(results_dir / "clusters.csv"),
            encoding=read_results_csv(results_dir / "encoding.csv"),
            partition=read_results_csv(results_dir / "variance_partition.csv"),
        )

    def records(self, section: str, key: str) -> pd.DataFrame:
        """The records ``summary[section][key]`` as a table (empty when absent)."""
        return pd.DataFrame(self.summary.get(section, {}).get(key, []))


def _present(table: pd.DataFrame | None) -> bool:
    return table is not None and not table.empty


def _figure_with_table(
    title: str, fig: Figure, stem: Path, caption: str, heading: str, table: pd.DataFrame
) -> dict[str, Any]:
    """A section of ``fig`` (written to ``stem``.png / .svg) and one table under it."""
    png = figures.save_figure(fig, stem)
    return figure_section(title, png, caption, [(heading, table_html(table))])


def verdict_sections(results_dir: Path, fig_dir: Path) -> list[dict[str, Any]]:
    """The verdict figure and its windows, when the verdict was computed."""
    verdict = read_results_csv(results_dir / "verdict.csv")
    course = read_results_csv(results_dir / "verdict_timecourse.csv")
    if not _present(verdict) or course is None:
        return []
    return [
        _figure_with_table(
            "The verdict — figure or ground, and when",
            fig_verdict(course, verdict),
            fig_dir / "fig_verdict",
            VERDICT_CAPTION,
            "Verdict windows (contrast verdict)",
            verdict[verdict["contrast"] == "verdict"],
        )
    ]


def rsa_sections(results: CarefulResults, fig_dir: Path) -> list[dict[str, Any]]:
    """Fig. 3 (RSA per condition) and, when partial RSA ran, Fig. 4."""
    rsa, ceiling, clusters, alpha = results.rsa, results.ceiling, results.clusters, results.alpha
    if not _present(rsa):
        return []
    sections = [
        _figure_with_table(
            "Fig. 3 — time-resolved RSA",
            timecourse_figures.fig_rsa(rsa, ceiling, clusters, alpha),
            fig_dir / "fig3_rsa",
            rsa_caption(alpha),
            "Post-stimulus mean RSA: figure (no background) vs ground (no foreground)",
            results.records("rsa", "figure_vs_ground"),
        )
    ]
    if (rsa["given"].fillna("") != "").any():
        png = figures.save_figure(
            timecourse_figures.fig_rsa(rsa, ceiling, clusters, alpha, partial=True),
            fig_dir / "fig4_partial_rsa",
        )
        sections.append(figure_section("Fig. 4 — partial RSA", png, PARTIAL_RSA_CAPTION))
    return sections


def encoding_sections(results: CarefulResults, fig_dir: Path) -> list[dict[str, Any]]:
    """Fig. 5: encoding accuracy per condition."""
    if not _present(results.encoding):
        return []
    fig = timecourse_figures.fig_encoding(
        results.encoding, results.ceiling, results.clusters, results.alpha
    )
    return [
        _figure_with_table(
            "Fig. 5 — encoding models",
            fig,
            fig_dir / "fig5_encoding",
            ENCODING_CAPTION,
            "Post-stimulus mean encoding r: figure vs ground",
            results.records("encoding", "figure_vs_ground"),
        )
    ]


def partition_sections(results: CarefulResults, fig_dir: Path) -> list[dict[str, Any]]:
    """Fig. 6: unique and shared variance of figure and ground features."""
    if not _present(results.partition):
        return []
    fig = timecourse_figures.fig_variance_partition(
        results.partition, results.clusters, results.alpha
    )
    return [
        _figure_with_table(
            "Fig. 6 — variance partitioning",
            fig,
            fig_dir / "fig6_variance_partition",
            PARTITION_CAPTION,
            "Post-stimulus mean unique variance: figure vs ground",
            results.records("variance_partition", "figure_vs_ground"),
        )
    ]


def _strata_text(strata: dict[str, Any]) -> str:
    """One paragraph on the foreground-fraction strata: threshold, counts, where results are."""
    counts = ", ".join(f"{k}: {v}" for k, v in strata.get("counts", {}).items())
    return (
        f"Foreground-fraction threshold {strata.get('threshold', '')}; images per "
        f"stratum {counts or 'unknown'}. "
        + (
            "Results per stratum are in rsa_timecourse.csv (column stratum) and the "
            "figures' stratum rows."
            if strata.get("ran")
            else strata.get("reason", "")
        )
    )


def statistics_sections(results: CarefulResults) -> list[dict[str, Any]]:
    """Noise ceilings, clusters across participants and strata, as tables (no figure)."""
    tables = []
    if results.summary.get("noise_ceiling"):
        tables.append(
            (
                "Noise ceilings (post-stimulus means)",
                table_html(results.records("noise_ceiling", "summary")),
            )
        )
    if results.clusters is not None:
        tables.append(("Clusters across participants", table_html(results.clusters)))
    strata = results.summary.get("strata")
    if strata:
        text = _strata_text(strata)
        tables.append(("Strata by foreground fraction", f"<p>{markupsafe.escape(text)}</p>"))
    if not tables:
        return []
    return [
        {
            "title": "Statistics, noise ceilings and strata",
            "figure": "",
            "caption": CLUSTER_NOTE,
            "tables": tables,
        }
    ]


def careful_sections(results_dir: Path, summary: dict[str, Any], fig_dir: Path) -> list[dict]:
    """Figures and tables of RSA, encoding, variance partitioning, ceilings and clusters.

    Each section is a dict with ``title``, ``figure`` (base64 PNG or ""), ``caption`` and
    ``tables`` (list of (heading, HTML)); sections whose results are absent are left out.
    """
    results = CarefulResults.read(results_dir, summary)
    sections = [
        *verdict_sections(results_dir, fig_dir),
        *rsa_sections(results, fig_dir),
        *encoding_sections(results, fig_dir),
        *partition_sections(results, fig_dir),
        *statistics_sections(results),
    ]
    for section in sections:
        section["tables"] = [(h, markupsafe.Markup(t)) for h, t in section["tables"]]
    return sections
