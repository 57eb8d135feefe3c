"""Time-resolved RSA: MEG RDMs per time point against model RDMs of each image condition.

The RDM computation lives in :mod:`figureground.analysis.rdm_calc` and the comparisons in
:mod:`figureground.analysis.rdm_compare`; both are re-exported here. Results are tidy
DataFrames that carry their descriptors (participant, condition, time, metric, method,
level), and RDMs convert to and from rsatoolbox's ``RDMs`` objects.

Levels: ``image`` uses one pattern per image; ``concept`` averages MEG responses and model
features over the images of each concept (the MEG data's ``concept`` coordinate) before the
RDMs. The partial RSA takes the no-background model given the no-foreground model and vice
versa (each residualised on the other), so each row says what one variant explains that the
other does not.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from figureground import logs
from figureground.analysis.rdm_calc import (
    ALL_METRICS,
    compute_rdms,
    iter_rdm_batches,
    noise_covariance,
    noise_precision,
)
from figureground.analysis.rdm_compare import METHODS, compare_rdms, rank_rows
from figureground.conditions import NO_BACKGROUND, NO_FOREGROUND
from figureground.errors import DataError, UsageError

if TYPE_CHECKING:
    import xarray as xr

__all__ = [
    "ALL_METRICS",
    "METHODS",
    "compare_rdms",
    "compute_rdms",
    "from_rsatoolbox",
    "iter_rdm_batches",
    "noise_covariance",
    "noise_precision",
    "rsa_timecourse",
    "to_rsatoolbox",
]

log = logs.get_logger(__name__)
LEVELS = ("image", "concept")
PARTIAL_PAIRS = ((NO_BACKGROUND, NO_FOREGROUND), (NO_FOREGROUND, NO_BACKGROUND))


def to_rsatoolbox(
    rdms: np.ndarray,
    descriptors: Mapping[str, Any] | None = None,
    *,
    dissimilarity_measure: str | None = None,
    rdm_descriptors: Mapping[str, Any] | None = None,
    pattern_descriptors: Mapping[str, Any] | None = None,
) -> Any:
    """Condensed RDMs (pairs,) or (n_rdm, pairs) as an ``rsatoolbox.rdm.RDMs`` object."""
    from rsatoolbox.rdm import RDMs

    vectors = np.atleast_2d(np.asarray(rdms))
    return RDMs(
        vectors,
        dissimilarity_measure=dissimilarity_measure,
        descriptors=dict(descriptors or {}),
        rdm_descriptors={k: list(v) for k, v in (rdm_descriptors or {}).items()},
        pattern_descriptors={k: list(v) for k, v in (pattern_descriptors or {}).items()},
    )


def from_rsatoolbox(rdms: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """Condensed vectors (n_rdm, pairs) and the descriptors of an rsatoolbox ``RDMs``.

    Returns
    -------
    vectors : ndarray (n_rdm, pairs)
    info : dict with ``descriptors``, ``rdm_descriptors``, ``pattern_descriptors`` and
        ``dissimilarity_measure``
    """
    return np.asarray(rdms.get_vectors()), {
        "descriptors": dict(rdms.descriptors),
        "rdm_descriptors": dict(rdms.rdm_descriptors),
        "pattern_descriptors": dict(rdms.pattern_descriptors),
        "dissimilarity_measure": rdms.dissimilarity_measure,
    }


def _common_ids(meg: xr.DataArray, model_features: Mapping[str, xr.DataArray]) -> list[str]:
    """Image ids present in the MEG data and in every condition, in MEG order."""
    meg_ids = [str(i) for i in meg["image"].values]
    common = set(meg_ids)
    for arr in model_features.values():
        common &= {str(i) for i in arr["image"].values}
    ids = [i for i in meg_ids if i in common]
    first = next(iter(model_features.values()))
    log.info(
        "RSA: %d of %d MEG images have features in all %d conditions",
        len(ids),
        len(meg_ids),
        len(model_features),
    )
    if len(ids) < 3:
        raise DataError(
            f"RSA needs at least 3 images in both the MEG data (e.g. "
            f"{meg_ids[:3]}) and every condition's features (e.g. "
            f"{[str(i) for i in first['image'].values[:3]]}); {len(ids)} matched"
        )
    return ids


def _group_mean(values: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of rows of ``values`` per group label; groups in sorted order."""
    labels, index = np.unique(groups, return_inverse=True)
    sums = np.zeros((labels.size, *values.shape[1:]), dtype=np.float64)
    np.add.at(sums, index, values)
    counts = np.bincount(index).reshape(-1, *([1] * (values.ndim - 1)))
    return (sums / counts).astype(values.dtype, copy=False), labels


