"""What a loaded model is: preprocessing, weights record, the model itself, and the steps that
every model source shares (seeded construction, strict loading of a weights file).

Part of :mod:`figureground.features.models`, which re-exports the public names.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from figureground.errors import UsageError
from figureground.features import weights as wts

DEFAULT_MODEL = "resnet50"
DEFAULT_WEIGHTS = "IMAGENET1K_V1"
DEFAULT_LAYER = "layer2"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
UNTRAINED = "none"


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """Resize the shorter side, centre-crop, scale to [0, 1] and normalise."""

    resize: int = 256
    crop: int = 224
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    interpolation: str = "bilinear"
    origin: str = "imagenet default"

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description, recorded with the features."""
        return {
            **dataclasses.asdict(self),
            "mean": list(self.mean),
            "std": list(self.std),
            "antialias": True,
            "order": "resize shorter side, centre crop, /255, normalise",
        }

    def with_overrides(self, resize: int | None = None, crop: int | None = None) -> Preprocessing:
        """A copy with the user's ``--resize``/``--crop`` applied."""
        if resize is None and crop is None:
            return self
        return dataclasses.replace(
            self,
            resize=resize or self.resize,
            crop=crop or self.crop,
            origin=f"{self.origin}, overridden by the user",
        )

    def __call__(self, image: np.ndarray) -> Any:
        """uint8 (H, W, 3) array -> float32 tensor (3, crop, crop)."""
        import torch

        pixels = np.require(image, dtype=np.uint8, requirements=["C", "W"])
        return self.apply(torch.from_numpy(pixels).permute(2, 0, 1))

    def apply(self, tensor: Any) -> Any:
        """uint8 tensor (3, H, W) on any device -> normalised float32 (3, crop, crop)."""
        import torch
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional as tvf

        mode = InterpolationMode(self.interpolation)
        tensor = tvf.resize(tensor, [self.resize], interpolation=mode, antialias=True)
        tensor = tvf.center_crop(tensor, [self.crop, self.crop])
        tensor = tvf.convert_image_dtype(tensor, torch.float32)
        return tvf.normalize(tensor, list(self.mean), list(self.std))


@dataclasses.dataclass(frozen=True)
class WeightsRecord:
    """Which weights a model carries: name, file and its SHA-256, seed when untrained."""

    name: str
    file: str = ""
    sha256: str = ""
    seed: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description."""
        return dataclasses.asdict(self)


@dataclasses.dataclass
class LoadedModel:
    """A network in eval mode with the weights and preprocessing it was loaded with."""

    name: str
    source: str
    module: Any
    weights: WeightsRecord
    preprocessing: Preprocessing
    tracer_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """Provenance fields for the feature store."""
        return {
            "model": self.name,
            "model_source": self.source,
            "weights": self.weights.name,
            "weights_file": self.weights.file,
            "weights_sha256": self.weights.sha256,
            "seed": self.weights.seed,
            "preprocessing": self.preprocessing.to_dict(),
        }


def seeded(build: Callable[[], Any], seed: int) -> Any:
    """Build a module with its random initialisation drawn from ``seed`` (global RNG untouched)."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


StateAdapter = Callable[[Mapping, Any], dict]


def module_from_file(
    build: Callable[[], Any],
    path: str,
    architecture: str,
    seed: int,
    adapt: StateAdapter | None = None,
) -> Any:
    """Build the module and load the file strictly, after ``adapt(state, module)`` if given."""
    state = wts.load_state_dict(path)
    module = seeded(build, seed)
    if adapt is not None:
        state = adapt(state, module)
    wts.fit_state_dict(module, state, path, architecture)
    return module


def weights_from_file(
    build: Callable[[], Any],
    path: str,
    architecture: str,
    seed: int,
    adapt: StateAdapter | None = None,
) -> tuple[Any, WeightsRecord]:
    """Build the module, load the file strictly; with its weights record (name ``file``)."""
    module = module_from_file(build, path, architecture, seed, adapt)
    return module, WeightsRecord(name="file", file=str(path), sha256=wts.sha256_file(path))


def untrained_or_file(
    build: Callable[[], Any],
    weights: str,
    architecture: str,
    seed: int,
    adapt: StateAdapter | None = None,
) -> tuple[Any, WeightsRecord] | None:
    """(module, record) for ``weights`` ``none`` (drawn from ``seed``) or a weights file.

    ``None`` when ``weights`` names published weights, which each source loads its own way.
    """
    if weights.lower() == UNTRAINED:
        return seeded(build, seed), WeightsRecord(name=UNTRAINED, seed=seed)
    if wts.looks_like_file(weights):
        return weights_from_file(build, weights, architecture, seed, adapt)
    return None


def weights_member(enum: Any, weights: str, label: str, hint: str = "") -> Any:
    """The member of a torchvision weights enum named ``weights`` (``DEFAULT`` too)."""
    try:
        return enum.DEFAULT if weights.upper() == "DEFAULT" else enum[weights]
    except KeyError:
        valid = ", ".join(["DEFAULT", *(m.name for m in enum), UNTRAINED])
        raise UsageError(
            f"unknown weights {weights!r} for {label}; expected one of {valid} "
            f"or a .pth/.pt/.safetensors file{hint}"
        ) from None


def cached_weights(member: Any) -> tuple[Path, str]:
    """(file, SHA-256) of a weights enum member: cached or downloaded, hash prefix checked."""
    path = wts.cached_or_download(member.url)
    return path, wts.verify_hash_prefix(path)
