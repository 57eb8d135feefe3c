"""One batch of the fused seed method: Lanczos resampling as two matrix products, on torch.

``cv2.resize(meg, (positions, channels), INTER_LANCZOS4)`` is linear and separable:
``resize(X) = rows @ X @ cols`` (:func:`lanczos_matrices`, taken from OpenCV itself once per
shape), so a batch is resampled on the network's device (float64 on CUDA, float32
elsewhere) and its distances computed there (:func:`seed_batch_distances`); see
:mod:`figureground.analysis.seed_fused`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from figureground.errors import UsageError


def lanczos_matrices(
    sensors: int, times: int, channels: int, positions: int
) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's Lanczos-4 resize from (sensors, times) to (channels, positions) as matrices.

    Returns
    -------
    rows : ndarray, float32, shape (channels, sensors)
    cols : ndarray, float32, shape (times, positions)
        ``rows @ X @ cols`` equals ``cv2.resize(X, (positions, channels), INTER_LANCZOS4)``
        up to float32 rounding.
    """
    import cv2

    if min(sensors, times, channels, positions) < 1:
        raise UsageError(
            f"resize from ({sensors}, {times}) to ({channels}, {positions}): sizes must be >= 1"
        )
    lanczos = cv2.INTER_LANCZOS4
    rows = cv2.resize(np.eye(sensors, dtype=np.float32), (sensors, channels), interpolation=lanczos)
    cols = cv2.resize(np.eye(times, dtype=np.float32), (positions, times), interpolation=lanczos)
    return rows.reshape(channels, sensors), cols.reshape(times, positions)


@dataclasses.dataclass(frozen=True)
class Resampler:
    """The Lanczos matrices of one (sensors, times) -> (channels, positions) shape on a device."""

    rows: Any  # torch tensor (channels, sensors)
    cols: Any  # torch tensor (times, positions)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(sensors, times, channels, positions)."""
        return (self.rows.shape[1], self.cols.shape[0], self.rows.shape[0], self.cols.shape[1])


def _work_dtype(device: Any) -> Any:
    import torch

    return torch.float64 if torch.device(device).type == "cuda" else torch.float32


def resampler(sensors: int, times: int, channels: int, positions: int, device: Any) -> Resampler:
    """:func:`lanczos_matrices` as torch tensors on ``device`` (float64 on CUDA)."""
    import torch

    rows, cols = lanczos_matrices(sensors, times, channels, positions)
    dtype = _work_dtype(device)
    return Resampler(
        torch.from_numpy(rows).to(device, dtype), torch.from_numpy(cols).to(device, dtype)
    )


def _zscore(matrices: Any) -> Any:
    """Z-score each matrix of a batch over all its entries (as ``seed._zscore``)."""
    mean = matrices.mean(dim=(-2, -1), keepdim=True)
    std = matrices.std(dim=(-2, -1), correction=0, keepdim=True)
    return (matrices - mean) / std.where(std > 0, 1.0)


def seed_batch_distances(
    embeddings: Any, meg: Any, *, zscore: bool = False, resample: Resampler | None = None
) -> np.ndarray:
    """Seed distances of one batch: ``||resize(meg_i) - embedding_i||`` for every image.

    Parameters
    ----------
    embeddings : torch tensor or ndarray, shape (images, channels[, height, width])
        Feature maps (or pooled features) of the batch; a tensor is used on its device.
    meg : ndarray or tensor, shape (images, sensors, times)
        The matching responses, row for row.
    zscore : bool
        Z-score both matrices before the distance (as :func:`seed.seed_distance`).
    resample : Resampler, optional
        Prebuilt matrices for these shapes on the embeddings' device (built if omitted).

    Returns
    -------
    ndarray, float64, shape (images,)
        Equal to ``seed.seed_distance(meg, embeddings, batched=True)``.
    """
    import torch

    emb = torch.as_tensor(embeddings)
    if emb.ndim not in (2, 3, 4):
        raise UsageError(
            f"embeddings must have shape (images, channels[, height, width]); got "
            f"{tuple(emb.shape)}"
        )
    emb = emb.reshape(emb.shape[0], emb.shape[1], -1)
    responses = torch.as_tensor(meg)
    if responses.ndim != 3 or responses.shape[0] != emb.shape[0]:
        raise UsageError(
            f"MEG must have shape (images, sensors, times) with {emb.shape[0]} images, one per "
            f"embedding; got {tuple(responses.shape)}"
        )
    n, channels, positions = emb.shape
    sensors, times = responses.shape[1:]
    if resample is None:
        resample = resampler(sensors, times, channels, positions, emb.device)
    elif resample.shape != (sensors, times, channels, positions):
        raise UsageError(
            f"resampler is for shape {resample.shape}; this batch needs "
            f"{(sensors, times, channels, positions)}"
        )
    dtype = resample.rows.dtype
    # MEG as float32 first, as OpenCV reads it; then the device's working precision.
    responses = responses.to(torch.float32).to(emb.device, dtype)
    resampled = resample.rows @ responses @ resample.cols  # (images, channels, positions)
    emb = emb.to(dtype)
    if zscore:
        resampled, emb = _zscore(resampled), _zscore(emb)
    diff = (resampled - emb).reshape(n, -1)
    distance = torch.linalg.vector_norm(diff, dim=1, dtype=torch.float64)
    return distance.cpu().numpy()
