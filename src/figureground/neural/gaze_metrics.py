"""Where the eyes were on each image: object vs background, per trial and object-centred.

Gaze (degrees from the screen centre, :mod:`figureground.neural.gaze`) is mapped onto the
image's object mask. The image is drawn as the ``stim_size_deg`` square at the screen centre
(THINGS-MEG: 10 degrees, [AUTH] line 68); its side is ``stim_size_px`` screen pixels. A
non-square mask is assumed fitted inside that square (its longer side fills it, aspect kept,
centred); THINGS images are square. Degrees go back to screen pixels with the inverse of the
same ``angle_method``, then to image pixels, so degrees and the image always agree. y grows
downwards (screen and image rows alike; ``settings.y_down``).

Image coordinates below are pixel-centre coordinates: pixel ``(r, c)`` covers
``[r - 0.5, r + 0.5) x [c - 0.5, c + 0.5)``. A mask pixel is object where its soft value is at
least ``settings.mask_threshold``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from figureground import logs
from figureground.errors import DataError, UsageError
from figureground.neural.gaze_units import GazeSettings, degrees_to_pixels, pixels_to_degrees

log = logs.get_logger(__name__)

METRIC_COLUMNS = (
    "trial",
    "image_id",
    "n_samples",
    "valid_share",
    "gaze_on_object",
    "distance_from_mask",
    "fixation_stability",
    "gaze_rms",
    "mean_x",
    "mean_y",
    "object_share",
    "centre_on_object",
)


def image_scale(shape: tuple[int, int], settings: GazeSettings) -> float:
    """Screen pixels per image pixel: the longer image side fills the stimulus square."""
    return settings.stim_size_px / max(shape)


def degrees_to_image(
    x_deg: np.ndarray, y_deg: np.ndarray, shape: tuple[int, int], settings: GazeSettings
) -> tuple[np.ndarray, np.ndarray]:
    """(row, col) pixel-centre coordinates in an image of ``shape`` of gaze in degrees."""
    scale = image_scale(shape, settings)
    sign = 1.0 if settings.y_down else -1.0
    col = degrees_to_pixels(x_deg, settings) / scale + shape[1] / 2 - 0.5
    row = sign * degrees_to_pixels(y_deg, settings) / scale + shape[0] / 2 - 0.5
    return row, col


def image_to_degrees(
    row: np.ndarray, col: np.ndarray, shape: tuple[int, int], settings: GazeSettings
) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) degrees of image pixel-centre coordinates (inverse of :func:`degrees_to_image`)."""
    scale = image_scale(shape, settings)
    sign = 1.0 if settings.y_down else -1.0
    x = pixels_to_degrees((np.asarray(col, float) + 0.5 - shape[1] / 2) * scale, settings)
    y = pixels_to_degrees(sign * (np.asarray(row, float) + 0.5 - shape[0] / 2) * scale, settings)
    return x, y


@dataclass(frozen=True)
class MaskGeometry:
    """An object mask as the metrics need it."""

    binary: np.ndarray  # (H, W) bool: object pixels
    boundary: np.ndarray  # (k, 2) row, col of object pixels with a non-object 4-neighbour
    centroid: tuple[float, float]  # row, col (pixel-centre coordinates)
    size: float  # sqrt(object area) in image pixels

    @property
    def shape(self) -> tuple[int, int]:
        return self.binary.shape  # type: ignore[return-value]


def mask_geometry(mask: np.ndarray, settings: GazeSettings) -> MaskGeometry:
    """Object pixels, their boundary (outside the image counts as background) and centroid."""
    mask = np.asarray(mask)
    if mask.ndim != 2 or min(mask.shape) < 1:
        raise DataError(f"object mask of shape {mask.shape}; expected (H, W)")
    binary = mask >= settings.mask_threshold
    padded = np.pad(binary, 1, constant_values=False)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:] & binary
    boundary = np.argwhere(binary & ~interior)
    if binary.any():
        rows, cols = np.nonzero(binary)
        centroid = (float(rows.mean()), float(cols.mean()))
    else:
        centroid = (np.nan, np.nan)
    return MaskGeometry(binary, boundary, centroid, float(np.sqrt(binary.sum())))


def on_object(geometry: MaskGeometry, row: np.ndarray, col: np.ndarray) -> np.ndarray:
    """Whether each (row, col) point lies in an object pixel (False outside the image)."""
    r = np.floor(np.asarray(row) + 0.5)
    c = np.floor(np.asarray(col) + 0.5)
    height, width = geometry.shape
    inside = (r >= 0) & (r < height) & (c >= 0) & (c < width)
    out = np.zeros(r.shape, dtype=bool)
    out[inside] = geometry.binary[r[inside].astype(int), c[inside].astype(int)]
    return out


