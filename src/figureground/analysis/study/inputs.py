"""Inputs of the study analyses: recordings, feature stores, condition features."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from figureground import logs
from figureground.conditions import CONDITIONS
from figureground.errors import DataError, UsageError
from figureground.features.store import FeatureStore
from figureground.neural.recording import Recording, as_recordings

log = logs.get_logger(__name__)


# ----------------------------------------------------------------------------- inputs


class LazyRecordings(Mapping[str, Any]):
    """Per-participant experiment responses, loaded on access, one participant in memory.

    A THINGS-MEG participant's responses are 6.8 GB at full size (22,248 images x 271 x 281
    float32); holding four at once would not fit a 24 GB machine. Each access to another
    participant drops the one held and reads the next (chunked, see ``things_meg.load``), so
    analyses that loop over participants more than once pay a re-read, never the memory.
    A recording's ``adjust`` (set by ``analyses.gaze``) is applied to the responses read.
    """

    def __init__(self, neural_files: Mapping[str, Recording], **kwargs: Any):
        self._files = as_recordings(neural_files)
        self._kwargs = kwargs
        self._held: tuple[str, Any] | None = None

    def __getitem__(self, participant: str) -> Any:
        from figureground.neural import read_participant

        if self._held is None or self._held[0] != participant:
            recording = self._files[participant]
            self._held = None  # release the previous participant before reading the next
            responses = read_participant(recording, "exp", **self._kwargs)
            if recording.adjust is not None:  # analyses.gaze: exclude or regress
                responses = recording.adjust(participant, responses)
            self._held = (participant, responses)
        return self._held[1]

    @property
    def held(self) -> str | None:
        """The participant now in memory, if any."""
        return self._held[0] if self._held is not None else None

    def __iter__(self) -> Iterator[str]:
        return iter(self._files)

    def __len__(self) -> int:
        return len(self._files)


def response_window(cfg: Any) -> dict[str, Any]:
    """The responses' window and decimation (``analyses.responses``) as loader arguments."""
    return {"tmin": cfg.responses.tmin, "tmax": cfg.responses.tmax, "decim": cfg.responses.decim}


def load_recordings(neural_files: Mapping[str, Recording], **kwargs: Any) -> LazyRecordings:
    """Per-participant experiment responses, dims (image, channel, time), read lazily."""
    return LazyRecordings(neural_files, **kwargs)


def load_test_recordings(neural_files: Mapping[str, Recording], **kwargs: Any) -> dict[str, Any]:
    """Per-participant test responses, dims (image, repetition, channel, time).

    Participants without test trials are left out (logged); a source that has none (MNE
    epochs without ``test_query``, arrays without ``P<n>_test`` files) is logged once.
    """
    from figureground.neural import has_test, read_participant

    neural_files = as_recordings(neural_files)
    without = sorted(p for p, files in neural_files.items() if not has_test(files))
    if without:
        log.info(
            "no test trials for %s (neural source %s): noise ceilings from repetitions and "
            "pairwise decoding are skipped for them",
            ", ".join(without),
            neural_files[without[0]].source,
        )
    found = {}
    for participant, files in neural_files.items():
        if participant in without:
            continue
        try:
            found[participant] = read_participant(files, "test", **kwargs)
        except DataError as exc:
            log.warning("%s: no usable test trials for noise ceilings (%s)", participant, exc)
    return found


def select_stores(
    feature_stores: Mapping[str, FeatureStore], wanted: Sequence[str]
) -> list[FeatureStore]:
    """The feature stores named in ``wanted`` (store key or model name); all when empty."""
    stores = list(feature_stores.values())
    if not wanted:
        return stores
    names = {s.key for s in stores} | {s.model for s in stores}
    unknown = [w for w in wanted if w not in names]
    if unknown:
        raise UsageError(
            f"analyses.models {unknown} match no feature store; have {', '.join(sorted(names))}"
        )
    return [s for s in stores if s.key in wanted or s.model in wanted]


def held_first(meg: Mapping[str, Any]) -> list[str]:
    """Participants of ``meg``, the one lazily held in memory first (saves one re-read)."""
    participants = list(meg)
    held = getattr(meg, "held", None)
    if held in participants:
        participants.remove(held)
        participants.insert(0, held)
    return participants


def condition_features(info: FeatureStore, layer: str) -> dict[str, Any]:
    """One layer of every condition, loaded, with model and layer in its attributes."""
    from figureground.features.store import open_features

    arrays = {}
    for condition in CONDITIONS:
        dataset = open_features(info.path, condition)
        if layer not in dataset.data_vars:
            raise DataError(
                f"feature store {info.path} ({condition}) has no layer {layer!r}; "
                f"it has {sorted(dataset.data_vars)}"
            )
        array = dataset[layer].load()
        # Zarr gives numpy StringDType ids, which some numpy calls cannot cast; plain str.
        ids = np.array([str(i) for i in array["image"].values])
        array = array.assign_coords(image=ids)
        if "concept" in array.coords:
            array = array.assign_coords(
                concept=("image", np.array([str(c) for c in array["concept"].values]))
            )
        array.attrs.update(model=str(info.model), layer=layer)
        arrays[condition] = array
    return arrays


def post_stimulus(times: np.ndarray) -> np.ndarray:
    return np.asarray(times, dtype=np.float64) >= 0
