"""Mask-gated spatial readout: which cells of a layer's map does the brain read?

A fixed map over image coordinates cannot tell the object (figure) from the centre of the
image: THINGS objects sit near the centre, and with masks shuffled across images the
average in-mask ratio of a fixed map is unchanged. The readout is therefore *gated by each
image's object mask*. Per time window, with ``X[i, c, g]`` the (channel-reduced, pooled)
map of image ``i`` and ``m[i, g]`` the share of cell ``g`` its object covers,

    y[i, k] = sum_c sum_g X[i, c, g] * w[i, g] * W[c, k],
    w[i, g] = s_in[g] * m[i, g] + s_out[g] * (1 - m[i, g]),

two spatial maps (``s_in`` for cells inside the object, ``s_out`` for cells outside) and
channel weights ``W`` to each response component ``k`` (:func:`response_components`).
``gated=False`` fits one map (``s_in == s_out``) for comparison.

Fit (:func:`fit_readout`): alternating ridge. The W-step is a ridge of ``Y`` on
``Z[i] = sum_g X[i, :, g] w[i, g]``; the s-step a ridge of all ``y[i, k]`` on the 2G-column
design ``[W_k . X_i * m_i, W_k . X_i * (1 - m_i)]``, accumulated as normal equations chunk by
chunk. Both have intercepts (features and targets centred on the fitted images). Penalties
are *relative*: ``alpha * mean diagonal of the normal matrix``, so they do not depend on the
units of the maps or responses (defaults :data:`ALPHA_CHANNEL`, :data:`ALPHA_SPACE`, fixed,
not cross-validated). After each s-step ``[s_in, s_out]`` is scaled to unit norm and its sign
set so that the mean weight over the fitted images and cells is positive (W takes the scale
and sign). Iterations stop after ``n_iter`` or when ``[s_in, s_out]`` moves by less than
``tol``. Starting map: uniform (average pooling).

The layer's maps are reduced before the fit (:func:`reduce_maps`): a PCA of the channels
fitted on a random subset of images (all cells), then every chunk of images projected and
area-pooled to a coarse grid; the masks are pooled the same way (:func:`pool_masks`). Maps
are read by slices of ``chunk`` images, never whole (a THINGS layer is up to 35 GB).

Ratios, nulls, object-centred maps and the per-window table are in
:mod:`figureground.analysis.readout_ratio`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from figureground import logs
from figureground.errors import DataError, UsageError

log = logs.get_logger(__name__)

ALPHA_CHANNEL = 1e-2  # W-step penalty, relative to the mean diagonal of Z'Z
ALPHA_SPACE = 1e-1  # s-step penalty, relative to the mean diagonal of the 2G normal matrix
N_ITER = 10
TOL = 1e-3
EQUATION_CHUNK = 2048  # images per block of the s-step's normal equations


# ----------------------------------------------------------------------------- pooling


def area_pool_matrix(size_in: int, size_out: int) -> np.ndarray:
    """(size_out, size_in) averaging matrix with torch's adaptive-pooling bins."""
    if size_out < 1 or size_in < size_out:
        raise UsageError(f"cannot pool {size_in} cells to {size_out}; expected 1 <= out <= in")
    matrix = np.zeros((size_out, size_in))
    for i in range(size_out):
        start, stop = i * size_in // size_out, -(-(i + 1) * size_in // size_out)
        matrix[i, start:stop] = 1.0 / (stop - start)
    return matrix


