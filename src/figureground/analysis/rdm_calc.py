"""Representational dissimilarity matrices, fast: Gram matrices by BLAS, condensed output.

An RDM is returned *condensed*: the upper triangle without diagonal, pairs in the order of
``scipy.spatial.distance.squareform`` (row-major: (0,1), (0,2), ..., (1,2), ...), which is how
rsatoolbox stores them. Metric definitions follow rsatoolbox's ``calc_rdm``:

- ``correlation``: 1 - Pearson correlation of the two patterns (over features).
- ``euclidean``: rsatoolbox's convention, the *squared* Euclidean distance divided by the
  number of features.
- ``sqeuclidean``: the squared Euclidean distance (as ``scipy.spatial.distance.pdist``).
- ``cosine``: 1 - cosine similarity (as ``pdist(..., "cosine")``).
- ``crossnobis``: leave-one-fold-out cross-validated Mahalanobis distance (rsatoolbox's
  ``calc_rdm_crossnobis``): per fold f, the mean of the other folds (train) against fold f
  (test), ``(a_i - a_j)^T P (b_i - b_j) / channels``, averaged over folds, with P a noise
  precision (identity by default, or estimated from the fold residuals with shrinkage,
  :func:`noise_precision`, matching rsatoolbox's ``prec_from_residuals``).

Time-resolved data ``(conditions, channels, times)`` give one RDM per time point, shape
``(times, pairs)``, with the channels at that time point as features (rsatoolbox's
``calc_rdm_movie``). Time points are processed in batches so memory stays bounded; float32
input gives a float32 result (Gram matrices by float32 BLAS), float64 gives float64.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from scipy.linalg import blas

from figureground import logs
from figureground.errors import DataError, UsageError

log = logs.get_logger(__name__)

NOISE_METHODS = ("shrinkage_diag", "shrinkage_eye", "diag", "full")


def pair_indices(n_conditions: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column index of every condensed pair (squareform order)."""
    return np.triu_indices(n_conditions, k=1)


@functools.lru_cache(maxsize=4)
def _cached_pairs(n_conditions: int) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = pair_indices(n_conditions)
    rows.flags.writeable = cols.flags.writeable = False
    return rows, cols


def n_pairs(n_conditions: int) -> int:
    """Number of condition pairs."""
    return n_conditions * (n_conditions - 1) // 2


# ---------------------------------------------------------------------------------------------
# Backends: Gram matrices (Y Y^T + w Z Z^T) of a batch, written condensed into an output
# ---------------------------------------------------------------------------------------------

_SYRK: dict[np.dtype, Callable] = {
    np.dtype(np.float32): blas.ssyrk,
    np.dtype(np.float64): blas.dsyrk,
}


