"""In-mask ratio of a mask-gated readout, its shuffled-mask null, and the per-window table.

For a readout fitted per time window (:func:`figureground.analysis.readout.fit_readout`),
each image ``i`` gets cell weights ``w_i = s_in * m_i + s_out * (1 - m_i)``. Its *in-mask
ratio* is the share of ``|w_i|`` inside the mask (cells weighted by ``m_i``) divided by the
share of the grid the mask covers: 1 when the readout ignores the object, above 1 when it
reads the object (figure), below 1 when it reads the rest (ground). Images whose masks
cover under ``min_share`` or over ``max_share`` of the grid are skipped.

Objects in THINGS sit near the image centre, so a readout of the centre alone also has a
ratio above 1. The *null* therefore shuffles the masks across images and refits the readout
with the shuffled masks, exactly as the real fit (same start, penalties, iterations and
tolerance), ``n_null`` times: a readout of fixed image positions fits the shuffled masks as
well as the real ones, and its null ratios match the observed one. When the responses do not
depend on the masks, real and shuffled masks are exchangeable and the test is exact.
``p_figure = (1 + #{null >= observed}) / (1 + n_null)`` (one-sided), ``p_ground`` the mirror
(``null <= observed``); with ``n_null = 20`` the smallest p is 1/21 = 0.048. The shuffles
are the same in every window (drawn from ``seed``).

``null_iterations=k`` instead warm-starts each null refit from the real fit (its channel
weights) and runs ``k`` alternations: cheaper (k instead of up to ``n_iter`` alternations
per shuffle), but not exchangeable with the real
fit; in windows without signal it rejected too often (pure-noise responses, 8 x 8 grid, 200
images, 40 datasets: p_figure <= 0.05 in 15% with k = 2 against 7.5% with the exact null).

The bootstrap interval resamples images with the maps held fixed (it does not include
refitting).

Predictive accuracy ``r_cv``: group k-fold over sessions (:func:`encoding.outer_splits`); the
response PCA and the readout are fitted on the training images of each fold; Pearson r of
each held-out PC, averaged over PCs and folds. The ratio, null and maps come from the fit on
all images.

The *object-centred map* resamples each image's ``|w_i|`` onto a grid centred on its mask's
centroid and scaled by its radius (``sqrt(area / pi)``, the radius of the disc of equal
area), ``+- span`` radii, and averages over images (cells outside the image do not count).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import xarray as xr

from figureground import logs
from figureground.analysis import readout as ro
from figureground.analysis import readout_inputs as ri
from figureground.analysis.encoding import outer_splits, pearson_columns
from figureground.analysis.readout_maps import (
    maps_dataset,
    object_centred_mean,
    valid_images,
    write_readout_maps,
)
from figureground.errors import DataError, UsageError

log = logs.get_logger(__name__)

TABLE_COLUMNS = [
    "start",
    "stop",
    "time",
    "r_cv",
    "ratio",
    "ci_low",
    "ci_high",
    "null_mean",
    "null_low",
    "null_high",
    "p_figure",
    "p_ground",
    "n_images",
    "n_iter",
    "converged",
]


@dataclass(frozen=True)
class ReadoutSettings:
    """Parameters of :func:`readout_table` (all stored in the maps' attributes)."""

    window_length: float = 0.1  # seconds
    n_components: int = 5  # response PCs per window
    gated: bool = True
    alpha_channel: float = ro.ALPHA_CHANNEL
    alpha_space: float = ro.ALPHA_SPACE
    n_iter: int = ro.N_ITER
    tol: float = ro.TOL
    n_splits: int = 5  # outer folds (by session)
    n_null: int = 20  # mask shuffles
    null_iterations: int | None = None  # None: refit exactly as the real fit (exact null)
    n_boot: int = 1000
    level: float = 0.95  # of the bootstrap interval and the null band
    min_share: float = 0.02
    max_share: float = 0.98
    span: float = 3.0  # object radii either side in the object-centred map
    centred_size: int = 25  # points per side of the object-centred map
    seed: int = 0


__all__ = [
    "TABLE_COLUMNS",
    "ReadoutSettings",
    "bootstrap_interval",
    "inmask_ratio",
    "null_p_values",
    "object_centred_mean",
    "readout_table",
    "shuffled_null",
    "valid_images",
    "write_readout_maps",
]

# ----------------------------------------------------------------------------- ratio


def inmask_ratio(
    s_in: np.ndarray,
    s_out: np.ndarray,
    masks: np.ndarray,
    min_share: float = 0.02,
    max_share: float = 0.98,
) -> np.ndarray:
    """Per image, (mass of ``|w_i|`` inside ``m_i``) / (total mass) / (``m_i``'s share).

    ``masks`` (image, rows, cols); NaN for skipped images (mask share outside the bounds, or
    all weights zero).
    """
    m = masks.reshape(len(masks), -1).astype(np.float64)
    weights = np.abs(ro.cell_weights(s_in.ravel(), s_out.ravel(), m))
    total = weights.sum(axis=1)
    share = m.mean(axis=1)
    keep = valid_images(masks, min_share, max_share) & (total > 0)
    ratio = np.full(len(m), np.nan)
    ratio[keep] = (weights[keep] * m[keep]).sum(axis=1) / total[keep] / share[keep]
    return ratio


def bootstrap_interval(
    values: np.ndarray, n_boot: int, seed: int, level: float = 0.95
) -> tuple[float, float]:
    """Percentile interval of the mean of ``values`` (NaN dropped) over resampled entries."""
    values = values[np.isfinite(values)]
    if len(values) < 2 or n_boot < 1:
        return np.nan, np.nan
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    batch = max(1, 2**22 // len(values))
    for start in range(0, n_boot, batch):
        stop = min(n_boot, start + batch)
        means[start:stop] = values[rng.integers(0, len(values), (stop - start, len(values)))].mean(
            axis=1
        )
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def shuffled_null(
    readout: ro.Readout,
    X: np.ndarray,
    masks: np.ndarray,
    Y: np.ndarray,
    settings: ReadoutSettings = ReadoutSettings(),
    device: str | None = None,
) -> np.ndarray:
    """Mean in-mask ratios (``n_null``,) of refits with masks shuffled across images.

    Each refit is the real fit's procedure (``settings.n_iter``, ``settings.tol``, uniform
    start) with the shuffled masks, or, when ``settings.null_iterations`` is set, that many
    alternations (s-step, then W-step) warm-started from ``readout``. The ratio is measured
    with the same shuffled masks. Shuffles are drawn from ``settings.seed``.
    """
    rng = np.random.default_rng(settings.seed)
    null = np.empty(settings.n_null)
    warm = settings.null_iterations is not None
    for j in range(settings.n_null):
        shuffled = masks[rng.permutation(len(masks))]
        refit = ro.fit_readout(
            X,
            shuffled,
            Y,
            gated=readout.gated,
            alpha_channel=readout.alpha_channel,
            alpha_space=readout.alpha_space,
            n_iter=settings.null_iterations if warm else settings.n_iter,
            tol=0.0 if warm else settings.tol,
            init=readout if warm else None,
            device=device,
        )
        ratio = inmask_ratio(
            refit.s_in, refit.s_out, shuffled, settings.min_share, settings.max_share
        )
        null[j] = np.nanmean(ratio)
    return null


def null_p_values(observed: float, null: np.ndarray) -> tuple[float, float]:
    """One-sided permutation p-values (figure: null >= observed; ground: null <= observed)."""
    n = len(null)
    return (1 + int((null >= observed).sum())) / (1 + n), (1 + int((null <= observed).sum())) / (
        1 + n
    )


# ----------------------------------------------------------------------------- table


def _fit(
    X: np.ndarray, masks: np.ndarray, Y: np.ndarray, settings: ReadoutSettings, device: str | None
) -> ro.Readout:
    """:func:`readout.fit_readout` with the penalties, iterations and tolerance of ``settings``."""
    return ro.fit_readout(
        X,
        masks,
        Y,
        gated=settings.gated,
        alpha_channel=settings.alpha_channel,
        alpha_space=settings.alpha_space,
        n_iter=settings.n_iter,
        tol=settings.tol,
        device=device,
    )


def _fold_scores(
    X: np.ndarray,
    masks: np.ndarray,
    means: np.ndarray,
    splits: list,
    settings: ReadoutSettings,
    device: str | None,
) -> np.ndarray:
    """Held-out Pearson r, mean over PCs, per (window, fold)."""
    scores = np.full((len(means), len(splits)), np.nan)
    for f, (train, test) in enumerate(splits):
        X_train, m_train, X_test, m_test = X[train], masks[train], X[test], masks[test]
        for w, window in enumerate(means):
            basis = ri.fit_components(window[train], settings.n_components)
            fit = _fit(X_train, m_train, basis.transform(window[train]), settings, device)
            predicted = ro.predict(fit, X_test, m_test)
            scores[w, f] = np.nanmean(pearson_columns(basis.transform(window[test]), predicted))
    return scores


def _check_inputs(
    X: np.ndarray,
    masks: np.ndarray,
    responses: np.ndarray,
    sessions: np.ndarray,
    settings: ReadoutSettings,
) -> tuple[np.ndarray, np.ndarray]:
    """``X`` and ``masks`` as float32, checked against each other, the responses and sessions."""
    X = np.asarray(X, dtype=np.float32)
    masks = np.asarray(masks, dtype=np.float32)
    if X.ndim != 4 or masks.shape != (X.shape[0], *X.shape[2:]):
        raise DataError(f"maps {X.shape} and masks {masks.shape} do not match")
    if len(responses) != len(X) or len(sessions) != len(X):
        raise DataError(
            f"{len(X)} images of maps, {len(responses)} of responses, {len(sessions)} sessions"
        )
    if not np.isfinite(X).all():
        raise DataError("reduced maps contain NaN or infinite values")
    if settings.n_null < 1:
        raise UsageError(f"n_null={settings.n_null}; expected at least one shuffle")
    return X, masks


def _window_row(
    windows: pd.DataFrame,
    w: int,
    scores: np.ndarray,
    fit: ro.Readout,
    ratios: np.ndarray,
    null: np.ndarray,
    settings: ReadoutSettings,
) -> dict[str, object]:
    """The table row of window ``w``: score, observed ratio, its interval and the null."""
    observed = float(np.nanmean(ratios))
    low, high = bootstrap_interval(ratios, settings.n_boot, settings.seed, settings.level)
    tail = (1 - settings.level) / 2 * 100
    p_figure, p_ground = null_p_values(observed, null)
    return {
        "start": windows["start"].iloc[w],
        "stop": windows["stop"].iloc[w],
        "time": windows["time"].iloc[w],
        "r_cv": float(np.nanmean(scores)),
        "ratio": observed,
        "ci_low": low,
        "ci_high": high,
        "null_mean": float(null.mean()),
        "null_low": float(np.percentile(null, tail)),
        "null_high": float(np.percentile(null, 100 - tail)),
        "p_figure": p_figure,
        "p_ground": p_ground,
        "n_images": int(np.isfinite(ratios).sum()),
        "n_iter": fit.n_iter,
        "converged": fit.converged,
    }


def _add_window_maps(
    maps: dict[str, list[np.ndarray]],
    fit: ro.Readout,
    masks: np.ndarray,
    valid: np.ndarray,
    settings: ReadoutSettings,
) -> None:
    """Append one window's spatial weights and mean |w_i| maps (image and object-centred)."""
    weights = np.abs(ro.cell_weights(fit.s_in, fit.s_out, masks))
    maps["s_in"].append(fit.s_in)
    maps["s_out"].append(fit.s_out)
    maps["image_map"].append(weights[valid].mean(axis=0))
    maps["object_map"].append(
        object_centred_mean(
            weights,
            masks,
            settings.span,
            settings.centred_size,
            settings.min_share,
            settings.max_share,
        )[0]
    )


def readout_table(
    X: np.ndarray,
    masks: np.ndarray,
    responses: np.ndarray,
    times: np.ndarray,
    sessions: np.ndarray,
    settings: ReadoutSettings = ReadoutSettings(),
    device: str | None = None,
) -> tuple[pd.DataFrame, xr.Dataset]:
    """The mask-gated readout in every time window: scores, in-mask ratio, null and maps.

    Parameters
    ----------
    X : (image, component, rows, cols) reduced maps of the original images
        (:func:`readout_inputs.reduce_maps`).
    masks : (image, rows, cols) object masks on the same grid (:func:`readout_inputs.pool_masks`).
    responses : (image, channel, time) MEG; ``times`` in seconds.
    sessions : (image,) session of each image (outer folds).
    device : torch device for the s-step's normal equations (numpy when None).

    Returns
    -------
    table : one row per window, :data:`TABLE_COLUMNS`.
    maps : Dataset over (time, row, col): ``s_in``, ``s_out``, ``image_map`` (mean |w_i|);
        (time, object_y, object_x): ``object_map``; plus ``object_mask`` and ``mask_mean``
        (the masks averaged in object-centred and image coordinates).
    """
    X, masks = _check_inputs(X, masks, responses, sessions, settings)
    windows, means = ri.window_means(responses, times, settings.window_length)
    index = xr.DataArray(np.arange(len(X)), dims="image", coords={"session": ("image", sessions)})
    splits = outer_splits(index, settings.n_splits, settings.seed)
    log.info(
        "readout: %d images, %d windows, %d folds, %d shuffles",
        len(X),
        len(windows),
        len(splits),
        settings.n_null,
    )
    scores = _fold_scores(X, masks, means, splits, settings, device)
    valid = valid_images(masks, settings.min_share, settings.max_share)
    rows, maps = [], {"s_in": [], "s_out": [], "image_map": [], "object_map": []}
    for w, window in enumerate(logs.progress(means, len(means), "readout windows")):
        Y = ri.fit_components(window, settings.n_components).transform(window)
        fit = _fit(X, masks, Y, settings, device)
        ratios = inmask_ratio(fit.s_in, fit.s_out, masks, settings.min_share, settings.max_share)
        null = shuffled_null(fit, X, masks, Y, settings, device)
        rows.append(_window_row(windows, w, scores[w], fit, ratios, null, settings))
        _add_window_maps(maps, fit, masks, valid, settings)
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    return table, maps_dataset(maps, masks, windows, asdict(settings))