def area_pool(maps: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Area-average the last two axes of ``maps`` (..., H, W) onto ``grid`` (rows, cols)."""
    height, width = maps.shape[-2:]
    if (height, width) == tuple(grid):
        return maps
    rows = area_pool_matrix(height, grid[0]).astype(maps.dtype)
    cols = area_pool_matrix(width, grid[1]).astype(maps.dtype)
    return rows @ maps @ cols.T


def _check_grid(grid: tuple[int, int]) -> tuple[int, int]:
    if len(grid) != 2 or min(grid) < 1:
        raise UsageError(f"grid {grid!r}; expected (rows, cols) of positive integers")
    return int(grid[0]), int(grid[1])


def pool_masks(masks: Any, grid: tuple[int, int] = (14, 14), chunk: int = 256) -> np.ndarray:
    """Object masks (image, H, W) in [0, 1], area-pooled to ``grid``: float32 (image, rows, cols).

    ``masks`` may be any array-like that supports slicing along images (read ``chunk`` at a
    time).
    """
    grid = _check_grid(grid)
    if len(masks.shape) != 3:
        raise DataError(f"masks of shape {tuple(masks.shape)}; expected (image, rows, cols)")
    out = np.empty((masks.shape[0], *grid), dtype=np.float32)
    for start in range(0, masks.shape[0], chunk):
        block = np.asarray(masks[start : start + chunk], dtype=np.float32)
        if block.size and (np.nanmin(block) < 0 or np.nanmax(block) > 1 or np.isnan(block).any()):
            raise DataError(f"masks of images {start}.. are not in [0, 1]")
        out[start : start + len(block)] = area_pool(block, grid)
    return np.clip(out, 0.0, 1.0)


# ----------------------------------------------------------------------------- channel PCA


@dataclass(frozen=True)
class ChannelProjection:
    """PCA of a layer's channels: ``reduced = components @ (x - mean)`` at every cell."""

    mean: np.ndarray  # (channel,)
    components: np.ndarray  # (component, channel), unit rows
    explained_variance_ratio: np.ndarray  # (component,)
    fit_images: np.ndarray  # indices of the images the PCA was fitted on


def _fit_blocks(n_images: int, fit_images: int, fit_block: int, seed: int) -> np.ndarray:
    """Starts of random aligned blocks of ``fit_block`` images, >= ``fit_images`` in all."""
    starts = np.random.default_rng(seed).permutation(np.arange(0, n_images, fit_block))
    sizes = np.minimum(fit_block, n_images - starts)
    wanted = int(np.searchsorted(np.cumsum(sizes), min(fit_images, n_images))) + 1
    return np.sort(starts[:wanted])


def fit_channel_projection(
    maps: Any, n_components: int, fit_images: int = 2000, fit_block: int = 32, seed: int = 0
) -> ChannelProjection:
    """PCA of the channels of (image, channel, H, W) ``maps`` over all cells of a random subset.

    The subset is made of random aligned blocks of ``fit_block`` consecutive images (so a
    chunked store decompresses whole chunks once), at least ``fit_images`` images in all.
    Components are signed so that each one's largest loading is positive.
    """
    n_images, n_channels = maps.shape[:2]
    if not 1 <= n_components <= n_channels:
        raise UsageError(f"n_channel_components={n_components}; expected 1..{n_channels}")
    shift = cross = total = None
    count, used = 0, []
    for start in _fit_blocks(n_images, fit_images, fit_block, seed):
        block = np.asarray(maps[start : start + fit_block], dtype=np.float64)
        flat = np.moveaxis(block, 1, -1).reshape(-1, n_channels)
        if not np.isfinite(flat).all():
            raise DataError(f"maps of images {start}.. contain NaN or infinite values")
        if shift is None:  # shifted sums keep the covariance accurate for large means
            shift = flat.mean(axis=0)
            cross, total = np.zeros((n_channels, n_channels)), np.zeros(n_channels)
        flat -= shift
        cross += flat.T @ flat
        total += flat.sum(axis=0)
        count += len(flat)
        used.append(np.arange(start, start + len(block)))
    mean_shifted = total / count
    covariance = cross / count - np.outer(mean_shifted, mean_shifted)
    values, vectors = np.linalg.eigh(covariance)
    order = np.argsort(values)[::-1][:n_components]
    components = vectors[:, order].T
    signs = np.sign(components[np.arange(n_components), np.abs(components).argmax(axis=1)])
    components *= np.where(signs == 0, 1.0, signs)[:, None]
    total_variance = max(values.sum(), np.finfo(float).tiny)
    return ChannelProjection(
        mean=shift + mean_shifted,
        components=components,
        explained_variance_ratio=values[order] / total_variance,
        fit_images=np.concatenate(used),
    )


def reduce_maps(
    maps: Any,
    *,
    n_channel_components: int = 16,
    grid: tuple[int, int] = (14, 14),
    chunk: int = 256,
    seed: int = 0,
    fit_images: int = 2000,
    fit_block: int = 32,
) -> tuple[np.ndarray, ChannelProjection]:
    """Channel-PCA and area-pool a layer's maps, ``chunk`` images at a time.

    Parameters
    ----------
    maps : array-like (image, channel, H, W) supporting slices along images (numpy, zarr,
        dask, ...); read by slices only, never whole.
    n_channel_components : PCA components of the channels kept.
    grid : (rows, cols) the maps are area-pooled to (adaptive-pooling bins).
    chunk : images read and projected at a time (the result does not depend on it).
    seed, fit_images, fit_block : the random subset the PCA is fitted on
        (:func:`fit_channel_projection`).

    Returns
    -------
    reduced : float32 (image, component, rows, cols)
    projection : the fitted :class:`ChannelProjection`
    """
    grid = _check_grid(grid)
    if len(maps.shape) != 4:
        raise DataError(f"maps of shape {tuple(maps.shape)}; expected (image, channel, H, W)")
    if chunk < 1:
        raise UsageError(f"chunk={chunk}; expected a positive number of images")
    projection = fit_channel_projection(maps, n_channel_components, fit_images, fit_block, seed)
    components = projection.components.astype(np.float32)
    offset = (projection.components @ projection.mean).astype(np.float32)[:, None]
    n_images, _, height, width = maps.shape
    out = np.empty((n_images, n_channel_components, *grid), dtype=np.float32)
    for start in logs.progress(range(0, n_images, chunk), -(-n_images // chunk), "reduce maps"):
        block = np.asarray(maps[start : start + chunk], dtype=np.float32)
        flat = block.reshape(len(block), block.shape[1], height * width)
        projected = (components @ flat - offset).reshape(len(block), -1, height, width)
        out[start : start + len(block)] = area_pool(projected, grid)
    return out, projection


# ----------------------------------------------------------------------------- responses


def time_windows(times: np.ndarray, window_length: float) -> pd.DataFrame:
    """Consecutive windows of ``window_length`` s from the first time point.

    A sample belongs to a window when ``start <= t < stop``; a last window shorter than
    ``window_length`` (e.g. the single sample at 1.3 s of THINGS-MEG's -0.1..1.3 s) is
    dropped. Columns: ``start``, ``stop``, ``time`` (centre), ``first``, ``last`` (sample
    indices, ``last`` exclusive).
    """
    times = np.asarray(times, dtype=np.float64)
    if times.ndim != 1 or len(times) < 1 or np.any(np.diff(times) <= 0):
        raise DataError("times must be a non-empty increasing 1-D array")
    if not window_length > 0:
        raise UsageError(f"window_length={window_length}; expected a positive length in seconds")
    step = float(np.median(np.diff(times))) if len(times) > 1 else window_length
    eps = 1e-6 * step
    n_windows = int(np.floor((times[-1] - times[0] + step) / window_length + 1e-6))
    rows = []
    for j in range(n_windows):
        start = times[0] + j * window_length
        stop = start + window_length
        inside = np.flatnonzero((times >= start - eps) & (times < stop - eps))
        if len(inside):
            rows.append((start, stop, (start + stop) / 2, inside[0], inside[-1] + 1))
    if not rows:
        raise UsageError(f"window_length={window_length} s is longer than the recording")
    return pd.DataFrame(rows, columns=["start", "stop", "time", "first", "last"])


def window_means(
    responses: np.ndarray, times: np.ndarray, window_length: float
) -> tuple[pd.DataFrame, np.ndarray]:
    """Responses (image, channel, time) averaged in each window: float32 (window, image, channel).

    Divided by the responses' overall standard deviation (tesla-sized numbers would lose
    precision; one global scale changes no fit or correlation here).
    """
    responses = np.asarray(responses)
    if responses.ndim != 3 or responses.shape[2] != len(times):
        raise DataError(
            f"responses of shape {responses.shape}; expected (image, channel, {len(times)} times)"
        )
    windows = time_windows(times, window_length)
    means = np.stack(
        [
            responses[:, :, first:last].mean(axis=2, dtype=np.float64)
            for first, last in zip(windows["first"], windows["last"], strict=True)
        ]
    )
    if not np.isfinite(means).all():
        raise DataError("responses contain NaN or infinite values")
    scale = means.std()
    return windows, (means / scale if scale > 0 else means).astype(np.float32)


@dataclass(frozen=True)
class ComponentBasis:
    """PCA of window-averaged responses: ``scores = (x - mean) @ basis``."""

    mean: np.ndarray  # (channel,)
    basis: np.ndarray  # (channel, component)

    def transform(self, values: np.ndarray) -> np.ndarray:
        return (np.asarray(values, dtype=np.float64) - self.mean) @ self.basis


def fit_components(values: np.ndarray, n_components: int) -> ComponentBasis:
    """PCA (image, channel) -> ``n_components``, each signed so its largest loading is positive."""
    values = np.asarray(values, dtype=np.float64)
    n_keep = min(n_components, values.shape[0] - 1, values.shape[1])
    if n_keep < 1:
        raise DataError(f"cannot take {n_components} components of responses {values.shape}")
    mean = values.mean(axis=0)
    eigenvalues, vectors = np.linalg.eigh(np.cov(values - mean, rowvar=False))
    basis = vectors[:, np.argsort(eigenvalues)[::-1][:n_keep]]
    signs = np.sign(basis[np.abs(basis).argmax(axis=0), np.arange(n_keep)])
    return ComponentBasis(mean=mean, basis=basis * np.where(signs == 0, 1.0, signs))


def response_components(
    responses: np.ndarray,
    times: np.ndarray,
    window_length: float,
    n_components: int = 5,
    train: np.ndarray | None = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Per window, the window-averaged responses reduced to ``n_components`` PCs.

    The PCA of each window is fitted on the ``train`` images only (all images when None) and
    applied to all. :func:`figureground.analysis.readout_ratio.readout_table` fits it inside
    each cross-validation fold, on the training images.

    Returns
    -------
    windows : :func:`time_windows`
    scores : float64 (window, image, component)
    """
    windows, means = window_means(responses, times, window_length)
    rows = slice(None) if train is None else np.asarray(train)
    scores = np.stack([fit_components(m[rows], n_components).transform(m) for m in means])
    return windows, scores


# ----------------------------------------------------------------------------- the model


@dataclass
class Readout:
    """A fitted mask-gated readout (maps on the pooled grid)."""

    s_in: np.ndarray  # (rows, cols) weights of cells inside the object
    s_out: np.ndarray  # (rows, cols) weights of cells outside it
    W: np.ndarray  # (channel component, response component)
    intercept: np.ndarray  # (response component,)
    gated: bool
    alpha_channel: float  # relative penalties used
    alpha_space: float
    n_iter: int  # alternations run
    converged: bool
    loss: np.ndarray = field(repr=False)  # residual share of Y's variance after each one

    @property
    def spatial(self) -> np.ndarray:
        """The unit-norm spatial vector ([s_in, s_out], or s alone when not gated)."""
        return _spatial_vector(self.s_in.ravel(), self.s_out.ravel(), self.gated)


def _spatial_vector(s_in: np.ndarray, s_out: np.ndarray, gated: bool) -> np.ndarray:
    return np.concatenate([s_in, s_out]) if gated else np.asarray(s_in)


def _split(s: np.ndarray, n_cells: int, gated: bool) -> tuple[np.ndarray, np.ndarray]:
    return (s[:n_cells], s[n_cells:]) if gated else (s, s)


def _flat_inputs(X: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(image, channel, cells) maps and (image, cells) masks, with shapes checked."""
    X = np.asarray(X)
    masks = np.asarray(masks)
    if X.ndim != 4:
        raise DataError(f"maps of shape {X.shape}; expected (image, channel, rows, cols)")
    if masks.shape != (X.shape[0], *X.shape[2:]):
        raise DataError(f"masks of shape {masks.shape} do not match maps {X.shape}")
    return X.reshape(*X.shape[:2], -1), masks.reshape(len(masks), -1)


def cell_weights(s_in: np.ndarray, s_out: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per-image weights ``w = s_in * m + s_out * (1 - m)`` with the shape of ``masks``."""
    return s_out + (s_in - s_out) * masks


def channel_inputs(X: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``Z[i, c] = sum_g X[i, c, g] * weights[i, g]`` for (image, channel, cells) ``X``: float64.

    Computed in ``X``'s precision (float32 for :func:`reduce_maps` output).
    """
    dtype = np.result_type(X.dtype, np.float32)
    Z = np.matmul(X, np.asarray(weights, dtype=dtype)[:, :, None])[:, :, 0]
    return Z.astype(np.float64)


def ridge_solve(gram: np.ndarray, cross: np.ndarray, penalty: float) -> np.ndarray:
    """Solve ``(gram + penalty * I) beta = cross`` (symmetric positive definite)."""
    import scipy.linalg

    system = gram + penalty * np.eye(len(gram))
    return scipy.linalg.solve(system, cross, assume_a="pos")


def relative_penalty(gram: np.ndarray, alpha: float) -> float:
    """``alpha`` times the mean diagonal of ``gram`` (the penalty in the units of the data)."""
    scale = float(np.trace(gram)) / len(gram)
    if not scale > 0:
        raise DataError("the readout's design is constant (all maps or weights are zero)")
    return alpha * scale


def w_step(Z: np.ndarray, Y: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Ridge with intercept of ``Y`` (image, k) on ``Z`` (image, c) with absolute ``alpha``.

    Returns ``W`` (c, k) and the intercept (k,), as ``sklearn.linear_model.Ridge``.
    """
    z_mean, y_mean = Z.mean(axis=0), Y.mean(axis=0)
    Zc = Z - z_mean
    W = ridge_solve(Zc.T @ Zc, Zc.T @ (Y - y_mean), alpha)
    return W, y_mean - z_mean @ W


def spatial_normal_equations(
    X: np.ndarray,
    masks: np.ndarray,
    W: np.ndarray,
    Y: np.ndarray,
    gated: bool = True,
    chunk: int = EQUATION_CHUNK,
    device: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Normal equations ``(A, b)`` of the s-step, accumulated ``chunk`` images at a time.

    Products are computed in ``X``'s precision (float32 for :func:`reduce_maps` output; the
    sums over chunks in float64). The design has one row per (image i, component k):
    ``D[i, k] = [P[i, k] * m_i, P[i, k] * (1 - m_i)]`` with ``P[i, k, g] = sum_c W[c, k]
    X[i, c, g]`` (``P[i, k]`` alone when not gated); ``A = D_c' D_c``, ``b = D_c' y_c`` with
    the design and ``Y`` centred over images per component (the per-component intercepts).
    ``X`` is (image, channel, cells), ``masks`` (image, cells). ``device`` (a torch device)
    runs the products in torch.
    """
    if device is not None:
        return _normal_equations_torch(X, masks, W, Y, gated, chunk, device)
    n_images, _, n_cells = X.shape
    dtype = np.result_type(X.dtype, np.float32)
    dim = 2 * n_cells if gated else n_cells
    Yc = (Y - Y.mean(axis=0)).astype(dtype)
    gram = np.zeros((dim, dim))
    cross = np.zeros(dim)
    totals = np.zeros((W.shape[1], dim))
    Wt = W.T.astype(dtype)
    for start in range(0, n_images, chunk):
        stop = start + chunk
        P = Wt @ X[start:stop]  # (n, k, cells)
        if gated:
            D = np.empty((*P.shape[:2], dim), dtype=dtype)
            np.multiply(P, masks[start:stop, None, :], out=D[:, :, :n_cells])
            np.subtract(P, D[:, :, :n_cells], out=D[:, :, n_cells:])
        else:
            D = P
        flat = D.reshape(-1, dim)
        gram += flat.T @ flat
        cross += flat.T @ Yc[start:stop].reshape(-1)
        totals += (np.ones(len(D), dtype=dtype) @ D.reshape(len(D), -1)).reshape(totals.shape)
    gram -= totals.T @ totals / n_images
    return gram, cross


def _normal_equations_torch(
    X: np.ndarray,
    masks: np.ndarray,
    W: np.ndarray,
    Y: np.ndarray,
    gated: bool,
    chunk: int,
    device: str,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`spatial_normal_equations` in torch float64 on ``device``."""
    import torch

    n_images, _, n_cells = X.shape
    dim = 2 * n_cells if gated else n_cells
    as_tensor = lambda a: torch.as_tensor(np.asarray(a), device=device)  # noqa: E731
    Wt = as_tensor(W.T).double()
    Yc = as_tensor(Y - Y.mean(axis=0)).double()
    gram = torch.zeros((dim, dim), dtype=torch.float64, device=device)
    cross = torch.zeros(dim, dtype=torch.float64, device=device)
    totals = torch.zeros((W.shape[1], dim), dtype=torch.float64, device=device)
    for start in range(0, n_images, chunk):
        stop = start + chunk
        P = Wt @ as_tensor(X[start:stop]).double()
        if gated:
            inside = P * as_tensor(masks[start:stop]).double()[:, None, :]
            D = torch.cat([inside, P - inside], dim=2)
        else:
            D = P
        flat = D.reshape(-1, dim)
        gram += flat.T @ flat
        cross += flat.T @ Yc[start:stop].reshape(-1)
        totals += D.sum(dim=0)
    gram -= totals.T @ totals / n_images
    return gram.cpu().numpy(), cross.cpu().numpy()


def _normalise(s: np.ndarray, mean_mask: np.ndarray, gated: bool) -> np.ndarray:
    """Unit norm, signed so that the mean weight over images and cells is positive."""
    norm = np.linalg.norm(s)
    if not norm > 0:
        raise DataError("the readout's spatial map is zero: the penalty is too large or Y is 0")
    s = s / norm
    s_in, s_out = _split(s, len(mean_mask), gated)
    mean_weight = float(np.mean(s_out + (s_in - s_out) * mean_mask))
    return -s if mean_weight < 0 else s


def fit_readout(
    X: np.ndarray,
    masks: np.ndarray,
    Y: np.ndarray,
    *,
    gated: bool = True,
    alpha_channel: float = ALPHA_CHANNEL,
    alpha_space: float = ALPHA_SPACE,
    n_iter: int = N_ITER,
    tol: float = TOL,
    init: Readout | None = None,
    chunk: int = EQUATION_CHUNK,
    device: str | None = None,
) -> Readout:
    """Fit the mask-gated readout of ``Y`` from maps ``X`` by alternating ridge.

    Parameters
    ----------
    X : (image, channel, rows, cols) reduced maps (:func:`reduce_maps`), in memory.
    masks : (image, rows, cols) object coverage of each cell in [0, 1] (:func:`pool_masks`).
    Y : (image, k) responses (e.g. the PCs of :func:`response_components`).
    gated : False fits a single map (``s_in == s_out``).
    alpha_channel, alpha_space : relative ridge penalties of the W-step and the s-step.
    n_iter, tol : at most ``n_iter`` alternations (s-step then W-step); stop early when the
        unit-norm spatial vector moves by less than ``tol`` (Euclidean).
    init : start from this readout's ``W`` (s-step first) instead of a uniform map; with
        ``tol=0`` exactly ``n_iter`` alternations are run (the shuffled-mask null).
    chunk, device : the s-step's normal equations, see :func:`spatial_normal_equations`.
    """
    Xf, m = _flat_inputs(X, masks)
    Y = np.asarray(Y, dtype=np.float64)
    if Y.ndim != 2 or len(Y) != len(Xf):
        raise DataError(f"responses of shape {Y.shape}; expected ({len(Xf)} images, components)")
    if n_iter < 1:
        raise UsageError(f"n_iter={n_iter}; expected at least one alternation")
    if alpha_channel < 0 or alpha_space < 0:
        raise UsageError(f"penalties {alpha_channel}, {alpha_space}; expected >= 0")
    n_cells = m.shape[1]
    mean_mask = m.mean(axis=0, dtype=np.float64)

    def refit_channels(s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        s_in, s_out = _split(s, n_cells, gated)
        Z = channel_inputs(Xf, cell_weights(s_in, s_out, m))
        Zc = Z - Z.mean(axis=0)
        return (*w_step(Z, Y, relative_penalty(Zc.T @ Zc, alpha_channel)), Z)

    if init is None:
        s = _normalise(np.ones(2 * n_cells if gated else n_cells), mean_mask, gated)
        W, intercept, _ = refit_channels(s)
    else:
        if init.gated != gated or init.s_in.size != n_cells:
            raise UsageError("init readout does not match these maps (gating or grid)")
        s, W = init.spatial, init.W
    total = float(((Y - Y.mean(axis=0)) ** 2).sum()) or 1.0
    losses, converged = [], False
    for _ in range(n_iter):
        gram, cross = spatial_normal_equations(Xf, m, W, Y, gated, chunk, device)
        s_new = _normalise(
            ridge_solve(gram, cross, relative_penalty(gram, alpha_space)), mean_mask, gated
        )
        W, intercept, Z = refit_channels(s_new)
        step = float(np.linalg.norm(s_new - s))
        s = s_new
        residual = Y - Z @ W - intercept
        losses.append(float((residual**2).sum()) / total)
        if step < tol:
            converged = True
            break
    s_in, s_out = _split(s, n_cells, gated)
    grid = X.shape[2:]
    return Readout(
        s_in=s_in.reshape(grid),
        s_out=s_out.reshape(grid),
        W=W,
        intercept=intercept,
        gated=gated,
        alpha_channel=alpha_channel,
        alpha_space=alpha_space,
        n_iter=len(losses),
        converged=converged,
        loss=np.asarray(losses),
    )


def predict(readout: Readout, X: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Predicted responses (image, k) of a fitted readout."""
    Xf, m = _flat_inputs(X, masks)
    weights = cell_weights(readout.s_in.ravel(), readout.s_out.ravel(), m)
    return channel_inputs(Xf, weights) @ readout.W + readout.intercept
