"""THINGS-MEG sensor names, channel info and adjacency against MNE's own CTF handling."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import mne
import numpy as np
import pytest
from mne.io.constants import FIFF

from figureground.errors import UsageError
from figureground.neural import sensors


def _template() -> tuple[np.ndarray, list[str]]:
    with mne.utils.use_log_level("error"):
        adjacency, names = mne.channels.read_ch_adjacency("ctf275")
    return adjacency.toarray(), [str(name) for name in names]


def test_channel_names_are_the_271_suffixed_sensors_in_layout_order() -> None:
    names = sensors.things_meg_channel_names()
    assert len(names) == 271 == len(set(names))
    assert names[0] == "MLC11-1609" and names[-1] == "MZP01-1609"
    assert all(name.endswith("-1609") for name in names)
    bare = sensors.things_meg_channel_names(suffix=False)
    assert bare == [sensors.bare_name(name) for name in names]
    layout = [name.split("-")[0] for name in mne.channels.read_layout("CTF-275").names]
    assert bare == [name for name in layout if name not in {"MRO11", "MLF25", "MRF43", "MRO13"}]
    assert set(layout) - set(bare) == {"MRO11", "MLF25", "MRF43", "MRO13"}
    groups = {letter: sum(name[2] == letter for name in bare) for letter in "OTPFC"}
    assert groups == {"O": 39, "T": 68, "P": 45, "F": 67, "C": 52}  # the authors' groups


def test_bare_name_strips_only_a_numeric_system_suffix() -> None:
    assert sensors.bare_name("MLC11-1609") == "MLC11"
    assert sensors.bare_name("MLC11") == "MLC11"
    assert sensors.bare_name("UADC009-2104") == "UADC009"
    assert sensors.bare_name("EEG-Fp1") == "EEG-Fp1"


def test_positions_accept_names_with_or_without_suffix() -> None:
    with_suffix = sensors.sensor_positions(sensors.things_meg_channel_names())
    without = sensors.sensor_positions(sensors.things_meg_channel_names(suffix=False))
    np.testing.assert_array_equal(with_suffix, without)
    np.testing.assert_allclose(np.linalg.norm(with_suffix, axis=1), sensors.SENSOR_RADIUS_M)
    with pytest.raises(ValueError, match="not CTF-275"):
        sensors.sensor_positions(["MLC11-1609", "XYZ01-1609"])


def test_info_channels_are_ctf_axial_gradiometers() -> None:
    info = sensors.things_meg_info(200.0)
    assert info.ch_names == sensors.things_meg_channel_names()
    assert info["sfreq"] == 200.0
    for channel in info["chs"]:
        assert channel["kind"] == FIFF.FIFFV_MEG_CH
        assert channel["coil_type"] == FIFF.FIFFV_COIL_CTF_GRAD == 5001
        assert channel["unit"] == FIFF.FIFF_UNIT_T
        assert channel["coord_frame"] == FIFF.FIFFV_COORD_DEVICE
    assert info.get_channel_types(unique=True) == ["mag"]
    assert len(mne.pick_types(info, meg="mag")) == 271
    assert len(mne.pick_types(info, meg="grad")) == 0
    loc = np.array([channel["loc"] for channel in info["chs"]])
    assert np.isfinite(loc).all()
    np.testing.assert_allclose(loc[:, :3], sensors.sensor_positions(info.ch_names))
    frames = loc[:, 3:12].reshape(-1, 3, 3)  # rows ex, ey, ez
    np.testing.assert_allclose(
        frames @ frames.transpose(0, 2, 1), np.broadcast_to(np.eye(3), frames.shape), atol=1e-12
    )
    np.testing.assert_allclose(np.linalg.det(frames), 1.0)
    radial = loc[:, :3] / np.linalg.norm(loc[:, :3], axis=1, keepdims=True)
    np.testing.assert_allclose(frames[:, 2], radial, atol=1e-12)
    np.testing.assert_allclose(info["dev_head_t"]["trans"], np.eye(4))


def test_compensation_grade_goes_into_the_coil_type_bits() -> None:
    info = sensors.things_meg_info(compensation_grade=3)
    assert {channel["coil_type"] for channel in info["chs"]} == {5001 | 3 << 16} == {201609}
    epochs = mne.EpochsArray(np.zeros((2, 271, 4)), info, verbose="error")
    assert epochs.compensation_grade == 3
    assert mne.find_layout(info).kind == "CTF-275"
    assert (
        mne.EpochsArray(
            np.zeros((2, 271, 4)), sensors.things_meg_info(), verbose="error"
        ).compensation_grade
        == 0
    )
    with pytest.raises(UsageError, match="compensation_grade"):
        sensors.things_meg_info(compensation_grade=5)


def test_mne_finds_the_ctf275_layout_and_adjacency() -> None:
    info = sensors.things_meg_info()
    layout = mne.find_layout(info)
    assert layout.kind == "CTF-275" and len(layout.names) == 275
    with mne.utils.use_log_level("error"):
        adjacency, names = mne.channels.find_ch_adjacency(info, "mag")
    template, template_names = _template()
    assert adjacency.shape == (275, 275)
    assert [str(name) for name in names] == template_names
    np.testing.assert_array_equal(adjacency.toarray(), template)


def test_create_info_mag_would_be_vectorview() -> None:
    """The pitfall things_meg_info avoids: plain 'mag' channels are Neuromag magnetometers."""
    info = mne.create_info(sensors.things_meg_channel_names(), 200.0, "mag")
    assert mne.find_layout(info).kind == "Vectorview-mag"


def test_adjacency_subsets_the_template_in_the_given_order() -> None:
    template, template_names = _template()
    names = sensors.things_meg_channel_names()
    adjacency = sensors.things_meg_adjacency(names)
    assert adjacency.shape == (271, 271) and adjacency.dtype == bool
    dense = adjacency.toarray()
    np.testing.assert_array_equal(dense, dense.T)
    index = [template_names.index(sensors.bare_name(name)) for name in names]
    np.testing.assert_array_equal(dense, template[np.ix_(index, index)])
    i, j = names.index("MLC11-1609"), names.index("MLC12-1609")
    assert template[template_names.index("MLC11"), template_names.index("MLC12")]
    assert dense[i, j] and dense[j, i]
    far = names.index("MRO44-1609")
    assert not dense[i, far]
    picked = ["MLC12", "MZP01-1609", "MLC11"]  # mixed forms, not in template order
    small = sensors.things_meg_adjacency(picked).toarray()
    expected = template[np.ix_(*[[template_names.index(sensors.bare_name(n)) for n in picked]] * 2)]
    np.testing.assert_array_equal(small, expected)
    assert small[0, 2] and small[2, 0]
    np.testing.assert_array_equal(
        sensors.things_meg_adjacency(sensors.things_meg_channel_names(suffix=False)).toarray(),
        dense,
    )


def test_adjacency_rejects_unknown_and_repeated_names() -> None:
    with pytest.raises(UsageError, match="not CTF-275"):
        sensors.things_meg_adjacency(["MLC11-1609", "Fz"])
    with pytest.raises(UsageError, match="more than once"):
        sensors.things_meg_adjacency(["MLC11-1609", "MLC11"])


def test_topomap_plots_on_the_info() -> None:
    info = sensors.things_meg_info()
    data = sensors.sensor_positions(info.ch_names)[:, 0]  # a left-right gradient
    figure, axes = plt.subplots()
    image, _ = mne.viz.plot_topomap(data, info, axes=axes, show=False)
    assert image.get_array().size > 0
    plt.close(figure)


def test_info_survives_a_fif_round_trip(tmp_path: Path) -> None:
    info = sensors.things_meg_info(200.0)
    epochs = mne.EpochsArray(np.zeros((2, 271, 5), dtype=np.float32), info, verbose="error")
    path = tmp_path / "roundtrip-epo.fif"
    epochs.save(path, verbose="error")
    loaded = mne.read_epochs(path, preload=False, verbose="error")
    assert loaded.ch_names == sensors.things_meg_channel_names()
    assert {channel["coil_type"] for channel in loaded.info["chs"]} == {5001}
    assert mne.find_layout(loaded.info).kind == "CTF-275"
    assert len(mne.pick_types(loaded.info, meg="mag")) == 271
