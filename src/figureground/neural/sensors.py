"""CTF-275 sensor names, positions, channel info and adjacency, as in THINGS-MEG (271 sensors).

Facts used here (see the sources named at each constant):

- The MEG sensors of OpenNeuro ds004212 are named like ``MLC11-1609`` (the CTF system suffix
  ``-1609``) and follow the order of MNE's ``CTF-275`` layout.
- MNE's CTF reader makes them axial gradiometers: kind ``FIFFV_MEG_CH``, coil type
  ``FIFFV_COIL_CTF_GRAD`` (5001, plus the software-gradient grade in the bits above 16), unit
  tesla; MNE therefore types them ``'mag'`` and ``picks='mag'`` selects them.
- MNE's ``ctf275`` adjacency template uses names without the suffix.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from figureground.errors import UsageError

THINGS_MEG_SUFFIX = "-1609"
# Sensors of the CTF-275 layout that the THINGS-MEG system does not have: ds004212's
# channels.tsv (every one of its 470 copies is the same file) lists 272 MEG sensors, exactly the
# 275 layout names without these three.
ABSENT_SENSORS: tuple[str, ...] = ("MLF25", "MRF43", "MRO13")
# Recorded but dropped by the authors before epoching ("one malfunctioning channel ... based on
# experimenter notes": raw.drop_channels('MRO11-1609') in ViCCo-Group/THINGS-data
# MEG/step1_preprocessing.py), so the preprocessed epochs hold 271 sensors.
DROPPED_SENSORS: tuple[str, ...] = ("MRO11",)
MISSING_SENSORS: tuple[str, ...] = DROPPED_SENSORS + ABSENT_SENSORS
N_THINGS_MEG_SENSORS = 271
SENSOR_RADIUS_M = 0.12
COMPENSATION_GRADES = (0, 1, 2, 3)
_SYSTEM_SUFFIX = re.compile(r"-\d+$")


def bare_name(name: str) -> str:
    """A CTF sensor name without its system suffix: ``"MLC11-1609"`` -> ``"MLC11"``.

    Only a trailing ``-<digits>`` is removed, so names such as ``"EEG-Fp1"`` stay unchanged.
    """
    return _SYSTEM_SUFFIX.sub("", str(name))


def _ctf_layout() -> tuple[list[str], np.ndarray]:
    """Names (without the ``-2622`` suffix) and 2-D box centres of MNE's CTF-275 layout."""
    import mne

    layout = mne.channels.read_layout("CTF-275")
    names = [bare_name(name) for name in layout.names]
    centres = layout.pos[:, :2] + layout.pos[:, 2:4] / 2.0
    return names, centres


def things_meg_channel_names(*, suffix: bool = True) -> list[str]:
    """The 271 sensor names of a THINGS-MEG epochs file, in CTF-275 layout order.

    ``suffix=True`` gives the names as the files have them (``"MLC11-1609"``); ``suffix=False``
    gives the bare names of MNE's layouts and adjacency templates (``"MLC11"``).
    """
    names, _ = _ctf_layout()
    kept = [name for name in names if name not in MISSING_SENSORS]
    if len(kept) != N_THINGS_MEG_SENSORS:
        raise RuntimeError(f"CTF-275 layout gave {len(kept)} sensors, expected 271")
    return [name + THINGS_MEG_SUFFIX for name in kept] if suffix else kept


def sensor_positions(names: Sequence[str]) -> np.ndarray:
    """Positions (metres, head-centred) of ``names`` on a sphere of radius 12 cm.

    Names may carry the ``-1609`` suffix or not. The 2-D layout is read as an azimuthal
    projection of the helmet: distance from its centre maps to the polar angle (edge at
    110 degrees), direction to the azimuth.
    """
    layout_names, centres = _ctf_layout()
    lookup = dict(zip(layout_names, centres, strict=True))
    missing = [name for name in names if bare_name(name) not in lookup]
    if missing:
        raise ValueError(f"not CTF-275 sensor names: {missing[:5]}")
    xy = np.array([lookup[bare_name(name)] for name in names], dtype=float)
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


