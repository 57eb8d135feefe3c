"""Figure and ground variants of each stimulus: segment, composite on white, inpaint.

Entry point: :func:`make_variants` (``figureground variants``). Segmenters live in
:mod:`figureground.variants.segmenters`, model files in :mod:`figureground.variants.modelfiles`.
"""

from figureground.variants.image import VARIANTS, VariantParams, variant_path
from figureground.variants.run import make_variants

__all__ = ["VARIANTS", "VariantParams", "make_variants", "variant_path"]
