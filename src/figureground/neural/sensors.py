"""CTF-275 sensor names and positions, as in THINGS-MEG (271 magnetometers)."""

from __future__ import annotations

import numpy as np

# Sensors of the 275-channel CTF layout that THINGS-MEG does not have. MRO11 is the one the
# dataset's authors dropped; the other three are placeholders for the sensors their system
# lacks (we could not check which ones offline), chosen so that exactly 271 remain.
MISSING_SENSORS: tuple[str, ...] = ("MRO11", "MLF25", "MRF43", "MRO13")
N_THINGS_MEG_SENSORS = 271
SENSOR_RADIUS_M = 0.12


def _ctf_layout() -> tuple[list[str], np.ndarray]:
    """Names (without the ``-2622`` suffix) and 2-D box centres of MNE's CTF-275 layout."""
    import mne

    layout = mne.channels.read_layout("CTF-275")
    names = [name.split("-")[0] for name in layout.names]
    centres = layout.pos[:, :2] + layout.pos[:, 2:4] / 2.0
    return names, centres


def things_meg_channel_names() -> list[str]:
    """The 271 CTF sensor names of a THINGS-MEG epochs file, in layout order."""
    names, _ = _ctf_layout()
    kept = [name for name in names if name not in MISSING_SENSORS]
    if len(kept) != N_THINGS_MEG_SENSORS:
        raise RuntimeError(f"CTF-275 layout gave {len(kept)} sensors, expected 271")
    return kept


def sensor_positions(names: list[str]) -> np.ndarray:
    """Positions (metres, head-centred) of ``names`` on a sphere of radius 12 cm.

    The 2-D layout is read as an azimuthal projection of the helmet: distance from its centre
    maps to the polar angle (edge at 110 degrees), direction to the azimuth.
    """
    layout_names, centres = _ctf_layout()
    lookup = dict(zip(layout_names, centres, strict=True))
    missing = [name for name in names if name not in lookup]
    if missing:
        raise ValueError(f"not CTF-275 sensor names: {missing[:5]}")
    xy = np.array([lookup[name] for name in names], dtype=float)
    all_xy = np.asarray(centres, dtype=float)
    centre = all_xy.mean(axis=0)
    radius = np.linalg.norm(all_xy - centre, axis=1).max()
    offset = (xy - centre) / radius
    polar = np.linalg.norm(offset, axis=1) * np.deg2rad(110.0)
    azimuth = np.arctan2(offset[:, 1], offset[:, 0])
    unit = np.column_stack(
        [np.sin(polar) * np.cos(azimuth), np.sin(polar) * np.sin(azimuth), np.cos(polar)]
    )
    return SENSOR_RADIUS_M * unit


def smooth_kernel(positions: np.ndarray, length: float) -> np.ndarray:
    """Gaussian kernel ``exp(-d**2 / (2 length**2))`` of chord distances on the unit sphere."""
    unit = positions / np.linalg.norm(positions, axis=1, keepdims=True)
    sq = np.sum((unit[:, None, :] - unit[None, :, :]) ** 2, axis=-1)
    return np.exp(-sq / (2.0 * length**2))


def things_meg_info(sfreq: float = 200.0):
    """An ``mne.Info`` with the 271 THINGS-MEG sensors as magnetometers, positions set."""
    import mne

    names = things_meg_channel_names()
    info = mne.create_info(names, sfreq, "mag")
    positions = sensor_positions(names)
    with info._unlock():
        for channel, position in zip(info["chs"], positions, strict=True):
            channel["loc"][:3] = position
            channel["loc"][3:] = 0.0
            channel["loc"][9:12] = position / np.linalg.norm(position)  # radial coil normal
    return info
