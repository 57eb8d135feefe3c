"""Inference on one participant's RSA curves: bootstrap intervals and permutation p-values."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from figureground.analysis.study.columns import BOOT_MEMORY_BYTES, PERMUTATION_METHOD
from figureground.config import RsaConfig
from figureground.errors import UsageError
from figureground.parallel import SERIAL


def _square(rdms: np.ndarray, n: int) -> np.ndarray:
    """Condensed RDMs (..., pairs) as square matrices (..., n, n), zero diagonal."""
    rows, cols = np.triu_indices(n, 1)
    out = np.zeros((*rdms.shape[:-1], n, n), dtype=rdms.dtype)
    out[..., rows, cols] = rdms
    out[..., cols, rows] = rdms
    return out


def partial_method_of(method: str) -> str:
    """The partial comparison matching ``method``, as :func:`rsa.rsa_timecourse` picks it."""
    return "partial_spearman" if method == "spearman" else "partial_pearson"


def _rsa_statistic(
    meg_square: np.ndarray,
    model_square: np.ndarray,
    method: str,
    partial_pairs: Sequence[tuple[int, int]],
    device: str | None = None,
) -> Callable[[np.ndarray], np.ndarray]:
    """Bootstrap callback: RSA (times, models + partial pairs) on resampled images.

    Pairs of an image with its own copy are dropped, as the bootstrap needs for RDMs. For
    Spearman, the ranks are taken once per sample (vectorised) and compared by Pearson and
    partial Pearson, which is what ``spearman`` / ``partial_spearman`` compute. With a torch
    ``device`` the same numbers are computed there
    (:func:`figureground.analysis.torch_stats.rsa_statistic`).
    """
    from scipy.stats import rankdata

    if device is not None:
        from figureground.analysis.torch_stats import rsa_statistic

        return rsa_statistic(meg_square, model_square, method, partial_pairs, device)

    from figureground.analysis.rdm_compare import compare_rdms

    n = meg_square.shape[-1]
    rows, cols = np.triu_indices(n, 1)
    ranked = method == "spearman"
    plain = "pearson" if ranked else method
    partial = "partial_pearson" if ranked else partial_method_of(method)

    def statistic(index: np.ndarray) -> np.ndarray:
        i, j = index[rows], index[cols]
        distinct = i != j
        i, j = i[distinct], j[distinct]
        out = np.full((meg_square.shape[0], model_square.shape[0] + len(partial_pairs)), np.nan)
        if i.size < 3:
            return out
        data = meg_square[:, i, j]
        models = model_square[:, i, j]
        if ranked:
            data, models = rankdata(data, axis=-1), rankdata(models, axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, : models.shape[0]] = compare_rdms(data, models, plain)
            for k, (target, given) in enumerate(partial_pairs):
                pair = models[[target, given]]
                out[:, models.shape[0] + k] = compare_rdms(data, pair, partial)[:, 0]
        out[~np.isfinite(out)] = np.nan  # e.g. a resample whose model RDMs are collinear
        return out

    return statistic


def _bootstrap_distribution(
    meg_rdms: np.ndarray,
    model_rdms: np.ndarray,
    n_conditions: int,
    cfg: RsaConfig,
    partial_pairs: Sequence[tuple[int, int]],
    device: str | None,
) -> np.ndarray:
    """Bootstrap samples (n_boot, times, models + partial pairs) of the RSA curves.

    Spearman and Pearson on the CPU re-weight pairs instead of re-sorting
    (:func:`figureground.analysis.rsa_bootstrap.bootstrap_rsa`); cosine and torch devices go
    through :func:`figureground.analysis.stats.bootstrap`. Both use the same draws.
    """
    from figureground.analysis.rsa_bootstrap import METHODS, bootstrap_draws, bootstrap_rsa
    from figureground.analysis.stats import bootstrap

    if device is None and cfg.method in METHODS:
        draws = bootstrap_draws(n_conditions, cfg.n_boot, cfg.random_state)
        partials = [(target, [given]) for target, given in partial_pairs]
        return bootstrap_rsa(meg_rdms, model_rdms, draws, cfg.method, partials)
    n_times = meg_rdms.shape[0]
    model_square = _square(np.asarray(model_rdms, dtype=np.float64), n_conditions)
    step = max(1, BOOT_MEMORY_BYTES // (8 * n_conditions * n_conditions))
    blocks = []
    for start in range(0, n_times, step):
        block = _square(np.asarray(meg_rdms[start : start + step]), n_conditions)
        with warnings.catch_warnings(), np.errstate(invalid="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            result = bootstrap(
                _rsa_statistic(block, model_square, cfg.method, partial_pairs, device),
                n_conditions,
                n_boot=cfg.n_boot,
                ci=cfg.ci,
                seed=cfg.random_state,
            )
        blocks.append(result.distribution)
    return np.concatenate(blocks, axis=1)


def rsa_inference(
    meg_rdms: np.ndarray,
    model_rdms: np.ndarray,
    n_conditions: int,
    cfg: RsaConfig,
    partial_pairs: Sequence[tuple[int, int]],
    scheduler: Any = SERIAL,
    device: str | None = None,
) -> dict[str, np.ndarray]:
    """Bootstrap intervals and permutation p-values of one participant's RSA curves.

    Parameters
    ----------
    meg_rdms : condensed MEG RDMs (times, pairs).
    model_rdms : condensed model RDMs (models, pairs).
    n_conditions : images (or concepts) in the RDMs.
    cfg : RSA settings (method, n_boot, n_permutations, ci, seed).
    partial_pairs : (target, given) model indices of the partial RSA curves.
    scheduler : where the permutation blocks run: ``serial``, a Dask address or client
        (:func:`figureground.analysis.stats.null_distribution`; identical nulls). The MEG RDMs
        are ranked and standardised once per call; each model RDM is tested with the same
        permutations (:func:`figureground.analysis.stats.permutation_draws` from
        ``cfg.random_state``).
    device : a torch device for the bootstrap and the permutations (None: numpy; with a
        device the permutations run in this process).

    Returns
    -------
    dict with ``ci_low``, ``ci_high`` (times, models + partial pairs) and ``p_perm``,
    ``p_perm_fwer`` (times, models; NaN for partial curves and methods without a
    permutation test), and ``distribution`` (n_boot, times, models + partial pairs) when
    ``n_boot`` > 0. The bootstrap resamples images with the same draws at every time.
    """
    from figureground.analysis.stats import (
        TIE_TOLERANCE,
        check_rdms,
        null_correlations,
        null_distribution,
        permutation_draws,
        permutation_p_value,
        standardised_rdms,
    )

    n_times = meg_rdms.shape[0]
    n_curves = model_rdms.shape[0] + len(partial_pairs)
    out = {key: np.full((n_times, n_curves), np.nan) for key in ("ci_low", "ci_high")}
    out["p_perm"] = np.full((n_times, n_curves), np.nan)
    out["p_perm_fwer"] = np.full((n_times, n_curves), np.nan)
    if cfg.n_boot > 0:
        distribution = _bootstrap_distribution(
            meg_rdms, model_rdms, n_conditions, cfg, partial_pairs, device
        )
        tail = (1 - cfg.ci) / 2 * 100
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN times: NaN bounds
            out["ci_low"] = np.nanpercentile(distribution, tail, axis=0)
            out["ci_high"] = np.nanpercentile(distribution, 100 - tail, axis=0)
        out["distribution"] = distribution
    permutation_method = PERMUTATION_METHOD[cfg.method]
    if cfg.n_permutations > 0 and permutation_method is not None:
        check_rdms(meg_rdms, model_rdms[0])
        # Ranked and standardised once for every model; every model gets the same draws.
        z_data = standardised_rdms(meg_rdms, permutation_method)
        perms = permutation_draws(n_conditions, cfg.n_permutations, cfg.random_state)
        identity = np.arange(n_conditions)[None]
        for k, z_model in enumerate(standardised_rdms(model_rdms, permutation_method)):
            null = null_distribution(z_data, z_model, perms, scheduler, device=device)
            observed = null_correlations(z_data, z_model, identity, device)[0]
            out["p_perm"][:, k] = permutation_p_value(observed, null, "greater", TIE_TOLERANCE)
            maxima = null.max(axis=1)
            out["p_perm_fwer"][:, k] = (
                1.0 + (maxima[None, :] >= observed[:, None] - TIE_TOLERANCE).sum(1)
            ) / (1.0 + cfg.n_permutations)
    return out


def rsa_device(backend: str) -> tuple[str, str | None]:
    """(RDM backend, torch device or None) of ``analyses.rsa.backend``.

    Raises
    ------
    UsageError
        ``torch_cuda`` without a visible CUDA GPU.
    """
    if backend == "numpy":
        return "numpy", None
    if backend == "torch_cuda":
        import torch

        if not torch.cuda.is_available():
            raise UsageError("analyses.rsa.backend is torch_cuda but no CUDA GPU is visible")
        return "torch", "cuda"
    return "torch", "cpu"
