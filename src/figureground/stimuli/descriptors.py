"""Low-level pixel descriptors of image regions, for simulated brains that no network drives.

A simulated brain built from the embeddings that the analyses then use can only confirm them.
These descriptors come from the pixels and the object mask alone: colour, contrast and
oriented texture energy, averaged over a region.

Per-pixel maps (on the image reduced to ``WORK_SIDE`` pixels): CIELAB L, a, b; local
contrast (standard deviation of L in a 5 x 5 window); log oriented gradient energy at four
orientations and two scales (Gaussian derivatives, sigma 1 and 3 pixels). A region's
descriptor is the weighted mean of every map plus the weighted standard deviation of L, a
and b: ``N_DESCRIPTORS`` numbers.

Regions (:data:`REGIONS`), each a weight over the pixels:

- ``figure`` / ``ground``: the object mask / its complement, pooled over the whole region:
  position- and size-tolerant (where the object sits does not change them);
- ``figure_grid`` / ``ground_grid``: the same weights pooled separately in each cell of a
  ``grid`` x ``grid`` partition of the image (cells with under 1% of their pixels in the
  region are zero): position-specific codes;
- ``image``: every pixel (no figure/ground preference);
- ``centre``: a Gaussian window at the image centre (standard deviation ``CENTRE_SD`` of the
  side), whatever the mask: THINGS objects sit at fixation, so this code has no figure
  preference but overlaps the object.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

WORK_SIDE = 128
SCALES = (1.0, 3.0)
ORIENTATIONS = 4
CENTRE_SD = 0.15
N_MAPS = 3 + 1 + ORIENTATIONS * len(SCALES)  # Lab, contrast, energies
N_DESCRIPTORS = N_MAPS + 3  # plus the spread of L, a, b
REGIONS = ("figure", "ground", "figure_grid", "ground_grid", "image", "centre")
MIN_CELL_SHARE = 0.01


def _resize(array: np.ndarray, side: int) -> np.ndarray:
    import cv2

    return cv2.resize(array, (side, side), interpolation=cv2.INTER_AREA)


def pixel_maps(rgb: np.ndarray) -> np.ndarray:
    """Per-pixel maps (side, side, N_MAPS) of an RGB uint8 image, reduced to WORK_SIDE."""
    from scipy import ndimage
    from skimage.color import rgb2lab

    small = _resize(np.ascontiguousarray(rgb), WORK_SIDE).astype(np.float64) / 255.0
    lab = rgb2lab(small)
    light = lab[..., 0] / 100.0
    mean = ndimage.uniform_filter(light, 5)
    contrast = np.sqrt(np.clip(ndimage.uniform_filter(light**2, 5) - mean**2, 0, None))
    maps = [lab[..., 0] / 100.0, lab[..., 1] / 100.0, lab[..., 2] / 100.0, contrast]
    for sigma in SCALES:
        dy = ndimage.gaussian_filter(light, sigma, order=(1, 0))
        dx = ndimage.gaussian_filter(light, sigma, order=(0, 1))
        for k in range(ORIENTATIONS):
            theta = np.pi * k / ORIENTATIONS
            oriented = np.cos(theta) * dx + np.sin(theta) * dy
            maps.append(np.log1p(100.0 * oriented**2))
    return np.stack(maps, axis=-1)


def pooled(maps: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Weighted mean of every map and weighted SD of L, a, b: (N_DESCRIPTORS,).

    Zeros when the weight is (almost) zero everywhere.
    """
    total = float(weight.sum())
    if total <= 1e-9:
        return np.zeros(N_DESCRIPTORS)
    w = weight[..., None] / total
    mean = (maps * w).sum(axis=(0, 1))
    spread = np.sqrt(np.clip(((maps[..., :3] - mean[:3]) ** 2 * w).sum(axis=(0, 1)), 0, None))
    return np.concatenate([mean, spread])


def grid_pooled(maps: np.ndarray, weight: np.ndarray, grid: int) -> np.ndarray:
    """:func:`pooled` in each cell of a ``grid`` x ``grid`` partition: (grid * grid * N,)."""
    side = maps.shape[0]
    edges = np.linspace(0, side, grid + 1).round().astype(int)
    cells = []
    for r in range(grid):
        for c in range(grid):
            rows, cols = slice(edges[r], edges[r + 1]), slice(edges[c], edges[c + 1])
            cell_weight = weight[rows, cols]
            if cell_weight.mean() < MIN_CELL_SHARE:
                cells.append(np.zeros(N_DESCRIPTORS))
            else:
                cells.append(pooled(maps[rows, cols], cell_weight))
    return np.concatenate(cells)


def centre_weight(side: int, sd: float = CENTRE_SD) -> np.ndarray:
    """A Gaussian window at the centre of a side x side image (peak 1)."""
    coords = (np.arange(side) + 0.5) / side - 0.5
    return np.exp(-(coords[:, None] ** 2 + coords[None, :] ** 2) / (2 * sd**2))


def region_descriptors(
    rgb: np.ndarray, mask: np.ndarray, regions: Sequence[str] = REGIONS, grid: int = 4
) -> dict[str, np.ndarray]:
    """Descriptor vector of each region of one image.

    Parameters
    ----------
    rgb : uint8 (H, W, 3) image.
    mask : object mask (H, W): bool, or a soft alpha in [0, 1].
    regions : names among :data:`REGIONS`.
    grid : cells per side of the ``*_grid`` regions.
    """
    unknown = [r for r in regions if r not in REGIONS]
    if unknown:
        raise ValueError(f"unknown regions {unknown}; expected some of {list(REGIONS)}")
    if mask.shape != rgb.shape[:2]:
        raise ValueError(f"mask {mask.shape} and image {rgb.shape[:2]} differ in size")
    maps = pixel_maps(rgb)
    figure = np.clip(_resize(np.asarray(mask, dtype=np.float32), WORK_SIDE), 0, 1)
    figure = figure.astype(np.float64)
    weights = {
        "figure": figure,
        "ground": 1.0 - figure,
        "image": np.ones_like(figure),
        "centre": centre_weight(WORK_SIDE),
    }
    out = {}
    for region in regions:
        if region.endswith("_grid"):
            out[region] = grid_pooled(maps, weights[region.removesuffix("_grid")], grid)
        else:
            out[region] = pooled(maps, weights[region])
    return out
