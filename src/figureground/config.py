"""The study file (YAML) as typed, validated objects.

A study file names the stimuli, segmenter, inpainting, models, weights, layers, neural data,
analyses and output folder. It is read with ``yaml.safe_load`` and validated into frozen
dataclasses; an unknown or misspelt key is an error naming it and the nearest valid key, and
a value of the wrong type is an error naming the key, the value and the expected type.

Relative paths in the study file are resolved against the folder that holds the study file,
so a study folder can be moved as a whole.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from figureground.errors import UsageError


def _require(ok: bool, key: str, value: Any, expected: str) -> None:
    """Raise a one-line UsageError naming ``key`` when a value is out of range."""
    if not ok:
        raise UsageError(f"{key}: {value!r} is out of range; expected {expected}")


@dataclass(frozen=True)
class StimuliConfig:
    """Where the stimulus images are and how to read them."""

    root: str = ""
    layout: Literal["things", "folder", "csv"] = "things"
    exemplars: int | None = 12
    csv: str | None = None
    demo: bool = False  # build the embedded demo set into ``root`` first


@dataclass(frozen=True)
class VariantsConfig:
    """How no-background and no-foreground images are made.

    The fields of ``figureground.variants.VariantParams`` (what changes the images) plus
    how the stage runs (``workers``, ``batch_size``); ``figureground variants`` has an
    option for each (``tests/integration/test_architecture.py`` checks that they stay the same set).
    """

    segmenter: str = "isnet"
    inpaint: Literal["telea", "ns"] = "telea"
    threshold: float = 0.5
    dilate: int = 5
    inpaint_radius: int = 3  # OpenCV's inpainting radius (px, at the working size)
    inpaint_max_side: int = 1024  # inpaint at this long side, then upsample (0: full size)
    fill: tuple[int, int, int] = (255, 255, 255)  # background of no-background images, RGB
    little_background_above: float = 0.9  # fg_fraction from which an image is flagged
    alpha_floor: float = 0.0  # below it, no-background images show only the fill (0 = off)
    workers: int = 1
    batch_size: int = 16  # images per device batch (isnet-torch) or per Dask task

    def __post_init__(self) -> None:
        _require(
            0.0 <= self.alpha_floor <= self.threshold,
            "variants.alpha_floor",
            self.alpha_floor,
            f"0 <= alpha_floor <= threshold ({self.threshold})",
        )


@dataclass(frozen=True)
class ModelConfig:
    """One network, its weights and the layers to take."""

    name: str = "resnet50"
    weights: str = "IMAGENET1K_V1"
    layers: tuple[str, ...] = ("layer2",)
    pool: str = "none"
    seed: int = 0
    resize: int | None = None  # None: the weights' own resize (shorter side) and crop
    crop: int | None = None
    # Used instead, with one logged line, when these weights cannot be had (offline machine).
    fallback: ModelConfig | None = None


@dataclass(frozen=True)
class FeaturesConfig:
    """Networks to run and how."""

    models: tuple[ModelConfig, ...] = (ModelConfig(),)
    batch_size: int = 16
    device: str = "auto"
    dtype: Literal["float32", "float16"] = "float32"
    workers: int = 0
    # Compute precision: bf16/fp16 autocast (a GPU's fast path; 0.7% relative difference for
    # ResNet50 layer2 in bf16, see docs/features.md). Part of the features' cache key.
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"


@dataclass(frozen=True)
class SimulateConfig:
    """A simulated THINGS-MEG data set with a known answer (``neural/simulate.py``).

    ``driver``: what the brain responds to. ``network``: a feature store's embeddings of the
    variants (``model``, ``layer``): ``fg_weight`` on the no-background, ``bg_weight`` on the
    no-foreground and ``image_weight`` on the original embedding. ``pixels``: low-level
    descriptors of the stimulus pixels and the object masks, no network involved:
    ``fg_weight`` on the object's pixels, ``bg_weight`` on the rest, ``image_weight`` on the
    whole image and ``centre_weight`` on a window at the image centre; ``position``
    ``tolerant`` pools each region over the image, ``grid`` per cell of a 4 x 4 grid. Masks:
    ``masks`` (a folder of ``<image_id>.png``) or, when null, the variants' masks.
    Design: ``sessions`` (null: the most exemplars of a concept), ``test_images`` shown once
    per session, ``catch_per_session`` (null: as many as test images).
    """

    driver: Literal["network", "pixels"] = "network"
    fg_weight: float = 1.0
    bg_weight: float = 0.0
    image_weight: float = 0.0
    centre_weight: float = 0.0
    position: Literal["tolerant", "grid"] = "tolerant"
    masks: str | None = None
    snr: float = 1.0
    seed: int = 0
    participants: int = 2
    model: str | None = None  # which model's features drive the simulated brain
    layer: str = "layer2"
    test_images: int = 4
    sessions: int | None = None
    catch_per_session: int | None = None
    evoked_amplitude: float = 0.5

    def __post_init__(self) -> None:
        for name in ("fg_weight", "bg_weight", "image_weight", "centre_weight", "snr"):
            value = getattr(self, name)
            _require(value >= 0, f"neural.simulate.{name}", value, ">= 0")
        _require(
            self.driver == "pixels" or self.centre_weight == 0,
            "neural.simulate.centre_weight",
            self.centre_weight,
            "0 with the network driver (the centre code is a pixel code)",
        )
        _require(self.participants >= 1, "neural.simulate.participants", self.participants, ">= 1")


@dataclass(frozen=True)
class EpochsSourceConfig:
    """Any MNE epochs files (``neural.source: epochs``; ``neural/arrays.py:load_epochs``).

    ``neural.path``: one ``-epo.fif`` file or a folder of ``*P<n>-epo.fif`` files (participant
    ``P<n>``). ``image_column``: the metadata column naming each epoch's image (an id, or an
    image path whose file stem is the id). ``concept_column`` (null: the id before its last
    underscore) and ``session_column`` (null: no sessions; encoding folds then split images).
    ``experiment_query`` / ``test_query``: pandas queries on the metadata choosing the
    experiment epochs (null: every epoch) and the test epochs, every test image shown equally
    often (null: no test data, so no noise ceilings from repetitions and no pairwise decoding).
    """

    image_column: str | None = None
    concept_column: str | None = None
    session_column: str | None = None
    experiment_query: str | None = None
    test_query: str | None = None


@dataclass(frozen=True)
class ThingsEeg2Config:
    """THINGS-EEG2 preprocessed data (``neural.source: things_eeg2``; ``load_things_eeg2``).

    ``neural.path``: the folder of ``sub-<nn>/preprocessed_eeg_training.npy`` (and
    ``preprocessed_eeg_test.npy``, the 80 repetitions of the test images); participant
    ``P<n>``. ``metadata``: ``image_metadata.npy`` (null: ``<path>/image_metadata.npy``).
    Both files are pickles, read only with ``trust_pickle: true``.
    """

    metadata: str | None = None
    trust_pickle: bool = False


@dataclass(frozen=True)
class ArraysConfig:
    """NumPy responses plus a CSV per participant (``neural.source: arrays``; ``load_numpy``).

    ``neural.path``: a folder of ``P<n>.npy`` or ``P<n>.npz`` (items x channels x times) with
    ``P<n>.csv`` (one row per item: ``id_column``, optional ``concept`` and ``session``);
    optional ``P<n>_test.npy|npz`` + ``P<n>_test.csv`` hold test items, each test image
    equally often (its repetitions). ``key``: the npz array (null: ``data`` or the only one).
    Sample times: the npz's ``times``, else ``first_time + arange(n) / sfreq``.
    """

    key: str | None = None
    id_column: str = "image_id"
    sfreq: float | None = None
    first_time: float = 0.0

    def __post_init__(self) -> None:
        _require(
            self.sfreq is None or self.sfreq > 0, "neural.arrays.sfreq", self.sfreq, "> 0 or null"
        )


@dataclass(frozen=True)
class BidsSourceConfig:
    """Raw THINGS-MEG BIDS runs, preprocessed in the run (``neural.source: bids``).

    ``neural.path``: the BIDS root (ds004212). Each participant is preprocessed by
    ``figureground.neural.preprocess`` into ``RUN/neural/preprocessed`` (resumed per run);
    the defaults are the authors' ``MEG/step1_preprocessing.py``: 0.1-40 Hz, -0.1..1.3 s,
    z-score against the baseline, 200 Hz, ``MRO11-1609`` dropped. ``check_onsets``,
    ``onset_tolerance`` and ``lag_tolerance`` (seconds) are our photodiode checks
    (docs/raw_meg.md; unverified on the real recordings). ``eye_tracking``: also epoch the
    EyeLink channels into ``gaze_P{n}.npz`` (``analyses.gaze`` reads them).
    """

    l_freq: float = 0.1
    h_freq: float = 40.0
    tmin: float = -0.1
    tmax: float = 1.3
    baseline_mode: Literal["zscore", "mean", "ratio", "percent", "logratio", "zlogratio"] = "zscore"
    sfreq: float = 200.0
    bad_channels: tuple[str, ...] = ("MRO11-1609",)
    check_onsets: bool = True
    onset_tolerance: float = 0.02
    lag_tolerance: float = 0.05
    eye_tracking: bool = True

    def __post_init__(self) -> None:
        key = "neural.bids"
        _require(0 <= self.l_freq < self.h_freq, f"{key}.l_freq", self.l_freq, "0 <= l < h_freq")
        window = (self.tmin, self.tmax)
        _require(self.tmin < 0 < self.tmax, f"{key}.tmin", window, "tmin < 0 < tmax")
        _require(self.sfreq > 0, f"{key}.sfreq", self.sfreq, "a positive rate in Hz")
        _require(
            self.onset_tolerance >= 0 and self.lag_tolerance >= 0,
            f"{key}.onset_tolerance",
            (self.onset_tolerance, self.lag_tolerance),
            "seconds >= 0",
        )


NEURAL_SOURCES = ("things_meg", "things_eeg2", "epochs", "arrays", "bids", "simulate")


@dataclass(frozen=True)
class NeuralConfig:
    """The recordings: THINGS-MEG, THINGS-EEG2, MNE epochs or NumPy files, or the simulator.

    ``path``: the file or folder of the recordings (every source but ``simulate``);
    ``participants``: the numbers to use (empty: every participant found there). Each source's
    options sit under its own name (``epochs``, ``things_eeg2``, ``arrays``, ``bids``,
    ``simulate``).
    """

    source: Literal["things_meg", "things_eeg2", "epochs", "arrays", "bids", "simulate"] = (
        "simulate"
    )
    path: str | None = None
    participants: tuple[int, ...] = ()
    simulate: SimulateConfig = SimulateConfig()
    epochs: EpochsSourceConfig = EpochsSourceConfig()
    things_eeg2: ThingsEeg2Config = ThingsEeg2Config()
    arrays: ArraysConfig = ArraysConfig()
    bids: BidsSourceConfig = BidsSourceConfig()

    def __post_init__(self) -> None:
        if self.source != "simulate" and not self.path:
            raise UsageError(
                f"neural.path is missing; source {self.source!r} needs the file or folder "
                "of the recordings"
            )
        if self.source == "epochs" and not self.epochs.image_column:
            raise UsageError(
                "neural.epochs.image_column is missing; source 'epochs' needs the metadata "
                "column naming each epoch's image"
            )
        if self.source == "things_eeg2" and not self.things_eeg2.trust_pickle:
            raise UsageError(
                "neural.things_eeg2.trust_pickle is false; THINGS-EEG2 files are pickles and "
                "unpickling can run code: set it to true only if you trust their source"
            )

    def options(self) -> dict[str, Any]:
        """The options of the chosen source (empty for ``things_meg``), as plain data."""
        section = getattr(self, self.source, None)
        return dataclasses.asdict(section) if section is not None else {}


@dataclass(frozen=True)
class SeedAnalysisConfig:
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
    seed: int = 0
    # The identity version (analysis/seed_identity.py): own embedding vs the others'.
    identity: bool = True
    identity_max_images: int = 500
    n_permutations: int = 1000

    def __post_init__(self) -> None:
        _require(self.batch_size >= 1, "analyses.seed.batch_size", self.batch_size, ">= 1")


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
        _require(self.decim >= 1, "analyses.responses.decim", self.decim, "an integer >= 1")
        if self.tmin is not None and self.tmax is not None:
            _require(self.tmin < self.tmax, "analyses.responses.tmin", self.tmin, "< tmax")


@dataclass(frozen=True)
class RsaConfig:
    """Time-resolved RSA of MEG RDMs against each condition's model RDM.

    Defaults: image and concept levels, correlation distance for MEG and model patterns,
    Spearman comparison, partial RSA (figure given ground and ground given figure),
    1000 bootstrap samples over images (95% percentile intervals) and 1000 permutations of
    the model RDM per participant, seeded with ``seed``. ``batch_size`` is time points per
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
    seed: int = 0
    batch_size: int = 16
    backend: Literal["numpy", "torch", "torch_cuda"] = "numpy"

    def __post_init__(self) -> None:
        _require(len(self.levels) >= 1, "analyses.rsa.levels", self.levels, "at least one level")
        _require(self.n_boot >= 0, "analyses.rsa.n_boot", self.n_boot, ">= 0 (0: no intervals)")
        _require(
            self.n_permutations >= 0,
            "analyses.rsa.n_permutations",
            self.n_permutations,
            ">= 0 (0: no permutation test)",
        )
        _require(0 < self.ci < 1, "analyses.rsa.ci", self.ci, "a number between 0 and 1")
        _require(self.batch_size >= 1, "analyses.rsa.batch_size", self.batch_size, ">= 1")


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
    seed: int = 0

    def __post_init__(self) -> None:
        _require(self.n_splits >= 2, "analyses.encoding.n_splits", self.n_splits, ">= 2")
        _require(self.time_step >= 1, "analyses.encoding.time_step", self.time_step, ">= 1")
        _require(
            self.inner_splits >= 2, "analyses.encoding.inner_splits", self.inner_splits, ">= 2"
        )
        _require(
            self.n_components is None or self.n_components >= 1,
            "analyses.encoding.n_components",
            self.n_components,
            ">= 1 or null (no PCA)",
        )
        _require(
            len(self.alphas) >= 1 and all(a > 0 for a in self.alphas),
            "analyses.encoding.alphas",
            self.alphas,
            "positive penalties",
        )
        _require(self.n_iter >= 1, "analyses.encoding.n_iter", self.n_iter, ">= 1")


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
    seed: int = 0

    def __post_init__(self) -> None:
        _require(
            self.rsa_groups is None or self.rsa_groups >= 2,
            "analyses.noise_ceiling.rsa_groups",
            self.rsa_groups,
            ">= 2 or null (one per repetition)",
        )
        _require(self.n_splits >= 1, "analyses.noise_ceiling.n_splits", self.n_splits, ">= 1")
        _require(0 < self.ci < 1, "analyses.noise_ceiling.ci", self.ci, "a number in (0, 1)")


