"""Synthetic feature stores with independent foreground and background embeddings.

The validation sweep needs a feature store whose foreground (``no_background``) and background
(``no_foreground``) embeddings are statistically alike, so that "equal weights" in the
simulator is a true null for methods that look at representational geometry. Each variant is a
rank-``rank`` latent code (orthonormal scores over images times the same singular values for
both variants) mapped to ``channels x size x size`` units by a random orthonormal loading,
plus a little isotropic noise. ``original`` is the sum of the two.

``norm_ratio`` scales the whole ``no_background`` embedding: scaling changes no correlation
distance and no z-scored principal component (so neither the simulated brain nor RSA sees it),
but it changes the embeddings' norms, as a white background does in real networks.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from figureground import provenance
from figureground.errors import UsageError

VARIANTS = ("original", "no_background", "no_foreground")
SINGULAR_VALUES = (4.0, 3.0, 2.0, 1.5, 1.2, 1.0, 0.8, 0.6)


def image_ids(n_images: int, per_concept: int = 4) -> list[str]:
    """THINGS-like ids ``c00_01a``: ``per_concept`` exemplars of ceil(n / per_concept) concepts."""
    return [f"c{i // per_concept:02d}_{i % per_concept + 1:02d}a" for i in range(n_images)]


def _latent_map(
    rng: np.random.Generator, n_images: int, n_units: int, rank: int, noise: float
) -> np.ndarray:
    """(n_images, n_units): orthonormal scores x fixed singular values x orthonormal loadings."""
    scores, _ = np.linalg.qr(rng.standard_normal((n_images, rank)))
    scores -= scores.mean(axis=0)
    scores, _ = np.linalg.qr(scores)
    loadings, _ = np.linalg.qr(rng.standard_normal((n_units, rank)))
    singular = np.resize(np.asarray(SINGULAR_VALUES), rank) * np.sqrt(n_images)
    signal = (scores * singular) @ loadings.T
    return signal + noise * rng.standard_normal((n_images, n_units))


def synthetic_features(
    n_images: int = 80,
    *,
    seed: int = 0,
    rank: int = 4,
    channels: int = 16,
    size: int = 4,
    noise: float = 0.05,
    norm_ratio: float = 1.25,
) -> dict[str, np.ndarray]:
    """Embeddings (image, channel, y, x) of the three variants as float32 arrays.

    Parameters
    ----------
    n_images : number of images (>= 3 and > rank).
    seed : seeds the latent codes and loadings.
    rank : latent dimensions per variant (the simulator keeps 4 components by default).
    channels, size : embedding shape (channels, size, size).
    noise : standard deviation of isotropic unit noise (the latent signal has unit scale).
    norm_ratio : factor on the ``no_background`` embedding (> 0).
    """
    n_units = channels * size * size
    if n_images < 3 or n_images <= rank or rank < 1 or n_units < 2 * rank:
        raise UsageError(
            f"synthetic features need images > rank >= 1 and units >= 2 x rank; got "
            f"{n_images} images, rank {rank}, {n_units} units"
        )
    if not norm_ratio > 0:
        raise UsageError(f"norm_ratio={norm_ratio!r}; expected a positive number")
    rng = np.random.default_rng(seed)
    fg = _latent_map(rng, n_images, n_units, rank, noise) / np.sqrt(n_units)
    bg = _latent_map(rng, n_images, n_units, rank, noise) / np.sqrt(n_units)
    shape = (n_images, channels, size, size)
    return {
        "original": (fg + bg).reshape(shape).astype(np.float32),
        "no_background": (norm_ratio * fg).reshape(shape).astype(np.float32),
        "no_foreground": bg.reshape(shape).astype(np.float32),
    }


def write_feature_store(
    arrays: dict[str, np.ndarray], out: str | Path, layer: str = "layer2", **attrs: object
) -> Path:
    """Write (image, channel, y, x) arrays as a Zarr v3 feature store, one group per variant.

    The layout is the features stage's: ``xarray.open_zarr(out, group=variant)[layer]`` with
    ``image`` ids (from :func:`image_ids`) and a ``concept`` coordinate.
    """
    import xarray as xr

    from figureground.neural.aggregate import concept_of_id

    path = Path(out)
    n_images = next(iter(arrays.values())).shape[0]
    ids = image_ids(n_images)
    stamp = provenance.stamp(stage="synthetic_features", **attrs)
    for variant, values in arrays.items():
        data = xr.DataArray(
            values,
            dims=("image", "channel", "y", "x"),
            coords={  # object strings: Zarr v3 stores them as vlen-utf8, a specified type
                "image": np.array(ids, dtype=object),
                "concept": ("image", np.array([concept_of_id(i) for i in ids], dtype=object)),
            },
            name=layer,
            attrs={"model": "synthetic", "weights": "none", "layer": layer},
        )
        dataset = data.to_dataset()
        dataset.attrs["provenance"] = json.dumps(stamp, sort_keys=True, default=str)
        mode = "w" if variant == next(iter(arrays)) else "a"
        dataset.to_zarr(path, group=variant, mode=mode, zarr_format=3, consolidated=False)
    return path