def _patterns(
    meg: xr.DataArray, model_features: Mapping[str, xr.DataArray], ids: list[str], level: str
) -> tuple[np.ndarray, dict[str, np.ndarray], int]:
    """MEG patterns (n, channel, time) and flattened model patterns (n, features)."""
    meg_values = meg.sel(image=ids).transpose("image", "channel", "time").values
    models = {
        name: arr.sel(image=ids).values.reshape(len(ids), -1)
        for name, arr in model_features.items()
    }
    if level == "image":
        return meg_values, models, len(ids)
    if "concept" not in meg.coords:
        raise UsageError(
            "level='concept' needs a 'concept' coordinate along 'image' in the MEG data"
        )
    concepts = np.asarray(meg["concept"].sel(image=ids).values).astype(str)
    meg_values, labels = _group_mean(meg_values, concepts)
    models = {name: _group_mean(values, concepts)[0] for name, values in models.items()}
    return meg_values, models, labels.size


def _partial_method(method: str) -> str:
    """Partial counterpart of a comparison method (rank-based stays rank-based)."""
    rank_based = method in ("spearman", "kendall_tau_a") or method.endswith("spearman")
    return "partial_spearman" if rank_based else "partial_pearson"


def rsa_timecourse(
    meg: xr.DataArray,
    model_features: Mapping[str, xr.DataArray],
    *,
    metric: str = "correlation",
    model_metric: str = "correlation",
    method: str = "spearman",
    level: str = "image",
    partial: bool = True,
    participant: str | None = None,
    batch_size: int = 16,
    backend: str = "numpy",
    device: str | None = None,
    n_jobs: int = 1,
    rdms_out: np.ndarray | None = None,
    model_rdms: np.ndarray | None = None,
) -> pd.DataFrame:
    """Time-resolved RSA of one participant's MEG against each condition's model RDM.

    Parameters
    ----------
    meg : DataArray, dims (image, channel, time)
        Responses with image ids as coordinate (and ``concept`` for the concept level).
    model_features : mapping condition -> DataArray (image, ...)
        Model activations per image condition (``original``, ``no_background``,
        ``no_foreground``); flattened per image. Images are matched by id (inner join over
        all conditions).
    metric, model_metric : str
        RDM metrics for the MEG (per time point) and the model patterns.
    method : str
        Comparison method (:data:`METHODS`).
    level : str
        ``image`` or ``concept``.
    partial : bool
        Add the partial RSA of no_background given no_foreground and vice versa (when both
        conditions are present), with ``method`` ``partial_spearman`` for rank-based methods
        and ``partial_pearson`` otherwise.
    participant : str, optional
        Defaults to ``meg.attrs["participant"]``.
    batch_size, backend, device, n_jobs
        Time points per batch, RDM backend, its device, ranking threads.
    rdms_out : ndarray (times, pairs), optional
        Filled with the MEG RDMs as they are computed (conditions in MEG order, or sorted
        concepts), for callers that need them too (bootstrap, noise ceilings).
    model_rdms : ndarray (conditions, pairs), optional
        The model RDMs of ``model_features`` in their order, when the caller has them
        already (they are then not computed again).

    Returns
    -------
    DataFrame with columns ``participant, condition, given, time, value, metric, method,
    level, model_metric, n_conditions, model, layer`` (``given`` is "" except for partial
    rows, where it names the condition partialled out).
    """
    _check_arguments(meg, model_features, level, method)
    ids = _common_ids(meg, model_features)
    meg_values, model_values, n_cond = _patterns(meg, model_features, ids, level)
    conditions = list(model_values)
    if model_rdms is None:
        model_rdms = np.stack(
            [compute_rdms(model_values[name], model_metric) for name in conditions]
        )
    partial_rows = [
        (a, b) for a, b in PARTIAL_PAIRS if partial and a in model_values and b in model_values
    ]
    times = np.asarray(meg["time"].values, dtype=np.float64)
    batches = iter_rdm_batches(
        meg_values, metric, batch_size=batch_size, backend=backend, device=device
    )
    if rdms_out is not None and rdms_out.shape != (times.size, model_rdms.shape[1]):
        raise UsageError(
            f"rdms_out has shape {rdms_out.shape}; expected {(times.size, model_rdms.shape[1])}"
        )
    batches = logs.progress(batches, total=-(-times.size // batch_size), desc="RSA")
    comparison = _Comparison(method, conditions, model_rdms, partial_rows, n_jobs)
    values, partial_values = comparison.timecourse(batches, times.size, rdms_out)
    common = _descriptors(meg, model_features, participant, metric, level, model_metric, n_cond)
    return _result_table(
        conditions, partial_rows, times, values, partial_values, method, comparison.partial_method
    ).assign(**common)[_COLUMNS]


def _descriptors(
    meg: xr.DataArray,
    model_features: Mapping[str, xr.DataArray],
    participant: str | None,
    metric: str,
    level: str,
    model_metric: str,
    n_cond: int,
) -> dict[str, Any]:
    """The columns every row of :func:`rsa_timecourse`'s table shares."""
    first = next(iter(model_features.values()))
    return {
        "participant": str(
            participant if participant is not None else meg.attrs.get("participant", "")
        ),
        "metric": metric,
        "level": level,
        "model_metric": model_metric,
        "n_conditions": n_cond,
        "model": str(first.attrs.get("model", "")),
        "layer": str(first.attrs.get("layer", first.name or "")),
    }


def _check_arguments(
    meg: xr.DataArray, model_features: Mapping[str, xr.DataArray], level: str, method: str
) -> None:
    """Raise :class:`UsageError` for a bad level, method, empty features or MEG dims."""
    if level not in LEVELS:
        raise UsageError(f"level must be one of {LEVELS}; got {level!r}")
    if method not in METHODS:
        raise UsageError(f"method must be one of {list(METHODS)}; got {method!r}")
    if not model_features:
        raise UsageError("rsa_timecourse needs at least one condition's model features")
    if meg.ndim != 3 or meg.dims[0] != "image" or set(meg.dims) != {"image", "channel", "time"}:
        raise UsageError(f"MEG must have dims (image, channel, time); got {meg.dims}")


class _Comparison:
    """Each batch of MEG RDMs against the model RDMs: plain values, then the partial pairs."""

    def __init__(
        self,
        method: str,
        conditions: list[str],
        model_rdms: np.ndarray,
        partial_rows: list[tuple[str, str]],
        n_jobs: int,
    ) -> None:
        self.method, self.conditions, self.model_rdms = method, conditions, model_rdms
        self.partial_rows, self.n_jobs = partial_rows, n_jobs
        self.partial_method = _partial_method(method)
        # Spearman with partial curves: ranks shared by the plain and the partial comparisons
        # (Pearson of the ranks), when every RDM is finite (NaN pairs take the per-call path).
        self.shared_ranks = None
        if method == "spearman" and partial_rows and np.isfinite(model_rdms).all():
            self.shared_ranks = rank_rows(np.asarray(model_rdms, dtype=np.float64))

    def timecourse(
        self, batches: Iterable[tuple[slice, np.ndarray]], n_times: int, rdms_out: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(times, conditions) values and (times, partial rows) partial values of every
        batch; each batch's RDMs also go to ``rdms_out`` when given."""
        values = np.empty((n_times, len(self.conditions)))
        partial_values = np.empty((n_times, len(self.partial_rows)))
        for time_slice, rdms in batches:
            if rdms_out is not None:
                rdms_out[time_slice] = rdms
            self._batch(rdms, values[time_slice], partial_values[time_slice])
        return values, partial_values

    def _batch(self, rdms: np.ndarray, values: np.ndarray, partial_values: np.ndarray) -> None:
        """Compare one batch of RDMs (times, pairs) into ``values`` and ``partial_values``."""
        n_jobs = self.n_jobs
        plain, partial_kind, ranked_models = self.method, self.partial_method, self.model_rdms
        if self.shared_ranks is not None and np.isfinite(rdms).all():
            # one rank transform per time point for every model and partial comparison
            rdms = rank_rows(rdms, n_jobs=n_jobs)
            plain, partial_kind, ranked_models = "pearson", "partial_pearson", self.shared_ranks
        values[...] = compare_rdms(rdms, ranked_models, plain, n_jobs=n_jobs)
        for col, (target, given) in enumerate(self.partial_rows):
            pair = np.stack(
                [
                    ranked_models[self.conditions.index(target)],
                    ranked_models[self.conditions.index(given)],
                ]
            )
            partial_values[:, col] = compare_rdms(rdms, pair, partial_kind, n_jobs=n_jobs)[:, 0]


_COLUMNS = [
    "participant",
    "condition",
    "given",
    "time",
    "value",
    "metric",
    "method",
    "level",
    "model_metric",
    "n_conditions",
    "model",
    "layer",
]


def _result_table(
    conditions: list[str],
    partial_rows: list[tuple[str, str]],
    times: np.ndarray,
    values: np.ndarray,
    partial_values: np.ndarray,
    method: str,
    partial_method: str,
) -> pd.DataFrame:
    """One row per condition (then per partial pair) and time point, without descriptors."""
    tables = [
        pd.DataFrame(
            {"condition": name, "given": "", "time": times, "value": values[:, k], "method": method}
        )
        for k, name in enumerate(conditions)
    ]
    tables += [
        pd.DataFrame(
            {
                "condition": target,
                "given": given,
                "time": times,
                "value": partial_values[:, k],
                "method": partial_method,
            }
        )
        for k, (target, given) in enumerate(partial_rows)
    ]
    return pd.concat(tables, ignore_index=True)
