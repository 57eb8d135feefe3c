"""Report sections of the analyses on the original images' grid and on the sensors.

Each section is a dict with ``title``, ``figure`` (base64 PNG), ``caption`` and ``tables``
(heading, DataFrame; the report renders them), like the report's other sections; sections
whose results are absent are left out.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from figureground import logs
from figureground.report import figures
from figureground.report.sections import figure_section, read_results_csv

if TYPE_CHECKING:
    import xarray as xr

    from figureground.neural.gaze_metrics import GazeDensity

log = logs.get_logger(__name__)

MASK_PARTITION_CAPTION = (
    "Banded ridge on the original images' layer pooled inside the object mask (figure), "
    "outside it (ground), in bands of distance to the mask's edge and in eccentricity rings, "
    "beside nuisance bands: object size, silhouette (the mask on the grid), centre bias (the "
    "layer under a Gaussian centre weight, whatever the mask) and low-level statistics. "
    "Unique figure = R²(all bands) − R²(all but figure); unique ground likewise; shared = the "
    "variance figure and ground explain together beyond the rest. Cross-validated R² over "
    "session folds; bands: bootstrap over held-out images (participants for the group). The "
    "intervals hold the fitted models fixed, so they do not include the fits' variability; "
    "shared is biased low when the bands explain variance (see docs/where.md)."
)
READOUT_CAPTION = (
    "Mask-gated factorised readout per time window: the responses' principal components "
    "predicted from the original image's layer map by a spatial map inside the object, one "
    "outside it, and channel weights (alternating ridge). Top: the readout's mean weight in "
    "image coordinates; middle: averaged in object-centred coordinates (each image aligned "
    "on its mask's centroid and scaled by its size). Bottom: in-mask ratio (the readout's "
    "mass inside each image's mask over the mask's share of the grid; 1 = no preference) "
    "with a bootstrap interval over images, and the same ratio refitted with masks shuffled "
    "across images (grey band): a ratio above the shuffled band means the readout follows "
    "each image's object, not where objects usually are (the image centre)."
)
SENSOR_CAPTION = (
    "Figure (no-background) minus ground (no-foreground) per sensor at peak windows: the RSA "
    "searchlight over each sensor's CTF-275 neighbourhood and the per-sensor encoding "
    "accuracy, averaged over participants. White dots: sensors of a cluster with p < 0.05 "
    "in MNE's spatio-temporal sign-flip cluster test across participants; with 4 "
    "participants the smallest attainable p is 0.125, so the maps are descriptive."
)
DECODING_CAPTION = (
    "(a) Pairwise decoding of the test images (shrinkage LDA, leave-one-session-out; chance "
    "0.5), a data-quality check to hold against the published THINGS-MEG curve. (b) The same "
    "classifier trained at one time and tested at another. (c, d) Cross-decoding: ridge from "
    "the figure-only, ground-only and original features to the responses, scored by 2-vs-2 "
    "identification of held-out images, and figure minus ground (band: bootstrap over "
    "participants for the group, over images for one participant)."
)

GAZE_CAPTION = (
    "Eye tracking of the experiment trials (EyeLink channels of the raw runs, cleaned as the "
    "THINGS-MEG authors do), from image onset to analyses.gaze.tmax. (a) Gaze density in "
    "object-centred coordinates (each image's object aligned on its centroid, in object "
    "sizes) with the mean object's outline; (b) per trial, the share of valid gaze samples "
    "on the object beside the object's share of the image (what gaze spread over the image "
    "would give); (c) mean distance from the object; (d, with analyses.gaze.mode stratify) "
    "the RSA's figure minus ground for trials with gaze on the object above and below the "
    "split. The degree-to-image mapping assumes the image fills the 10-degree square at "
    "the screen centre (docs/raw_meg.md)."
)


def _read_csv(path: Path) -> pd.DataFrame | None:
    """The results table at ``path``; None when it is absent or has no rows."""
    table = read_results_csv(path, low_memory=False)
    return None if table is None or table.empty else table


def _first_model(table: pd.DataFrame) -> tuple[pd.Series, pd.DataFrame]:
    """The first (model, weights, layer) of ``table`` and its rows (one figure per report)."""
    keys = ["model", "weights", "layer"]
    first = table[keys].drop_duplicates().iloc[0]
    return first, table[(table[keys] == first).all(axis=1)]


def _section(title: str, make_png: Callable[[], bytes], caption: str) -> dict[str, Any] | None:
    """A section with the figure ``make_png`` draws; None (logged) when it cannot be drawn."""
    try:
        png = make_png()
    except Exception as exc:  # a figure must not cost the rest of the report
        log.warning("report: the figure of %r could not be drawn (%s)", title, exc)
        return None
    return figure_section(title, png, caption)


def mask_partition_section(results_dir: Path, fig_dir: Path) -> dict[str, Any] | None:
    """Unique figure, unique ground and shared variance of the mask-aligned bands."""
    from figureground.report.mask_partition_figure import fig_mask_partition

    table = _read_csv(results_dir / "mask_partition.csv")
    if table is None:
        return None
    first, shown = _first_model(table)
    return _section(
        f"Fig. 7 — mask-aligned variance partitioning ({first['model']} {first['weights']} "
        f"{first['layer']})",
        lambda: figures.save_figure(fig_mask_partition(shown), fig_dir / "fig7_mask_partition"),
        MASK_PARTITION_CAPTION,
    )


def _readout_maps(store: Path, participant: str) -> xr.Dataset:
    """The readout maps of ``participant`` (all of ``store`` when it has no participants)."""
    import xarray as xr

    from figureground.features.store import quiet_zarr

    with quiet_zarr():
        maps = xr.open_zarr(store, consolidated=False).load()
    return maps.sel(participant=participant) if "participant" in maps.dims else maps


def readout_section(results_dir: Path, fig_dir: Path) -> dict[str, Any] | None:
    """Readout maps over time and the in-mask ratio against shuffled masks."""
    from figureground.report.readout_figure import build_readout_figure

    table = _read_csv(results_dir / "readout_ratio.csv")
    store = results_dir / "readout_maps.zarr"
    if table is None or not store.exists():
        return None
    first = str(table["participant"].iloc[0])

    def draw() -> bytes:
        own = _readout_maps(store, first)
        rows = table[table["participant"].astype(str) == first]
        return figures.save_figure(build_readout_figure(own, rows), fig_dir / "fig8_readout")

    return _section(
        f"Fig. 8 — readout maps and the in-mask ratio (participant {first})",
        draw,
        READOUT_CAPTION,
    )


def sensor_section(results_dir: Path, fig_dir: Path) -> dict[str, Any] | None:
    """Topomaps of figure minus ground at the peak windows."""
    from figureground.neural.sensors import things_meg_info
    from figureground.report.sensor_figure import sensor_figure

    table = _read_csv(results_dir / "sensor_effects.csv")
    if table is None:
        return None

    def draw() -> bytes:
        path = sensor_figure(table, things_meg_info(), fig_dir / "fig9_sensors.png")
        return Path(path).read_bytes()

    section = _section("Fig. 9 — where on the head", draw, SENSOR_CAPTION)
    clusters = _read_csv(results_dir / "sensor_clusters.csv")
    if section is not None and clusters is not None:
        shown = [
            c
            for c in ("analysis", "model", "layer", "cluster", "sign", "p_cluster", "min_p",
                      "tmin", "tmax", "n_sensors", "peak_time", "peak_sensor")
            if c in clusters
        ]  # fmt: skip
        best = clusters.sort_values("p_cluster").groupby("analysis").head(5)
        section["tables"].append(("Clusters (5 smallest p per analysis)", best[shown]))
    return section


def decoding_section(results_dir: Path, fig_dir: Path) -> dict[str, Any] | None:
    """Pairwise decoding, temporal generalisation and cross-decoding."""
    from figureground.report.decoding_figure import fig_decoding

    table = _read_csv(results_dir / "decoding.csv")
    if table is None:
        return None
    people = table[table["participant"].astype(str) != "group"]
    pairwise = people[people["analysis"] == "pairwise"][["participant", "time", "value"]]
    general = people[people["analysis"] == "generalisation"].rename(columns={"time": "test_time"})
    cross = table[table["analysis"] == "cross"]
    if not cross.empty:
        cross = _first_model(cross)[1]
    return _section(
        "Fig. 10 — decoding",
        lambda: figures.save_figure(
            fig_decoding(
                pairwise if not pairwise.empty else None,
                general[["participant", "train_time", "test_time", "value"]]
                if not general.empty
                else None,
                cross if not cross.empty else None,
            ),
            fig_dir / "fig10_decoding",
        ),
        DECODING_CAPTION,
    )


def _gaze_density(path: Path) -> GazeDensity:
    """The gaze density saved at ``path`` (``results/gaze_density.npz``)."""
    import numpy as np

    from figureground.neural.gaze_metrics import GazeDensity

    with np.load(path, allow_pickle=False) as data:
        return GazeDensity(
            data["density"],
            data["mean_mask"],
            data["edges"],
            int(data["n_trials"]),
            float(data["outside_share"]),
        )


def _gaze_tables(table: pd.DataFrame, strata: pd.DataFrame | None) -> list[tuple[str, Any]]:
    """Gaze shares per participant and, when stratified, figure vs ground per stratum."""
    shares = table.groupby("participant")[["valid_share", "gaze_on_object", "object_share"]]
    tables = [("Mean per participant", shares.mean().reset_index())]
    if strata is not None:
        shown = ["participant", "stratum", "n_images", "figure", "ground"]
        shown.append("figure_minus_ground")
        tables.append(("Figure vs ground by gaze stratum", strata[shown]))
    return tables


def gaze_section(results_dir: Path, fig_dir: Path) -> dict[str, Any] | None:
    """Where the participants looked, and figure vs ground by gaze stratum."""
    from figureground.report.gaze_figure import gaze_figure

    table = _read_csv(results_dir / "gaze.csv")
    density_path = results_dir / "gaze_density.npz"
    if table is None or not density_path.is_file():
        return None
    strata = _read_csv(results_dir / "gaze_strata.csv")
    if strata is not None:
        strata = _first_model(strata)[1]

    def draw() -> bytes:
        return gaze_figure(_gaze_density(density_path), table, fig_dir / "fig11_gaze", strata)

    section = _section("Fig. 11 — where the participants looked", draw, GAZE_CAPTION)
    if section is not None:
        section["tables"].extend(_gaze_tables(table, strata))
    return section


def where_sections(results_dir: Path, fig_dir: Path) -> list[dict[str, Any]]:
    """Every section whose results exist, in the order of the analyses."""
    makers = (
        mask_partition_section,
        readout_section,
        sensor_section,
        decoding_section,
        gaze_section,
    )
    return [s for s in (make(results_dir, fig_dir) for make in makers) if s is not None]
