"""The validation's stimulus pool: composites with exact masks, their variants and features.

Built once per settings into a folder (and reused): composite stimuli
(:mod:`figureground.stimuli.composites`), their no-background / no-foreground variants from
the exact masks (``masks:`` segmenter, Telea inpainting), the analysed network's features and
another network's, and the pixel descriptors of every region
(:mod:`figureground.stimuli.descriptors`). Each replicate of the sweep draws its own concepts
from the pool, so replicates differ in their images as well as in their brains.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from figureground import logs
from figureground.conditions import CONDITIONS, ORIGINAL
from figureground.fsutil import atomic_write_json, params_hash

log = logs.get_logger(__name__)


@dataclass(frozen=True)
class PoolSettings:
    """What the pool holds (defaults: 48 concepts x 8 exemplars of 256 px composites)."""

    concepts: int = 48
    exemplars: int = 8
    size: int = 256
    seed: int = 0
    model: str = "efficientnet_lite0"
    weights: str = "DEFAULT"
    layer: str = "_blocks.4"
    other_model: str = "resnet18"
    other_weights: str = "none"
    other_layer: str = "layer3"


@dataclass
class Pool:
    """The pool in memory: ids, concepts, analysed maps per condition, codes' raw inputs."""

    folder: Path
    settings: PoolSettings
    image_ids: list[str]
    concepts: list[str]
    maps: dict[str, np.ndarray]  # condition -> (image, channel, y, x), the analysed layer
    masks: np.ndarray  # (image, y, x) object coverage of each cell of the analysed layer
    descriptors: dict[str, np.ndarray]  # region -> (image, d) raw pixel descriptors
    attrs: dict[str, str]  # the analysed store's model / weights / layer

    @property
    def other_store(self) -> Path:
        return self.folder / "other.zarr"


def _features(variants: Path, out: Path, model: str, weights: str, layer: str) -> None:
    from figureground.features.extract import extract_features

    extract_features(
        variants, out, model=model, weights=weights, layers=[layer], batch_size=16, device="cpu"
    )


def _descriptors(root: Path, ids: list[str], paths: dict[str, str]) -> dict[str, np.ndarray]:
    import cv2

    from figureground.stimuli import load_rgb
    from figureground.stimuli.descriptors import region_descriptors

    rows: dict[str, list[np.ndarray]] = {}
    for image_id in logs.progress(ids, len(ids), "pixel descriptors"):
        rgb = load_rgb(root / paths[image_id])
        mask = cv2.imread(str(root / "ground_truth" / f"{image_id}.png"), cv2.IMREAD_GRAYSCALE)
        for region, vector in region_descriptors(rgb, mask.astype(np.float32) / 255).items():
            rows.setdefault(region, []).append(vector)
    return {region: np.stack(vectors) for region, vectors in rows.items()}


def build_pool(folder: str | Path, settings: PoolSettings = PoolSettings()) -> Pool:
    """Make (or reuse) the pool in ``folder``; return it loaded."""
    import pandas as pd

    from figureground.analysis.study.masks import MaskGrids
    from figureground.features.store import read_layer, read_root_attrs
    from figureground.stimuli.composites import make_composite_stimuli
    from figureground.variants import make_variants
    from figureground.variants.layout import table_file

    folder = Path(folder)
    key = params_hash(asdict(settings))
    stamp = folder / "pool.json"
    if not (stamp.is_file() and json.loads(stamp.read_text()).get("key") == key):
        folder.mkdir(parents=True, exist_ok=True)
        root = make_composite_stimuli(
            folder / "stimuli", settings.concepts, settings.exemplars, settings.size, settings.seed
        )
        make_variants(
            root,
            folder / "variants",
            segmenter=f"masks:{root / 'ground_truth'}",
            exemplars=settings.exemplars,
            workers=1,
        )
        _features(folder / "variants", folder / "analysed.zarr", settings.model,
                  settings.weights, settings.layer)  # fmt: skip
        _features(folder / "variants", folder / "other.zarr", settings.other_model,
                  settings.other_weights, settings.other_layer)  # fmt: skip
        table = pd.read_csv(table_file(folder / "variants"), dtype=str)
        ok = table[table["status"] == "ok"]
        ids = list(ok["image_id"])
        descriptors = _descriptors(root, ids, dict(zip(ok["image_id"], ok["path"], strict=True)))
        np.savez(folder / "descriptors.npz", image_ids=np.array(ids), **descriptors)
        atomic_write_json(stamp, {"key": key, "settings": asdict(settings)})
    saved = np.load(folder / "descriptors.npz", allow_pickle=False)
    ids = [str(i) for i in saved["image_ids"]]
    descriptors = {k: saved[k] for k in saved.files if k != "image_ids"}
    maps = {}
    for condition in CONDITIONS:
        values = read_layer(folder / "analysed.zarr", condition, settings.layer, ids)
        maps[condition] = values.astype(np.float32, copy=False)
    grid = maps[ORIGINAL].shape[2:4]
    attrs = read_root_attrs(folder / "analysed.zarr")
    masks = MaskGrids(folder / "variants").on_grid(attrs, ids, grid)
    from figureground.neural.aggregate import concept_of_id

    return Pool(
        folder,
        settings,
        ids,
        [concept_of_id(i) for i in ids],
        maps,
        masks,
        descriptors,
        {"model": str(attrs.get("model", settings.model)),
         "weights": str(attrs.get("weights", settings.weights)), "layer": settings.layer},
    )  # fmt: skip
