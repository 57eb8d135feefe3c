"""RSA inference in PyTorch: the permutation null and the bootstrap statistic on a GPU.

The numpy functions in :mod:`figureground.analysis.stats` and
:mod:`figureground.analysis.study.rsa_results` stay the reference; these compute the same
numbers in float64 on any torch device (``tests/analysis/test_torch_stats.py`` compares them on the
CPU), from the same random draws (permutations and resamples are drawn with numpy).
At THINGS size each bootstrap sample re-ranks 141 x 1.7 M RDM entries, which is hours on a
few cores and seconds on a GPU.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

# Rows ranked together (bounds the int64 index arrays: rows x pairs x 8 bytes each).
RANK_ROWS = 8
# Residual norms below this share of the original norm count as zero, as in rdm_compare.
DEGENERATE = 1e-6


def average_ranks(values: torch.Tensor) -> torch.Tensor:
    """Ranks (1-based, float64) along the last axis with ties averaged, like
    ``scipy.stats.rankdata``; rows are ranked :data:`RANK_ROWS` at a time."""
    values = values.reshape(-1, values.shape[-1]) if values.ndim != 2 else values
    out = torch.empty(values.shape, dtype=torch.float64, device=values.device)
    n = values.shape[-1]
    for start in range(0, values.shape[0], RANK_ROWS):
        block = values[start : start + RANK_ROWS]
        ordered, order = torch.sort(block, dim=-1)
        position = torch.arange(n, device=block.device).expand_as(order)
        starts_group = torch.ones_like(order, dtype=torch.bool)
        starts_group[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
        ends_group = torch.ones_like(starts_group)
        ends_group[:, :-1] = starts_group[:, 1:]
        first = torch.cummax(torch.where(starts_group, position, 0), dim=-1).values
        last = torch.where(ends_group, position, n - 1).flip(-1)
        last = torch.cummin(last, dim=-1).values.flip(-1)
        ranks = (first + last).to(torch.float64) / 2.0 + 1.0
        out[start : start + RANK_ROWS].scatter_(-1, order, ranks)
    return out


def standardise(values: torch.Tensor, ranked: bool, centred: bool = True) -> torch.Tensor:
    """Rows ranked (optionally), centred (optionally) and scaled to unit norm, float64.

    A row of zero norm stays zero, so its correlations come out 0 (cosine) or are masked
    by the caller.
    """
    x = average_ranks(values) if ranked else values.to(torch.float64)
    if centred:
        x = x - x.mean(dim=-1, keepdim=True)
    norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    return torch.where(norm > 0, x / norm.clamp_min(1e-300), torch.zeros_like(x))


def permutation_null(
    z_data: np.ndarray,
    z_model: np.ndarray,
    permutation_batches: Iterator[np.ndarray],
    n_conditions: int,
    gather: int,
    device: str,
) -> np.ndarray:
    """Null correlations (permutations, times) of standardised RDMs, on ``device``.

    ``permutation_batches`` yields (size, n_conditions) arrays of permuted condition indices;
    the model RDM's rows and columns are permuted together, entries gathered, and correlated
    with every data RDM (a dot product of standardised vectors).
    """
    target = torch.device(device)
    data = torch.as_tensor(z_data, dtype=torch.float64, device=target)
    model = torch.as_tensor(z_model, dtype=torch.float64, device=target)
    rows, cols = (torch.as_tensor(i, device=target) for i in np.triu_indices(n_conditions, 1))
    position = torch.zeros((n_conditions, n_conditions), dtype=torch.long, device=target)
    position[rows, cols] = torch.arange(rows.numel(), device=target)
    position[cols, rows] = torch.arange(rows.numel(), device=target)
    parts = []
    for perms in permutation_batches:
        perms = torch.as_tensor(perms, device=target)
        for first in range(0, perms.shape[0], gather):
            some = perms[first : first + gather]
            index = position[some[:, rows], some[:, cols]]  # (size, pairs)
            gathered = model[..., index]
            if model.ndim == 1:
                parts.append((gathered @ data.T).cpu())
            else:  # one model RDM per time: (times, size, pairs) -> (size, times)
                parts.append(torch.einsum("tsp,tp->st", gathered, data).cpu())
    return torch.cat(parts).numpy()


def rsa_statistic(
    meg_square: np.ndarray,
    model_square: np.ndarray,
    method: str,
    partial_pairs: Sequence[tuple[int, int]],
    device: str,
) -> Callable[[np.ndarray], np.ndarray]:
    """The bootstrap callback of ``rsa_results._rsa_statistic``, computed on ``device``.

    ``method`` is ``spearman``, ``pearson`` or ``cosine`` (plain curves); partial curves use
    partial Pearson (of ranks for spearman) given the one other model, from the pairwise
    correlations: (r_xy - r_xz r_yz) / sqrt((1 - r_xz^2)(1 - r_yz^2)), NaN when a residual
    is degenerate, as ``rdm_compare`` decides it.
    """
    target = torch.device(device)
    meg = torch.as_tensor(meg_square, device=target)
    models = torch.as_tensor(model_square, dtype=torch.float64, device=target)
    n = meg.shape[-1]
    rows, cols = (torch.as_tensor(i, device=target) for i in np.triu_indices(n, 1))
    ranked = method == "spearman"
    n_models = models.shape[0]

    def statistic(index: np.ndarray) -> np.ndarray:
        chosen = torch.as_tensor(index, device=target)
        i, j = chosen[rows], chosen[cols]
        distinct = i != j
        i, j = i[distinct], j[distinct]
        out = np.full((meg.shape[0], n_models + len(partial_pairs)), np.nan)
        if i.numel() < 3:
            return out
        data = meg[:, i, j]
        pairs = models[:, i, j]
        z_data = standardise(data, ranked)
        z_models = standardise(pairs, ranked)
        if method == "cosine":  # a zero-norm row gives 0, as rdm_compare's cosine does
            unit = standardise(data, False, centred=False)
            plain = unit @ standardise(pairs, False, centred=False).T
        else:
            plain = z_data @ z_models.T
        out[:, :n_models] = plain.cpu().numpy()
        if partial_pairs:
            r_data = (z_data @ z_models.T).cpu().numpy()  # (times, models), centred
            r_models = (z_models @ z_models.T).cpu().numpy()
            # A constant data row or target model has no partial correlation (NaN, as in
            # rdm_compare); standardise leaves such rows all zero.
            data_varies = (z_data != 0).any(dim=-1).cpu().numpy()
            model_varies = (z_models != 0).any(dim=-1).cpu().numpy()
            for k, (target_model, given) in enumerate(partial_pairs):
                value = _partial_from_correlations(
                    r_data[:, target_model], r_data[:, given], r_models[target_model, given]
                )
                ok = data_varies & model_varies[target_model]
                out[:, n_models + k] = np.where(ok, value, np.nan)
        out[~np.isfinite(out)] = np.nan
        return out

    return statistic


def _partial_from_correlations(r_xy: np.ndarray, r_xz: np.ndarray, r_yz: float) -> np.ndarray:
    """Partial correlation of x and y given z (and an intercept) from Pearson correlations."""
    model_residual = np.sqrt(max(1.0 - r_yz * r_yz, 0.0))
    data_residual = np.sqrt(np.maximum(1.0 - r_xz * r_xz, 0.0))
    if not model_residual > DEGENERATE:
        return np.full(r_xy.shape, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.clip((r_xy - r_xz * r_yz) / (data_residual * model_residual), -1.0, 1.0)
    return np.where(data_residual > DEGENERATE, value, np.nan)
