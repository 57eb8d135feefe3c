"""Cross-decoding: which network features identify held-out images from their MEG responses.

For each feature set (``figure`` = the no-background embedding, ``ground`` = the
no-foreground embedding, ``original``, ...), a ridge encoding model
(:func:`figureground.analysis.encoding.fit_predict`: PCA and penalty chosen on the training
images only) predicts the responses (every sensor at every time) of the images of a held-out
fold of sessions (:func:`~figureground.analysis.encoding.outer_splits`). At each time point
the predictions then identify the held-out images by 2-vs-2 tests (Mitchell et al. 2008):
for a pair ``(a, b)`` the test is passed when
``r(pred_a, true_a) + r(pred_b, true_b) > r(pred_a, true_b) + r(pred_b, true_a)``, with ``r``
the Pearson correlation of the two sensor patterns (exact ties count 0.5). Pairs are formed
within a fold (all of them, or a seeded subset of ``max_pairs`` per fold). Chance is 0.5.

The value is the mean over pairs; its interval is a percentile bootstrap over images: the
held-out images are resampled with replacement and each pair is weighted by the product of
its two images' counts (pairs of an image with its own copy drop out), so the interval
reflects which images were shown. The contrast (``figure_minus_ground``) is the same
statistic of the per-pair difference, with the same resamples: a paired interval.

:func:`group_decoding` averages participants' tables and bootstraps over participants.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import xarray as xr

from figureground import logs
from figureground.analysis.decoding import select_pairs, vote
from figureground.analysis.encoding import (
    FoldDesign,
    RidgeSettings,
    fold_design,
    predict_fold,
    ridge_backend,
)
from figureground.errors import DataError, UsageError

log = logs.get_logger(__name__)

IDENTIFICATION = "identification_2v2"
GROUP = "group"
DEFAULT_SETTINGS = RidgeSettings()
PER_PARTICIPANT = ("value", "ci_low", "ci_high", "n_images", "n_pairs")


# ----------------------------------------------------------------------------- 2-vs-2


def unit_patterns(responses: np.ndarray, what: str = "responses") -> np.ndarray:
    """(image, channel, time) centred over channels and scaled to unit norm per image and time.

    The dot product of two such patterns is their Pearson correlation over channels.
    """
    values = np.asarray(responses, dtype=np.float64)
    if values.ndim != 3 or values.shape[1] < 2:
        raise DataError(f"{what} have shape {values.shape}; expected (image, channel >= 2, time)")
    centred = values - values.mean(axis=1, keepdims=True)
    norm = np.sqrt((centred * centred).sum(axis=1, keepdims=True))
    if not (norm > 0).all():
        raise DataError(f"{what} contain a pattern that is constant over channels")
    return centred / norm


def identification_2v2(
    predicted: np.ndarray, measured: np.ndarray, pairs: np.ndarray, chunk: int | None = None
) -> np.ndarray:
    """2-vs-2 identification of image pairs at each time point.

    Parameters
    ----------
    predicted, measured : (image, channel, time) responses of the same images.
    pairs : (pair, 2) image indices.
    chunk : pairs per block (memory); default keeps each block near 4 million values.

    Returns
    -------
    (pair, time): 1 where the matched correlations beat the swapped ones, 0 where not,
    0.5 on an exact tie.
    """
    if predicted.shape != measured.shape:
        raise DataError(f"predictions {predicted.shape} and responses {measured.shape} differ")
    zp = unit_patterns(predicted, "predicted responses")
    zm = unit_patterns(measured, "measured responses")
    matched = (zp * zm).sum(axis=1)  # (image, time): r(pred_i, true_i)
    n_channels, n_times = zp.shape[1:]
    chunk = chunk or max(1, 4_000_000 // (n_channels * n_times))
    votes = np.empty((len(pairs), n_times))
    for start in range(0, len(pairs), chunk):
        a, b = pairs[start : start + chunk, 0], pairs[start : start + chunk, 1]
        swapped = (zp[a] * zm[b]).sum(axis=1) + (zp[b] * zm[a]).sum(axis=1)
        votes[start : start + chunk] = vote(matched[a] + matched[b] - swapped)
    return votes


# ----------------------------------------------------------------------------- bootstrap


def pair_bootstrap(
    votes: Mapping[str, np.ndarray],
    pairs: np.ndarray,
    n_images: int,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Percentile interval of the mean over pairs, resampling images (same draws for all).

    Parameters
    ----------
    votes : per name, (pair, time) scores.
    pairs : (pair, 2) indices into the ``n_images`` images.

    Returns
    -------
    Per name, the (lower, upper) bounds per time.
    """
    if n_boot < 1 or not 0 < ci < 1:
        raise UsageError(f"n_boot={n_boot} must be >= 1 and ci={ci} in (0, 1)")
    rng = np.random.default_rng(seed)
    draws = {name: [] for name in votes}
    block = max(1, min(n_boot, 2_000_000 // max(len(pairs), 1)))
    for start in range(0, n_boot, block):
        size = min(block, n_boot - start)
        counts = np.zeros((size, n_images))
        rows = np.repeat(np.arange(size), n_images)
        np.add.at(counts, (rows, rng.integers(0, n_images, size * n_images)), 1)
        weights = counts[:, pairs[:, 0]] * counts[:, pairs[:, 1]]  # (boot, pair)
        with np.errstate(invalid="ignore", divide="ignore"):
            total = weights.sum(axis=1, keepdims=True)
            for name, values in votes.items():
                draws[name].append(weights @ values / total)
    tail = (1 - ci) / 2 * 100
    return {
        name: tuple(np.nanpercentile(np.concatenate(d), [tail, 100 - tail], axis=0))
        for name, d in draws.items()
    }


# ----------------------------------------------------------------------------- cross-decoding


def cross_decoding(
    meg: xr.DataArray,
    features: Mapping[str, xr.DataArray | np.ndarray],
    *,
    settings: RidgeSettings = DEFAULT_SETTINGS,
    n_splits: int = 5,
    seed: int = 0,
    n_boot: int = 1000,
    ci: float = 0.95,
    max_pairs: int | None = 5000,
    contrast: tuple[str, str] | None = ("figure", "ground"),
    backend: str = "numpy",
    **descriptors: object,
) -> pd.DataFrame:
    """2-vs-2 identification of held-out images from each feature set's encoding predictions.

    Parameters
    ----------
    meg : responses (image, channel, time); folds by its ``session`` coordinate when present.
    features : name -> (image, ...) features, DataArrays with image ids or arrays in MEG order.
    settings : PCA / ridge settings of each fold's encoding model.
    n_splits : outer folds (group k-fold over sessions).
    seed : seeds folds, PCA, inner folds, the pair subsets and the bootstrap.
    n_boot, ci : bootstrap over images and the interval's coverage.
    max_pairs : 2-vs-2 pairs per fold (a seeded subset; None: all pairs in the fold).
    contrast : two feature sets whose per-pair difference is reported as ``a_minus_b``.
    backend : himalaya backend of the ridge fits.
    descriptors : constant columns (participant, model, layer, ...).

    Returns
    -------
    Tidy DataFrame: time, feature_set, value, ci_low, ci_high, metric, n_images, n_pairs.
    """
    names = list(features)
    _check_options(names, n_boot, ci, contrast)
    design = fold_design(meg, list(features.values()), n_splits, settings, seed)
    meg = design.meg
    n_images, n_channels = meg.sizes["image"], meg.sizes["channel"]
    if n_channels < 2:
        raise DataError(f"MEG array has {n_channels} channel(s); 2-vs-2 needs >= 2")
    per_pair, pairs = _pair_votes(design, names, settings, seed, max_pairs, backend)
    if contrast is not None:
        per_pair[f"{contrast[0]}_minus_{contrast[1]}"] = (
            per_pair[contrast[0]] - per_pair[contrast[1]]
        )
    bounds = pair_bootstrap(per_pair, pairs, n_images, n_boot, ci, seed)
    table = pd.concat(
        [
            pd.DataFrame(
                {
                    "time": meg["time"].values,
                    "feature_set": name,
                    "value": values.mean(axis=0),
                    "ci_low": bounds[name][0],
                    "ci_high": bounds[name][1],
                }
            )
            for name, values in per_pair.items()
        ],
        ignore_index=True,
    )
    table["metric"] = IDENTIFICATION
    table["n_images"] = n_images
    table["n_pairs"] = len(pairs)
    for key, value in descriptors.items():
        table[key] = value
    return table


def _check_options(
    names: list[str], n_boot: int, ci: float, contrast: tuple[str, str] | None
) -> None:
    """Raise a UsageError for a bad bootstrap, no feature set or an unknown contrast."""
    if n_boot < 1 or not 0 < ci < 1:
        raise UsageError(f"n_boot={n_boot} must be >= 1 and ci={ci} in (0, 1)")
    if not names:
        raise UsageError("cross_decoding needs at least one feature set")
    if contrast is not None and not set(contrast) <= set(names):
        raise UsageError(f"contrast {contrast} names feature sets not in {names}")


def _pair_votes(
    design: FoldDesign,
    names: list[str],
    settings: RidgeSettings,
    seed: int,
    max_pairs: int | None,
    backend: str,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per feature set, the 2-vs-2 votes (pair, time) of every fold; and the pairs' images."""
    meg = design.meg
    n_images, n_channels, n_times = (meg.sizes[d] for d in ("image", "channel", "time"))
    measured = np.asarray(design.Y, dtype=np.float64).reshape(n_images, n_channels, n_times)
    splits = design.splits
    votes: dict[str, list[np.ndarray]] = {name: [] for name in names}
    fold_pairs = []
    with ridge_backend(backend):
        for k, (train, test) in enumerate(logs.progress(splits, len(splits), "cross-decoding")):
            if len(test) < 2:
                raise DataError(f"fold {k} holds out {len(test)} image; 2-vs-2 needs >= 2")
            local = select_pairs(len(test), max_pairs, seed + k)
            fold_pairs.append(test[local])
            for name, X in zip(names, design.matrices, strict=True):
                predicted = predict_fold(design, [X], train, test, settings, seed)
                shaped = predicted.reshape(len(test), n_channels, n_times)
                votes[name].append(identification_2v2(shaped, measured[test], local))
    per_pair = {name: np.concatenate(v) for name, v in votes.items()}
    return per_pair, np.concatenate(fold_pairs)


# ----------------------------------------------------------------------------- group


def group_decoding(
    table: pd.DataFrame,
    n_boot: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
    participant: str = "participant",
) -> pd.DataFrame:
    """Group mean over participants with a percentile bootstrap over participants.

    Rows are matched on every column except ``participant`` and the per-participant
    results (value, ci_low, ci_high, n_images, n_pairs). With fewer than 3 participants
    the interval is NaN.

    Returns
    -------
    One row per matched key: the keys, participant = "group", value, ci_low, ci_high,
    n_participants.
    """
    if participant not in table.columns:
        raise DataError(f"decoding table has no {participant!r} column")
    if n_boot < 1 or not 0 < ci < 1:
        raise UsageError(f"n_boot={n_boot} must be >= 1 and ci={ci} in (0, 1)")
    keys = [c for c in table.columns if c != participant and c not in PER_PARTICIPANT]
    if table.duplicated([*keys, participant]).any():
        raise DataError(f"decoding table has repeated rows for the same {[*keys, participant]}")
    wide = table.set_index([*keys, participant])["value"].unstack(participant)
    if wide.isna().any().any():
        missing = wide.columns[wide.isna().any(axis=0)].tolist()
        raise DataError(f"participants {missing} lack rows that others have")
    values = wide.to_numpy(dtype=np.float64)  # (key, participant)
    n_people = values.shape[1]
    low = high = np.full(len(values), np.nan)
    if n_people >= 3:
        rng = np.random.default_rng(seed)
        draws = rng.integers(0, n_people, (n_boot, n_people))
        counts = np.stack([np.bincount(d, minlength=n_people) for d in draws])
        means = counts @ values.T / n_people  # (boot, key)
        tail = (1 - ci) / 2 * 100
        low, high = np.percentile(means, [tail, 100 - tail], axis=0)
    else:
        log.info("group decoding: %d participant(s); no interval below 3", n_people)
    group = wide.index.to_frame(index=False)
    group[participant] = GROUP
    group["value"] = values.mean(axis=1)
    group["ci_low"] = low
    group["ci_high"] = high
    group["n_participants"] = n_people
    return group
