"""Stimuli: manifests (THINGS layout, plain folders, CSV) and robust image loading.

Public API::

    build_manifest(root, layout="things", exemplars=12, csv_path=None) -> DataFrame
    write_manifest(df, path) / read_manifest(path) -> DataFrame
    load_rgb(path) -> uint8 array (H, W, 3)
    parse_things_name(stem) -> (concept, exemplar or None)

See :mod:`.sources` for how each layout is read and :mod:`.loading` for the decoding rules.
"""

from figureground.stimuli.loading import DEFAULT_MAX_PIXELS, load_rgb, probe_image
from figureground.stimuli.manifest import COLUMNS, build_manifest, read_manifest, write_manifest
from figureground.stimuli.sources import IMAGE_SUFFIXES, SETS, SOURCES, parse_things_name

__all__ = [
    "COLUMNS",
    "DEFAULT_MAX_PIXELS",
    "IMAGE_SUFFIXES",
    "SETS",
    "SOURCES",
    "build_manifest",
    "load_rgb",
    "parse_things_name",
    "probe_image",
    "read_manifest",
    "write_manifest",
]
