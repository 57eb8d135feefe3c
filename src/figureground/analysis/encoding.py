"""Encoding models: ridge regression from network features to MEG, and variance partitioning.

Every sensor at every time point is one target of a single multi-target ridge fit: the MEG
array ``(image, channel, time)`` is flattened to ``Y`` of shape ``(images, channels * times)``,
so one fit serves all time points. Features are reduced by PCA fitted on the training images
of each fold only, the ridge penalty is chosen by an inner cross-validation on the training
images only, and the model is scored on held-out images.

Outer folds follow the ``session`` coordinate of the MEG array (group k-fold), so that no
session contributes images to both training and test; without that coordinate the images are
split by plain k-fold (logged).

Scores:

- :func:`encode` -> Pearson r between predicted and measured responses across held-out images,
  per fold, time and sensor.
- :func:`variance_partition` -> cross-validated R² (per target, on held-out images, sums of
  squares about the held-out mean as in ``sklearn.metrics.r2_score``; averaged over folds,
  then over sensors) of the joint foreground + background banded model and of each band
  alone, and the unique / shared components derived from them.

The ridge and banded-ridge fits are :func:`figureground.analysis.banded_ridge.fit_banded_ridge`:
himalaya's random-search algorithm (its Dirichlet band weightings, its penalty selection)
with the cross-validated predictions reordered so that time grows linearly with the images,
where himalaya's own solvers form a test x training images matrix; the results agree with
``himalaya.ridge.RidgeCV`` / ``GroupRidgeCV`` to rounding. They run on himalaya's backend,
which is set in one place, :func:`ridge_backend`, and restored afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType

import numpy as np
import pandas as pd
import xarray as xr
from sklearn.decomposition import PCA

from figureground import logs
from figureground.analysis.encoding_inputs import (
    Split,
    align,
    outer_splits,
    pearson_columns,
    r2_columns,
    response_targets,
    session_groups,
    train_folds,
)
from figureground.errors import UsageError

__all__ = [
    "DEFAULT_ALPHAS",
    "PARTITION_COMPONENTS",
    "PCA",
    "RIDGE_BACKENDS",
    "FoldDesign",
    "RidgeSettings",
    "Split",
    "align",
    "encode",
    "encoding_table",
    "fit_predict",
    "fold_design",
    "outer_splits",
    "pearson_columns",
    "predict_fold",
    "r2_columns",
    "reduce_features",
    "response_targets",
    "ridge_backend",
    "session_groups",
    "variance_partition",
]

log = logs.get_logger(__name__)

RIDGE_BACKENDS = ("numpy", "torch", "torch_cuda")
DEFAULT_ALPHAS = tuple(np.logspace(-2, 8, 11))


@contextmanager
def ridge_backend(name: str = "numpy") -> Iterator[ModuleType]:
    """Use himalaya backend ``name`` inside the block, then restore the previous one.

    The only place in figureground that touches himalaya's backend setting.
    """
    from himalaya.backend import get_backend, set_backend

    if name not in RIDGE_BACKENDS:
        raise UsageError(f"ridge backend {name!r} is not one of {', '.join(RIDGE_BACKENDS)}")
    previous = get_backend()
    try:
        yield set_backend(name, on_error="raise")
    finally:
        set_backend(previous, on_error="raise")


@dataclass(frozen=True)
class RidgeSettings:
    """How each fold's ridge model is fitted.

    Parameters
    ----------
    n_components : number of PCA components per feature band (None: no reduction).
    alphas : ridge penalties tried by the inner cross-validation.
    inner_splits : folds of the inner cross-validation on the training images.
    n_iter : random-search iterations over band weightings (banded ridge only).
    dtype : floating dtype of the arrays handed to himalaya.
    n_targets_batch : targets per solver batch (memory), None for all at once.
    """

    n_components: int | None = 100
    alphas: tuple[float, ...] = DEFAULT_ALPHAS
    inner_splits: int = 5
    n_iter: int = 20
    dtype: str = "float32"
    n_targets_batch: int | None = None


# ----------------------------------------------------------------------------- one fold


def reduce_features(
    X_train: np.ndarray, X_test: np.ndarray, n_components: int | None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Centre (and PCA-reduce) features with statistics of the training images only."""
    if n_components is None:
        mean = X_train.mean(axis=0)
        return X_train - mean, X_test - mean
    n_keep = min(n_components, X_train.shape[0] - 1, X_train.shape[1])
    # An exact SVD is cheaper than sklearn's randomized one for the few thousand images of a
    # study (it is O(images^2 x features)); the randomized solver only for more.
    solver = "full" if X_train.shape[0] <= 5000 else "randomized"
    pca = PCA(n_components=n_keep, random_state=seed, svd_solver=solver)
    train = pca.fit_transform(X_train)
    return train, pca.transform(X_test)


