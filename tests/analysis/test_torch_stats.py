"""RSA inference in torch (``analyses.rsa.backend: torch | torch_cuda``) against the numpy
reference: ranks against scipy, the permutation null and the bootstrap statistic against the
numpy functions on the same draws, and a whole participant's RSA."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from scipy.spatial.distance import pdist, squareform
from scipy.stats import rankdata

from figureground.analysis import stats
from figureground.analysis.rdm_calc import compute_rdms
from figureground.analysis.study import rsa_inference, rsa_results
from figureground.analysis.torch_stats import average_ranks
from figureground.config import RsaConfig
from figureground.errors import UsageError


def test_average_ranks_match_scipy_with_ties() -> None:
    rng = np.random.default_rng(0)
    values = rng.integers(0, 7, (19, 301)).astype(np.float32)  # many ties
    values[3] = 5.0  # a constant row
    ranks = average_ranks(torch.from_numpy(values)).numpy()
    np.testing.assert_array_equal(ranks, rankdata(values, axis=-1))


def rdms(n: int, times: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    patterns = rng.normal(size=(n, 6))
    model = pdist(patterns, "correlation")
    data = np.stack([model + rng.normal(0, s, model.size) for s in np.linspace(0.1, 3, times)])
    return data.astype(np.float32), model


@pytest.mark.parametrize("method", ["spearman", "pearson"])
@pytest.mark.parametrize("per_time_model", [False, True])
def test_permutation_null_on_torch_is_numpys(method: str, per_time_model: bool) -> None:
    data, model = rdms(14, 5, 1)
    if per_time_model:
        model = np.stack([model + 0.01 * k for k in range(len(data))])
    options = {"n_permutations": 150, "method": method, "seed": 7, "batch_size": 64}
    reference = stats.rdm_permutation_test(data, model, **options)
    ours = stats.rdm_permutation_test(data, model, device="cpu", **options)
    np.testing.assert_allclose(ours.null, reference.null, atol=1e-12)
    np.testing.assert_array_equal(ours.p_value, reference.p_value)
    assert ours.null.shape == (150, 5) and ours.null.std() > 0.05


@pytest.mark.parametrize("method", ["spearman", "pearson", "cosine"])
def test_bootstrap_statistic_on_torch_is_numpys(method: str) -> None:
    rng = np.random.default_rng(2)
    n = 16
    meg = np.stack([squareform(rdms(n, 1, seed)[0][0]) for seed in range(4)]).astype(np.float32)
    models = np.stack([squareform(pdist(rng.normal(size=(n, 5)))) for _ in range(3)])
    models[2] = models[0] * 2.0 + 1.0  # collinear with model 0: its partial curve is NaN
    pairs = [(0, 1), (1, 0), (0, 2)]
    numpy_stat = rsa_inference._rsa_statistic(meg, models, method, pairs)
    torch_stat = rsa_inference._rsa_statistic(meg, models, method, pairs, device="cpu")
    for index in (np.arange(n), rng.integers(0, n, n), rng.integers(0, n, n)):
        expected, got = numpy_stat(index), torch_stat(index)
        assert got.shape == expected.shape == (4, 6)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
        assert np.isnan(got[:, 5]).all() and np.isfinite(got[:, :5]).all()
        np.testing.assert_allclose(got, expected, atol=1e-9, equal_nan=True)
    # Degenerate inputs: a constant data RDM and a constant model RDM.
    meg[1] = 1.0 - np.eye(n, dtype=np.float32)
    models[1] = 1.0 - np.eye(n)
    index = rng.integers(0, n, n)
    expected = rsa_inference._rsa_statistic(meg, models, method, pairs)(index)
    got = rsa_inference._rsa_statistic(meg, models, method, pairs, device="cpu")(index)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got, expected, atol=1e-9, equal_nan=True)
    assert np.isnan(got[1, 3:]).all() and np.isnan(got[:, 4]).all()  # partials undefined


def participant(n_images: int = 24, seed: int = 0) -> tuple[xr.DataArray, dict]:
    """A participant's responses that follow the no-background features, and the features."""
    rng = np.random.default_rng(seed)
    ids = [f"img{i:02d}" for i in range(n_images)]
    concepts = [f"c{i // 2}" for i in range(n_images)]
    features = {}
    for condition in ("original", "no_background", "no_foreground"):
        features[condition] = xr.DataArray(
            rng.normal(size=(n_images, 20)).astype(np.float32),
            dims=("image", "feature"),
            coords={"image": ids, "concept": ("image", concepts)},
            attrs={"model": "m", "layer": "l"},
        )
    mixing = rng.normal(size=(20, 8))
    signal = features["no_background"].values @ mixing
    responses = signal[:, :, None] * np.linspace(0, 1, 6) + rng.normal(0, 1, (n_images, 8, 6))
    meg = xr.DataArray(
        responses.astype(np.float32),
        dims=("image", "channel", "time"),
        coords={
            "image": ids,
            "concept": ("image", concepts),
            "channel": [f"MEG{i}" for i in range(8)],
            "time": np.linspace(-0.1, 0.4, 6),
        },
        attrs={"participant": "P1"},
    )
    return meg, features


def test_participant_rsa_with_torch_backend_equals_numpy() -> None:
    meg, features = participant()
    settings = {"levels": ("image",), "n_boot": 40, "n_permutations": 60, "random_state": 3}
    reference, reference_rdms, _ = rsa_results.rsa_one(
        meg, features, "image", RsaConfig(**settings)
    )
    ours, our_rdms, _ = rsa_results.rsa_one(
        meg, features, "image", RsaConfig(**settings, backend="torch")
    )
    np.testing.assert_allclose(our_rdms, reference_rdms, atol=1e-5)
    # The RDMs rsa_one returns (filled while the curves were computed) are the MEG's own.
    np.testing.assert_allclose(reference_rdms, compute_rdms(meg.values, "correlation"), atol=1e-6)
    for column in ("value", "ci_low", "ci_high", "p_perm", "p_perm_fwer"):
        np.testing.assert_allclose(ours[column], reference[column], atol=1e-4, equal_nan=True)
    late = reference[(reference["given"] == "") & (reference["time"] > 0.2)]
    by_condition = late.groupby("condition")["value"].mean()
    assert by_condition["no_background"] > by_condition["no_foreground"] + 0.1  # not all noise


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present")
def test_torch_cuda_without_a_gpu_is_one_clear_error() -> None:
    with pytest.raises(UsageError, match="no CUDA GPU"):
        rsa_results.rsa_device("torch_cuda")


@pytest.mark.gpu
def test_bootstrap_statistic_and_null_on_the_gpu_are_numpys() -> None:
    data, model = rdms(40, 6, 4)
    options = {"n_permutations": 200, "method": "spearman", "seed": 1}
    reference = stats.rdm_permutation_test(data, model, **options)
    ours = stats.rdm_permutation_test(data, model, device="cuda", **options)
    np.testing.assert_allclose(ours.null, reference.null, atol=1e-10)
    meg = np.stack([squareform(row) for row in data]).astype(np.float32)
    models = np.stack([squareform(model), squareform(pdist(np.eye(40)[:, :7]))])
    index = np.random.default_rng(0).integers(0, 40, 40)
    expected = rsa_inference._rsa_statistic(meg, models, "spearman", [(0, 1)])(index)
    got = rsa_inference._rsa_statistic(meg, models, "spearman", [(0, 1)], device="cuda")(index)
    np.testing.assert_allclose(got, expected, atol=1e-9, equal_nan=True)
