"""Neural responses aligned to image ids: THINGS-MEG, other recordings, and a simulator.

``LOADERS`` maps a source name to the function that reads it; every loader returns a float32
``xarray.DataArray`` with dims (image, channel, time) (or with ``repetition`` after image).
Loaders are imported on first use, so importing this package stays light.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import xarray as xr

from figureground.errors import UsageError

LOADERS: dict[str, str] = {
    "things-meg": "figureground.neural.things_meg:load",
    "epochs": "figureground.neural.arrays:load_epochs",
    "numpy": "figureground.neural.arrays:load_numpy",
    "things-eeg2": "figureground.neural.arrays:load_things_eeg2",
}


def get_loader(source: str) -> Callable[..., xr.DataArray]:
    """The loader registered as ``source`` (one of ``LOADERS``)."""
    if source not in LOADERS:
        raise UsageError(f"neural source {source!r} unknown; expected one of {sorted(LOADERS)}")
    module, name = LOADERS[source].split(":")
    return getattr(importlib.import_module(module), name)


def load_responses(source: str, *args, **kwargs) -> xr.DataArray:
    """Load responses with the loader registered as ``source``."""
    return get_loader(source)(*args, **kwargs)