@dataclass(frozen=True)
class StatsConfig:
    """Cluster-based sign-flip permutation tests over time, across participants.

    Defaults: 1024 sign flips (the exact test when 2**participants is smaller), cluster-
    forming threshold from MNE (t at p < 0.05 for the tail), significance level 0.05.
    """

    n_permutations: int = 1024
    threshold: float | None = None
    alpha: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        _require(
            self.n_permutations >= 1, "analyses.stats.n_permutations", self.n_permutations, ">= 1"
        )
        _require(0 < self.alpha < 1, "analyses.stats.alpha", self.alpha, "a number in (0, 1)")


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
        _require(
            self.threshold is None or 0 < self.threshold <= 1,
            "analyses.strata.threshold",
            self.threshold,
            "a fraction in (0, 1]",
        )
        _require(self.min_images >= 3, "analyses.strata.min_images", self.min_images, ">= 3")


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
        _require(self.mode in GAZE_MODES, f"{key}.mode", self.mode, " | ".join(GAZE_MODES))
        _require(self.tmax is None or self.tmax > self.tmin, f"{key}.tmax", self.tmax, "> tmin")
        for name in ("min_valid_share", "min_on_object", "split"):
            value = getattr(self, name)
            _require(
                value is None or 0.0 <= value <= 1.0, f"{key}.{name}", value, "a share in 0..1"
            )
        _require(self.min_images >= 3, f"{key}.min_images", self.min_images, ">= 3")
        _require(self.density_bins >= 4, f"{key}.density_bins", self.density_bins, ">= 4")


