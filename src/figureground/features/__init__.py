"""Deep-network embeddings: model registry and weights, extraction, the Zarr feature store.

Submodules: :mod:`.models` (registry, weights, preprocessing, layer names; its parts
:mod:`.model_types` and :mod:`.model_loaders`), :mod:`.weights` (file / cache / download
resolution, safe loading), :mod:`.sources` (what to embed), :mod:`.extract`
(:func:`~.extract.extract_features`), :mod:`.store` (:func:`~.store.open_features`; its parts
:mod:`.store_format` and :mod:`.store_write`, the only code that reads or writes feature
stores). Import them directly; this package imports no heavy library.
"""
