"""The study file's ``analyses`` section: which analyses run, and how.

The seed method, the responses used, RSA, encoding, noise ceilings, statistics, strata and
the verdict, gathered with the optional analyses of :mod:`figureground.config_where` into
:class:`AnalysesConfig`. Part of :mod:`figureground.config`, which re-exports every name here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from figureground.config_checks import require
from figureground.config_where import (
    DecodingConfig,
    GazeConfig,
    MaskPartitionConfig,
    ReadoutConfig,
    SensorsConfig,
)


@dataclass(frozen=True)
class SeedMethodConfig:
    """The study's own analysis (Lanczos resampling + Euclidean distance).

    ``mode``: ``stored`` compares the MEG with the feature stores' maps; ``fused`` runs each
    store's network again (its model, weights, seed and preprocessing, read from the store)
    and compares each batch's full, unpooled map as it is made, without storing it
    (``analysis/seed_fused.py``): the faithful method at THINGS size, where full maps would
    take 35 GB per condition, even when the stores are pooled. ``device`` and
    ``batch_size`` are the fused pass's.
    """

    enabled: bool = True
    mode: Literal["stored", "fused"] = "stored"
    device: str = "auto"
    batch_size: int = 32
    response: Literal["image", "concept"] = "image"
    tmin: float | None = None
    tmax: float | None = None
    zscore: bool = False
    n_boot: int = 2000
    random_state: int = 0
    # The identity version (analysis/seed_identity.py): own embedding vs the others'.
    identity: bool = True
    identity_max_images: int = 500
    n_permutations: int = 1000

    def __post_init__(self) -> None:
        require(self.batch_size >= 1, "analyses.seed_method.batch_size", self.batch_size, ">= 1")


RDM_METRICS = Literal["correlation", "euclidean", "sqeuclidean", "cosine"]


@dataclass(frozen=True)
class ResponsesConfig:
    """The part of the recordings that RSA, encoding and the noise ceilings use.

    ``tmin`` / ``tmax`` (seconds, inclusive; None: the whole epoch) and ``decim`` (keep every
    ``decim``-th sample; THINGS-MEG is low-passed at 40 Hz and sampled at 200 Hz, so
    ``decim <= 2`` does not alias). Default: every sample of the whole epoch.
    """

    tmin: float | None = None
    tmax: float | None = None
    decim: int = 1

    def __post_init__(self) -> None:
        require(self.decim >= 1, "analyses.responses.decim", self.decim, "an integer >= 1")
        if self.tmin is not None and self.tmax is not None:
            require(self.tmin < self.tmax, "analyses.responses.tmin", self.tmin, "< tmax")


@dataclass(frozen=True)
class RsaConfig:
    """Time-resolved RSA of MEG RDMs against each condition's model RDM.

    Defaults: image and concept levels, correlation distance for MEG and model patterns,
    Spearman comparison, partial RSA (figure given ground and ground given figure),
    1000 bootstrap samples over images (95% percentile intervals) and 1000 permutations of
    the model RDM per participant, seeded with ``random_state``. ``batch_size`` is time points per
    RDM batch (memory). ``backend``: ``numpy`` (default), ``torch`` (torch on the CPU) or
    ``torch_cuda`` (RDMs, bootstrap and permutations on the GPU, float64 for the inference,
    the same draws; results agree with numpy to rounding).
    """

    enabled: bool = True
    levels: tuple[Literal["image", "concept"], ...] = ("image", "concept")
    metric: RDM_METRICS = "correlation"
    model_metric: RDM_METRICS = "correlation"
    method: Literal["spearman", "pearson", "cosine"] = "spearman"
    partial: bool = True
    n_boot: int = 1000
    n_permutations: int = 1000
    ci: float = 0.95
    random_state: int = 0
    batch_size: int = 16
    backend: Literal["numpy", "torch", "torch_cuda"] = "numpy"

    def __post_init__(self) -> None:
        require(len(self.levels) >= 1, "analyses.rsa.levels", self.levels, "at least one level")
        require(self.n_boot >= 0, "analyses.rsa.n_boot", self.n_boot, ">= 0 (0: no intervals)")
        require(
            self.n_permutations >= 0,
            "analyses.rsa.n_permutations",
            self.n_permutations,
            ">= 0 (0: no permutation test)",
        )
        require(0 < self.ci < 1, "analyses.rsa.ci", self.ci, "a number between 0 and 1")
        require(self.batch_size >= 1, "analyses.rsa.batch_size", self.batch_size, ">= 1")


@dataclass(frozen=True)
class EncodingConfig:
    """Ridge encoding per sensor and time, and banded-ridge variance partitioning.

    Defaults: 5 outer folds grouped by session, PCA to 100 components fitted on the
    training images of each fold, penalties 1e-2 .. 1e8 chosen by 5 inner folds, 20
    random-search iterations over band weights for the banded (figure + ground) model,
    himalaya's numpy backend, every time point (``time_step`` 1; the fits are per time
    point, so a larger step only evaluates them on a coarser grid of times).
    """

    enabled: bool = True
    variance_partition: bool = True
    time_step: int = 1
    n_splits: int = 5
    n_components: int | None = 100
    alphas: tuple[float, ...] = tuple(10.0**k for k in range(-2, 9))
    inner_splits: int = 5
    n_iter: int = 20
    backend: Literal["numpy", "torch", "torch_cuda"] = "numpy"
    random_state: int = 0

    def __post_init__(self) -> None:
        require(self.n_splits >= 2, "analyses.encoding.n_splits", self.n_splits, ">= 2")
        require(self.time_step >= 1, "analyses.encoding.time_step", self.time_step, ">= 1")
        require(self.inner_splits >= 2, "analyses.encoding.inner_splits", self.inner_splits, ">= 2")
        require(
            self.n_components is None or self.n_components >= 1,
            "analyses.encoding.n_components",
            self.n_components,
            ">= 1 or null (no PCA)",
        )
        require(
            len(self.alphas) >= 1 and all(a > 0 for a in self.alphas),
            "analyses.encoding.alphas",
            self.alphas,
            "positive penalties",
        )
        require(self.n_iter >= 1, "analyses.encoding.n_iter", self.n_iter, ">= 1")


@dataclass(frozen=True)
class NoiseCeilingConfig:
    """Noise ceilings from the test images shown repeatedly.

    ``rsa_groups``: repetitions are split at random into this many groups, one RDM each;
    None (default) gives one RDM per repetition, the noise level of experiment images seen
    once. ``n_splits`` random split halves for the encoding reliability; ``ci`` the band's
    coverage over splits.
    """

    enabled: bool = True
    rsa_groups: int | None = None
    n_splits: int = 100
    ci: float = 0.95
    random_state: int = 0

    def __post_init__(self) -> None:
        require(
            self.rsa_groups is None or self.rsa_groups >= 2,
            "analyses.noise_ceiling.rsa_groups",
            self.rsa_groups,
            ">= 2 or null (one per repetition)",
        )
        require(self.n_splits >= 1, "analyses.noise_ceiling.n_splits", self.n_splits, ">= 1")
        require(0 < self.ci < 1, "analyses.noise_ceiling.ci", self.ci, "a number in (0, 1)")


@dataclass(frozen=True)
class StatsConfig:
    """Cluster-based sign-flip permutation tests over time, across participants.

    Defaults: 1024 sign flips (the exact test when 2**participants is smaller), cluster-
    forming threshold from MNE (t at p < 0.05 for the tail), significance level 0.05.
    """

    n_permutations: int = 1024
    threshold: float | None = None
    alpha: float = 0.05
    random_state: int = 0

    def __post_init__(self) -> None:
        require(
            self.n_permutations >= 1, "analyses.stats.n_permutations", self.n_permutations, ">= 1"
        )
        require(0 < self.alpha < 1, "analyses.stats.alpha", self.alpha, "a number in (0, 1)")


@dataclass(frozen=True)
class StrataConfig:
    """RSA per stratum of a per-image stimulus measure of ``variants.csv``.

    ``by``: ``fg_fraction`` (default: ``with_background`` / ``little_background``),
    ``haze`` (background showing through the no-background image) or
    ``silhouette_detectability`` (how visible the filled region of the no-foreground image
    is), giving ``<by>_low`` / ``<by>_high``. ``threshold``: the value at or above which an
    image is in the second stratum; None (default) takes the variants'
    ``little_background_above`` (0.9 if absent) for ``fg_fraction`` and the median of the
    measure otherwise. Strata run only when both hold at least ``min_images`` images.
    """

    enabled: bool = True
    by: Literal["fg_fraction", "haze", "silhouette_detectability"] = "fg_fraction"
    threshold: float | None = None
    min_images: int = 20

    def __post_init__(self) -> None:
        require(
            self.threshold is None or 0 < self.threshold <= 1,
            "analyses.strata.threshold",
            self.threshold,
            "a fraction in (0, 1]",
        )
        require(self.min_images >= 3, "analyses.strata.min_images", self.min_images, ">= 3")


VIEWS = ("flat", "global", "grid2", "grid4", "region")


@dataclass(frozen=True)
class VerdictConfig:
    """The figure-versus-ground verdict (``results/verdict.csv``; ``analysis/verdict.py``).

    Contrasts of the RSA curves with bootstrap intervals over images (and participants for the
    group) and max-t family-wise error control over the times from ``tmin`` to ``tmax``
    (seconds; default: every post-stimulus time). ``min_conditions`` images (or concepts) and
    ``min_participants`` participants (group) are needed for a test; fewer give
    ``untestable``. ``headline_view``: the view of the report's headline sentence (None: the
    first position-tolerant view analysed, ``region`` before ``global``). ``random_state`` draws
    the participants of the group bootstrap (images use ``analyses.rsa.random_state``).
    """

    enabled: bool = True
    alpha: float = 0.05
    tmin: float | None = 0.0
    tmax: float | None = None
    min_conditions: int = 20
    min_participants: int = 3
    headline_view: str | None = None
    random_state: int = 0

    def __post_init__(self) -> None:
        require(0 < self.alpha < 1, "analyses.verdict.alpha", self.alpha, "a number in (0, 1)")
        require(
            self.min_conditions >= 3,
            "analyses.verdict.min_conditions",
            self.min_conditions,
            ">= 3",
        )
        require(
            self.min_participants >= 2,
            "analyses.verdict.min_participants",
            self.min_participants,
            ">= 2",
        )
        require(
            self.headline_view is None or self.headline_view in VIEWS,
            "analyses.verdict.headline_view",
            self.headline_view,
            f"one of {', '.join(VIEWS)} or null",
        )


@dataclass(frozen=True)
class AnalysesConfig:
    """Which analyses run, and how.

    ``models``: feature stores to analyse, by store key (``resnet50__IMAGENET1K_V1``) or
    model name; empty (default) analyses every store. ``views``: how each layer's map is
    read by the RSA and the verdict (``analysis/views.py``): ``flat`` (every unit at every
    position), ``global`` (channels averaged over positions), ``grid2`` / ``grid4`` (averaged
    in 2 x 2 / 4 x 4 cells) and ``region`` (each variant averaged over its own region: the
    figure over the object's cells, the ground over the rest; needs the variants' masks).
    """

    seed_method: SeedMethodConfig = SeedMethodConfig()
    responses: ResponsesConfig = ResponsesConfig()
    rsa: RsaConfig = RsaConfig()
    encoding: EncodingConfig = EncodingConfig()
    noise_ceiling: NoiseCeilingConfig = NoiseCeilingConfig()
    stats: StatsConfig = StatsConfig()
    strata: StrataConfig = StrataConfig()
    verdict: VerdictConfig = VerdictConfig()
    mask_partition: MaskPartitionConfig = MaskPartitionConfig()  # noqa: RUF009 (frozen: one shared default is safe)
    readout: ReadoutConfig = ReadoutConfig()  # noqa: RUF009 (frozen: one shared default is safe)
    sensors: SensorsConfig = SensorsConfig()  # noqa: RUF009 (frozen: one shared default is safe)
    decoding: DecodingConfig = DecodingConfig()  # noqa: RUF009 (frozen: one shared default is safe)
    gaze: GazeConfig = GazeConfig()  # noqa: RUF009 (frozen: one shared default is safe)
    views: tuple[Literal["flat", "global", "grid2", "grid4", "region"], ...] = (
        "flat",
        "global",
        "region",
    )
    models: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        require(len(self.views) >= 1, "analyses.views", self.views, "at least one view")
        require(len(set(self.views)) == len(self.views), "analyses.views", self.views, "no repeats")