class NumpyGram:
    """Gram matrices by BLAS ``syrk`` (half the work of a product), one time point at a time.

    float32 and float64 take the same path (``ssyrk`` / ``dsyrk``). Each Gram matrix goes to
    one reused (conditions, conditions) buffer and is copied straight into the caller's output
    row by row: ``syrk(lower=1)`` fills the lower triangle of a Fortran-ordered matrix, where
    pair (i, j), i < j, lies at i * n + j, so the pairs of condition i are one contiguous run
    in both the buffer and the condensed output. No index array is read, and ``1 - gram`` of
    the correlation and cosine metrics is fused into that copy.
    """

    def __init__(self, n_conditions: int) -> None:
        self._n = n_conditions
        starts = np.concatenate([[0], np.cumsum(np.arange(n_conditions - 1, 0, -1))])
        self._targets = [slice(int(starts[i]), int(starts[i + 1])) for i in range(n_conditions - 1)]
        self._buffer: np.ndarray | None = None
        self._sources: list[np.ndarray] = []

    def _gram_buffer(self, dtype: np.dtype) -> np.ndarray:
        """The (n, n) Fortran-ordered buffer of ``dtype`` and its per-condition pair runs."""
        if self._buffer is None or self._buffer.dtype != dtype:
            n = self._n
            self._buffer = np.zeros((n, n), dtype=dtype, order="F")
            flat = self._buffer.reshape(-1, order="F")  # a view: the buffer is Fortran-ordered
            self._sources = [flat[i * n + i + 1 : (i + 1) * n] for i in range(n - 1)]
        return self._buffer

    def __call__(
        self,
        Y: np.ndarray,
        out: np.ndarray,
        Z: np.ndarray | None = None,
        z_weight: float = 0.0,
        subtract_from: float | None = None,
    ) -> np.ndarray:
        """Write condensed ``Y Y^T + z_weight Z Z^T`` of a batch (b, n, f) into ``out`` (b, pairs).

        With ``subtract_from`` c, ``c - (...)`` is written instead. Returns the diagonals
        (b, n) of the Gram matrices.
        """
        buffer = self._gram_buffer(Y.dtype)
        syrk = _SYRK[Y.dtype]
        diag = np.empty((Y.shape[0], self._n), dtype=Y.dtype)
        for k in range(Y.shape[0]):
            # a^T a with a = Y[k]^T, which is Fortran-contiguous: no copy; beta = 0, so the
            # buffer's old values are not read
            gram = syrk(1.0, Y[k].T, trans=1, lower=1, c=buffer, overwrite_c=1)
            if Z is not None:
                gram = syrk(z_weight, Z[k].T, trans=1, beta=1.0, c=gram, overwrite_c=1, lower=1)
            if gram is not buffer:  # f2py returns its own array only if it had to copy
                np.copyto(buffer, gram)
            self._condense(buffer, out[k], subtract_from)
            diag[k] = np.diagonal(buffer)
        return diag

    def _condense(self, buffer: np.ndarray, out: np.ndarray, subtract_from: float | None) -> None:
        """The buffer's lower triangle into condensed ``out`` (compiled when numba is there)."""
        kernel = _condense_kernel()
        if kernel is None:
            _copy_pairs(self._sources, self._targets, out, subtract_from)
            return
        flat = buffer.reshape(-1, order="F")
        constant = 0.0 if subtract_from is None else float(subtract_from)
        kernel(flat, self._n, out, constant, subtract_from is not None)


@functools.lru_cache(maxsize=1)
def _condense_kernel() -> Callable | None:
    """:func:`figureground.analysis.gram_kernels.condense_lower`, or None without numba."""
    try:
        from figureground.analysis.gram_kernels import condense_lower
    except ImportError as exc:  # the copy then runs as one numpy call per condition
        log.warning("numba is not importable (%s): RDM pairs are copied by numpy", exc)
        return None
    return condense_lower


def _copy_pairs(
    sources: list[np.ndarray],
    targets: list[slice],
    out: np.ndarray,
    subtract_from: float | None,
) -> None:
    """Copy each condition's run of pairs into its slice of ``out`` (optionally c - value)."""
    if subtract_from is None:
        for source, target in zip(sources, targets, strict=True):
            out[target] = source
        return
    constant = out.dtype.type(subtract_from)
    for source, target in zip(sources, targets, strict=True):
        np.subtract(constant, source, out=out[target])


class TorchGram:
    """Gram matrices by batched torch matrix products, e.g. on a GPU."""

    def __init__(self, n_conditions: int, device: str | None = None) -> None:
        import torch

        self._torch = torch
        self._device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        rows, cols = pair_indices(n_conditions)
        self._flat = torch.from_numpy((rows * n_conditions + cols).astype(np.int64)).to(
            self._device
        )

    def __call__(
        self,
        Y: np.ndarray,
        out: np.ndarray,
        Z: np.ndarray | None = None,
        z_weight: float = 0.0,
        subtract_from: float | None = None,
    ) -> np.ndarray:
        """As :meth:`NumpyGram.__call__`: condensed Gram matrices into ``out``, diagonals back."""
        torch = self._torch
        y = torch.from_numpy(np.ascontiguousarray(Y)).to(self._device)
        gram = torch.bmm(y, y.transpose(1, 2))
        if Z is not None:
            z = torch.from_numpy(np.ascontiguousarray(Z)).to(self._device)
            gram.baddbmm_(z, z.transpose(1, 2), alpha=z_weight)
        condensed = gram.reshape(gram.shape[0], -1)[:, self._flat]
        if subtract_from is not None:
            condensed = subtract_from - condensed
        out[...] = condensed.cpu().numpy()
        return torch.diagonal(gram, dim1=1, dim2=2).cpu().numpy()


