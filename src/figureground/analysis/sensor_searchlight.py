"""RSA searchlight over sensors: each sensor neighbourhood's RDM against model RDMs.

For every sensor and time point, the RDM of the patterns over that sensor's neighbourhood
(:func:`figureground.analysis.sensor_neighbours.neighbourhoods`) is compared with each model
RDM (Spearman by default: ranks of the data RDM against ranks of the model RDM, as
:func:`figureground.analysis.rdm_compare.compare_rdms`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import xarray as xr

from figureground import logs
from figureground.analysis.rdm_calc import n_pairs, pair_indices
from figureground.analysis.rdm_compare import METHODS, compare_rdms, rank_rows
from figureground.analysis.sensor_neighbours import (
    neighbourhoods,
    padded_neighbourhoods,
    square_adjacency,
)
from figureground.errors import DataError, UsageError

# Working memory of one searchlight batch (Gram matrices of many sensor x time units).
_BATCH_BYTES = 2**27


def _unit(patterns: np.ndarray, mask: np.ndarray, counts: np.ndarray, centre: bool) -> np.ndarray:
    """Rows of (units, conditions, K) centred over the valid channels (optional), unit length."""
    if centre:
        mean = patterns.sum(axis=-1, keepdims=True) / counts[:, None, None]
        patterns = (patterns - mean) * mask
    norms = np.sqrt(np.einsum("uck,uck->uc", patterns, patterns))[..., None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return patterns / norms


def _gram(patterns: np.ndarray) -> np.ndarray:
    return np.matmul(patterns, patterns.transpose(0, 2, 1))


def _one_minus_gram(centre: bool) -> Callable:
    def distances(patterns, mask, counts, rows, cols):
        gram = _gram(_unit(patterns, mask, counts, centre))
        return 1.0 - gram[:, rows, cols]

    return distances


def _squared_gram(per_channel: bool) -> Callable:
    def distances(patterns, mask, counts, rows, cols):
        gram = _gram(patterns)
        diag = np.einsum("ucc->uc", gram)
        squared = np.maximum(diag[:, rows] + diag[:, cols] - 2.0 * gram[:, rows, cols], 0.0)
        return squared / counts[:, None] if per_channel else squared

    return distances


# name -> distances of (units, conditions, K) zero-padded patterns, condensed (units, pairs);
# definitions as figureground.analysis.rdm_calc (rsatoolbox's calc_rdm)
SEARCHLIGHT_METRICS: dict[str, Callable] = {
    "correlation": _one_minus_gram(centre=True),
    "cosine": _one_minus_gram(centre=False),
    "sqeuclidean": _squared_gram(per_channel=False),
    "euclidean": _squared_gram(per_channel=True),
}


def _patterns_array(patterns: xr.DataArray | np.ndarray) -> tuple[np.ndarray, dict]:
    """(condition, channel, time) values as float64 and the channel / time coordinates."""
    if isinstance(patterns, xr.DataArray):
        if patterns.ndim != 3 or not {"channel", "time"} <= set(patterns.dims):
            raise UsageError(
                f"patterns has dims {patterns.dims}; expected (condition, 'channel', 'time')"
            )
        patterns = patterns.transpose(..., "channel", "time")
        coords = {
            "sensor": np.asarray(patterns["channel"].values),
            "time": np.asarray(patterns["time"].values),
        }
        return np.asarray(patterns.values, dtype=np.float64), coords
    values = np.asarray(patterns, dtype=np.float64)
    if values.ndim != 3:
        raise UsageError(f"patterns has shape {values.shape}; expected (condition, channel, time)")
    return values, {"sensor": np.arange(values.shape[1]), "time": np.arange(values.shape[2])}


def _model_matrix(model_rdms: Mapping[str, np.ndarray], n_conditions: int) -> np.ndarray:
    if not model_rdms:
        raise UsageError("model_rdms is empty; pass {model name: condensed RDM}")
    expected = n_pairs(n_conditions)
    models = np.vstack([np.asarray(rdm, dtype=np.float64).ravel() for rdm in model_rdms.values()])
    if models.shape[1] != expected:
        raise UsageError(
            f"model RDMs have {models.shape[1]} entries; {n_conditions} conditions need "
            f"{expected} (condensed upper triangle in pair_indices order)"
        )
    return models


def sensor_rsa(
    patterns: xr.DataArray | np.ndarray,
    model_rdms: Mapping[str, np.ndarray],
    adjacency,
    *,
    metric: str = "correlation",
    method: str = "spearman",
    n_jobs: int = 1,
) -> xr.DataArray:
    """RSA searchlight over sensors: each neighbourhood's RDM against each model RDM.

    Parameters
    ----------
    patterns : (condition, channel, time) responses; a DataArray with dims ``channel`` and
        ``time`` (and one condition dim) gives the result its sensor names and times.
    model_rdms : {name: condensed RDM (pairs,)}, pairs in :func:`pair_indices` order.
    adjacency : sensor x sensor adjacency of the channels, in the same order
        (:func:`figureground.neural.sensors.things_meg_adjacency`).
    metric : dissimilarity over a neighbourhood's channels, one of
        :data:`SEARCHLIGHT_METRICS` (``correlation``: 1 - Pearson r over the channels).
    method : RDM comparison, one of :data:`figureground.analysis.rdm_compare.METHODS`.
    n_jobs : threads that rank the data RDMs (rank-based methods).

    Returns
    -------
    DataArray ``rsa``, dims (model, sensor, time).

    Notes
    -----
    All sensors and time points are processed together in batches: the neighbourhoods are
    padded to the largest one (padding masked to zero), each (sensor, time) unit's
    condition x condition Gram matrix is one batched matrix product, and the model RDMs are
    ranked once. A data RDM with NaN (a condition whose neighbourhood pattern is constant)
    is compared on its other pairs only, as ``compare_rdms`` does.
    """
    if metric not in SEARCHLIGHT_METRICS:
        raise UsageError(f"metric must be one of {list(SEARCHLIGHT_METRICS)}; got {metric!r}")
    if method not in METHODS:
        raise UsageError(f"method must be one of {list(METHODS)}; got {method!r}")
    values, coords = _patterns_array(patterns)
    n_conditions, n_sensors, n_times = values.shape
    if n_conditions < 3:
        raise DataError(f"sensor RSA needs at least 3 conditions; got {n_conditions}")
    models = _model_matrix(model_rdms, n_conditions)
    index, mask = padded_neighbourhoods(neighbourhoods(square_adjacency(adjacency, n_sensors)))
    rows, cols = pair_indices(n_conditions)
    keep = ~np.isnan(models).any(axis=0)
    if not keep.any():
        raise DataError("every pair is NaN in some model RDM; nothing left to compare")
    ranked, compare = METHODS[method]
    prepared = rank_rows(models[:, keep]) if ranked else models[:, keep]
    distances = SEARCHLIGHT_METRICS[metric]

    n_units = n_sensors * n_times
    unit_bytes = 8 * (n_conditions**2 + 3 * rows.size + 2 * n_conditions * index.shape[1])
    batch = int(max(1, min(n_units, _BATCH_BYTES // unit_bytes)))
    out = np.empty((n_units, len(models)))
    starts = range(0, n_units, batch)
    for start in logs.progress(starts, len(starts), "sensor RSA"):
        units = np.arange(start, min(start + batch, n_units))
        sensor, time = np.divmod(units, n_times)
        unit_mask = mask[sensor][:, None, :]
        block = values[:, index[sensor], time[:, None]].transpose(1, 0, 2) * unit_mask
        rdms = distances(block, unit_mask, mask[sensor].sum(axis=1), rows, cols)[:, keep]
        bad = np.isnan(rdms).any(axis=1)
        good = rdms[~bad]
        if good.size:
            good = rank_rows(good, n_jobs) if ranked else good
            out[units[~bad]] = compare(good, prepared)
        for unit, rdm in zip(units[bad], rdms[bad], strict=True):
            out[unit] = compare_rdms(rdm, models[:, keep], method)[0]
    return xr.DataArray(
        out.reshape(n_sensors, n_times, len(models)).transpose(2, 0, 1),
        dims=("model", "sensor", "time"),
        coords={"model": [str(name) for name in model_rdms], **coords},
        name="rsa",
        attrs={"metric": metric, "method": method, "searchlight": "sensor neighbourhood"},
    )
