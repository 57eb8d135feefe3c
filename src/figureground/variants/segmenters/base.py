"""What every segmenter shares: the resolved spec, the callable protocol, the registry entry.

A segmenter is named by a spec string: ``isnet`` (default), ``isnet-torch`` (batched, GPU),
``u2net``, ``rembg:<model>``, ``grabcut`` or ``masks:<dir>``. Each kind has two steps, kept
apart so that work spreads over processes:

- ``resolve(argument) -> SegmenterSpec`` runs once in the main process: it finds and verifies
  the model file (or fails with one line saying how to provide it) and records provenance.
- ``build(spec) -> Segmenter`` runs once per worker process and creates the session that is
  then reused for every image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class SegmenterSpec:
    """A resolved segmenter: what a worker needs to build it, and what provenance records."""

    kind: str
    spec: str
    session: str = ""
    model_path: str = ""
    model_sha256: str = ""
    mask_dir: str = ""
    license: str = ""
    precision: str = ""

    def provenance(self) -> dict[str, str]:
        """The fields recorded in variants.json (no machine-specific paths besides the file)."""
        return {key: value for key, value in asdict(self).items() if value}


class Segmenter(Protocol):
    """Callable returning a float32 alpha of shape (H, W) in [0, 1] for an RGB uint8 image."""

    def __call__(self, rgb: np.ndarray, image_id: str) -> np.ndarray: ...


@dataclass(frozen=True)
class SegmenterKind:
    """Registry entry: how to resolve a spec argument and how to build a session from it."""

    resolve: Callable[[str], SegmenterSpec]
    build: Callable[[SegmenterSpec], Segmenter]
    help: str
    batched: bool = False