def _make_gram(backend: str, n_conditions: int, device: str | None) -> Callable:
    """The Gram routine of ``backend`` (registry, no if-chain on names downstream)."""
    makers: dict[str, Callable[[], Callable]] = {
        "numpy": lambda: NumpyGram(n_conditions),
        "torch": lambda: TorchGram(n_conditions, device),
    }
    if backend not in makers:
        raise UsageError(f"backend must be one of {sorted(makers)}; got {backend!r}")
    return makers[backend]()


# ---------------------------------------------------------------------------------------------
# Metrics: a batch (b, n, f) of time-major patterns (owned, changed in place) -> out (b, pairs)
# ---------------------------------------------------------------------------------------------


def _unit_rows(Y: np.ndarray, centre: bool) -> np.ndarray:
    """Rows (optionally centred) scaled to unit length in place; zero rows give nan."""
    if centre:
        Y -= Y.mean(axis=-1, keepdims=True)
    norms = np.sqrt(np.einsum("...i,...i->...", Y, Y))[..., None]
    with np.errstate(invalid="ignore", divide="ignore"):
        Y /= norms
    return Y


def _one_minus(Y: np.ndarray, gram: Callable, out: np.ndarray, centre: bool) -> None:
    gram(_unit_rows(Y, centre), out, subtract_from=1.0)


def _from_gram_diagonal(out: np.ndarray, diag: np.ndarray, rows: np.ndarray, cols: np.ndarray):
    """``d_i + d_j - 2 g_ij`` in place over condensed Gram values ``out``."""
    out *= -2
    out += diag[:, rows]
    out += diag[:, cols]


def _squared(
    Y: np.ndarray,
    gram: Callable,
    out: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    scale: float,
) -> None:
    _from_gram_diagonal(out, gram(Y, out), rows, cols)
    np.maximum(out, 0, out=out)
    if scale != 1.0:
        out *= out.dtype.type(scale)


@dataclass(frozen=True)
class _Metric:
    """How one metric writes a batch of patterns (b, n, f) as condensed RDMs into out."""

    # (patterns, gram, out, pairs): ``pairs()`` gives the (rows, cols) condition indices of the
    # condensed pairs, built only by the metrics that need them
    compute: Callable[[np.ndarray, Callable, np.ndarray, Callable], None]


METRICS: dict[str, _Metric] = {
    "correlation": _Metric(lambda Y, g, out, pairs: _one_minus(Y, g, out, centre=True)),
    "cosine": _Metric(lambda Y, g, out, pairs: _one_minus(Y, g, out, centre=False)),
    "sqeuclidean": _Metric(lambda Y, g, out, pairs: _squared(Y, g, out, *pairs(), 1.0)),
    "euclidean": _Metric(lambda Y, g, out, pairs: _squared(Y, g, out, *pairs(), 1.0 / Y.shape[-1])),
}
ALL_METRICS = (*METRICS, "crossnobis")


# ---------------------------------------------------------------------------------------------
# Noise covariance / precision (rsatoolbox's cov_from_residuals / prec_from_residuals)
# ---------------------------------------------------------------------------------------------


def _cov_full(res: np.ndarray, dof: float) -> np.ndarray:
    return res.T @ res / dof


def _cov_diag(res: np.ndarray, dof: float) -> np.ndarray:
    return np.diag(np.einsum("ij,ij->j", res, res) / dof)


