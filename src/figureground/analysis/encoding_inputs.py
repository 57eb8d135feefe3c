"""Inputs and scores of the encoding models: aligned matrices, targets, folds, correlations.

:func:`align` keeps the images present in the MEG array and every feature set (MEG order);
:func:`response_targets` flattens the responses to one target per sensor and time;
:func:`outer_splits` makes the outer folds, by ``session`` when the MEG array has it (group
k-fold), else plain k-fold (logged); :func:`pearson_columns` and :func:`r2_columns` score
held-out predictions per target. See :mod:`figureground.analysis.encoding`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from sklearn.model_selection import GroupKFold, KFold

from figureground import logs
from figureground.errors import DataError

log = logs.get_logger(__name__)

Split = tuple[np.ndarray, np.ndarray]


def _feature_matrix(features: xr.DataArray | np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    """Image ids (or None for a plain array) and the features flattened to (images, features)."""
    if isinstance(features, xr.DataArray):
        if "image" not in features.dims:
            raise DataError(f"feature array has dims {features.dims}; expected an 'image' dim")
        features = features.transpose("image", ...)
        ids = np.array([str(v) for v in features["image"].values], dtype=str)
        values = np.asarray(features.values)
        return ids, values.reshape(values.shape[0], -1)
    values = np.asarray(features)
    if values.ndim < 2:
        raise DataError(f"feature array has shape {values.shape}; expected (image, ...)")
    return None, values.reshape(values.shape[0], -1)


def align(
    meg: xr.DataArray, *features: xr.DataArray | np.ndarray
) -> tuple[xr.DataArray, list[np.ndarray]]:
    """Keep the images present in the MEG array and every feature set, in MEG order.

    Plain arrays carry no ids and must already follow the MEG image order.

    Returns
    -------
    The MEG array restricted to the common images, and one (images, features) matrix per
    feature set in the same order.
    """
    if tuple(meg.dims[:1]) != ("image",) or meg.ndim != 3:
        raise DataError(f"MEG array has dims {meg.dims}; expected ('image', 'channel', 'time')")
    meg = meg.transpose("image", "channel", "time")
    meg_ids = np.array([str(v) for v in meg["image"].values], dtype=str)
    if len(set(meg_ids)) != len(meg_ids):
        raise DataError("MEG array has repeated image ids; average repetitions first")
    parsed = [_feature_matrix(f) for f in features]
    keep = np.ones(len(meg_ids), dtype=bool)
    for k, (ids, values) in enumerate(parsed):
        if ids is None:
            if len(values) != len(meg_ids):
                raise DataError(
                    f"feature set {k} is a plain array with {len(values)} rows but the MEG "
                    f"array has {len(meg_ids)} images; pass a DataArray with image ids"
                )
            continue
        if len(set(ids)) != len(ids):
            raise DataError(f"feature set {k} has repeated image ids")
        keep &= np.isin(meg_ids, ids)
    if not keep.any():
        example = meg_ids[0] if len(meg_ids) else "<none>"
        raise DataError(
            f"no image id is shared by the MEG array and the features (MEG has e.g. {example!r})"
        )
    if not keep.all():
        log.info("encoding: %d of %d MEG images have features", keep.sum(), len(meg_ids))
    common = meg_ids[keep]
    matrices = []
    for ids, values in parsed:
        if ids is None:
            matrices.append(values[keep])
        else:
            position = pd.Index(ids).get_indexer(common)
            matrices.append(values[position])
    return meg.isel(image=np.flatnonzero(keep)), matrices


def outer_splits(meg: xr.DataArray, n_splits: int = 5, seed: int = 0) -> list[Split]:
    """Train/test image indices: group k-fold over ``session``, else shuffled k-fold by image."""
    n_images = meg.sizes["image"]
    if "session" in meg.coords:
        sessions = np.asarray(meg["session"].values)
        n_sessions = len(np.unique(sessions))
        if n_sessions >= 2:
            splitter = GroupKFold(n_splits=min(n_splits, n_sessions))
            return list(splitter.split(np.zeros(n_images), groups=sessions))
        log.warning("only one session in the MEG array; folds split images instead")
    else:
        log.info("MEG array has no 'session' coordinate; folds split images (k-fold)")
    if n_images < 2:
        raise DataError(f"cannot cross-validate with {n_images} image(s)")
    splitter = KFold(n_splits=min(n_splits, n_images), shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(n_images)))


def train_folds(n_train: int, groups: np.ndarray | None, n_splits: int, seed: int) -> list[Split]:
    """Inner cross-validation folds on the training images: by group when several, else k-fold."""
    if groups is not None and len(np.unique(groups)) >= 2:
        splitter = GroupKFold(n_splits=min(n_splits, len(np.unique(groups))))
        return list(splitter.split(np.zeros(n_train), groups=groups))
    splitter = KFold(n_splits=min(n_splits, n_train), shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(n_train)))


def pearson_columns(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Pearson r between matching columns of two (samples, targets) arrays (NaN if constant)."""
    a = np.asarray(y_true, dtype=np.float64)
    b = np.asarray(y_pred, dtype=np.float64)
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    denominator = np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (a * b).sum(axis=0) / denominator, np.nan)


def r2_columns(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """R² per column, sums of squares about the column mean of ``y_true`` (sklearn's)."""
    a = np.asarray(y_true, dtype=np.float64)
    residual = ((a - np.asarray(y_pred, dtype=np.float64)) ** 2).sum(axis=0)
    total = ((a - a.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 1.0 - residual / total, np.nan)


def response_targets(meg: xr.DataArray, dtype: str) -> np.ndarray:
    """MEG (image, channel, time) as Y (images, channels * times) in ``dtype``.

    Y is divided by its overall standard deviation: recordings in tesla (~1e-13, as raw MEG
    is) would lose all precision in float32 sums of squares, and one global scale changes
    neither Pearson r nor R², nor the ridge penalty chosen by cross-validation.
    """
    values = np.asarray(meg.values, dtype=np.float64)
    if not np.isfinite(values).all():
        raise DataError("MEG array contains NaN or infinite values")
    scale = values.std()
    if scale > 0:
        values = values / scale
    return values.reshape(values.shape[0], -1).astype(dtype, copy=False)


def session_groups(meg: xr.DataArray) -> np.ndarray | None:
    return np.asarray(meg["session"].values) if "session" in meg.coords else None
