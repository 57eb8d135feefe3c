"""The simulated brains of the validation: what drives them, and the answer they plant.

A method earns a claim only by its power on brains that follow the figure or the ground and
its false-positive rate on brains without a figure/ground preference, and only when those
brains are not built from the features the method analyses. Sources of codes:

- ``analysed``: the analysed network and layer (the circular case, kept as a reference);
- ``other``: a different network (its own layer);
- ``pixels``: low-level descriptors of the object's pixels and of the rest, pooled over the
  region (position- and size-tolerant), per cell of a 4 x 4 grid (position-specific), of the
  whole image, or of a window at the image centre; no network involved.

Each brain maps code names of its source to weights. ``planted`` is the right verdict:
``figure``, ``ground``, or ``none`` for the nulls (no image signal; figure and ground
equally; the whole image; the image centre).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Brain:
    """One simulated brain of the sweep."""

    name: str
    source: str  # analysed | other | pixels
    weights: tuple[tuple[str, float], ...]
    planted: str  # figure | ground | none
    description: str


BRAINS: dict[str, Brain] = {
    b.name: b
    for b in (
        Brain("analysed_figure", "analysed", (("figure", 1.0),), "figure",
              "the analysed network's no-background map"),
        Brain("analysed_ground", "analysed", (("ground", 1.0),), "ground",
              "the analysed network's no-foreground map"),
        Brain("other_figure", "other", (("figure", 1.0),), "figure",
              "another network's no-background map"),
        Brain("other_ground", "other", (("ground", 1.0),), "ground",
              "another network's no-foreground map"),
        Brain("pixels_figure", "pixels", (("figure", 1.0),), "figure",
              "object pixels, pooled over the object (position-tolerant)"),
        Brain("pixels_ground", "pixels", (("ground", 1.0),), "ground",
              "background pixels, pooled over the background (position-tolerant)"),
        Brain("grid_figure", "pixels", (("figure_grid", 1.0),), "figure",
              "object pixels per cell of a 4 x 4 grid (position-specific)"),
        Brain("grid_ground", "pixels", (("ground_grid", 1.0),), "ground",
              "background pixels per cell of a 4 x 4 grid (position-specific)"),
        Brain("none", "pixels", (), "none", "no image-specific signal"),
        Brain("both", "pixels", (("figure", 1.0), ("ground", 1.0)), "none",
              "object and background pixels with equal weights"),
        Brain("image", "pixels", (("image", 1.0),), "none",
              "the whole image's pixels (no segmentation)"),
        Brain("centre", "pixels", (("centre", 1.0),), "none",
              "a window at the image centre, whatever the mask"),
    )
}  # fmt: skip
NULLS = tuple(name for name, brain in BRAINS.items() if brain.planted == "none")