def _cov_shrinkage_eye(res: np.ndarray, dof: float) -> np.ndarray:
    """Ledoit-Wolf shrinkage towards a multiple of the identity (rsatoolbox's definition)."""
    n_obs, n_ch = res.shape
    s = res.T @ res / n_obs
    sq = res * res
    b2 = np.sum(sq.T @ sq / n_obs - s * s) / n_obs
    m = np.trace(s) / n_ch
    d2 = np.sum((s - m * np.eye(n_ch)) ** 2)
    b2 = min(d2, b2)
    return (b2 / d2 * m * np.eye(n_ch) + (d2 - b2) / d2 * s) * n_obs / dof


def _cov_shrinkage_diag(res: np.ndarray, dof: float) -> np.ndarray:
    """Schäfer-Strimmer shrinkage towards the diagonal (rsatoolbox's definition)."""
    n_obs, n_ch = res.shape
    s_sum = res.T @ res
    sq = res * res
    s2_sum = sq.T @ sq
    s = s_sum / dof
    var = np.diag(s)
    std = np.sqrt(var)
    s_mean = s_sum / std[None, :] / std[:, None] / (n_obs - 1)
    s2_mean = s2_sum / var[None, :] / var[:, None] / (n_obs - 1)
    var_hat = n_obs / dof**2 * (s2_mean - s_mean**2)
    off = ~np.eye(n_ch, dtype=bool)
    lamb = float(np.clip(np.sum(var_hat[off]) / np.sum(s_mean[off] ** 2), 0, 1))
    return s * (np.eye(n_ch) + (1 - lamb) * off)


_COVARIANCES: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "full": _cov_full,
    "diag": _cov_diag,
    "shrinkage_eye": _cov_shrinkage_eye,
    "shrinkage_diag": _cov_shrinkage_diag,
}


def noise_covariance(
    residuals: np.ndarray, method: str = "shrinkage_diag", dof: float | None = None
) -> np.ndarray:
    """Noise covariance over channels from residuals (n_residuals, channels).

    Matches ``rsatoolbox.data.noise.cov_from_residuals`` for 2-D residuals: columns are
    demeaned, ``dof`` defaults to n_residuals - 1, ``method`` is one of
    ``shrinkage_diag`` (Schäfer & Strimmer 2005), ``shrinkage_eye`` (Ledoit & Wolf 2004),
    ``diag`` or ``full``. Computed in float64.
    """
    if method not in _COVARIANCES:
        raise UsageError(f"noise method must be one of {sorted(_COVARIANCES)}; got {method!r}")
    res = np.asarray(residuals, dtype=np.float64)
    if res.ndim != 2 or res.shape[0] < 2:
        raise DataError(f"residuals must have shape (n_residuals >= 2, channels); got {res.shape}")
    res = res - res.mean(axis=0, keepdims=True)
    return _COVARIANCES[method](res, float(res.shape[0] - 1 if dof is None else dof))


def noise_precision(
    residuals: np.ndarray, method: str = "shrinkage_diag", dof: float | None = None
) -> np.ndarray:
    """Inverse of :func:`noise_covariance` (rsatoolbox's ``prec_from_residuals``)."""
    return np.linalg.inv(noise_covariance(residuals, method, dof))


def fold_residuals(X: np.ndarray) -> tuple[np.ndarray, int]:
    """Residuals of fold data (folds, conditions, channels[, times]) around condition means.

    Returns residuals stacked as (observations, channels) — over folds, conditions and time
    points — and their degrees of freedom, (folds - 1) * conditions * times.
    """
    res = X - X.mean(axis=0, keepdims=True)
    n_folds, n_cond, n_ch = X.shape[:3]
    n_times = X.shape[3] if X.ndim == 4 else 1
    stacked = np.moveaxis(res, 2, -1).reshape(-1, n_ch)
    return stacked, (n_folds - 1) * n_cond * n_times


# ---------------------------------------------------------------------------------------------
# Cross-validated Mahalanobis (crossnobis)
# ---------------------------------------------------------------------------------------------