def fit_predict(
    bands_train: Sequence[np.ndarray],
    Y_train: np.ndarray,
    bands_test: Sequence[np.ndarray],
    groups_train: np.ndarray | None = None,
    settings: RidgeSettings = RidgeSettings(),
    seed: int = 0,
) -> np.ndarray:
    """Fit ridge (one band) or banded ridge (several) on training images; predict the test set.

    Features are reduced per band by :func:`reduce_features`; ``Y`` is centred on the
    training mean; the penalty (and band weighting) is chosen by inner cross-validation on
    the training images only. Uses the current himalaya backend (see :func:`ridge_backend`).

    Returns
    -------
    Predicted responses, shape (test images, targets), float64 numpy.
    """
    from figureground.analysis.banded_ridge import fit_banded_ridge

    reduced = [
        reduce_features(tr, te, settings.n_components, seed)
        for tr, te in zip(bands_train, bands_test, strict=True)
    ]
    dtype = settings.dtype
    Xs_train = [r[0].astype(dtype) for r in reduced]
    Xs_test = [r[1].astype(dtype) for r in reduced]
    y_mean = Y_train.mean(axis=0, dtype=np.float64)
    Y_centred = np.asarray(Y_train, dtype=dtype) - y_mean.astype(dtype)
    cv = train_folds(len(Y_train), groups_train, settings.inner_splits, seed)
    alphas = np.asarray(settings.alphas, dtype=dtype)
    # Ridge (one band) and banded ridge, with predictions computed in time linear in the
    # images; with one band every weighting is 1, i.e. ridge with a per-target penalty.
    weights = fit_banded_ridge(
        Xs_train,
        Y_centred,
        alphas,
        settings.n_iter if len(Xs_train) > 1 else 1,
        cv,
        seed,
        n_targets_batch=settings.n_targets_batch,
    )
    predicted = np.concatenate(Xs_test, axis=1) @ weights
    return np.asarray(predicted, dtype=np.float64) + y_mean


@dataclass(frozen=True)
class FoldDesign:
    """Aligned responses and feature matrices with their targets and outer folds."""

    meg: xr.DataArray
    matrices: tuple[np.ndarray, ...]  # one (image, features) matrix per feature set
    Y: np.ndarray  # (image, channel * time) targets, :func:`response_targets`
    groups: np.ndarray | None  # session of each image, :func:`session_groups`
    splits: list[Split]  # :func:`outer_splits`


def fold_design(
    meg: xr.DataArray,
    features: Sequence[xr.DataArray | np.ndarray],
    n_splits: int,
    settings: RidgeSettings,
    seed: int,
) -> FoldDesign:
    """:func:`align` the features to the responses, then their targets, groups and folds."""
    meg, matrices = align(meg, *features)
    Y = response_targets(meg, settings.dtype)
    groups = session_groups(meg)
    splits = outer_splits(meg, n_splits, seed)
    return FoldDesign(meg, tuple(matrices), Y, groups, splits)


def predict_fold(
    design: FoldDesign,
    bands: Sequence[np.ndarray],
    train: np.ndarray,
    test: np.ndarray,
    settings: RidgeSettings,
    seed: int,
) -> np.ndarray:
    """:func:`fit_predict` of the feature matrices ``bands`` on one outer fold."""
    groups = design.groups
    return fit_predict(
        [X[train] for X in bands],
        design.Y[train],
        [X[test] for X in bands],
        None if groups is None else groups[train],
        settings,
        seed,
    )


