"""The study file (YAML) as typed, validated objects.

A study file names the stimuli, segmenter, inpainting, models, weights, layers, neural data,
analyses and output folder. It is read with ``yaml.safe_load`` and validated into frozen
dataclasses; an unknown or misspelt key is an error naming it and the nearest valid key, and
a value of the wrong type is an error naming the key, the value and the expected type.

Relative paths in the study file are resolved against the folder that holds the study file,
so a study folder can be moved as a whole.

The sections live in parts, re-exported here: :mod:`figureground.config_neural` (the
recordings), :mod:`figureground.config_analyses` and :mod:`figureground.config_where` (the
analyses) and :mod:`figureground.config_checks` (the shared range check).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from figureground.config_analyses import (
    RDM_METRICS,
    VIEWS,
    AnalysesConfig,
    EncodingConfig,
    NoiseCeilingConfig,
    ResponsesConfig,
    RsaConfig,
    SeedMethodConfig,
    StatsConfig,
    StrataConfig,
    VerdictConfig,
)
from figureground.config_checks import require
from figureground.config_neural import (
    NEURAL_SOURCES,
    ArraysConfig,
    BidsSourceConfig,
    EpochsSourceConfig,
    NeuralConfig,
    SimulateConfig,
    ThingsEeg2Config,
)
from figureground.config_where import (
    GAZE_MODES,
    DecodingConfig,
    GazeConfig,
    MaskPartitionConfig,
    ReadoutConfig,
    SensorsConfig,
)
from figureground.errors import UsageError

__all__ = [
    "GAZE_MODES",
    "NEURAL_SOURCES",
    "RDM_METRICS",
    "RENAMED_KEYS",
    "VIEWS",
    "AnalysesConfig",
    "ArraysConfig",
    "BidsSourceConfig",
    "DecodingConfig",
    "EncodingConfig",
    "EpochsSourceConfig",
    "FeaturesConfig",
    "GazeConfig",
    "MaskPartitionConfig",
    "ModelConfig",
    "NeuralConfig",
    "NoiseCeilingConfig",
    "ReadoutConfig",
    "ReportConfig",
    "ResponsesConfig",
    "RsaConfig",
    "SeedMethodConfig",
    "SensorsConfig",
    "SimulateConfig",
    "StatsConfig",
    "StimuliConfig",
    "StrataConfig",
    "StudyConfig",
    "ThingsEeg2Config",
    "VariantsConfig",
    "VerdictConfig",
    "earlier_key_names",
    "load_study",
    "options_record",
    "parse_study",
]


@dataclass(frozen=True)
class StimuliConfig:
    """Where the stimulus images are and how to read them."""

    root: str = ""
    layout: Literal["things", "folder", "csv"] = "things"
    exemplars: int | None = 12
    csv: str | None = None
    demo: bool = False  # build the embedded demo set into ``root`` first


@dataclass(frozen=True)
class VariantsConfig:
    """How no-background and no-foreground images are made.

    The fields of ``figureground.variants.VariantParams`` (what changes the images) plus
    how the stage runs (``workers``, ``batch_size``); ``figureground variants`` has an
    option for each (``tests/integration/test_architecture.py`` checks that they stay the same set).
    """

    segmenter: str = "isnet"
    inpaint: Literal["telea", "ns"] = "telea"
    threshold: float = 0.5
    dilate: int = 5
    inpaint_radius: int = 3  # OpenCV's inpainting radius (px, at the working size)
    inpaint_max_side: int = 1024  # inpaint at this long side, then upsample (0: full size)
    fill: tuple[int, int, int] = (255, 255, 255)  # background of no-background images, RGB
    little_background_above: float = 0.9  # fg_fraction from which an image is flagged
    alpha_floor: float = 0.0  # below it, no-background images show only the fill (0 = off)
    workers: int = 1
    batch_size: int = 16  # images per device batch (isnet-torch) or per Dask task

    def __post_init__(self) -> None:
        require(
            0.0 <= self.alpha_floor <= self.threshold,
            "variants.alpha_floor",
            self.alpha_floor,
            f"0 <= alpha_floor <= threshold ({self.threshold})",
        )


@dataclass(frozen=True)
class ModelConfig:
    """One network, its weights and the layers to take."""

    name: str = "resnet50"
    weights: str = "IMAGENET1K_V1"
    layers: tuple[str, ...] = ("layer2",)
    pool: str = "none"
    random_state: int = 0
    resize: int | None = None  # None: the weights' own resize (shorter side) and crop
    crop: int | None = None
    # Used instead, with one logged line, when these weights cannot be had (offline machine).
    fallback: ModelConfig | None = None


@dataclass(frozen=True)
class FeaturesConfig:
    """Networks to run and how."""

    models: tuple[ModelConfig, ...] = (ModelConfig(),)
    batch_size: int = 16
    device: str = "auto"
    dtype: Literal["float32", "float16"] = "float32"
    workers: int = 0
    # Compute precision: bf16/fp16 autocast (a GPU's fast path; 0.7% relative difference for
    # ResNet50 layer2 in bf16, see docs/features.md). Part of the features' cache key.
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"


@dataclass(frozen=True)
class ReportConfig:
    """What the report shows."""

    examples: int = 4


@dataclass(frozen=True)
class StudyConfig:
    """A whole study."""

    name: str = "study"
    output: str = "run"
    stimuli: StimuliConfig = StimuliConfig()
    variants: VariantsConfig = VariantsConfig()
    features: FeaturesConfig = FeaturesConfig()
    neural: NeuralConfig = NeuralConfig()  # noqa: RUF009 (frozen: one shared default is safe)
    analyses: AnalysesConfig = AnalysesConfig()  # noqa: RUF009 (frozen: one shared default is safe)
    report: ReportConfig = ReportConfig()
    base_dir: str = field(default=".", metadata={"internal": True})

    def resolve(self, path: str | None) -> Path | None:
        """A path from the study file, relative to the study file's folder."""
        if path is None:
            return None
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else Path(self.base_dir) / candidate

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (for provenance and hashing); internal fields left out."""
        data = dataclasses.asdict(self)
        data.pop("base_dir", None)
        return data


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def _convert(value: Any, annotation: Any, where: str) -> Any:
    """Check and convert ``value`` to ``annotation``; raise UsageError naming ``where``."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if dataclasses.is_dataclass(annotation):
        return _build(annotation, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _convert(value, option, where)
            except UsageError as exc:
                errors.append(str(exc))
        raise UsageError(
            errors[0]
            if len(errors) == 1
            else f"{where}: {value!r} is not one of {', '.join(_type_name(a) for a in args)}"
        )
    if origin is Literal:
        if value not in args:
            close = difflib.get_close_matches(str(value), [str(a) for a in args], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UsageError(
                f"{where}: {value!r} is not one of {', '.join(repr(a) for a in args)}{hint}"
            )
        return value
    if origin is tuple:
        items = value if isinstance(value, list | tuple) else [value]
        return tuple(_convert(item, args[0], f"{where}[{i}]") for i, item in enumerate(items))
    if annotation is bool:
        if not isinstance(value, bool):
            raise UsageError(f"{where}: {value!r} is not true or false")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UsageError(f"{where}: {value!r} is not an integer")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UsageError(f"{where}: {value!r} is not a number")
        return float(value)
    if annotation is str:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise UsageError(f"{where}: {value!r} is not text")
        return str(value)
    raise UsageError(f"{where}: cannot read a value of type {_type_name(annotation)}")


#: Keys of earlier study files, read under their current names: ``seed`` named both the
#: seed method (now ``analyses.seed_method``) and random seeds (now ``random_state``).
RENAMED_KEYS: dict[str, tuple[str, ...]] = {"seed": ("seed_method", "random_state")}


def earlier_key_names(fields: Any) -> Any:
    """``fields`` (nested plain data) under the study file's earlier names (:data:`RENAMED_KEYS`).

    Cache keys hash, and results files record, options under those names (``seed``), so
    runs made before the renaming keep their stage keys and results keep their columns.
    """
    if isinstance(fields, dict):
        return {
            ("seed" if k in ("random_state", "seed_method") else k): earlier_key_names(v)
            for k, v in fields.items()
        }
    if isinstance(fields, list | tuple):
        return type(fields)(earlier_key_names(v) for v in fields)
    return fields


def options_record(section: Any, keys: Sequence[str] | None = None) -> dict[str, Any]:
    """A study-file section's options as the results record them (:func:`earlier_key_names`):
    every field, or those named in ``keys`` (earlier names), in that order."""
    record = earlier_key_names(dataclasses.asdict(section))
    return record if keys is None else {key: record[key] for key in keys}


def _current_key(key: Any, fields: Any, data: dict, where: str) -> Any:
    """``key``, or its current name when it is an earlier one (:data:`RENAMED_KEYS`)."""
    if key in fields or key not in RENAMED_KEYS:
        return key
    for new in RENAMED_KEYS[key]:
        if new in fields:
            if new in data:
                place = f"{where}." if where else ""
                raise UsageError(
                    f"{place}{key} and {place}{new} are the same setting (its earlier and "
                    f"current name); keep {place}{new}"
                )
            return new
    return key


def _build(cls: type, data: Any, where: str) -> Any:
    """Build dataclass ``cls`` from a mapping, refusing unknown keys with a hint."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UsageError(f"{where or 'study file'}: expected a mapping of keys, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    kwargs = {}
    for key, value in data.items():
        key = _current_key(key, fields, data, where)
        name = f"{where}.{key}" if where else str(key)
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.5)
            hint = (
                f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(fields)}"
            )
            raise UsageError(f"unknown key {name!r} in the study file{hint}")
        kwargs[key] = _convert(value, hints[key], name)
    return cls(**kwargs)


def parse_study(data: Any, base_dir: str | Path = ".") -> StudyConfig:
    """Validate a study mapping (as read from YAML) into a :class:`StudyConfig`."""
    config = _build(StudyConfig, data, "")
    return dataclasses.replace(config, base_dir=str(Path(base_dir).resolve()))


def load_study(path: str | Path) -> StudyConfig:
    """Read and validate a study file (``yaml.safe_load``)."""
    study_path = Path(path)
    try:
        text = study_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"study file {study_path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"study file {study_path} cannot be read: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        place = f" at line {mark.line + 1}" if mark else ""
        raise UsageError(f"study file {study_path} is not valid YAML{place}") from None
    try:
        return parse_study(data, base_dir=study_path.parent)
    except UsageError as exc:
        raise UsageError(f"{study_path}: {exc}") from None