def _whitener(precision: np.ndarray | None, dtype: np.dtype) -> np.ndarray | None:
    """A matrix W with W W^T = (P + P^T) / 2 (Cholesky; eigen-decomposition if not PD)."""
    if precision is None:
        return None
    sym = (precision + precision.T) / 2
    try:
        return np.linalg.cholesky(sym).astype(dtype)
    except np.linalg.LinAlgError:
        values, vectors = np.linalg.eigh(sym)
        if values.min() < -1e-10 * abs(values).max():
            raise DataError("noise precision is not positive semi-definite") from None
        return (vectors * np.sqrt(np.clip(values, 0, None))).astype(dtype)


def _crossnobis_batch(
    folds: np.ndarray,
    whiten: np.ndarray | None,
    gram: Callable,
    out: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
) -> None:
    """Crossnobis RDMs of a batch of fold data (b, folds, n, channels) into out (b, pairs).

    Sum over folds of train_f P test_f^T, train_f = (S - B_f) / (F - 1), equals
    (S P S^T - sum_f B_f P B_f^T) / (F - 1): two Gram matrices after whitening by W.
    """
    b, n_folds, n_cond, n_ch = folds.shape
    if whiten is not None:
        folds = folds @ whiten
    total = folds.sum(axis=1)
    stacked = np.ascontiguousarray(folds.transpose(0, 2, 1, 3)).reshape(b, n_cond, -1)
    _from_gram_diagonal(out, gram(total, out, stacked, -1.0), rows, cols)
    out *= out.dtype.type(1.0 / ((n_folds - 1) * n_folds * n_ch))


def _group_folds(X: np.ndarray, folds: np.ndarray, conditions: np.ndarray | None) -> np.ndarray:
    """Average observations into (folds, conditions, ...) cells; conditions sorted."""
    folds = np.asarray(folds)
    if folds.shape[0] != X.shape[0]:
        raise UsageError(f"folds has {folds.shape[0]} labels but X has {X.shape[0]} rows")
    if conditions is None:
        raise UsageError(
            "crossnobis with a folds argument needs condition labels "
            "(conditions=...) for the rows of X"
        )
    conditions = np.asarray(conditions)
    if conditions.shape[0] != X.shape[0]:
        raise UsageError(f"conditions has {conditions.shape[0]} labels but X has {X.shape[0]} rows")
    fold_values, fold_idx = np.unique(folds, return_inverse=True)
    cond_values, cond_idx = np.unique(conditions, return_inverse=True)
    sums = np.zeros((fold_values.size, cond_values.size, *X.shape[1:]), dtype=np.float64)
    counts = np.zeros((fold_values.size, cond_values.size))
    np.add.at(sums, (fold_idx, cond_idx), X)
    np.add.at(counts, (fold_idx, cond_idx), 1)
    if np.any(counts == 0):
        f, c = np.argwhere(counts == 0)[0]
        raise DataError(
            f"fold {fold_values[f]!r} has no observation of condition "
            f"{cond_values[c]!r}; crossnobis needs every condition in every fold"
        )
    shape = counts.shape + (1,) * (X.ndim - 1)
    return (sums / counts.reshape(shape)).astype(X.dtype)


# ---------------------------------------------------------------------------------------------
# Public entry
# ---------------------------------------------------------------------------------------------


def _result_dtype(X: np.ndarray) -> np.dtype:
    return np.dtype(np.float64) if X.dtype == np.float64 else np.dtype(np.float32)


def _time_major(block: np.ndarray, out: np.ndarray, rows_per_copy: int = 64) -> np.ndarray:
    """(folds, conditions, channels, b) -> contiguous (b, folds, conditions, channels) in out.

    Copied a few conditions at a time: each piece of the input is then read while it is in
    cache, 2.5x faster than one ``ascontiguousarray(moveaxis(...))`` over the whole block.
    """
    for start in range(0, block.shape[1], rows_per_copy):
        piece = slice(start, start + rows_per_copy)
        out[:, :, piece] = np.moveaxis(block[:, piece], -1, 0)
    return out


