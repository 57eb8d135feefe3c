"""Mask-gated spatial readout: which cells of a layer's map does the brain read?

A fixed map over image coordinates cannot tell the object (figure) from the centre of the
image: THINGS objects sit near the centre, and with masks shuffled across images the
average in-mask ratio of a fixed map is unchanged. The readout is therefore *gated by each
image's object mask*. Per time window, with ``X[i, c, g]`` the (channel-reduced, pooled)
map of image ``i`` and ``m[i, g]`` the share of cell ``g`` its object covers,

    y[i, k] = sum_c sum_g X[i, c, g] * w[i, g] * W[c, k],
    w[i, g] = s_in[g] * m[i, g] + s_out[g] * (1 - m[i, g]),

two spatial maps (``s_in`` for cells inside the object, ``s_out`` for cells outside) and
channel weights ``W`` to each response component ``k`` (`readout_inputs.response_components`).
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

The layer's maps are reduced and the masks pooled before the fit, and the responses
reduced per time window, by :mod:`figureground.analysis.readout_inputs`.

Ratios, nulls, object-centred maps and the per-window table are in
:mod:`figureground.analysis.readout_ratio`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from figureground import logs
from figureground.errors import DataError, UsageError

log = logs.get_logger(__name__)

ALPHA_CHANNEL = 1e-2  # W-step penalty, relative to the mean diagonal of Z'Z
ALPHA_SPACE = 1e-1  # s-step penalty, relative to the mean diagonal of the 2G normal matrix
N_ITER = 10
TOL = 1e-3
EQUATION_CHUNK = 2048  # images per block of the s-step's normal equations


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

    Computed in ``X``'s precision (float32 for `readout_inputs.reduce_maps` output).
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

    Products are computed in ``X``'s precision (float32 for `readout_inputs.reduce_maps` output; the
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


def _checked_responses(
    Y: np.ndarray, n_images: int, n_iter: int, alpha_channel: float, alpha_space: float
) -> np.ndarray:
    """``Y`` as float64 (image, k), after checking it and the fit's options."""
    Y = np.asarray(Y, dtype=np.float64)
    if Y.ndim != 2 or len(Y) != n_images:
        raise DataError(f"responses of shape {Y.shape}; expected ({n_images} images, components)")
    if n_iter < 1:
        raise UsageError(f"n_iter={n_iter}; expected at least one alternation")
    if alpha_channel < 0 or alpha_space < 0:
        raise UsageError(f"penalties {alpha_channel}, {alpha_space}; expected >= 0")
    return Y


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
    X : (image, channel, rows, cols) reduced maps (`readout_inputs.reduce_maps`), in memory.
    masks : (image, rows, cols) object coverage of each cell, in [0, 1] (`pool_masks`).
    Y : (image, k) responses (e.g. the PCs of `readout_inputs.response_components`).
    gated : False fits a single map (``s_in == s_out``).
    alpha_channel, alpha_space : relative ridge penalties of the W-step and the s-step.
    n_iter, tol : at most ``n_iter`` alternations (s-step then W-step); stop early when the
        unit-norm spatial vector moves by less than ``tol`` (Euclidean).
    init : start from this readout's ``W`` (s-step first) instead of a uniform map; with
        ``tol=0`` exactly ``n_iter`` alternations are run (the shuffled-mask null).
    chunk, device : the s-step's normal equations, see :func:`spatial_normal_equations`.
    """
    Xf, m = _flat_inputs(X, masks)
    Y = _checked_responses(Y, len(Xf), n_iter, alpha_channel, alpha_space)
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
