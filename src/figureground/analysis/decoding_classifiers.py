"""The classifiers of the pairwise decoding (:mod:`figureground.analysis.decoding`).

The fast path (shared-covariance shrinkage LDA of all images, per leave-one-repetition-out
fold, every pair at once) and the two references through MNE + sklearn: the same
classifier fitted on all images, and the authors' classifier fitted on each pair's own
trials. The module docstring of :mod:`figureground.analysis.decoding` states the method.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from scipy import linalg

from figureground.errors import DataError

# ----------------------------------------------------------------------------- fast path


def shrunk_covariance(residuals: np.ndarray, shrinkage: float) -> np.ndarray:
    """Biased covariance of (trials, channels) residuals, shrunk towards its mean variance."""
    return _shrink(residuals.T @ residuals / len(residuals), shrinkage)


def fold_classifiers(at_time: np.ndarray, shrinkage: float) -> Iterator[tuple[np.ndarray, ...]]:
    """Shared-covariance LDA of all images for each leave-one-repetition-out fold, one time.

    Parameters
    ----------
    at_time : trials at one time point, (image, repetition, channel).

    Yields
    ------
    Per held-out repetition, ``P`` (channel, image) = covariance^-1 means' and ``q`` (image,)
    = diag(means P) of the training repetitions: the score of a trial ``x`` for image ``a``
    is ``x @ P[:, a] - q[a] / 2``. The data should be centred (``decoding.prepare_test`` does):
    the scatter below subtracts the means' outer products, which loses precision when the
    means are large against the noise.

    The training scatter about the image means is the sum of the repetitions' uncentred
    scatters, less the held-out one, less the means' outer products: the same covariance as
    :func:`shrunk_covariance` of the residuals, in ``2 x repetitions`` products per time
    instead of ``repetitions^2``.
    """
    n_images, n_reps, n_channels = at_time.shape
    if shrinkage == 0 and n_images * (n_reps - 2) < n_channels:
        raise DataError(
            f"the shared covariance is singular ({n_images * (n_reps - 2)} residual degrees of "
            f"freedom, {n_channels} channels, shrinkage 0); use shrinkage > 0"
        )
    by_rep = np.moveaxis(at_time, 1, 0)  # (rep, image, channel)
    scatters = np.matmul(by_rep.transpose(0, 2, 1), by_rep)
    total_scatter, total = scatters.sum(axis=0), by_rep.sum(axis=0)
    n_train = n_images * (n_reps - 1)
    for held_out in range(n_reps):
        means = (total - by_rep[held_out]) / (n_reps - 1)
        scatter = total_scatter - scatters[held_out] - (n_reps - 1) * (means.T @ means)
        covariance = _shrink(scatter / n_train, shrinkage)
        try:
            weights = linalg.cho_solve(linalg.cho_factor(covariance), means.T)
        except linalg.LinAlgError:
            raise DataError(
                f"the shared covariance is singular ({n_train} training trials, "
                f"{at_time.shape[-1]} channels, shrinkage {shrinkage}); use shrinkage > 0"
            ) from None
        yield np.ascontiguousarray(weights), np.einsum("ic,ci->i", means, weights)


def _shrink(covariance: np.ndarray, shrinkage: float) -> np.ndarray:
    target = np.trace(covariance) / len(covariance)
    shrunk = (1.0 - shrinkage) * covariance
    shrunk.flat[:: len(covariance) + 1] += shrinkage * target
    return shrunk


def trial_scores(test: np.ndarray, weights: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Scores of held-out trials (..., image, channel) for every image: (..., trial, image)."""
    return np.matmul(test, weights) - offsets / 2


def vote(margin: np.ndarray) -> np.ndarray:
    """1 where the margin favours the true image, 0 where against, 0.5 on an exact tie."""
    return (margin > 0) + 0.5 * (margin == 0)