def distance_to_object(
    geometry: MaskGeometry,
    x_deg: np.ndarray,
    y_deg: np.ndarray,
    settings: GazeSettings,
) -> np.ndarray:
    """Distance (deg) of each gaze point from the nearest object pixel centre; 0 on the object.

    Off the object the nearest object pixel is always a boundary pixel, so a k-d tree of the
    boundary gives it exactly (nearest in image pixels; the distance is then measured in
    degrees). NaN where the mask has no object.
    """
    from scipy.spatial import cKDTree

    row, col = degrees_to_image(x_deg, y_deg, geometry.shape, settings)
    if geometry.boundary.size == 0:
        return np.full(np.shape(row), np.nan)
    inside = on_object(geometry, row, col)
    distance = np.zeros(np.shape(row))
    if (~inside).any():
        _, nearest = cKDTree(geometry.boundary).query(np.column_stack([row[~inside], col[~inside]]))
        pixel = geometry.boundary[nearest]
        px, py = image_to_degrees(pixel[:, 0], pixel[:, 1], geometry.shape, settings)
        distance[~inside] = np.hypot(x_deg[~inside] - px, y_deg[~inside] - py)
    return distance


def bcea(x: np.ndarray, y: np.ndarray, probability: float = 0.682) -> float:
    """Bivariate contour ellipse area (deg^2) holding ``probability`` of the gaze samples.

    ``BCEA = 2 k pi sx sy sqrt(1 - rho^2)`` with ``k = -ln(1 - probability)`` (Steinman 1965;
    Crossland & Rubin 2002), sample standard deviations (ddof 1). NaN under 3 samples.
    """
    if x.size < 3:
        return float("nan")
    cov = np.cov(x, y, ddof=1)
    k = -np.log(1.0 - probability)
    return float(2 * k * np.pi * np.sqrt(max(np.linalg.det(cov), 0.0)))


def _post_onset(times: np.ndarray, n_time: int, tmin: float, tmax: float | None) -> np.ndarray:
    times = np.asarray(times, dtype=float)
    if times.shape != (n_time,):
        raise DataError(f"{times.size} times for gaze with {n_time} time points")
    window = times >= tmin
    if tmax is not None:
        window &= times <= tmax
    if not window.any():
        raise UsageError(f"no time point in {tmin}..{tmax} s (times {times[0]}..{times[-1]})")
    return window


def _check_inputs(gaze_deg: np.ndarray, masks: Sequence[np.ndarray]) -> np.ndarray:
    gaze = np.asarray(gaze_deg, dtype=np.float64)
    if gaze.ndim != 3 or gaze.shape[1] < 2:
        raise DataError(f"gaze of shape {gaze.shape}; expected (trial, 2 [x, y], time)")
    if len(masks) != gaze.shape[0]:
        raise DataError(f"{len(masks)} masks for {gaze.shape[0]} trials; expected one per trial")
    return gaze


def _geometries(masks: Sequence[np.ndarray], settings: GazeSettings) -> list[MaskGeometry]:
    """Geometry of each mask; trials showing the same array share one computation."""
    cache: dict[int, MaskGeometry] = {}
    return [cache.setdefault(id(m), mask_geometry(m, settings)) for m in masks]


def _trials(
    gaze_deg: np.ndarray,
    times: np.ndarray,
    masks: Sequence[np.ndarray],
    tmin: float,
    tmax: float | None,
) -> tuple[np.ndarray, np.ndarray]:
    """The checked gaze (float64) and the samples of its ``tmin..tmax`` window."""
    gaze = _check_inputs(gaze_deg, masks)
    return gaze, _post_onset(times, gaze.shape[2], tmin, tmax)