@dataclass(frozen=True)
class _Plan:
    """Validated input and everything a batch needs, shared by the public entries."""

    fold_data: np.ndarray  # (folds, conditions, channels, times), result dtype
    metric: str
    gram: Callable
    n_conditions: int
    whiten: np.ndarray | None

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(rows, cols) of the condensed pairs (built once per size, read-only)."""
        return _cached_pairs(self.n_conditions)

    @property
    def n_times(self) -> int:
        return self.fold_data.shape[-1]

    @property
    def n_pairs(self) -> int:
        return n_pairs(self.n_conditions)


def _plan(
    X: np.ndarray,
    metric: str,
    folds: np.ndarray | None,
    conditions: np.ndarray | None,
    noise: np.ndarray | str | None,
    noise_dof: float | None,
    remove_mean: bool,
    batch_size: int,
    backend: str,
    device: str | None,
) -> _Plan:
    """Check the arguments of :func:`compute_rdms` and prepare its computation."""
    if metric not in ALL_METRICS:
        raise UsageError(f"metric must be one of {list(ALL_METRICS)}; got {metric!r}")
    if batch_size < 1:
        raise UsageError(f"batch_size must be at least 1; got {batch_size}")
    data = np.asarray(X)
    dtype = _result_dtype(data)
    data = data.astype(dtype, copy=False)
    if metric == "crossnobis":
        if folds is not None:
            data = _group_folds(data, folds, conditions)
        if data.ndim not in (3, 4):
            raise UsageError(
                f"crossnobis needs X of shape (folds, conditions, channels"
                f"[, times]) or a folds argument; got {data.shape}"
            )
        if data.shape[0] < 2:
            raise DataError(f"crossnobis needs at least 2 folds; got {data.shape[0]}")
        fold_data = data if data.ndim == 4 else data[..., None]
        n_cond, n_ch = fold_data.shape[1:3]
    else:
        if folds is not None:
            raise UsageError(f"folds apply to crossnobis only, not to metric {metric!r}")
        if data.ndim not in (2, 3):
            raise UsageError(
                f"X must have shape (conditions, features) or (conditions, "
                f"channels, times); got {data.shape}"
            )
        fold_data = data[None] if data.ndim == 3 else data[None, ..., None]
        n_cond, n_ch = fold_data.shape[1:3]
    if n_cond < 2:
        raise DataError(f"an RDM needs at least 2 conditions; got {n_cond}")
    if not np.all(np.isfinite(fold_data)):
        raise DataError("X holds NaN or infinite values; RDMs need finite patterns")
    if remove_mean:
        fold_data = fold_data - fold_data.mean(axis=2, keepdims=True)
    gram = _make_gram(backend, n_cond, device)
    whiten = None
    if metric == "crossnobis":
        precision = noise
        if isinstance(noise, str):
            residuals, dof = fold_residuals(fold_data.astype(np.float64))
            precision = noise_precision(residuals, noise, dof if noise_dof is None else noise_dof)
        elif noise is not None:
            precision = np.asarray(noise, dtype=np.float64)
            if precision.shape != (n_ch, n_ch):
                raise UsageError(
                    f"noise precision must have shape ({n_ch}, {n_ch}); got {precision.shape}"
                )
        whiten = _whitener(precision, dtype)
    elif noise is not None:
        raise UsageError(f"noise applies to crossnobis only, not to metric {metric!r}")
    return _Plan(fold_data, metric, gram, n_cond, whiten)


def _run(
    plan: _Plan, batch_size: int, target: Callable[[slice], np.ndarray]
) -> Iterator[tuple[slice, np.ndarray]]:
    """Compute batch after batch into ``target(time_slice)``; yield each filled target."""
    data = plan.fold_data
    block_buffer = np.empty((min(batch_size, plan.n_times), *data.shape[:-1]), dtype=data.dtype)
    for start in range(0, plan.n_times, batch_size):
        stop = min(start + batch_size, plan.n_times)
        time_slice = slice(start, stop)
        # (b, folds, conditions, channels), contiguous per time point, changed in place below
        block = _time_major(data[..., time_slice], block_buffer[: stop - start])
        out = target(time_slice)
        if plan.metric == "crossnobis":
            _crossnobis_batch(block, plan.whiten, plan.gram, out, *plan.pairs())
        else:
            METRICS[plan.metric].compute(block[:, 0], plan.gram, out, plan.pairs)
        yield time_slice, out


def iter_rdm_batches(
    X: np.ndarray,
    metric: str = "correlation",
    *,
    folds: np.ndarray | None = None,
    conditions: np.ndarray | None = None,
    noise: np.ndarray | str | None = None,
    noise_dof: float | None = None,
    remove_mean: bool = False,
    batch_size: int = 16,
    backend: str = "numpy",
    device: str | None = None,
) -> Iterator[tuple[slice, np.ndarray]]:
    """Yield ``(time_slice, rdms)`` for batches of time points; see :func:`compute_rdms`.

    The yielded array is reused for the next batch: use or copy it before asking for
    the next one.

    For 2-D (or 3-D crossnobis fold) input a single batch ``(slice(0, 1), rdm[None])``.
    """
    plan = _plan(
        X, metric, folds, conditions, noise, noise_dof, remove_mean, batch_size, backend, device
    )
    buffer = np.empty((min(batch_size, plan.n_times), plan.n_pairs), dtype=plan.fold_data.dtype)
    yield from _run(
        plan, batch_size, lambda time_slice: buffer[: time_slice.stop - time_slice.start]
    )


def compute_rdms(
    X: np.ndarray,
    metric: str = "correlation",
    *,
    folds: np.ndarray | None = None,
    conditions: np.ndarray | None = None,
    noise: np.ndarray | str | None = None,
    noise_dof: float | None = None,
    remove_mean: bool = False,
    batch_size: int = 16,
    backend: str = "numpy",
    device: str | None = None,
) -> np.ndarray:
    """Condensed RDMs of patterns, one per time point for time-resolved data.

    float32 and float64 input take the same path (BLAS ``ssyrk`` / ``dsyrk`` per time point,
    pairs copied straight into the result) and keep their precision: float64 input (what
    MNE's ``get_data()`` returns) gives float64 RDMs equal to ``scipy.spatial.distance.pdist``
    to ~1e-15; float32 input gives float32 RDMs (differences from float64 ~1e-6, at most
    ~1e-5 for 271 channels), half the memory and about twice as fast. Cast to float32 first
    to trade precision for speed.

    Parameters
    ----------
    X : ndarray
        (conditions, features) -> one RDM (pairs,); (conditions, channels, times) -> (times,
        pairs). For ``crossnobis``: (folds, conditions, channels[, times]), or observations
        (rows, channels[, times]) with ``folds`` and ``conditions`` labels per row (cells
        averaged, conditions in sorted order as rsatoolbox sorts them).
    metric : str
        ``correlation``, ``euclidean`` (squared / n_features, rsatoolbox), ``sqeuclidean``,
        ``cosine`` or ``crossnobis``.
    noise : ndarray or str, optional
        Crossnobis only: a (channels, channels) precision matrix, or a method of
        :func:`noise_covariance` to estimate one from the fold residuals pooled over
        conditions and time points (dof (folds - 1) * conditions * times unless
        ``noise_dof``). None: identity (cross-validated Euclidean).
    remove_mean : bool
        Subtract each pattern's mean over channels first (rsatoolbox's ``remove_mean``).
    batch_size : int
        Time points per batch (working memory: batch x conditions x channels values).
    backend, device : str
        ``numpy`` (BLAS) or ``torch`` (e.g. ``device="cuda"``).

    Returns
    -------
    ndarray, float32 (float64 for float64 input), shape (pairs,) or (times, pairs)
    """
    data = np.asarray(X)
    time_resolved = data.ndim == (4 if metric == "crossnobis" and folds is None else 3)
    plan = _plan(
        data, metric, folds, conditions, noise, noise_dof, remove_mean, batch_size, backend, device
    )
    out = np.empty((plan.n_times, plan.n_pairs), dtype=plan.fold_data.dtype)
    for _ in _run(plan, batch_size, out.__getitem__):
        pass
    return out if time_resolved else out[0]