def pair_votes(scores: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Accuracy of each pair from (..., trial of image, image) scores: (..., pair).

    Trial ``a`` is correct when it scores higher for ``a`` than for ``b``; the pair's accuracy
    is the mean over its two held-out trials.
    """
    a, b = pairs[:, 0], pairs[:, 1]
    own = np.diagonal(scores, axis1=-2, axis2=-1)
    correct_a = vote(own[..., a] - scores[..., a, b])
    correct_b = vote(own[..., b] - scores[..., b, a])
    return (correct_a + correct_b) / 2


def fast_times(
    values: np.ndarray,
    times: range,
    pairs: np.ndarray,
    shrinkage: float,
    tests: np.ndarray | None,
) -> np.ndarray:
    """Sums over folds of pair accuracies at training times ``times``.

    ``tests`` (repetition, time, image, channel) are the held-out trials at every time, for
    temporal generalisation; None scores the training time only. Returns (pair, len(times)),
    or with ``tests`` summed over pairs too, (len(times), test_time). Votes are multiples of
    0.25, so the sums are exact.
    """
    n_times = values.shape[-1]
    sums = np.zeros((len(times), n_times) if tests is not None else (len(pairs), len(times)))
    for k, t in enumerate(times):
        at_time = np.ascontiguousarray(values[..., t])
        for held_out, (weights, offsets) in enumerate(fold_classifiers(at_time, shrinkage)):
            held = tests[held_out] if tests is not None else at_time[None, :, held_out]
            votes = pair_votes(trial_scores(held, weights, offsets), pairs)  # (time', pair)
            if tests is not None:
                sums[k] += votes.sum(axis=1)
            else:
                sums[:, k] += votes[0]
    return sums


# ----------------------------------------------------------------------------- references


def _estimator(generalise: bool, shrinkage: float, n_jobs: int) -> Any:
    from mne.decoding import GeneralizingEstimator, SlidingEstimator
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    kind = GeneralizingEstimator if generalise else SlidingEstimator
    lda = LinearDiscriminantAnalysis(solver="lsqr", shrinkage=shrinkage)
    return kind(lda, n_jobs=n_jobs, verbose=False)


def mne_fold(
    values: np.ndarray,
    held_out: int,
    pairs: np.ndarray,
    shrinkage: float,
    generalise: bool,
    n_jobs: int,
) -> np.ndarray:
    """Reference: sklearn LDA on all images (MNE sliding/generalising), pairs in a loop."""
    n_images, n_reps = values.shape[:2]
    train = np.delete(values, held_out, axis=1)
    labels = np.repeat(np.arange(n_images), n_reps - 1)
    estimator = _estimator(generalise, shrinkage, n_jobs)
    estimator.fit(train.reshape(-1, *values.shape[2:]), labels)
    decision = estimator.decision_function(values[:, held_out])  # (trial, time(s), image)
    accuracy = np.empty((len(pairs), *decision.shape[1:-1]))
    for k, (a, b) in enumerate(pairs):
        correct_a = vote(decision[a, ..., a] - decision[a, ..., b])
        correct_b = vote(decision[b, ..., b] - decision[b, ..., a])
        accuracy[k] = (correct_a + correct_b) / 2
    return accuracy


def mne_pairwise_fold(
    values: np.ndarray,
    held_out: int,
    pairs: np.ndarray,
    shrinkage: float,
    generalise: bool,
    n_jobs: int,
) -> np.ndarray:
    """The authors' classifier: sklearn LDA fitted on the pair's own trials, one pair at a time."""
    n_reps = values.shape[1]
    train = np.delete(values, held_out, axis=1)
    labels = np.repeat([0, 1], n_reps - 1)
    shape = values.shape[-1:] * (2 if generalise else 1)
    accuracy = np.empty((len(pairs), *shape))
    for k, pair in enumerate(pairs):
        estimator = _estimator(generalise, shrinkage, n_jobs)
        estimator.fit(train[pair].reshape(-1, *values.shape[2:]), labels)
        predicted = estimator.predict(values[pair, held_out])  # (2, time(s))
        truth = np.array([0, 1]).reshape(-1, *[1] * (predicted.ndim - 1))
        accuracy[k] = (predicted == truth).mean(axis=0)
    return accuracy
