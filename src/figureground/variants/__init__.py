"""Figure and ground variants of each stimulus: segment, composite on white, inpaint.

Entry point: :func:`make_variants` (``figureground variants``). Segmenters live in
:mod:`figureground.variants.segment`, model files in :mod:`figureground.variants.modelfiles`.
"""

from figureground.variants.run import VARIANTS, VariantParams, make_variants, variant_path

__all__ = ["VARIANTS", "VariantParams", "make_variants", "variant_path"]