def coil_frames(positions: np.ndarray) -> np.ndarray:
    """Rows of ``ex, ey, ez`` (9 values): a right-handed frame per coil, ``ez`` radial outward.

    ``ex`` and ``ey`` are any orthonormal pair in the plane normal to ``ez``, as MNE's CTF
    reader sets them for axial gradiometers.
    """
    ez = positions / np.linalg.norm(positions, axis=1, keepdims=True)
    near_pole = np.abs(ez[:, 2]) > 0.9
    reference = np.where(near_pole[:, None], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0])
    ex = np.cross(reference, ez)
    ex /= np.linalg.norm(ex, axis=1, keepdims=True)
    ey = np.cross(ez, ex)
    return np.hstack([ex, ey, ez])


def things_meg_info(sfreq: float = 200.0, *, compensation_grade: int = 0):
    """An ``mne.Info`` with the 271 THINGS-MEG sensors as MNE's CTF reader makes them.

    Each channel is a CTF axial gradiometer: kind ``FIFFV_MEG_CH``, coil type
    ``FIFFV_COIL_CTF_GRAD`` (5001), unit tesla (so its type is ``'mag'``), named with the
    ``-1609`` suffix, placed on a 12 cm sphere (:func:`sensor_positions`) with a radial coil
    normal. The device-to-head transform is the identity (the positions are head-centred).
    With it ``mne.find_layout`` gives ``CTF-275`` and ``mne.channels.find_ch_adjacency(info,
    'mag')`` the ``ctf275`` template.

    ``compensation_grade`` is written into the coil type's high bits (``5001 | grade << 16``)
    as MNE's CTF reader does. The default is 0: the grade of the ds004212 recordings is
    unverified (their ``.res4`` headers are not public as text), and the preprocessed epochs
    carry no compensation matrices (``pick_info`` drops them when the reference channels are
    not picked), so a non-zero grade would claim a fact we cannot check while giving MNE no
    matrices to change it with. Layout and adjacency detection mask these bits, so they do not
    change what MNE finds. Pass 3 to mimic a third-order-compensated recording.

    Notes
    -----
    MNE has no public way to create CTF channels (``create_info``/``set_channel_types`` give
    ``'mag'`` channels the Neuromag coil ``FIFFV_COIL_VV_MAG_T3``, for which ``find_layout``
    returns ``Vectorview-mag``). The channel dictionaries in ``info['chs']`` are plain
    dictionaries that MNE lets callers edit (its tutorials edit ``loc`` the same way), so
    coil type and location are set there; no ``Info`` lock is bypassed.
    """
    import mne
    from mne.io.constants import FIFF

    if compensation_grade not in COMPENSATION_GRADES:
        raise UsageError(
            f"compensation_grade={compensation_grade!r}; expected one of {COMPENSATION_GRADES}"
        )
    names = things_meg_channel_names()
    info = mne.create_info(names, sfreq, "mag")  # kind FIFFV_MEG_CH, unit T
    info["dev_head_t"] = mne.transforms.Transform("meg", "head")
    positions = sensor_positions(names)
    frames = coil_frames(positions)
    coil_type = int(FIFF.FIFFV_COIL_CTF_GRAD) | (compensation_grade << 16)
    for channel, position, frame in zip(info["chs"], positions, frames, strict=True):
        channel["coil_type"] = coil_type
        channel["loc"][:3] = position
        channel["loc"][3:12] = frame
    return info


def things_meg_adjacency(ch_names: Sequence[str]):
    """Sensor adjacency of ``ch_names`` from MNE's ``ctf275`` template.

    ``mne.channels.find_ch_adjacency`` returns the whole 275 x 275 template with names
    without suffix; this takes the rows and columns of ``ch_names`` (with or without the
    ``-1609`` suffix) in their order. Returns a ``scipy.sparse.csr_array`` of bools,
    symmetric, with each sensor adjacent to itself as in the template. Raises UsageError for
    names that are not CTF-275 sensors or that repeat.
    """
    import mne

    with mne.utils.use_log_level("error"):
        adjacency, template = mne.channels.read_ch_adjacency("ctf275")
    position = {str(name): i for i, name in enumerate(template)}
    bare = [bare_name(name) for name in ch_names]
    unknown = [name for name, key in zip(ch_names, bare, strict=True) if key not in position]
    if unknown:
        raise UsageError(f"channels {unknown[:5]} are not CTF-275 sensors (e.g. 'MLC11-1609')")
    if len(set(bare)) != len(bare):
        repeated = sorted({key for key in bare if bare.count(key) > 1})
        raise UsageError(f"channels {repeated[:5]} appear more than once in ch_names")
    index = np.array([position[key] for key in bare], dtype=int)
    return adjacency.tocsr()[index][:, index]
