"""Deep-network embeddings: model registry and weights, extraction, the Zarr feature store.

Submodules: :mod:`.models` (registry, weights, preprocessing, layer names), :mod:`.weights`
(file / cache / download resolution, safe loading), :mod:`.sources` (what to embed),
:mod:`.extract` (:func:`~.extract.extract_features`), :mod:`.store`
(:func:`~.store.open_features`). Import them directly; this package imports no heavy library.
"""
