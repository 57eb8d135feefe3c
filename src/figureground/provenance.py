"""What every output records about how it was made."""

from __future__ import annotations

import platform
import sys
from importlib import metadata

import figureground

_LIBRARIES = (
    "numpy",
    "scipy",
    "pandas",
    "torch",
    "torchvision",
    "timm",
    "rembg",
    "onnxruntime",
    "opencv-python-headless",
    "mne",
    "himalaya",
    "xarray",
    "zarr",
    "rsatoolbox",
    "pillow",
    "scikit-image",
)


def library_versions() -> dict[str, str]:
    """Versions of figureground, Python and the libraries results depend on."""
    versions = {
        "figureground": figureground.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def stamp(**fields: object) -> dict[str, object]:
    """A provenance record: the given fields and library versions.

    No timestamp: an interrupted and resumed run must write the same bytes as an
    uninterrupted one; times go to the log.
    """
    return {**fields, "versions": library_versions()}
