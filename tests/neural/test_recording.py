"""The neural stage's typed hand-off: Recording."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from figureground.errors import UsageError
from figureground.neural import find_participants, has_test
from figureground.neural.recording import Recording, as_recording, as_recordings


def test_record_is_the_text_of_the_earlier_dictionary_entries(tmp_path: Path) -> None:
    epochs = tmp_path / "preprocessed_P1-epo.fif"
    recording = Recording(epochs=epochs, attributes=None, gaze=tmp_path / "gaze_P1.npz")
    earlier = {  # what the neural stage handed over before, written with str() per value
        "epochs": epochs,
        "attributes": None,
        "test": None,
        "source": "things_meg",
        "options": {},
        "gaze": tmp_path / "gaze_P1.npz",
    }
    assert recording.record() == {k: str(v) for k, v in earlier.items()}
    arrays = Recording(epochs=epochs, source="arrays", options={"sfreq": 100.0})
    assert list(arrays.record()) == [
        "epochs",
        "attributes",
        "test",
        "source",
        "options",
        "test_attributes",
    ]
    assert arrays.record()["options"] == "{'sfreq': 100.0}"


def test_recordings_are_frozen_and_options_read_only(tmp_path: Path) -> None:
    recording = Recording(epochs=tmp_path / "a.fif", options={"key": "x"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        recording.epochs = tmp_path / "b.fif"  # type: ignore[misc]
    with pytest.raises(TypeError):
        recording.options["key"] = "y"  # type: ignore[index]
    adjusted = recording.with_adjust(lambda participant, responses: responses)
    assert recording.adjust is None and adjusted.adjust is not None
    assert adjusted == recording  # the adjustment is not part of what the files are


def test_mappings_are_read_as_recordings_and_unknown_keys_refused(tmp_path: Path) -> None:
    entry = {"epochs": str(tmp_path / "P1.npy"), "source": "arrays", "test": None}
    recording = as_recording(entry)
    assert recording.epochs == tmp_path / "P1.npy" and recording.test is None
    assert not has_test(entry) and not has_test(recording)
    assert as_recordings({"P1": recording})["P1"] is recording
    with pytest.raises(UsageError, match=r"neural entry keys \['epoch'\] unknown"):
        as_recording({"epoch": tmp_path / "P1.npy"})


def test_things_meg_participants_are_found_as_recordings(tmp_path: Path) -> None:
    (tmp_path / "preprocessed_P2-epo.fif").write_bytes(b"")
    (tmp_path / "gaze_P2.npz").write_bytes(b"")
    found = find_participants("things_meg", tmp_path, {})
    assert list(found) == ["P2"]
    assert isinstance(found["P2"], Recording)
    assert found["P2"].gaze == tmp_path / "gaze_P2.npz" and found["P2"].source == "things_meg"


def test_recordings_pickle_and_hash_without_their_options(tmp_path: Path) -> None:
    import pickle

    recording = Recording(epochs=tmp_path / "P1.npy", source="arrays", options={"sfreq": 100.0})
    again = pickle.loads(pickle.dumps(recording))
    assert again == recording and again.options == {"sfreq": 100.0}
    assert hash(again) == hash(recording)
    with pytest.raises(TypeError):
        again.options["sfreq"] = 1.0  # type: ignore[index]
    with pytest.raises(UsageError, match="neural source None unknown"):
        from figureground.neural import read_participant

        read_participant({"epochs": tmp_path / "P1.npy", "source": None}, "exp")
