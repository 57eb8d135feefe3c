"""One participant's recording files: the neural stage's typed hand-off to the analyses.

The neural stage finds each participant's files (``neural.find_participants``) and hands the
analyses one :class:`Recording` per participant, ``"P<n>"`` -> Recording. The analyses read
responses from it (``neural.read_participant``) and never look at file names themselves.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

#: The fields a Recording's provenance lists for every source, in this order, then the
#: source's own (``gaze`` for THINGS-MEG, ``test_attributes`` for arrays).
COMMON_FIELDS = ("epochs", "attributes", "test", "source", "options")
SOURCE_FIELDS = {"things_meg": ("gaze",), "arrays": ("test_attributes",)}


@dataclasses.dataclass(frozen=True)
class Recording:
    """A participant's files of one neural source.

    Attributes
    ----------
    epochs : Path
        The main file (THINGS-MEG / MNE epochs, or the experiment array); the run
        fingerprints it.
    source : str
        ``things_meg``, ``epochs``, ``things_eeg2`` or ``arrays``.
    attributes : Path or None
        A side table naming each trial's image (THINGS-MEG CSV, THINGS-EEG2 metadata,
        ``P<n>.csv``).
    test : Path or None
        The test-trial file where the source keeps them apart (THINGS-EEG2, arrays).
    test_attributes : Path or None
        The test file's table (arrays).
    gaze : Path or None
        ``gaze_P<n>.npz`` beside THINGS-MEG epochs (``preprocess-meg``), if any.
    options : Mapping
        The study file's options of the source (read-only).
    adjust : callable or None
        Set by ``analyses.gaze`` (exclude or regress): ``adjust(participant, responses)``
        returns the corrected responses; applied whenever the experiment responses are read.
    """

    epochs: Path
    source: str = "things_meg"
    attributes: Path | None = None
    test: Path | None = None
    test_attributes: Path | None = None
    gaze: Path | None = None
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict, hash=False)
    adjust: Callable[[str, Any], Any] | None = dataclasses.field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled with its options as a plain dict (a read-only view does not pickle)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values["options"] = dict(self.options)
        return (_rebuild, (values,))

    def record(self) -> dict[str, str]:
        """The provenance text of the files: each field as ``str``, the source's own last."""
        names = COMMON_FIELDS + SOURCE_FIELDS.get(self.source, ())
        values = {name: getattr(self, name) for name in names}
        values["options"] = dict(self.options)
        return {name: str(value) for name, value in values.items()}

    def with_adjust(self, adjust: Callable[[str, Any], Any] | None) -> Recording:
        """This recording, its experiment responses corrected by ``adjust`` when read."""
        return dataclasses.replace(self, adjust=adjust)


def _rebuild(values: dict[str, Any]) -> Recording:
    return Recording(**values)


def as_recording(entry: Recording | Mapping[str, Any]) -> Recording:
    """``entry`` as a Recording; a mapping with the same keys (a hand-made entry) is accepted."""
    if isinstance(entry, Recording):
        return entry
    known = {f.name for f in dataclasses.fields(Recording)}
    unknown = sorted(set(entry) - known)
    if unknown:
        from figureground.errors import UsageError

        raise UsageError(f"neural entry keys {unknown} unknown; expected some of {sorted(known)}")
    fields = {k: v for k, v in entry.items() if v is not None or k in ("options", "source")}
    for name in ("epochs", "attributes", "test", "test_attributes", "gaze"):
        if fields.get(name) is not None:
            fields[name] = Path(fields[name])
    fields["options"] = dict(fields.get("options") or {})
    return Recording(**fields)


def as_recordings(entries: Mapping[str, Recording | Mapping[str, Any]]) -> dict[str, Recording]:
    """Each participant's entry as a :class:`Recording` (see :func:`as_recording`)."""
    return {participant: as_recording(entry) for participant, entry in entries.items()}
