"""Time-resolved pairwise decoding of the test images: a data-quality check of the recordings.

As in THINGS-MEG (Hebart et al. 2023, eLife; the authors' ``step3d_validation_pairwise_
decoding200.m``): for every pair of the test images, a linear discriminant classifier is
trained at each time point on the trials of all sessions but one and tested on the held-out
session's trials (leave one repetition = session out); the accuracy is averaged over folds
and pairs. Chance is 0.5.

The classifier (``method="fast"``, the default) is shrinkage LDA with one covariance shared
by all images: at each time and fold, the residuals of the training trials about their
image's training mean, pooled over all images, give the biased covariance ``S`` (divided by
the number of training trials), shrunk as sklearn's ``shrunk_covariance`` does,
``(1 - shrinkage) S + shrinkage trace(S) / channels I``. Image ``a`` beats ``b`` for a
held-out trial ``x`` when ``x`` is nearer ``a``'s training mean in the Mahalanobis distance of
that covariance, i.e. ``x' P_a - q_a / 2 > x' P_b - q_b / 2`` with ``P = covariance^-1 means'``
and ``q_a = mean_a' P_a``: one solve and one Gram matrix (held-out trials x image means) per
time serve all pairs at once. Exact ties score 0.5. This equals sklearn's
``LinearDiscriminantAnalysis(solver="lsqr", shrinkage=s)`` fitted on all training trials with
the images as classes (equal priors, so the decision between two columns of its
``decision_function`` is the pairwise decision) -- ``method="mne"`` computes exactly that
with :class:`mne.decoding.SlidingEstimator` / :class:`~mne.decoding.GeneralizingEstimator`
and loops over pairs, the reference the tests compare with.

The authors' classifier differs in one respect: CoSMoMVPA's ``cosmo_classify_lda`` estimates
the covariance from the two images of the pair only (22 trials for 271 sensors) and
regularises it by adding ``0.01 trace(S) / channels I``, which is sklearn's shrinkage
``0.01 / 1.01`` (:data:`COSMO_SHRINKAGE`, the default here) up to a scale that does not change
decisions. ``method="mne_pairwise"`` is that classifier (sklearn's LDA fitted on the pair's
trials, per pair, slow). The shared covariance is estimated from 100 times more trials, so the
fast path's accuracies are expected to be equal or higher where sensors outnumber trials;
they are not the paper's numbers.

Assumptions: every image is shown once in every repetition (no NaN; the repetition dimension
is the session), so priors are equal; the noise covariance is the same for all images at a
time point. ``decim`` subsamples time without filtering (THINGS-MEG's preprocessed data are
low-passed at 40 Hz and sampled at 200 Hz, so ``decim=2`` is safe there).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from figureground import logs
from figureground.analysis.decoding_classifiers import (
    fast_times,
    fold_classifiers,
    mne_fold,
    mne_pairwise_fold,
    pair_votes,
    shrunk_covariance,
    trial_scores,
    vote,
)
from figureground.errors import DataError, UsageError

__all__ = [
    "CHANCE",
    "COSMO_SHRINKAGE",
    "METHODS",
    "TEST_DIMS",
    "decoding_table",
    "fold_classifiers",
    "pair_accuracy",
    "pair_votes",
    "pairwise_decoding",
    "prepare_test",
    "select_pairs",
    "shrunk_covariance",
    "temporal_generalisation",
    "trial_scores",
    "vote",
]

log = logs.get_logger(__name__)

CHANCE = 0.5
COSMO_SHRINKAGE = 0.01 / 1.01  # CoSMoMVPA's default LDA regularisation 0.01, as a shrinkage
METHODS = ("fast", "mne", "mne_pairwise")
TEST_DIMS = ("image", "repetition", "channel", "time")


# ----------------------------------------------------------------------------- inputs


def prepare_test(test: xr.DataArray | np.ndarray, decim: int = 1) -> tuple[np.ndarray, xr.Dataset]:
    """Test responses as float64 (image, repetition, channel, time) and their coordinates.

    The values are centred per channel and time on the mean over all trials and divided by
    their overall standard deviation: LDA decisions do not change, and the scatters stay
    well inside floating-point precision. A plain array is read in :data:`TEST_DIMS` order.
    Holds about three float64 copies of the (decimated) array at once.
    """
    if isinstance(decim, bool) or not isinstance(decim, int | np.integer) or decim < 1:
        raise UsageError(f"decim={decim!r} must be a positive integer")
    if isinstance(test, xr.DataArray):
        if set(test.dims) != set(TEST_DIMS):
            raise DataError(f"test array has dims {test.dims}; expected {TEST_DIMS}")
        test = test.transpose(*TEST_DIMS)
        ids = [str(v) for v in test["image"].values] if "image" in test.coords else None
        times = test["time"].values if "time" in test.coords else None
        n_samples = test.sizes["time"]
        values = np.asarray(test.values[..., ::decim], dtype=np.float64)
    else:
        values = np.asarray(test)
        ids = None
        if values.ndim != 4:
            raise DataError(f"test array has shape {values.shape}; expected {TEST_DIMS}")
        times = np.arange(values.shape[-1])  # sample numbers
        n_samples = len(times)
        values = np.asarray(values[..., ::decim], dtype=np.float64)
    n_images, n_reps, n_channels = values.shape[:3]
    if n_reps < 3:
        raise DataError(
            f"test array has {n_reps} repetition(s); leave-one-out LDA needs >= 3 "
            "(two training trials per image to estimate a covariance)"
        )
    if n_images < 2:
        raise DataError(f"test array has {n_images} image(s); pairwise decoding needs >= 2")
    if n_channels < 1 or values.shape[-1] < 1:
        raise DataError(f"test array has shape {values.shape}; no channels or time points")
    if not np.isfinite(values).all():
        raise DataError("test array contains NaN or infinite values; each image needs a trial")
    values = values - values.mean(axis=(0, 1))  # a shift per channel and time: no decision changes
    scale = values.std()
    if scale > 0:
        values = values / scale
    coords = xr.Dataset(
        coords={
            "image": ids if ids is not None else [str(i) for i in range(n_images)],
            "time": times[::decim] if times is not None else np.arange(0, n_samples, decim),
        }
    )
    return np.ascontiguousarray(values), coords


def select_pairs(n_images: int, max_pairs: int | None = None, seed: int = 0) -> np.ndarray:
    """Image index pairs ``(a, b)`` with ``a < b``: all, or a seeded subset of ``max_pairs``."""
    a, b = np.triu_indices(n_images, k=1)
    pairs = np.column_stack([a, b])
    if max_pairs is None or max_pairs >= len(pairs):
        return pairs
    if max_pairs < 1:
        raise UsageError(f"max_pairs={max_pairs} must be a positive integer or None")
    keep = np.random.default_rng(seed).choice(len(pairs), size=max_pairs, replace=False)
    return pairs[np.sort(keep)]


def _check(method: str, shrinkage: float) -> None:
    if method not in METHODS:
        raise UsageError(f"decoding method {method!r} is not one of {', '.join(METHODS)}")
    if isinstance(shrinkage, str) or not 0 <= float(shrinkage) <= 1:
        raise UsageError(f"shrinkage={shrinkage!r} must be a number between 0 and 1")


# ----------------------------------------------------------------------------- public


def _vote_sums(
    values: np.ndarray,
    pairs: np.ndarray,
    method: str,
    shrinkage: float,
    generalise: bool,
    n_jobs: int,
) -> np.ndarray:
    """Pair accuracies summed over the leave-one-repetition-out folds.

    (pair, time), or for ``generalise`` summed over pairs too, (train_time, test_time).
    """
    n_reps, n_times = values.shape[1], values.shape[-1]
    if method == "fast":
        from joblib import Parallel, delayed, effective_n_jobs

        workers = effective_n_jobs(n_jobs)
        n_chunks = n_times if workers == 1 else min(n_times, 4 * workers)
        chunks = [range(c[0], c[-1] + 1) for c in np.array_split(np.arange(n_times), n_chunks)]
        tests = np.ascontiguousarray(values.transpose(1, 3, 0, 2)) if generalise else None
        runs = Parallel(n_jobs=n_jobs)(
            delayed(fast_times)(values, chunk, pairs, shrinkage, tests)
            for chunk in logs.progress(chunks, len(chunks), "decoding times (fast)")
        )
        return np.concatenate(runs, axis=0 if generalise else 1)
    fold = mne_fold if method == "mne" else mne_pairwise_fold
    sums = 0.0
    for held_out in logs.progress(range(n_reps), n_reps, f"decoding folds ({method})"):
        accuracy = fold(values, held_out, pairs, shrinkage, generalise, n_jobs)
        sums = sums + (accuracy.sum(axis=0) if generalise else accuracy)
    return np.asarray(sums)


def _prepared(
    test: xr.DataArray | np.ndarray,
    method: str,
    shrinkage: float,
    max_pairs: int | None,
    seed: int,
    decim: int,
) -> tuple[np.ndarray, xr.Dataset, np.ndarray]:
    """Checked options, the test responses (:func:`prepare_test`) and the pairs to decode."""
    _check(method, shrinkage)
    values, coords = prepare_test(test, decim)
    return values, coords, select_pairs(values.shape[0], max_pairs, seed)


def pair_accuracy(
    test: xr.DataArray | np.ndarray,
    *,
    method: str = "fast",
    max_pairs: int | None = None,
    seed: int = 0,
    shrinkage: float = COSMO_SHRINKAGE,
    decim: int = 1,
    n_jobs: int = 1,
) -> xr.DataArray:
    """Time-resolved decoding accuracy of every image pair, leave one repetition out.

    Parameters
    ----------
    test : responses (image, repetition, channel, time); repetition = session in THINGS-MEG.
    method : "fast" (shared-covariance LDA, vectorised over pairs), "mne" (the same
        classifier through MNE + sklearn, the reference) or "mne_pairwise" (sklearn LDA on
        the pair's own trials, the authors' classifier; slow).
    max_pairs : decode a seeded random subset of this many pairs (None: all).
    seed : seeds the pair subset.
    shrinkage : fixed LDA shrinkage in [0, 1] (sklearn's definition).
    decim : keep every ``decim``-th time point (no filtering).
    n_jobs : parallel folds (fast) or estimators (MNE).

    Returns
    -------
    DataArray ``accuracy`` (pair, time), mean over folds, with coords image_a, image_b.
    """
    values, coords, pairs = _prepared(test, method, shrinkage, max_pairs, seed, decim)
    accuracy = _vote_sums(values, pairs, method, float(shrinkage), False, n_jobs) / values.shape[1]
    ids = coords["image"].values
    return xr.DataArray(
        accuracy,
        dims=("pair", "time"),
        coords={
            "pair": np.arange(len(pairs)),
            "image_a": ("pair", ids[pairs[:, 0]]),
            "image_b": ("pair", ids[pairs[:, 1]]),
            "time": coords["time"].values,
        },
        name="accuracy",
        attrs=_attrs(values, pairs, method, shrinkage, seed, decim),
    )


def pairwise_decoding(
    test: xr.DataArray | np.ndarray,
    *,
    method: str = "fast",
    max_pairs: int | None = None,
    seed: int = 0,
    shrinkage: float = COSMO_SHRINKAGE,
    decim: int = 1,
    n_jobs: int = 1,
) -> xr.DataArray:
    """Mean pairwise decoding accuracy over pairs and folds, (time,); see :func:`pair_accuracy`."""
    per_pair = pair_accuracy(
        test,
        method=method,
        max_pairs=max_pairs,
        seed=seed,
        shrinkage=shrinkage,
        decim=decim,
        n_jobs=n_jobs,
    )
    mean = per_pair.mean("pair")
    mean.attrs = dict(per_pair.attrs)
    mean.name = "accuracy"
    return mean


def temporal_generalisation(
    test: xr.DataArray | np.ndarray,
    *,
    method: str = "fast",
    max_pairs: int | None = None,
    seed: int = 0,
    shrinkage: float = COSMO_SHRINKAGE,
    decim: int = 1,
    n_jobs: int = 1,
) -> xr.DataArray:
    """Mean pairwise accuracy of classifiers trained at one time and tested at another.

    Same classifier, folds and parameters as :func:`pair_accuracy`; its diagonal equals
    :func:`pairwise_decoding`. Cost grows with time points squared: use ``decim``.

    Returns
    -------
    DataArray ``accuracy`` (train_time, test_time).
    """
    values, coords, pairs = _prepared(test, method, shrinkage, max_pairs, seed, decim)
    sums = _vote_sums(values, pairs, method, float(shrinkage), True, n_jobs)
    accuracy = sums / (values.shape[1] * len(pairs))
    times = coords["time"].values
    return xr.DataArray(
        accuracy,
        dims=("train_time", "test_time"),
        coords={"train_time": times, "test_time": times},
        name="accuracy",
        attrs=_attrs(values, pairs, method, shrinkage, seed, decim),
    )


def _attrs(
    values: np.ndarray, pairs: np.ndarray, method: str, shrinkage: float, seed: int, decim: int
) -> dict[str, Any]:
    return {
        "metric": "pairwise_accuracy",
        "chance": CHANCE,
        "method": method,
        "shrinkage": float(shrinkage),
        "n_images": int(values.shape[0]),
        "n_folds": int(values.shape[1]),
        "n_pairs": len(pairs),
        "folds_by": "repetition",
        "seed": seed,
        "decim": decim,
    }


def decoding_table(accuracy: xr.DataArray, **descriptors: object) -> pd.DataFrame:
    """Tidy rows of :func:`pairwise_decoding` (time) or :func:`temporal_generalisation`."""
    table = accuracy.to_dataframe(name="value").reset_index()
    table = table[[c for c in table.columns if c in ("time", "train_time", "test_time", "value")]]
    table.insert(len(table.columns) - 1, "metric", accuracy.attrs.get("metric", "accuracy"))
    for key in ("method", "n_pairs", "n_folds"):
        if key in accuracy.attrs:
            table[key] = accuracy.attrs[key]
    for key, value in descriptors.items():
        table[key] = value
    return table
