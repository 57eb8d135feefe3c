"""The layout of a variants folder, for those who read one (the report, the analyses).

A variants run (:func:`figureground.variants.make_variants`) writes::

    OUT/variants.csv                 one row per image: image_id, path, status, metrics, ...
    OUT/variants.json                the run's parameters and the stimulus root
    OUT/<variant>/<path>.png         no_background, no_foreground, mask (8-bit soft alpha)
    OUT/records/<path>.json          each image's record (written last: marks it done)

``path`` is the image's path relative to the stimulus root, its suffix replaced;
:func:`~figureground.variants.image.variant_path` places one variant's file.
"""

from __future__ import annotations

import os
from pathlib import Path

from figureground.conditions import ORIGINAL
from figureground.variants.image import VARIANTS, variant_path

TABLE = "variants.csv"
PARAMETERS = "variants.json"


def table_file(variants_dir: str | os.PathLike) -> Path:
    """The run's table, ``variants_dir/variants.csv``."""
    return Path(variants_dir) / TABLE


def image_files(
    variants_dir: str | os.PathLike, source_root: str | os.PathLike, rel_path: str
) -> dict[str, Path]:
    """The files of one image: ``original`` (in ``source_root``) and each of :data:`VARIANTS`.

    ``rel_path`` is the image's ``path`` in ``variants.csv`` (relative to the stimulus root).
    """
    files = {ORIGINAL: Path(source_root) / rel_path}
    files.update({variant: variant_path(variants_dir, rel_path, variant) for variant in VARIANTS})
    return files