VIEWS = ("flat", "global", "grid2", "grid4", "region")


@dataclass(frozen=True)
class VerdictConfig:
    """The figure-versus-ground verdict (``results/verdict.csv``; ``analysis/verdict.py``).

    Contrasts of the RSA curves with bootstrap intervals over images (and participants for the
    group) and max-t family-wise error control over the times from ``tmin`` to ``tmax``
    (seconds; default: every post-stimulus time). ``min_conditions`` images (or concepts) and
    ``min_participants`` participants (group) are needed for a test; fewer give
    ``untestable``. ``headline_view``: the view of the report's headline sentence (None: the
    first position-tolerant view analysed, ``region`` before ``global``). ``seed`` draws the
    participants of the group bootstrap (images use ``analyses.rsa.seed``).
    """

    enabled: bool = True
    alpha: float = 0.05
    tmin: float | None = 0.0
    tmax: float | None = None
    min_conditions: int = 20
    min_participants: int = 3
    headline_view: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        _require(0 < self.alpha < 1, "analyses.verdict.alpha", self.alpha, "a number in (0, 1)")
        _require(
            self.min_conditions >= 3,
            "analyses.verdict.min_conditions",
            self.min_conditions,
            ">= 3",
        )
        _require(
            self.min_participants >= 2,
            "analyses.verdict.min_participants",
            self.min_participants,
            ">= 2",
        )
        _require(
            self.headline_view is None or self.headline_view in VIEWS,
            "analyses.verdict.headline_view",
            self.headline_view,
            f"one of {', '.join(VIEWS)} or null",
        )


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
    seed: int = 0

    def __post_init__(self) -> None:
        key = "analyses.mask_partition"
        _require(self.n_splits >= 2, f"{key}.n_splits", self.n_splits, ">= 2")
        _require(self.rings >= 1, f"{key}.rings", self.rings, ">= 1")
        _require(self.n_boot >= 1, f"{key}.n_boot", self.n_boot, ">= 1")
        _require(0 < self.ci < 1, f"{key}.ci", self.ci, "a number in (0, 1)")
        _require(self.time_step >= 1, f"{key}.time_step", self.time_step, ">= 1")
        _require(
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
    seed: int = 0

    def __post_init__(self) -> None:
        key = "analyses.readout"
        _require(self.window > 0, f"{key}.window", self.window, "seconds > 0")
        _require(self.n_components >= 1, f"{key}.n_components", self.n_components, ">= 1")
        _require(
            self.n_channel_components >= 1,
            f"{key}.n_channel_components",
            self.n_channel_components,
            ">= 1",
        )
        _require(
            len(self.grid) == 2 and min(self.grid) >= 2,
            f"{key}.grid",
            self.grid,
            "[rows, cols] >= 2",
        )
        _require(self.n_iter >= 1, f"{key}.n_iter", self.n_iter, ">= 1")
        _require(self.n_null >= 1, f"{key}.n_null", self.n_null, ">= 1")
        _require(self.n_splits >= 2, f"{key}.n_splits", self.n_splits, ">= 2")
        _require(self.n_boot >= 1, f"{key}.n_boot", self.n_boot, ">= 1")


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
    seed: int = 0

    def __post_init__(self) -> None:
        key = "analyses.sensors"
        _require(self.n_permutations >= 1, f"{key}.n_permutations", self.n_permutations, ">= 1")
        _require(self.n_peaks >= 1, f"{key}.n_peaks", self.n_peaks, ">= 1")
        _require(self.window > 0, f"{key}.window", self.window, "seconds > 0")
        _require(
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
    seed: int = 0

    def __post_init__(self) -> None:
        key = "analyses.decoding"
        _require(
            self.max_pairs is None or self.max_pairs >= 1,
            f"{key}.max_pairs",
            self.max_pairs,
            ">= 1",
        )
        _require(self.decim >= 1, f"{key}.decim", self.decim, ">= 1")
        _require(self.n_splits >= 2, f"{key}.n_splits", self.n_splits, ">= 2")
        _require(self.n_boot >= 1, f"{key}.n_boot", self.n_boot, ">= 1")


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

    seed: SeedAnalysisConfig = SeedAnalysisConfig()
    responses: ResponsesConfig = ResponsesConfig()
    rsa: RsaConfig = RsaConfig()
    encoding: EncodingConfig = EncodingConfig()
    noise_ceiling: NoiseCeilingConfig = NoiseCeilingConfig()
    stats: StatsConfig = StatsConfig()
    strata: StrataConfig = StrataConfig()
    verdict: VerdictConfig = VerdictConfig()
    mask_partition: MaskPartitionConfig = MaskPartitionConfig()
    readout: ReadoutConfig = ReadoutConfig()
    sensors: SensorsConfig = SensorsConfig()
    decoding: DecodingConfig = DecodingConfig()
    gaze: GazeConfig = GazeConfig()
    views: tuple[Literal["flat", "global", "grid2", "grid4", "region"], ...] = (
        "flat",
        "global",
        "region",
    )
    models: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _require(len(self.views) >= 1, "analyses.views", self.views, "at least one view")
        _require(
            len(set(self.views)) == len(self.views), "analyses.views", self.views, "no repeats"
        )


@dataclass(frozen=True)
class ReportConfig:
    """What the report shows."""

    examples: int = 4


@dataclass(frozen=True)
class StudyConfig:
    """A whole study."""

    name: str = "study"
    output: str = "run"
    stimuli: StimuliConfig = StimuliConfig()
    variants: VariantsConfig = VariantsConfig()
    features: FeaturesConfig = FeaturesConfig()
    neural: NeuralConfig = NeuralConfig()
    analyses: AnalysesConfig = AnalysesConfig()
    report: ReportConfig = ReportConfig()
    base_dir: str = field(default=".", metadata={"internal": True})

    def resolve(self, path: str | None) -> Path | None:
        """A path from the study file, relative to the study file's folder."""
        if path is None:
            return None
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else Path(self.base_dir) / candidate

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (for provenance and hashing); internal fields left out."""
        data = dataclasses.asdict(self)
        data.pop("base_dir", None)
        return data


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def _convert(value: Any, annotation: Any, where: str) -> Any:
    """Check and convert ``value`` to ``annotation``; raise UsageError naming ``where``."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if dataclasses.is_dataclass(annotation):
        return _build(annotation, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _convert(value, option, where)
            except UsageError as exc:
                errors.append(str(exc))
        raise UsageError(
            errors[0]
            if len(errors) == 1
            else f"{where}: {value!r} is not one of {', '.join(_type_name(a) for a in args)}"
        )
    if origin is Literal:
        if value not in args:
            close = difflib.get_close_matches(str(value), [str(a) for a in args], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UsageError(
                f"{where}: {value!r} is not one of {', '.join(repr(a) for a in args)}{hint}"
            )
        return value
    if origin is tuple:
        items = value if isinstance(value, list | tuple) else [value]
        return tuple(_convert(item, args[0], f"{where}[{i}]") for i, item in enumerate(items))
    if annotation is bool:
        if not isinstance(value, bool):
            raise UsageError(f"{where}: {value!r} is not true or false")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UsageError(f"{where}: {value!r} is not an integer")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UsageError(f"{where}: {value!r} is not a number")
        return float(value)
    if annotation is str:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise UsageError(f"{where}: {value!r} is not text")
        return str(value)
    raise UsageError(f"{where}: cannot read a value of type {_type_name(annotation)}")


def _build(cls: type, data: Any, where: str) -> Any:
    """Build dataclass ``cls`` from a mapping, refusing unknown keys with a hint."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UsageError(f"{where or 'study file'}: expected a mapping of keys, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    kwargs = {}
    for key, value in data.items():
        name = f"{where}.{key}" if where else str(key)
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.5)
            hint = (
                f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(fields)}"
            )
            raise UsageError(f"unknown key {name!r} in the study file{hint}")
        kwargs[key] = _convert(value, hints[key], name)
    return cls(**kwargs)


def parse_study(data: Any, base_dir: str | Path = ".") -> StudyConfig:
    """Validate a study mapping (as read from YAML) into a :class:`StudyConfig`."""
    config = _build(StudyConfig, data, "")
    return dataclasses.replace(config, base_dir=str(Path(base_dir).resolve()))


def load_study(path: str | Path) -> StudyConfig:
    """Read and validate a study file (``yaml.safe_load``)."""
    study_path = Path(path)
    try:
        text = study_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"study file {study_path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"study file {study_path} cannot be read: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        place = f" at line {mark.line + 1}" if mark else ""
        raise UsageError(f"study file {study_path} is not valid YAML{place}") from None
    try:
        return parse_study(data, base_dir=study_path.parent)
    except UsageError as exc:
        raise UsageError(f"{study_path}: {exc}") from None
