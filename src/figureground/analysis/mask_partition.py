"""Mask-aligned variance partitioning: how much MEG variance is unique to figure, to ground.

The bands are mask-aligned features of the ORIGINAL images
(:mod:`figureground.analysis.mask_aligned`): the figure- and ground-pooled channels and any
nuisance bands (centre, edges, rings, size, silhouette, low-level statistics). Per outer fold
four banded-ridge models (:func:`figureground.analysis.encoding.fit_predict`) are fitted on
the training images and predict the held-out ones:

- ``full``: every band;
- ``without_<figure>`` / ``without_<ground>``: every band but the figure / the ground band;
- ``without_both``: every band but those two (only an intercept when no other band is
  given: the training mean).

Per target (sensor x time), R² is computed over ALL held-out images pooled across folds
(sums of squares about the held-out mean, as ``sklearn.metrics.r2_score``; this differs from
:func:`figureground.analysis.encoding.variance_partition`, which averages per-fold R²), then
averaged over sensors at each time. Components::

    unique_figure = R²(full) - R²(without figure)
    unique_ground = R²(full) - R²(without ground)
    shared        = R²(full) - R²(without both) - unique_figure - unique_ground

``shared`` is the variance that figure and ground explain together beyond the other bands
and that either alone can stand in for. Unique shares are computed given every other band in
the model, so a nuisance band (e.g. ``centre``) that carries what figure carries takes that
variance away from ``unique_figure``.

Intervals come from a bootstrap over images of the held-out predictions: images are
resampled with replacement and every R² and component recomputed (percentile interval).
They describe the uncertainty of the test-set evaluation given the fitted models, not the
variability of the fits themselves, and they ignore the session structure of the images.
The held-out predictions are not stored: each model's predictions of a fold's held-out
images are added at once into the bootstrap sums of squares (one array of (n_boot + 1) x
sensors x times float64 per model, plus two for the responses), so memory does not grow
with the images beyond the responses themselves (held as float64) and the
(n_boot + 1) x images resampling counts.

Finite-sample biases the intervals do not include: cross-validated R² is that of models
fitted on the training images, below the population value by an estimation cost of order
(1 - R²) x features / training images. A band that explains nothing therefore has a
slightly negative unique share, and ``shared`` is pulled below 0 when the bands explain
variance (the single-band models pay a larger cost per feature). Claims need ``ci_low > 0``
and a size well above that scale (see ``tests/analysis/test_mask_aligned.py`` for measured values).

Every data-dependent step sees training images only: band standardisation, the band PCA
(``settings.n_components``) and the target PCA (``n_target_components``) are fitted on the
training images of the fold; the ridge penalty and band weighting are chosen by an inner
cross-validation on the training images (by session when there are several).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from figureground import logs
from figureground.analysis import encoding
from figureground.analysis.encoding import RidgeSettings
from figureground.analysis.mask_partition_group import (
    MIN_GROUP_PARTICIPANTS,
    NO_GROUP_INTERVAL,
    group_partition,
)
from figureground.errors import UsageError

__all__ = [
    "DEFAULT_SETTINGS",
    "METRIC",
    "MIN_GROUP_PARTICIPANTS",
    "NO_GROUP_INTERVAL",
    "group_partition",
    "mask_partition",
]

log = logs.get_logger(__name__)

METRIC = "r2_cv"
DEFAULT_SETTINGS = RidgeSettings()


# ----------------------------------------------------------------------------- folds


def _standardise(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """z-score columns with the training images' mean and SD; constant columns become 0."""
    mean = train.mean(axis=0)
    sd = train.std(axis=0)
    keep = sd > 1e-12 * np.maximum(1.0, np.abs(mean))
    scale = np.where(keep, sd, 1.0)
    return (train - mean) / scale * keep, (test - mean) / scale * keep


