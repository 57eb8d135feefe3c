"""Sensor neighbourhoods of an adjacency matrix (MNE's ``ctf275`` template for THINGS-MEG).

A sensor's neighbourhood is itself and its adjacent sensors
(:func:`figureground.neural.sensors.things_meg_adjacency`); the searchlight RSA and the
smoothed encoding maps of :mod:`figureground.analysis.sensor_effects` use them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import sparse

from figureground.errors import UsageError


def square_adjacency(adjacency, n_sensors: int | None = None) -> sparse.csr_array:
    """``adjacency`` as a boolean CSR array, checked square (and of ``n_sensors`` rows)."""
    matrix = sparse.csr_array(adjacency, dtype=bool)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise UsageError(f"adjacency must be a square sensor x sensor matrix; got {matrix.shape}")
    if n_sensors is not None and matrix.shape[0] != n_sensors:
        raise UsageError(
            f"adjacency has {matrix.shape[0]} sensors but the data have {n_sensors}; build it "
            "with things_meg_adjacency(channel names of the data)"
        )
    return matrix


def with_self(adjacency: sparse.csr_array) -> sparse.csr_array:
    """The adjacency with every sensor adjacent to itself."""
    eye = sparse.eye_array(adjacency.shape[0], dtype=bool, format="csr")
    return sparse.csr_array(adjacency + eye, dtype=bool)


def neighbourhoods(adjacency) -> list[np.ndarray]:
    """Each sensor's neighbourhood: its own index and those of its adjacent sensors, sorted.

    ``adjacency`` is a square sensor x sensor matrix (sparse or dense), e.g.
    :func:`figureground.neural.sensors.things_meg_adjacency`. A sensor is in its own
    neighbourhood whether or not the diagonal is set.
    """
    matrix = with_self(square_adjacency(adjacency))
    matrix.sort_indices()
    return [
        matrix.indices[matrix.indptr[i] : matrix.indptr[i + 1]].astype(np.intp)
        for i in range(matrix.shape[0])
    ]


def padded_neighbourhoods(groups: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Neighbourhoods as an index array (sensors, K) and its mask; pads repeat the sensor."""
    width = max(len(group) for group in groups)
    index = np.empty((len(groups), width), dtype=np.intp)
    mask = np.zeros((len(groups), width), dtype=bool)
    for i, group in enumerate(groups):
        index[i] = i
        index[i, : len(group)] = group
        mask[i, : len(group)] = True
    return index, mask


def neighbour_mean(values: np.ndarray, adjacency: sparse.csr_array) -> np.ndarray:
    """Mean of ``values`` (sensor, ...) over each sensor's neighbourhood (self included)."""
    matrix = with_self(adjacency).astype(np.float64)
    counts = np.asarray(matrix.sum(axis=1)).ravel()
    flat = values.reshape(values.shape[0], -1)
    return (matrix @ flat / counts[:, None]).reshape(values.shape)