def encode(
    meg: xr.DataArray,
    features: xr.DataArray | np.ndarray,
    *,
    n_splits: int = 5,
    settings: RidgeSettings = RidgeSettings(),
    seed: int = 0,
    backend: str = "numpy",
) -> xr.DataArray:
    """Cross-validated encoding accuracy of one feature set for every sensor and time.

    Parameters
    ----------
    meg : responses, dims (image, channel, time), coord ``image``; ``session`` optional.
    features : DataArray with dim ``image`` (other dims flattened) or an array in MEG order.
    n_splits : outer folds (group k-fold over sessions when present).
    settings : PCA / ridge settings for each fold.
    seed : seeds the k-fold shuffling, PCA and inner folds.
    backend : himalaya backend ("numpy", "torch", "torch_cuda").

    Returns
    -------
    DataArray ``pearson_r`` with dims (fold, time, channel); ``.mean("fold")`` gives the
    (time, channel) map. Attributes describe the fit.
    """
    design = fold_design(meg, [features], n_splits, settings, seed)
    meg, Y, splits = design.meg, design.Y, design.splits
    n_channels, n_times = meg.sizes["channel"], meg.sizes["time"]
    scores = np.empty((len(splits), n_times, n_channels))
    with ridge_backend(backend):
        for k, (train, test) in enumerate(logs.progress(splits, len(splits), "encoding folds")):
            predicted = predict_fold(design, design.matrices, train, test, settings, seed)
            r = pearson_columns(Y[test], predicted).reshape(n_channels, n_times)
            scores[k] = r.T
    return xr.DataArray(
        scores,
        dims=("fold", "time", "channel"),
        coords={
            "fold": np.arange(len(splits)),
            "time": meg["time"].values,
            "channel": meg["channel"].values,
            "n_test": ("fold", [len(test) for _, test in splits]),
        },
        name="pearson_r",
        attrs={
            "metric": "pearson_r",
            "folds_by": "session" if design.groups is not None else "image",
            "n_images": int(meg.sizes["image"]),
            "n_components": -1 if settings.n_components is None else settings.n_components,
            "seed": seed,
            "backend": backend,
        },
    )


def encoding_table(scores: xr.DataArray, **descriptors: object) -> pd.DataFrame:
    """Tidy per-time summary of :func:`encode`: mean over folds and sensors.

    ``descriptors`` (participant, condition, model, layer, ...) become constant columns.
    """
    per_time = scores.mean("fold").mean("channel")
    table = pd.DataFrame(
        {
            "time": per_time["time"].values,
            "metric": scores.attrs.get("metric", "pearson_r"),
            "value": per_time.values,
        }
    )
    for key, value in descriptors.items():
        table[key] = value
    return table


PARTITION_COMPONENTS = ("joint", "fg", "bg", "unique_fg", "unique_bg", "shared")


def variance_partition(
    meg: xr.DataArray,
    foreground: xr.DataArray | np.ndarray,
    background: xr.DataArray | np.ndarray,
    *,
    n_splits: int = 5,
    settings: RidgeSettings = RidgeSettings(),
    seed: int = 0,
    backend: str = "numpy",
    **descriptors: object,
) -> pd.DataFrame:
    """Unique foreground, unique background and shared explained variance over time.

    Three models per outer fold: banded ridge on both bands (``joint``), ridge on the
    foreground (no-background) features alone (``fg``) and on the background (no-foreground)
    features alone (``bg``). Each is scored by cross-validated R² on the held-out images per
    target (sensor x time), averaged over folds and then over sensors. Then
    ``unique_fg = joint - bg``, ``unique_bg = joint - fg``, ``shared = fg + bg - joint``.

    Returns
    -------
    Tidy DataFrame with columns time, component, value, metric ("r2_cv") and ``descriptors``.
    """
    design = fold_design(meg, [foreground, background], n_splits, settings, seed)
    meg, Y, splits = design.meg, design.Y, design.splits
    X_fg, X_bg = design.matrices
    n_channels, n_times = meg.sizes["channel"], meg.sizes["time"]
    bands = {"joint": (X_fg, X_bg), "fg": (X_fg,), "bg": (X_bg,)}
    r2 = {name: np.zeros(n_channels * n_times) for name in bands}
    with ridge_backend(backend):
        for train, test in logs.progress(splits, len(splits), "variance partition folds"):
            for name, band_set in bands.items():
                predicted = predict_fold(design, band_set, train, test, settings, seed)
                r2[name] += r2_columns(Y[test], predicted) / len(splits)
    per_time = {
        name: values.reshape(n_channels, n_times).mean(axis=0) for name, values in r2.items()
    }
    per_time["unique_fg"] = per_time["joint"] - per_time["bg"]
    per_time["unique_bg"] = per_time["joint"] - per_time["fg"]
    per_time["shared"] = per_time["fg"] + per_time["bg"] - per_time["joint"]
    times = meg["time"].values
    table = pd.DataFrame(
        {
            "time": np.tile(times, len(PARTITION_COMPONENTS)),
            "component": np.repeat(PARTITION_COMPONENTS, n_times),
            "value": np.concatenate([per_time[c] for c in PARTITION_COMPONENTS]),
            "metric": "r2_cv",
        }
    )
    for key, value in descriptors.items():
        table[key] = value
    return table
