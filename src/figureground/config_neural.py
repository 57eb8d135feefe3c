"""The study file's ``neural`` section: the recordings and each source's options.

Part of :mod:`figureground.config`, which re-exports every name here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from figureground.config_checks import require
from figureground.errors import UsageError


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
    random_state: int = 0
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
            require(value >= 0, f"neural.simulate.{name}", value, ">= 0")
        require(
            self.driver == "pixels" or self.centre_weight == 0,
            "neural.simulate.centre_weight",
            self.centre_weight,
            "0 with the network driver (the centre code is a pixel code)",
        )
        require(self.participants >= 1, "neural.simulate.participants", self.participants, ">= 1")


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
        require(
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
        require(0 <= self.l_freq < self.h_freq, f"{key}.l_freq", self.l_freq, "0 <= l < h_freq")
        window = (self.tmin, self.tmax)
        require(self.tmin < 0 < self.tmax, f"{key}.tmin", window, "tmin < 0 < tmax")
        require(self.sfreq > 0, f"{key}.sfreq", self.sfreq, "a positive rate in Hz")
        require(
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
