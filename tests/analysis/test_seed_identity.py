"""The seed method's identity version: own embedding against the others'."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from figureground.analysis.seed import resample_meg
from figureground.analysis.seed_identity import (
    compare_conditions,
    distance_matrix,
    identity_scores,
    identity_test,
    seed_identity,
)
from figureground.errors import DataError


def test_distance_matrix_equals_scipy() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((7, 3, 5)), rng.standard_normal((7, 3, 5))
    np.testing.assert_allclose(
        distance_matrix(a, b), cdist(a.reshape(7, -1), b.reshape(7, -1)), atol=1e-10
    )
    with pytest.raises(DataError, match="differ in shape"):
        distance_matrix(a, b[:, :2])


def test_scores_by_hand() -> None:
    distances = np.array([[1.0, 3.0, 5.0], [2.0, 0.0, 4.0], [6.0, 6.0, 3.0]])
    np.testing.assert_allclose(identity_scores(distances), [3.0, 3.0, 3.0])


def _meg_and_embeddings(own: float, n: int = 30, seed: int = 0):
    """MEG whose resampled matrices equal each image's embedding (times ``own``) plus noise."""
    rng = np.random.default_rng(seed)
    meg = rng.standard_normal((n, 12, 20)).astype(np.float32)
    grid = resample_meg(meg, 4, 9)
    related = own * grid + rng.standard_normal(grid.shape)
    unrelated = rng.standard_normal(grid.shape)
    return meg, {"no_background": related, "no_foreground": unrelated}


def test_identity_found_where_planted_and_not_elsewhere() -> None:
    meg, embeddings = _meg_and_embeddings(own=2.0)
    table, comparison = seed_identity(meg, embeddings, n_permutations=200, n_boot=200)
    rows = table.set_index("condition")
    assert rows.loc["no_background", "p_perm"] < 0.01
    assert rows.loc["no_foreground", "p_perm"] > 0.05
    assert comparison["estimate"] > 0 and comparison["ci_low"] > 0
    assert comparison["p_boot"] < 0.01


def test_permutation_p_is_uniform_without_identity() -> None:
    ps = []
    for seed in range(40):
        rng = np.random.default_rng(seed)
        distances = rng.random((12, 12))
        ps.append(identity_test(distances, n_permutations=99, seed=seed)["p_perm"])
    assert 0.3 < np.mean(ps) < 0.7 and np.mean(np.asarray(ps) < 0.05) <= 0.15


def test_compare_conditions_is_a_bootstrap_of_the_mean_difference() -> None:
    scores = {"a": np.arange(10.0), "b": np.arange(10.0) - 1.0}
    found = compare_conditions(scores, "a", "b", n_boot=100)
    assert found["estimate"] == 1.0 and found["ci_low"] == found["ci_high"] == 1.0
    assert found["p_boot"] == pytest.approx(0.01)
