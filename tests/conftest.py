"""Shared pytest configuration: small thread counts so the suite fits a 2-core machine.

Tests mirror the package: ``tests/<package>/test_<module>.py``, with ``tests/integration/`` for
the pipeline, reliability, properties, the architecture rules and the GPU.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")
# Shared fixture builders (bids_fixture.py) sit here, beside the per-package test folders.
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests marked ``gpu`` when no CUDA device is present, with a visible reason."""
    if not any(item.get_closest_marker("gpu") for item in items):
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="no CUDA GPU on this machine")
    for item in items:
        if item.get_closest_marker("gpu"):
            item.add_marker(skip)
