"""The seed distance on arrays: Lanczos-resampled MEG against an embedding, by L2 norm.

The method and what it cannot show are described in :mod:`figureground.analysis.seed`;
here are its array steps: :func:`resample_meg` (``cv2.resize`` with ``INTER_LANCZOS4``),
:func:`embedding_matrices`, :func:`seed_distance` and the norm check
:func:`seed_scale_check`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from figureground.errors import UsageError

# OpenCV resizes many-channel images in one call; beyond this it refuses some channel counts.
_CV_CHANNELS = 128


def _zscore(matrices: np.ndarray, ndim: int) -> np.ndarray:
    """Z-score each matrix over all its entries (the last ``ndim`` axes)."""
    axes = tuple(range(-ndim, 0))
    mean = matrices.mean(axis=axes, keepdims=True)
    std = matrices.std(axis=axes, keepdims=True)
    return (matrices - mean) / np.where(std > 0, std, 1.0)


def resample_meg(meg: np.ndarray, channels: int, positions: int) -> np.ndarray:
    """Resample MEG matrices onto a (channels, positions) grid with Lanczos-4 (OpenCV).

    Parameters
    ----------
    meg : ndarray, shape (sensors, times) or (images, sensors, times)
        Response matrices; converted to float32 as in the study.
    channels, positions : int
        Target rows (embedding channels) and columns (flattened spatial positions).

    Returns
    -------
    ndarray, float32, shape (channels, positions) or (images, channels, positions)
    """
    import cv2

    data = np.asarray(meg, dtype=np.float32)
    if data.ndim == 2:
        return cv2.resize(
            np.ascontiguousarray(data), (positions, channels), interpolation=cv2.INTER_LANCZOS4
        )
    if data.ndim != 3:
        raise UsageError(
            f"MEG must have shape (sensors, times) or (images, sensors, times); got {data.shape}"
        )
    out = np.empty((data.shape[0], channels, positions), dtype=np.float32)
    # cv2 treats the last axis as colour channels: resize up to 128 images per call.
    for start in range(0, data.shape[0], _CV_CHANNELS):
        block = np.ascontiguousarray(data[start : start + _CV_CHANNELS].transpose(1, 2, 0))
        resized = cv2.resize(block, (positions, channels), interpolation=cv2.INTER_LANCZOS4)
        out[start : start + block.shape[2]] = resized.reshape(channels, positions, -1).transpose(
            2, 0, 1
        )
    return out


def embedding_matrices(embedding: np.ndarray, batched: bool) -> np.ndarray:
    """Embeddings as float32 2-D matrices (channels, positions), batched or single."""
    data = np.asarray(embedding, dtype=np.float32)
    lead = 1 if batched else 0
    if data.ndim < lead + 1 or data.ndim > lead + 3:
        kind = "(images, channels[, height, width])" if batched else "(channels[, h, w])"
        raise UsageError(f"embedding must have shape {kind}; got {data.shape}")
    if data.ndim == lead + 1:  # globally pooled: one position
        return data[..., None]
    return data.reshape(*data.shape[: lead + 1], -1)


def _is_batched(meg: np.ndarray, embedding: np.ndarray, batched: bool | None) -> bool:
    """Whether ``embedding`` has a leading image axis (see :func:`seed_distance`)."""
    if batched is not None:
        return batched
    return embedding.ndim == 4 or meg.ndim == 3


def seed_distance(
    meg: np.ndarray, embedding: np.ndarray, *, zscore: bool = False, batched: bool | None = None
) -> np.ndarray | float:
    """L2 distance between Lanczos-resampled MEG and an embedding (the seed method).

    Parameters
    ----------
    meg : ndarray
        One response matrix (sensors, times), shared by all images, or one per image
        (images, sensors, times).
    embedding : ndarray
        One activation (channels, height, width) / (channels, positions), or a batch
        (images, channels, height, width) / (images, channels, positions) / (images, channels).
    zscore : bool
        Z-score both matrices before the distance (off in the study).
    batched : bool, optional
        Whether ``embedding`` has a leading image axis. By default a 4-D embedding is a
        batch, and with per-image MEG (3-D) every embedding is a batch; pass it for shared
        MEG with (images, channels, positions) or pooled (images, channels) embeddings.

    Returns
    -------
    float or ndarray, shape (images,)
        Frobenius norm of ``resize(meg) - embedding`` (float64 result of float32 inputs).
    """
    meg_arr = np.asarray(meg)
    emb_arr = np.asarray(embedding)
    if meg_arr.ndim not in (2, 3):
        raise UsageError(
            f"MEG must have shape (sensors, times) or (images, sensors, times); got {meg_arr.shape}"
        )
    batched = _is_batched(meg_arr, emb_arr, batched)
    if meg_arr.ndim == 3 and not batched:
        raise UsageError(
            f"MEG has an image axis ({meg_arr.shape}) but the embedding "
            f"{emb_arr.shape} is a single one; pass one embedding per image"
        )
    emb = embedding_matrices(emb_arr, batched)
    if meg_arr.ndim == 3 and meg_arr.shape[0] != emb.shape[0]:
        raise UsageError(
            f"MEG has {meg_arr.shape[0]} images but the embedding has "
            f"{emb.shape[0]}; expected one MEG matrix per embedding"
        )
    channels, positions = emb.shape[-2:]
    resampled = resample_meg(meg_arr, channels, positions)
    if zscore:
        resampled = _zscore(resampled, 2)
        emb = _zscore(emb, 2)
    diff = resampled - emb  # broadcasts a shared MEG matrix over the batch
    dist = np.sqrt(np.einsum("...ij,...ij->...", diff, diff, dtype=np.float64))
    return float(dist) if not batched else np.asarray(dist, dtype=np.float64)


def seed_scale_check(
    meg: np.ndarray, embedding: np.ndarray, *, batched: bool | None = None
) -> pd.DataFrame:
    """Seed distances beside the norms of the embedding and of the resampled MEG.

    With noise of small scale in place of the MEG the distance equals the
    embedding norm: ``relative_difference`` = (distance - ||E||) / ||E|| is ~0.

    Returns
    -------
    DataFrame with columns ``distance``, ``embedding_norm``, ``meg_norm``,
    ``relative_difference`` (one row per image).
    """
    meg_arr, emb_arr = np.asarray(meg), np.asarray(embedding)
    batched = _is_batched(meg_arr, emb_arr, batched)
    dist = np.atleast_1d(seed_distance(meg_arr, emb_arr, batched=batched))
    emb = embedding_matrices(emb_arr, batched)
    emb = emb if batched else emb[None]
    channels, positions = emb.shape[-2:]
    emb_norm = np.linalg.norm(emb.reshape(emb.shape[0], -1).astype(np.float64), axis=1)
    resampled = resample_meg(meg_arr, channels, positions).reshape(-1, channels * positions)
    meg_norm = np.broadcast_to(np.linalg.norm(resampled.astype(np.float64), axis=1), dist.shape)
    return pd.DataFrame(
        {
            "distance": dist,
            "embedding_norm": emb_norm,
            "meg_norm": meg_norm,
            "relative_difference": (dist - emb_norm) / emb_norm,
        }
    )
