"""Gram-matrix backends of :mod:`figureground.analysis.rdm_calc`.

A backend writes the Gram matrices ``Y Y^T + w Z Z^T`` of a batch of time points, condensed,
into the caller's output: :class:`NumpyGram` (BLAS ``syrk``, pairs copied by
:mod:`figureground.analysis.gram_kernels` where numba is there) or :class:`TorchGram`
(batched torch products, e.g. on a GPU), chosen by name in :func:`make_gram`.
:func:`unit_rdm_threads` gives the threaded correlation / cosine path
(:class:`~figureground.analysis.gram_kernels.UnitRdmThreads`) where it applies.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.linalg import blas

from figureground import logs
from figureground.analysis.rdm_pairs import pair_indices
from figureground.errors import UsageError

log = logs.get_logger(__name__)

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
        kernels = _gram_kernels()
        if kernels is None:
            _copy_pairs(self._sources, self._targets, out, subtract_from)
            return
        flat = buffer.reshape(-1, order="F")
        constant = 0.0 if subtract_from is None else float(subtract_from)
        kernels.condense_lower(flat, self._n, out, constant, subtract_from is not None)


@functools.lru_cache(maxsize=1)
def _gram_kernels() -> types.ModuleType | None:
    """:mod:`figureground.analysis.gram_kernels`, or None without numba."""
    try:
        from figureground.analysis import gram_kernels
    except ImportError as exc:  # the copy then runs as one numpy call per condition
        log.warning("numba is not importable (%s): RDM pairs are copied by numpy", exc)
        return None
    return gram_kernels


@functools.lru_cache(maxsize=1)
def _blas_threads() -> Any:
    """threadpoolctl's controller of the loaded BLAS libraries, or None without threadpoolctl."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError as exc:
        log.warning("threadpoolctl is not importable (%s): RDM time points run one by one", exc)
        return None
    return ThreadpoolController().select(user_api="blas")


_CENTRE = {"correlation": True, "cosine": False}  # the metrics of UnitRdmThreads


def unit_rdm_threads(metric: str, gram: Callable, data: np.ndarray, batch_size: int) -> Any:
    """:class:`~figureground.analysis.gram_kernels.UnitRdmThreads` over ``data`` (conditions,
    channels, times) where it applies (``metric`` correlation or cosine, ``gram`` a
    :class:`NumpyGram`, numba and threadpoolctl importable, and more than one time point),
    else None. A single RDM (one time point, e.g. a model's) has nothing to share among
    threads, so it keeps the plain path and its bit-exact results."""
    if metric not in _CENTRE or not isinstance(gram, NumpyGram) or data.shape[-1] < 2:
        return None
    kernels = _gram_kernels()
    blas = _blas_threads() if kernels is not None else None
    if blas is None:
        return None
    return kernels.UnitRdmThreads(data, _CENTRE[metric], batch_size, blas)


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


def make_gram(backend: str, n_conditions: int, device: str | None) -> Callable:
    """The Gram routine of ``backend`` (registry, no if-chain on names downstream)."""
    makers: dict[str, Callable[[], Callable]] = {
        "numpy": lambda: NumpyGram(n_conditions),
        "torch": lambda: TorchGram(n_conditions, device),
    }
    if backend not in makers:
        raise UsageError(f"backend must be one of {sorted(makers)}; got {backend!r}")
    return makers[backend]()