def _fit_target_basis(Y_train: np.ndarray, n_components: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-time PCA of the sensors on training responses (images, channel, time).

    Returns the mean (channel, time) and the components (time, k, channel).
    """
    mean = Y_train.mean(axis=0)
    centred = Y_train - mean
    n_keep = min(n_components, Y_train.shape[1], Y_train.shape[0] - 1)
    components = np.empty((Y_train.shape[2], n_keep, Y_train.shape[1]))
    for t in range(Y_train.shape[2]):
        components[t] = np.linalg.svd(centred[:, :, t], full_matrices=False)[2][:n_keep]
    return mean, components


def _project(Y: np.ndarray, mean: np.ndarray, components: np.ndarray) -> np.ndarray:
    """(images, channel, time) -> component scores (images, time * k)."""
    return np.einsum("nct,tkc->ntk", Y - mean, components).reshape(len(Y), -1)


def _back(scores: np.ndarray, mean: np.ndarray, components: np.ndarray) -> np.ndarray:
    """Component scores (images, time * k) -> sensor space (images, channel * time)."""
    n_times, n_keep, _ = components.shape
    values = np.einsum("ntk,tkc->nct", scores.reshape(len(scores), n_times, n_keep), components)
    return (values + mean).reshape(len(scores), -1)


def _models(names: Sequence[str], focus: Sequence[str], extra: Sequence[str]) -> dict:
    """Model name -> the bands it uses."""
    first, second = focus
    models = {
        "full": tuple(names),
        f"without_{first}": tuple(n for n in names if n != first),
        f"without_{second}": tuple(n for n in names if n != second),
        "without_both": tuple(n for n in names if n not in (first, second)),
    }
    for name in extra:
        models[f"without_{name}"] = tuple(n for n in names if n != name)
    return models


def _bootstrap_counts(n_images: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot + 1, images) resampling counts; row 0 is the original sample (all ones)."""
    rng = np.random.default_rng(seed)
    counts = np.ones((n_boot + 1, n_images))
    for b in range(n_boot):
        counts[b + 1] = np.bincount(rng.integers(0, n_images, n_images), minlength=n_images)
    return counts


def _check(
    bands: Mapping[str, object], focus: Sequence[str], extra: Sequence[str], n_boot: int, ci: float
) -> None:
    if len(focus) != 2 or focus[0] == focus[1]:
        raise UsageError(f"focus={tuple(focus)}; expected two different band names")
    missing = [n for n in (*focus, *extra) if n not in bands]
    if missing:
        raise UsageError(f"bands {missing} are not among the bands given: {list(bands)}")
    if "both" in bands:
        raise UsageError("a band may not be called 'both' (the model 'without_both' is reserved)")
    if set(extra) & set(focus):
        raise UsageError(f"report_unique={tuple(extra)} repeats a focus band {tuple(focus)}")
    if n_boot < 1 or not 0 < ci < 1:
        raise UsageError(f"n_boot={n_boot}, ci={ci}; expected n_boot >= 1 and 0 < ci < 1")


def mask_partition(
    meg: xr.DataArray,
    bands: Mapping[str, np.ndarray | xr.DataArray],
    *,
    focus: Sequence[str] = ("figure", "ground"),
    report_unique: Sequence[str] = (),
    settings: RidgeSettings = DEFAULT_SETTINGS,
    n_splits: int = 5,
    seed: int = 0,
    n_boot: int = 1000,
    ci: float = 0.95,
    n_target_components: int | None = None,
    standardise: bool = True,
    backend: str = "numpy",
    **descriptors: object,
) -> pd.DataFrame:
    """Unique figure, unique ground and shared cross-validated R² over time, with intervals.

    Parameters
    ----------
    meg : responses, dims (image, channel, time), coord ``image``; with a ``session``
        coordinate the outer folds are sessions (group k-fold), else shuffled k-fold.
    bands : band name -> features (image, k): DataArrays with an ``image`` dim, or arrays
        in the MEG image order. Must hold the two ``focus`` bands.
    focus : the (figure, ground) bands whose unique and shared shares are reported.
    report_unique : other bands whose unique share (``unique_<name>``) is also reported
        (one more model each), e.g. ``("centre",)``.
    settings : band PCA and ridge settings (:class:`RidgeSettings`).
    n_splits : outer folds (at most the number of sessions).
    seed : seeds the folds, the PCA, the band weightings and the bootstrap.
    n_boot, ci : bootstrap resamples of the images and the interval's coverage.
    n_target_components : None (default) fits every sensor; k > 0 fits the first k
        principal components of the sensors at each time (PCA on the training images of
        the fold) and maps predictions back to the sensors, where R² is computed.
    standardise : z-score each band's columns with the training images' mean and SD.
    backend : himalaya backend ("numpy", "torch", "torch_cuda").
    descriptors : constant columns (participant, model, layer, ...).

    Returns
    -------
    Tidy DataFrame: time, component (``full``, ``unique_<figure>``, ``unique_<ground>``,
    ``shared``, ``unique_<name>`` of ``report_unique``, and the R² of every reduced model
    ``without_*``), value, ci_low, ci_high, metric ("r2_cv"), n_images, descriptors.
    """
    _check(bands, focus, report_unique, n_boot, ci)
    if n_target_components is not None and n_target_components < 1:
        raise UsageError(f"n_target_components={n_target_components}; expected None or >= 1")
    names = list(bands)
    meg, matrices = encoding.align(meg, *bands.values())
    X = dict(zip(names, [np.asarray(m, dtype=np.float64) for m in matrices], strict=True))
    Y = encoding.response_targets(meg, "float64")
    n_images, n_channels, n_times = (meg.sizes[d] for d in ("image", "channel", "time"))
    if n_target_components is not None and n_target_components >= n_channels:
        log.info(
            "n_target_components=%d >= %d sensors: no reduction", n_target_components, n_channels
        )
        n_target_components = None
    groups = encoding.session_groups(meg)
    splits = encoding.outer_splits(meg, n_splits, seed)
    models = _models(names, focus, report_unique)
    counts = _bootstrap_counts(n_images, n_boot, seed)
    fit_options = {
        "settings": settings,
        "seed": seed,
        "n_times": n_times,
        "n_target_components": n_target_components,
        "standardise": standardise,
    }
    with encoding.ridge_backend(backend):
        r2 = _resampled_r2(X, Y, groups, splits, models, counts, n_channels, fit_options)
    components = _components(r2, focus, report_unique)
    return _table(components, meg["time"].values, n_images, ci, descriptors)


def _resampled_r2(
    X: Mapping[str, np.ndarray],
    Y: np.ndarray,
    groups: np.ndarray | None,
    splits: list,
    models: dict,
    counts: np.ndarray,
    n_channels: int,
    fit_options: dict,
) -> dict[str, np.ndarray]:
    """Cross-validated R² (n_boot + 1, time) of every model, mean over sensors, per resample.

    Held-out squared errors and sums of squares are weighted by each row of ``counts``
    (row 0: the images themselves), so every bootstrap resample of the images gets its R²
    without refitting.
    """
    n_boot, n_images = counts.shape[0] - 1, len(Y)
    residual = {m: np.zeros((n_boot + 1, Y.shape[1])) for m in models}
    sum_y = np.zeros((n_boot + 1, Y.shape[1]))
    sum_yy = np.zeros_like(sum_y)
    offset = Y.mean(axis=0)
    for train, test in logs.progress(splits, len(splits), "mask partition folds"):
        weight = counts[:, test]
        for model, values in _fold_predictions(
            X, Y, train, test, None if groups is None else groups[train], models, **fit_options
        ):
            residual[model] += weight @ (Y[test] - values) ** 2
        # about the all-image mean: the same R², no cancellation in sum_yy - sum_y**2 / n
        shifted = Y[test] - offset
        sum_y += weight @ shifted
        sum_yy += weight @ shifted**2
    total = sum_yy - sum_y**2 / n_images
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            m: np.where(total > 0, 1.0 - res / total, np.nan)
            .reshape(n_boot + 1, n_channels, fit_options["n_times"])
            .mean(axis=1)
            for m, res in residual.items()
        }


