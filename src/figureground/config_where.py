"""The study file's optional analyses of where: in the image, on the head, and the gaze.

``analyses.mask_partition``, ``analyses.readout``, ``analyses.sensors``,
``analyses.decoding`` (docs/where.md) and ``analyses.gaze``, each off by default. Part of
:mod:`figureground.config`, which re-exports every name here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from figureground.config_checks import require

GAZE_MODES = ("report", "exclude", "stratify", "regress")


@dataclass(frozen=True)
class GazeConfig:
    """Where the participants looked, per trial, from the recordings' eye tracking.

    Needs gaze epochs (``neural.source: bids`` with ``neural.bids.eye_tracking``) and the
    variants' object masks. Writes ``gaze.csv`` (one row per experiment trial: gaze on the
    object, distance from the mask, fixation stability; ``figureground.neural.gaze_metrics``)
    and the report's gaze figure. ``tmin`` / ``tmax`` (s): the post-onset window of the
    metrics (default 0..0.5 s: THINGS-MEG shows each image for 0.5 s, ds004212 README). ``mode``:

    - ``report``: metrics and figure only;
    - ``exclude``: the analyses drop trials with less than ``min_valid_share`` valid gaze
      samples or, when set, less than ``min_on_object`` of them on the object;
    - ``stratify``: the RSA's figure-vs-ground result per participant for trials with gaze on
      the object at or above ``split`` (None: the participant's median) and below it
      (``gaze_strata.csv``), each stratum needing ``min_images``;
    - ``regress``: the gaze on the object and the distance from the mask are regressed out of
      every channel and time point across images before the analyses.
    """

    enabled: bool = False
    mode: Literal["report", "exclude", "stratify", "regress"] = "report"
    tmin: float = 0.0
    tmax: float | None = 0.5
    min_valid_share: float = 0.5
    min_on_object: float | None = None
    split: float | None = None
    min_images: int = 4
    density_bins: int = 48

    def __post_init__(self) -> None:
        key = "analyses.gaze"
        require(self.mode in GAZE_MODES, f"{key}.mode", self.mode, " | ".join(GAZE_MODES))
        require(self.tmax is None or self.tmax > self.tmin, f"{key}.tmax", self.tmax, "> tmin")
        for name in ("min_valid_share", "min_on_object", "split"):
            value = getattr(self, name)
            require(value is None or 0.0 <= value <= 1.0, f"{key}.{name}", value, "a share in 0..1")
        require(self.min_images >= 3, f"{key}.min_images", self.min_images, ">= 3")
        require(self.density_bins >= 4, f"{key}.density_bins", self.density_bins, ">= 4")


@dataclass(frozen=True)
class MaskPartitionConfig:
    """Mask-aligned variance partitioning of the original images (``mask_partition.csv``).

    The ``layer`` (None: the first layer with a spatial map) of the original images is pooled
    inside the object mask (figure), outside it (ground), in ``edge_bands`` bands of distance
    (grid cells) to the mask's edge and in ``rings`` eccentricity rings; these enter banded
    ridge beside nuisance bands (object size, silhouette, low-level image statistics, centre
    bias). Each band is reduced to ``n_components`` principal components per fold. Folds:
    ``n_splits`` grouped by session; intervals by ``n_boot`` bootstrap samples over images
    (participants for the group) at coverage ``ci``; the fits every ``time_step`` samples.
    """

    enabled: bool = False
    layer: str | None = None
    edge_bands: tuple[int, ...] = (1, 2)
    rings: int = 3
    n_components: int | None = 20
    n_splits: int = 5
    n_boot: int = 1000
    ci: float = 0.95
    time_step: int = 1
    random_state: int = 0

    def __post_init__(self) -> None:
        key = "analyses.mask_partition"
        require(self.n_splits >= 2, f"{key}.n_splits", self.n_splits, ">= 2")
        require(self.rings >= 1, f"{key}.rings", self.rings, ">= 1")
        require(self.n_boot >= 1, f"{key}.n_boot", self.n_boot, ">= 1")
        require(0 < self.ci < 1, f"{key}.ci", self.ci, "a number in (0, 1)")
        require(self.time_step >= 1, f"{key}.time_step", self.time_step, ">= 1")
        require(
            self.n_components is None or self.n_components >= 1,
            f"{key}.n_components",
            self.n_components,
            ">= 1 or null (no PCA)",
        )


@dataclass(frozen=True)
class ReadoutConfig:
    """Mask-gated factorised readout maps (``readout_maps.zarr``, ``readout_ratio.csv``).

    Per time ``window`` (seconds) the responses' ``n_components`` principal components are
    predicted from the original images' ``layer`` map (None: the first spatial layer),
    reduced to ``n_channel_components`` channel components and area-pooled to ``grid``, by a
    spatial map inside the object, one outside it, and channel weights, fitted by
    ``n_iter`` alternations of ridge; cross-validated over ``n_splits`` session folds. The
    in-mask ratio has a bootstrap interval (``n_boot`` over images) and a null of ``n_null``
    mask shufflings across images. ``device``: None (numpy) or a torch device for the
    s-step's normal equations (``cuda`` on a GPU; float64 there, maps equal to 1e-4).
    """

    enabled: bool = False
    layer: str | None = None
    window: float = 0.1
    n_components: int = 5
    n_channel_components: int = 16
    grid: tuple[int, int] = (14, 14)
    n_iter: int = 10
    n_null: int = 20
    n_splits: int = 5
    n_boot: int = 1000
    device: Literal["cpu", "cuda"] | None = None
    random_state: int = 0

    def __post_init__(self) -> None:
        key = "analyses.readout"
        require(self.window > 0, f"{key}.window", self.window, "seconds > 0")
        require(self.n_components >= 1, f"{key}.n_components", self.n_components, ">= 1")
        require(
            self.n_channel_components >= 1,
            f"{key}.n_channel_components",
            self.n_channel_components,
            ">= 1",
        )
        require(
            len(self.grid) == 2 and min(self.grid) >= 2,
            f"{key}.grid",
            self.grid,
            "[rows, cols] >= 2",
        )
        require(self.n_iter >= 1, f"{key}.n_iter", self.n_iter, ">= 1")
        require(self.n_null >= 1, f"{key}.n_null", self.n_null, ">= 1")
        require(self.n_splits >= 2, f"{key}.n_splits", self.n_splits, ">= 2")
        require(self.n_boot >= 1, f"{key}.n_boot", self.n_boot, ">= 1")


@dataclass(frozen=True)
class SensorsConfig:
    """Figure-minus-ground effects per sensor neighbourhood (``sensor_effects.csv``).

    RSA per neighbourhood of MNE's CTF-275 adjacency (``rsa``) at the ``level`` in the
    ``view``, and the encoding accuracy per sensor (``encoding``, needs
    ``analyses.encoding``), each with MNE's spatio-temporal cluster test across
    participants (``n_permutations`` sign flips) and topomaps at ``n_peaks`` peak windows of
    ``window`` seconds. The searchlight's MEG RDMs use ``metric`` over each neighbourhood's
    channels and are compared with ``analyses.rsa.method``; it reads a seeded subset of
    ``max_conditions`` images or concepts (None: all; its time grows with their square:
    about 2 min per participant and model for 200 conditions x 271 sensors x 281 times).
    """

    enabled: bool = False
    rsa: bool = True
    encoding: bool = True
    level: Literal["image", "concept"] = "image"
    view: Literal["flat", "global", "grid2", "grid4", "region"] = "global"
    metric: Literal["correlation", "cosine", "euclidean", "sqeuclidean"] = "correlation"
    max_conditions: int | None = 200
    n_permutations: int = 1024
    n_peaks: int = 3
    window: float = 0.05
    random_state: int = 0

    def __post_init__(self) -> None:
        key = "analyses.sensors"
        require(self.n_permutations >= 1, f"{key}.n_permutations", self.n_permutations, ">= 1")
        require(self.n_peaks >= 1, f"{key}.n_peaks", self.n_peaks, ">= 1")
        require(self.window > 0, f"{key}.window", self.window, "seconds > 0")
        require(
            self.max_conditions is None or self.max_conditions >= 3,
            f"{key}.max_conditions",
            self.max_conditions,
            ">= 3 or null (all)",
        )


@dataclass(frozen=True)
class DecodingConfig:
    """Decoding (``decoding.csv``): a data-quality check and figure/ground cross-decoding.

    ``pairwise``: time-resolved pairwise decoding of the test images, leave-one-session-out
    (``max_pairs`` a seeded subset, None for all; every ``decim``-th time).
    ``generalisation``: the same classifier trained at each time and tested at every time.
    ``cross``: ridge from the figure-only, ground-only and original features (``view``) to
    the responses, scored by 2-vs-2 identification of held-out images over ``n_splits``
    session folds, with ``n_boot`` bootstrap samples for the intervals.
    """

    enabled: bool = False
    pairwise: bool = True
    generalisation: bool = True
    cross: bool = True
    max_pairs: int | None = None
    decim: int = 1
    view: Literal["flat", "global", "grid2", "grid4", "region"] = "global"
    n_splits: int = 5
    n_boot: int = 1000
    random_state: int = 0

    def __post_init__(self) -> None:
        key = "analyses.decoding"
        require(
            self.max_pairs is None or self.max_pairs >= 1,
            f"{key}.max_pairs",
            self.max_pairs,
            ">= 1",
        )
        require(self.decim >= 1, f"{key}.decim", self.decim, ">= 1")
        require(self.n_splits >= 2, f"{key}.n_splits", self.n_splits, ">= 2")
        require(self.n_boot >= 1, f"{key}.n_boot", self.n_boot, ">= 1")
