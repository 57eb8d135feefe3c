"""Responses and features brought to a form the ridge solvers work well on."""

from __future__ import annotations

from typing import Any

import numpy as np


def scaled(responses: Any) -> Any:
    """Responses divided by their overall standard deviation (any units -> unit scale).

    Correlations and R² are unchanged; the ridge solvers then work on numbers of order 1.
    """
    scale = float(np.std(responses.values))
    return responses / scale if scale > 0 else responses


def span_basis(features: Any, max_images: int = 5000) -> Any:
    """Features expressed in an orthonormal basis of their own span: (image, rank).

    With fewer images than features, ``X = U S Vt`` and ``X V = U S`` keeps every inner
    product between images, and every projection onto directions inside the span (where PCA
    axes fitted on any subset of the images lie, and where ridge solutions lie). PCA scores
    on training folds (up to sign) and ridge predictions are therefore unchanged, while PCA
    and the solvers work on ``rank <= n_images`` columns instead of, e.g., 401,408. Not used
    for RSA (correlation distance is not rotation-invariant). Arrays with at least half as
    many images as features, or more than ``max_images`` images, are returned unchanged.
    """
    import xarray as xr

    values = np.asarray(features.values, dtype=np.float64).reshape(features.sizes["image"], -1)
    n_images, n_features = values.shape
    if 2 * n_images > n_features or n_images > max_images:
        return features
    u, s, _ = np.linalg.svd(values, full_matrices=False)
    rank = int((s > s[0] * n_features * np.finfo(np.float64).eps).sum()) if s.size else 0
    return xr.DataArray(
        (u[:, :rank] * s[:rank]).astype(features.dtype),
        dims=("image", "component"),
        coords={"image": features["image"].values},
        attrs=dict(features.attrs),
    )