def _fold_predictions(
    X: Mapping[str, np.ndarray],
    Y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    groups_train: np.ndarray | None,
    models: Mapping[str, tuple[str, ...]],
    *,
    settings: RidgeSettings,
    seed: int,
    n_times: int,
    n_target_components: int | None,
    standardise: bool,
) -> Iterator[tuple[str, np.ndarray]]:
    """(model, held-out predictions (test images, channel * time)) of each model in one fold.

    A generator: one model's predictions are in memory at a time.
    """
    pairs = {
        name: _standardise(x[train], x[test]) if standardise else (x[train], x[test])
        for name, x in X.items()
    }
    Y_train = Y[train]
    if n_target_components is not None:
        Y3 = Y_train.reshape(len(train), -1, n_times)
        mean, basis = _fit_target_basis(Y3, n_target_components)
        Y_train = _project(Y3, mean, basis)
    for model, used in models.items():
        if used:
            values = encoding.fit_predict(
                [pairs[n][0] for n in used],
                Y_train,
                [pairs[n][1] for n in used],
                groups_train,
                settings,
                seed,
            )
        else:
            values = np.broadcast_to(Y_train.mean(axis=0), (len(test), Y_train.shape[1]))
        yield model, values if n_target_components is None else _back(values, mean, basis)


def _components(
    r2: Mapping[str, np.ndarray], focus: Sequence[str], extra: Sequence[str]
) -> dict[str, np.ndarray]:
    first, second = focus
    unique_first = r2["full"] - r2[f"without_{first}"]
    unique_second = r2["full"] - r2[f"without_{second}"]
    out = {
        "full": r2["full"],
        f"unique_{first}": unique_first,
        f"unique_{second}": unique_second,
        "shared": r2["full"] - r2["without_both"] - unique_first - unique_second,
    }
    for name in extra:
        out[f"unique_{name}"] = r2["full"] - r2[f"without_{name}"]
    for model, values in r2.items():
        if model != "full":
            out[model] = values
    return out


def _table(
    components: Mapping[str, np.ndarray],
    times: np.ndarray,
    n_images: int,
    ci: float,
    descriptors: Mapping[str, object],
) -> pd.DataFrame:
    """Rows per (component, time): row 0 of each array is the estimate, the rest resamples."""
    tail = 100 * (1 - ci) / 2
    frames = []
    for name, values in components.items():
        low, high = np.nanpercentile(values[1:], [tail, 100 - tail], axis=0)
        frames.append(
            pd.DataFrame(
                {
                    "time": times,
                    "component": name,
                    "value": values[0],
                    "ci_low": low,
                    "ci_high": high,
                }
            )
        )
    table = pd.concat(frames, ignore_index=True)
    table["metric"] = METRIC
    table["n_images"] = n_images
    for key, value in descriptors.items():
        table[key] = value
    return table