def _window_xy(
    gaze: np.ndarray, trial: int, window: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x and y of one trial's window and which of those samples are valid (finite)."""
    x, y = gaze[trial, 0, window], gaze[trial, 1, window]
    return x, y, np.isfinite(x) & np.isfinite(y)


def gaze_metrics(
    gaze_deg: np.ndarray,
    times: np.ndarray,
    masks: Sequence[np.ndarray],
    settings: GazeSettings | None = None,
    tmin: float = 0.0,
    *,
    tmax: float | None = None,
    image_ids: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One row per trial: where the gaze was on the trial's image from ``tmin`` (s) on.

    - ``valid_share``: share of the window's samples with finite x and y.
    - ``gaze_on_object``: share of the valid samples that fall on an object pixel.
    - ``distance_from_mask``: mean distance (deg) of the valid samples from the nearest
      object pixel centre, 0 on the object (:func:`distance_to_object`).
    - ``fixation_stability``: BCEA (deg^2, 68.2 %; larger = less stable; :func:`bcea`).
    - ``gaze_rms``: RMS distance (deg) of the valid samples from their mean.
    - ``mean_x``, ``mean_y``: mean gaze (deg; y down).
    - ``object_share``: share of the image that is object (``gaze_on_object`` of gaze spread
      evenly over the image); ``centre_on_object``: whether the screen centre (the fixation
      point) is on the object.

    Metrics of a trial without valid samples (or with an empty mask) are NaN.
    """
    settings = settings or GazeSettings()
    gaze, window = _trials(gaze_deg, times, masks, tmin, tmax)
    if image_ids is not None and len(image_ids) != gaze.shape[0]:
        raise DataError(f"{len(image_ids)} image ids for {gaze.shape[0]} trials")
    geometries = _geometries(masks, settings)
    rows = []
    for trial, geometry in enumerate(geometries):
        x, y, ok = _window_xy(gaze, trial, window)
        x, y = x[ok], y[ok]
        centre = on_object(geometry, *degrees_to_image(0.0, 0.0, geometry.shape, settings))
        row = {
            "trial": trial,
            "image_id": None if image_ids is None else str(image_ids[trial]),
            "n_samples": int(window.sum()),
            "valid_share": float(ok.mean()),
            "object_share": float(geometry.binary.mean()),
            "centre_on_object": bool(centre),
        }
        if x.size and geometry.boundary.size:
            r, c = degrees_to_image(x, y, geometry.shape, settings)
            row["gaze_on_object"] = float(on_object(geometry, r, c).mean())
            row["distance_from_mask"] = float(distance_to_object(geometry, x, y, settings).mean())
        else:
            row["gaze_on_object"] = row["distance_from_mask"] = float("nan")
        if x.size:
            row["mean_x"], row["mean_y"] = float(x.mean()), float(y.mean())
            row["gaze_rms"] = float(np.sqrt(np.mean((x - x.mean()) ** 2 + (y - y.mean()) ** 2)))
        else:
            row["mean_x"] = row["mean_y"] = row["gaze_rms"] = float("nan")
        row["fixation_stability"] = bcea(x, y, settings.bcea_probability)
        rows.append(row)
    return pd.DataFrame(rows, columns=list(METRIC_COLUMNS))


@dataclass(frozen=True)
class GazeDensity:
    """Gaze density in object-centred coordinates (units: object sizes, sqrt of area).

    ``density[i, j]`` is the mean over trials of the share of a trial's valid samples in bin
    (row i, col j); ``mean_mask`` the mean object mask on the same grid (each mask aligned on
    its centroid and scaled by its size); ``edges`` the bin edges (both axes; y down);
    ``outside_share`` the mean share of valid samples beyond ``edges``.
    """

    density: np.ndarray
    mean_mask: np.ndarray
    edges: np.ndarray
    n_trials: int
    outside_share: float


def gaze_density(
    gaze_deg: np.ndarray,
    times: np.ndarray,
    masks: Sequence[np.ndarray],
    settings: GazeSettings | None = None,
    tmin: float = 0.0,
    *,
    tmax: float | None = None,
    extent: float = 2.0,
    bins: int = 64,
) -> GazeDensity:
    """Object-centred gaze density and mean mask over trials (see :class:`GazeDensity`).

    Each valid sample's image position becomes ``(p - centroid) / size`` (size = sqrt of the
    object's area in image pixels); the grid spans ``-extent..extent`` sizes in ``bins`` bins.
    Each trial with valid samples and an object weighs equally.
    """
    from scipy.ndimage import map_coordinates

    settings = settings or GazeSettings()
    if extent <= 0 or bins < 2:
        raise UsageError(f"extent {extent}, bins {bins}; expected extent > 0 and bins >= 2")
    gaze, window = _trials(gaze_deg, times, masks, tmin, tmax)
    edges = np.linspace(-extent, extent, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    grid_v, grid_u = np.meshgrid(centres, centres, indexing="ij")
    density = np.zeros((bins, bins))
    mean_mask = np.zeros((bins, bins))
    outside, used = 0.0, 0
    for trial, geometry in enumerate(_geometries(masks, settings)):
        x, y, ok = _window_xy(gaze, trial, window)
        if not ok.any() or geometry.size == 0:
            continue
        row, col = degrees_to_image(x[ok], y[ok], geometry.shape, settings)
        v = (row - geometry.centroid[0]) / geometry.size
        u = (col - geometry.centroid[1]) / geometry.size
        counts, _, _ = np.histogram2d(v, u, bins=[edges, edges])
        density += counts / ok.sum()
        outside += 1.0 - counts.sum() / ok.sum()
        coords = [geometry.centroid[0] + grid_v * geometry.size]
        coords.append(geometry.centroid[1] + grid_u * geometry.size)
        mean_mask += map_coordinates(geometry.binary.astype(float), coords, order=1, cval=0.0)
        used += 1
    if used == 0:
        raise DataError("no trial has both valid gaze samples and an object in its mask")
    skipped = gaze.shape[0] - used
    if skipped:
        log.info(
            "gaze density: %d of %d trials without valid gaze or object", skipped, gaze.shape[0]
        )
    return GazeDensity(density / used, mean_mask / used, edges, used, outside / used)
