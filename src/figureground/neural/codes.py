"""What drives a simulated brain: named codes, one vector per image.

A simulated brain responds to a weighted mix of codes (:func:`figureground.neural.simulate`).
A code is a matrix (image, features), kept as its leading principal component scores over
images, each scaled to unit variance: these drive the sensor patterns. Sources:

- :func:`network_codes`: a feature store's layer, one code per variant (``figure`` = the
  no-background embedding, ``ground`` = no-foreground, ``image`` = original). A brain built
  from the network that the analyses then use can only confirm that network; use another
  network, another layer, or pixel codes to validate an analysis.
- :func:`pixel_codes`: low-level descriptors of the stimulus pixels and the object mask
  (:mod:`figureground.stimuli.descriptors`): ``figure`` / ``ground`` pooled over the object /
  the rest (position- and size-tolerant), ``figure_grid`` / ``ground_grid`` per cell of a
  grid (position-specific), ``image`` (whole image) and ``centre`` (a window at fixation).
  No network is involved.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from figureground import logs
from figureground.conditions import NO_BACKGROUND, NO_FOREGROUND, ORIGINAL
from figureground.errors import DataError, UsageError

log = logs.get_logger(__name__)

NETWORK_VARIANTS = {"figure": NO_BACKGROUND, "ground": NO_FOREGROUND, "image": ORIGINAL}


@dataclass(frozen=True)
class ImageCodes:
    """Codes of a set of images as principal component scores (image, k), unit variance.

    ``scores[name]`` rows follow ``image_ids``; ``explained[name]`` is the share of the
    code's variance each component explains; ``source`` says what the codes came from.
    """

    image_ids: tuple[str, ...]
    concepts: tuple[str, ...]
    scores: Mapping[str, np.ndarray]
    explained: Mapping[str, np.ndarray]
    source: str

    def __post_init__(self) -> None:
        n = len(self.image_ids)
        if len(self.concepts) != n:
            raise DataError(f"{n} image ids but {len(self.concepts)} concepts")
        for name, values in self.scores.items():
            if values.shape[0] != n or values.ndim != 2:
                raise DataError(f"code {name!r} has shape {values.shape}; expected ({n}, k)")
            if not np.isfinite(values).all():
                raise DataError(f"code {name!r} holds NaN or infinite values")


def network_codes(
    store: str | Path,
    layer: str,
    names: Sequence[str] = ("figure", "ground"),
    n_components: int = 4,
    rng: np.random.Generator | None = None,
    chunk: int = 256,
) -> ImageCodes:
    """Codes from a feature store's ``layer`` (see :data:`NETWORK_VARIANTS`).

    The layer is read in chunks and reduced by :func:`pca_scores` (exact for small arrays,
    randomized beyond), so a THINGS-size store never sits in memory whole.
    """
    import xarray as xr

    from figureground.features.store import quiet_zarr
    from figureground.neural.aggregate import concept_of_id

    unknown = [n for n in names if n not in NETWORK_VARIANTS]
    if unknown:
        raise UsageError(
            f"network codes {unknown} unknown; expected some of {list(NETWORK_VARIANTS)}"
        )
    store = Path(store)
    if not store.exists():
        raise UsageError(f"feature store {store} not found")
    rng = rng if rng is not None else np.random.default_rng(0)
    scores, explained, ids, concepts = {}, {}, None, None
    for name in names:
        variant = NETWORK_VARIANTS[name]
        try:
            with quiet_zarr():
                dataset = xr.open_zarr(store, group=variant, consolidated=False)
        except Exception as exc:
            raise DataError(
                f"{store}: no readable group {variant!r} ({type(exc).__name__}); expected a "
                "feature store with groups original/no_background/no_foreground"
            ) from None
        if layer not in dataset.data_vars:
            raise UsageError(
                f"{store} group {variant!r} has no layer {layer!r} "
                f"(it has {sorted(dataset.data_vars)})"
            )
        array = dataset[layer]
        if array.dims[0] != "image":
            raise DataError(f"{store}/{variant}/{layer}: first dimension is not 'image'")
        these = [str(i) for i in array["image"].values]
        if ids is None:
            ids = these
            concepts = (
                [str(c) for c in array["concept"].values]
                if "concept" in array.coords and array["concept"].dims == ("image",)
                else [concept_of_id(i) for i in ids]
            )
        elif set(these) != set(ids):
            raise DataError(
                f"{store}: {variant} holds different images ({len(set(these) ^ set(ids))} differ)"
            )
        if these != ids:
            array = array.assign_coords(image=these).sel(image=ids)
        raw, ratio = pca_scores(array, n_components, rng, chunk)
        spread = raw.std(axis=0)
        scores[name] = raw / np.where(spread > 0, spread, 1.0)
        explained[name] = ratio
    if ids is None or len(ids) < 3:
        raise DataError(f"{store}: {0 if ids is None else len(ids)} images; need at least 3")
    return ImageCodes(tuple(ids), tuple(concepts), scores, explained, f"network:{store}:{layer}")


def pixel_codes(
    images: Mapping[str, Path],
    masks: Mapping[str, Path],
    regions: Sequence[str] | None = None,
    grid: int = 4,
    n_components: int = 4,
) -> ImageCodes:
    """Pixel descriptors of each image's regions (no network involved).

    Parameters
    ----------
    images : image id -> image file.
    masks : image id -> mask file (8-bit PNG, object bright), same ids as ``images``.
    regions : regions of :mod:`figureground.stimuli.descriptors` (default: all).
    grid : cells per side of the ``*_grid`` regions.
    """
    import cv2

    from figureground.neural.aggregate import concept_of_id
    from figureground.stimuli import load_rgb
    from figureground.stimuli.descriptors import REGIONS, region_descriptors

    chosen = tuple(regions or REGIONS)
    missing = [i for i in images if i not in masks]
    if missing:
        raise DataError(f"no mask for {len(missing)} image(s), e.g. {missing[:3]}")
    ids = sorted(images)
    rows: dict[str, list[np.ndarray]] = {r: [] for r in chosen}
    for image_id in logs.progress(ids, len(ids), "pixel codes"):
        rgb = load_rgb(images[image_id])
        mask = cv2.imread(str(masks[image_id]), cv2.IMREAD_UNCHANGED)
        if mask is None:
            raise DataError(f"mask {masks[image_id]} is missing or not an image")
        if mask.ndim == 3:
            mask = mask[..., 0]
        alpha = mask.astype(np.float32) / float(np.iinfo(mask.dtype).max)
        if alpha.shape != rgb.shape[:2]:
            raise DataError(f"mask {masks[image_id]} does not match its image's size")
        for region, vector in region_descriptors(rgb, alpha, chosen, grid).items():
            rows[region].append(vector)
    scores, explained = {}, {}
    for region, vectors in rows.items():
        scores[region], explained[region] = standardised_scores(np.stack(vectors), n_components)
    concepts = tuple(concept_of_id(i) for i in ids)
    return ImageCodes(tuple(ids), concepts, scores, explained, "pixels")


def standardised_scores(values: np.ndarray, n_components: int) -> tuple[np.ndarray, np.ndarray]:
    """Leading principal component scores over images (image, k), each of unit variance, and
    the share of variance each explains.

    Features are z-scored over images first (pixel descriptors mix units); constant
    features are dropped. Signs: the largest-magnitude score of each component is positive.
    """
    data = np.asarray(values, dtype=np.float64)
    spread = data.std(axis=0)
    keep = spread > 1e-12 * max(1.0, float(np.abs(data).max()))
    if not keep.any():
        raise DataError("a code is constant over images; it cannot drive a brain")
    z = (data[:, keep] - data[:, keep].mean(axis=0)) / spread[keep]
    u, s, _ = np.linalg.svd(z, full_matrices=False)
    k = int(min(n_components, (s > s[0] * 1e-10).sum(), data.shape[0] - 1))
    scores = u[:, :k] * s[:k]
    flip = np.sign(scores[np.argmax(np.abs(scores), axis=0), np.arange(k)])
    scores *= np.where(flip == 0, 1.0, flip)
    return scores / scores.std(axis=0), s[:k] ** 2 / np.sum(s**2)


def _blocks(array, chunk: int):
    n = array.sizes["image"]
    for start in range(0, n, chunk):
        block = np.asarray(array.isel(image=slice(start, start + chunk)).values, dtype=np.float64)
        block = block.reshape(len(block), -1)
        if not np.isfinite(block).all():
            raise DataError(
                f"features {array.name!r}: NaN or infinite values in images "
                f"{start}..{start + len(block) - 1}"
            )
        yield start, block


def pca_scores(
    array,
    n_components: int,
    rng: np.random.Generator,
    chunk: int = 256,
    dense_limit: int = 2**25,
    power_iterations: int = 3,
) -> tuple[np.ndarray, np.ndarray]:
    """Principal component scores over images of a (image, ...) array, read in chunks.

    Small arrays (images x features <= ``dense_limit``) use an exact SVD; larger ones a
    randomized SVD (range finder with ``power_iterations`` passes, 10 extra dimensions) that
    never holds more than one chunk of images. Signs: the largest-magnitude score of each
    component is positive.

    Returns
    -------
    scores (n_images, k) and explained-variance ratios (k,), k = min(n_components, n - 1).
    """
    n = array.sizes["image"]
    k = max(1, min(n_components, n - 1))
    n_features = int(np.prod([array.sizes[d] for d in array.dims[1:]]))
    mean = np.zeros(n_features)
    total = 0.0
    for _, block in _blocks(array, chunk):
        mean += block.sum(axis=0)
    mean /= n
    if n * n_features <= dense_limit:
        centred = np.asarray(array.values, dtype=np.float64).reshape(n, -1) - mean
        u, s, _ = np.linalg.svd(centred, full_matrices=False)
        total = float(np.sum(centred**2))
    else:
        width = min(k + 10, n)
        omega = rng.standard_normal((n_features, width))
        y = np.vstack([(block - mean) @ omega for _, block in _blocks(array, chunk)])
        for _ in range(power_iterations):
            q, _ = np.linalg.qr(y)
            z = np.zeros((n_features, width))
            for start, block in _blocks(array, chunk):
                z += (block - mean).T @ q[start : start + len(block)]
            z, _ = np.linalg.qr(z)
            y = np.vstack([(block - mean) @ z for _, block in _blocks(array, chunk)])
        q, _ = np.linalg.qr(y)
        b = np.zeros((q.shape[1], n_features))
        for start, block in _blocks(array, chunk):
            centred_block = block - mean
            b += q[start : start + len(block)].T @ centred_block
            total += float(np.sum(centred_block**2))
        ub, s, _ = np.linalg.svd(b, full_matrices=False)
        u = q @ ub
    scores = u[:, :k] * s[:k]
    flip = np.sign(scores[np.argmax(np.abs(scores), axis=0), np.arange(k)])
    scores *= np.where(flip == 0, 1.0, flip)
    ratio = s[:k] ** 2 / total if total > 0 else np.zeros(k)
    return scores, ratio
