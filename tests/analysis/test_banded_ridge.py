"""Banded ridge computed in time linear in the images: the same predictions as himalaya's
``GroupRidgeCV`` (the quadratic algorithm it reorders), on the numpy and torch backends."""

from __future__ import annotations

import numpy as np
import pytest
from himalaya.backend import set_backend
from himalaya.ridge import GroupRidgeCV, RidgeCV
from sklearn.model_selection import KFold

from figureground.analysis.banded_ridge import fit_banded_ridge


def problem(seed: int = 0) -> tuple[list[np.ndarray], np.ndarray, list[np.ndarray]]:
    """Two centred bands (figure-like informative, ground-like weak) and 9 targets."""
    rng = np.random.default_rng(seed)
    n_train, n_test = 160, 40
    bands = [rng.normal(size=(n_train + n_test, 6)), rng.normal(size=(n_train + n_test, 4))]
    bands = [(b - b[:n_train].mean(0)).astype(np.float32) for b in bands]
    Y = bands[0] @ rng.normal(size=(6, 9)) + 0.2 * bands[1] @ rng.normal(size=(4, 9))
    Y = Y + rng.normal(0, 2.0, Y.shape)
    Y = (Y - Y[:n_train].mean(0)).astype(np.float32)
    return [b[:n_train] for b in bands], Y[:n_train], [b[n_train:] for b in bands]


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_predictions_equal_himalayas_group_ridge_cv(backend: str) -> None:
    Xs_train, Y_train, Xs_test = problem()
    alphas = np.logspace(-2, 4, 7).astype(np.float32)
    splits = list(KFold(4, shuffle=True, random_state=0).split(Y_train))
    set_backend(backend, on_error="raise")
    try:
        reference = GroupRidgeCV(
            groups="input",
            cv=splits,
            random_state=3,
            solver_params={"n_iter": 12, "alphas": alphas, "progress_bar": False, "warn": False},
        ).fit(Xs_train, Y_train)
        expected = np.asarray(reference.predict(Xs_test))
        weights = fit_banded_ridge(Xs_train, Y_train, alphas, 12, splits, 3, n_targets_batch=4)
    finally:
        set_backend("numpy")
    got = np.concatenate(Xs_test, axis=1) @ weights
    np.testing.assert_allclose(weights, np.asarray(reference.coef_), rtol=2e-3, atol=2e-4)
    np.testing.assert_allclose(got, expected, rtol=2e-3, atol=2e-3)
    assert np.abs(got).mean() > 0.5  # the bands predict the targets


def test_one_band_equals_himalayas_ridge_cv() -> None:
    Xs_train, Y_train, Xs_test = problem(1)
    alphas = np.logspace(-2, 4, 7).astype(np.float32)
    splits = list(KFold(5, shuffle=True, random_state=1).split(Y_train))
    reference = RidgeCV(alphas=alphas, cv=splits, solver_params={"warn": False})
    expected = np.asarray(reference.fit(Xs_train[0], Y_train).predict(Xs_test[0]))
    weights = fit_banded_ridge(Xs_train[:1], Y_train, alphas, 1, splits, 0)
    np.testing.assert_allclose(Xs_test[0] @ weights, expected, rtol=2e-3, atol=2e-3)
