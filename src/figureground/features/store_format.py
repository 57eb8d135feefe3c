"""The feature store's format: status codes, dimension names and small helpers.

Shared by the writer (:mod:`.store_write`) and the readers (:mod:`.store`); the layout is
described in :mod:`figureground.features.store`, which re-exports every name here.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from figureground.errors import UsageError

PENDING, DONE, FAILED = 0, 1, -1
SPATIAL_DIMS = ("channel", "y", "x")


@contextlib.contextmanager
def quiet_zarr() -> Iterator[None]:
    """Silence zarr's notes on consolidated metadata and unstable v3 extensions."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        warnings.filterwarnings("ignore", category=UserWarning, module="zarr.*")
        yield


def layer_dims(layer_shapes: Mapping[str, Sequence[int]]) -> dict[str, tuple[str, ...]]:
    """Dimension names per layer (after ``image``): shared names unless sizes conflict."""
    sizes: dict[str, set[int]] = {}
    for shape in layer_shapes.values():
        for name, size in zip(SPATIAL_DIMS, shape, strict=False):
            sizes.setdefault(name, set()).add(int(size))
    conflict = any(len(s) > 1 for s in sizes.values())
    dims = {}
    for layer, shape in layer_shapes.items():
        names = SPATIAL_DIMS[: len(shape)]
        dims[layer] = tuple(f"{layer}_{n}" for n in names) if conflict else names
    return dims


def read_root_attrs(path: str | os.PathLike) -> dict[str, Any]:
    """The root group's attributes (provenance, params_hash, variants)."""
    import zarr

    if not Path(path).exists():
        raise UsageError(f"feature store {path} does not exist")
    try:
        with quiet_zarr():
            return dict(zarr.open_group(str(path), mode="r").attrs)
    except Exception as exc:
        raise UsageError(
            f"{path} exists but is not a feature store ({exc}); choose another --out or delete it"
        ) from None


def remove_partial_files(path: str | os.PathLike) -> int:
    """Delete ``*.partial`` files a killed zarr write left behind; return how many."""
    count = 0
    for leftover in Path(path).rglob("*.partial"):
        leftover.unlink(missing_ok=True)
        count += 1
    return count


def image_checksums(outputs: Mapping[str, np.ndarray]) -> list[str]:
    """SHA-256 per image (first axis) of the values of every layer, in layer-name order."""
    layers = sorted(outputs)
    n = len(outputs[layers[0]]) if layers else 0
    digests = []
    for index in range(n):
        digest = hashlib.sha256()
        for layer in layers:
            digest.update(np.ascontiguousarray(outputs[layer][index]).tobytes())
        digests.append(digest.hexdigest())
    return digests
