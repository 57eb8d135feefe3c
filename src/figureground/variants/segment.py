"""Segmenters: an RGB image in, a soft alpha in [0, 1] at the image's own resolution out.

A segmenter is named by a spec string: ``isnet`` (default), ``isnet-torch`` (batched, GPU),
``u2net``, ``rembg:<model>``, ``grabcut`` or ``masks:<dir>``. Each kind has two steps, kept
apart so that work spreads over processes:

- ``resolve(argument) -> SegmenterSpec`` runs once in the main process: it finds and verifies
  the model file (or fails with one line saying how to provide it) and records provenance.
- ``build(spec) -> Segmenter`` runs once per worker process and creates the session that is
  then reused for every image.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Protocol

import numpy as np

from figureground.errors import ImageLoadError, ModelUnavailableError, UsageError
from figureground.fsutil import resolve_inside, sha256_file
from figureground.variants import modelfiles

# MD5 that rembg 2.0.86 checks when it downloads isnet-general-use.onnx itself.
REMBG_ISNET_MD5 = "fc16ebd8b0c10d971d3513d564d01e29"
# rembg sessions that need a file the user names, or send images elsewhere: not for rembg:<name>.
_REMBG_REFUSED = ("dis_custom", "u2net_custom", "ben_custom")


@dataclass(frozen=True)
class SegmenterSpec:
    """A resolved segmenter: what a worker needs to build it, and what provenance records."""

    kind: str
    spec: str
    session: str = ""
    model_path: str = ""
    model_sha256: str = ""
    mask_dir: str = ""
    license: str = ""
    precision: str = ""

    def provenance(self) -> dict[str, str]:
        """The fields recorded in variants.json (no machine-specific paths besides the file)."""
        return {key: value for key, value in asdict(self).items() if value}


class Segmenter(Protocol):
    """Callable returning a float32 alpha of shape (H, W) in [0, 1] for an RGB uint8 image."""

    def __call__(self, rgb: np.ndarray, image_id: str) -> np.ndarray: ...


@dataclass(frozen=True)
class SegmenterKind:
    """Registry entry: how to resolve a spec argument and how to build a session from it."""

    resolve: Callable[[str], SegmenterSpec]
    build: Callable[[SegmenterSpec], Segmenter]
    help: str
    batched: bool = False


# ---------------------------------------------------------------- rembg-based segmenters


class RembgSegmenter:
    """A rembg session, created once and reused; returns its mask as a soft alpha."""

    def __init__(self, spec: SegmenterSpec) -> None:
        from rembg import new_session

        kwargs = {"model_path": spec.model_path} if spec.session == "dis_custom" else {}
        self.session = new_session(spec.session, **kwargs)

    def __call__(self, rgb: np.ndarray, image_id: str) -> np.ndarray:
        """Soft alpha of ``rgb`` (H, W, 3 uint8) as float32 (H, W) in [0, 1]."""
        from PIL import Image

        mask = self.session.predict(Image.fromarray(rgb))[0].convert("L")
        alpha = np.asarray(mask, dtype=np.float32) / 255.0
        if alpha.shape != rgb.shape[:2]:
            raise ImageLoadError(
                f"{image_id}: segmenter returned a {alpha.shape} mask for a {rgb.shape[:2]} image"
            )
        return alpha


def _rembg_session_class(model_name: str) -> type:
    from rembg.sessions import sessions_class

    by_name = {cls.name(): cls for cls in sessions_class}
    if model_name not in by_name or model_name in _REMBG_REFUSED:
        usable = sorted(
            n
            for n, c in by_name.items()
            if n not in _REMBG_REFUSED and c.is_local() and not c.requires_credentials()
        )
        raise UsageError(
            f"rembg model {model_name!r} is not usable here; expected one of {', '.join(usable)}"
        )
    cls = by_name[model_name]
    if not cls.is_local() or cls.requires_credentials():
        raise UsageError(
            f"rembg model {model_name!r} sends images to a remote service; choose a local model"
        )
    return cls


def _md5_file(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_rembg(model_name: str) -> SegmenterSpec:
    """Find (or let rembg download) the file of rembg model ``model_name``.

    Raises
    ------
    ModelUnavailableError
        One line naming the missing file, where rembg looks for it and how to get it.
    """
    if not model_name:
        raise UsageError("segmenter 'rembg:' needs a model name, e.g. rembg:u2net")
    cls = _rembg_session_class(model_name)
    expected = Path(cls.model_dir()) / f"{model_name}.onnx"
    try:
        path = Path(cls.download_models())
    except Exception as exc:  # rembg raises requests/pooch/OS errors when offline
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise ModelUnavailableError(
            f"rembg model file {expected} is missing and could not be downloaded ({reason}); "
            f'on a machine with internet run python -c "import rembg; '
            f"rembg.new_session('{model_name}')\" and copy the file to {expected.parent}"
        ) from None
    return SegmenterSpec(
        kind="rembg",
        spec=f"rembg:{model_name}",
        session=model_name,
        model_path=str(path),
        model_sha256=sha256_file(path),
    )


def resolve_u2net(_: str) -> SegmenterSpec:
    """rembg's U^2-Net (rembg's default model when the study was made)."""
    return SegmenterSpec(**{**asdict(resolve_rembg("u2net")), "spec": "u2net"})


def resolve_isnet(_: str) -> SegmenterSpec:
    """The DIS general-use network: the fetched fp16 file first, then rembg's own copy.

    Order: ``fetch-models isnet``'s file under rembg's ``dis_custom`` folder (SHA-256
    verified), then rembg's ``isnet-general-use.onnx`` (cached or downloaded, MD5 verified).
    """
    fetched = modelfiles.isnet_model_path()
    if fetched.is_file():
        digest = modelfiles.verify_file(fetched, modelfiles.ISNET_SHA256, modelfiles.ISNET_SIZE)
        return SegmenterSpec(
            kind="isnet",
            spec="isnet",
            session=modelfiles.ISNET_SESSION,
            model_path=str(fetched),
            model_sha256=digest,
            license=modelfiles.ISNET_LICENSE,
        )
    try:
        spec = resolve_rembg("isnet-general-use")
    except ModelUnavailableError:
        raise ModelUnavailableError(
            f"ISNet model file {fetched} is missing and rembg could not download its own copy; "
            "run `figureground fetch-models isnet` (or choose --segmenter grabcut, which needs "
            "no weights)"
        ) from None
    if _md5_file(Path(spec.model_path)) != REMBG_ISNET_MD5:
        raise ModelUnavailableError(
            f"model file {spec.model_path} does not match rembg's MD5 "
            f"{REMBG_ISNET_MD5}; delete it and fetch it again"
        )
    return SegmenterSpec(
        **{**asdict(spec), "kind": "isnet", "spec": "isnet", "license": "Apache-2.0"}
    )


# ---------------------------------------------------------------- GrabCut (no weights)


@dataclass(frozen=True)
class GrabCutSegmenter:
    """OpenCV GrabCut started from a centred rectangle; deterministic for a given seed.

    The image is segmented at most ``max_side`` pixels on its long side and the mask brought
    back to full size by linear interpolation, which gives soft edges.
    """

    margin: float = 0.05
    iterations: int = 5
    max_side: int = 512
    seed: int = 0

    def __call__(self, rgb: np.ndarray, image_id: str) -> np.ndarray:
        """Soft alpha of ``rgb`` (H, W, 3 uint8) as float32 (H, W) in [0, 1]."""
        import cv2

        height, width = rgb.shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        small = (
            rgb
            if scale == 1.0
            else cv2.resize(
                rgb,
                (max(1, round(width * scale)), max(1, round(height * scale))),
                interpolation=cv2.INTER_AREA,
            )
        )
        h, w = small.shape[:2]
        dx, dy = max(1, round(w * self.margin)), max(1, round(h * self.margin))
        if w - 2 * dx < 2 or h - 2 * dy < 2:
            raise ImageLoadError(f"{image_id}: image of {width}x{height} is too small for GrabCut")
        mask = np.zeros((h, w), np.uint8)
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        cv2.setRNGSeed(self.seed)
        cv2.grabCut(
            cv2.cvtColor(small, cv2.COLOR_RGB2BGR),
            mask,
            (dx, dy, w - 2 * dx, h - 2 * dy),
            bgd,
            fgd,
            self.iterations,
            cv2.GC_INIT_WITH_RECT,
        )
        alpha = np.isin(mask, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.float32)
        if scale != 1.0:
            alpha = np.clip(
                cv2.resize(alpha, (width, height), interpolation=cv2.INTER_LINEAR), 0.0, 1.0
            )
        return alpha


def resolve_grabcut(_: str) -> SegmenterSpec:
    """GrabCut needs no file."""
    return SegmenterSpec(kind="grabcut", spec="grabcut")


# ---------------------------------------------------------------- precomputed masks


@dataclass(frozen=True)
class MaskDirSegmenter:
    """Precomputed masks ``<mask_dir>/<image_id>.png`` (8- or 16-bit grey) as soft alpha."""

    mask_dir: Path

    def __call__(self, rgb: np.ndarray, image_id: str) -> np.ndarray:
        """The stored mask of ``image_id``, checked to match the image's size."""
        import cv2

        path = resolve_inside(self.mask_dir, f"{image_id}.png")
        mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED) if path.is_file() else None
        if mask is None:
            raise ImageLoadError(f"mask {path} is missing or not a readable PNG")
        if mask.ndim == 3:
            mask = mask[..., 3] if mask.shape[2] == 4 else cv2.cvtColor(mask, cv2.COLOR_BGR2GRAY)
        if mask.shape != rgb.shape[:2]:
            raise ImageLoadError(
                f"mask {path} is {mask.shape[1]}x{mask.shape[0]}, expected "
                f"{rgb.shape[1]}x{rgb.shape[0]} like its image"
            )
        return mask.astype(np.float32) / float(np.iinfo(mask.dtype).max)


def resolve_masks(directory: str) -> SegmenterSpec:
    """Check the mask folder exists."""
    if not directory or not Path(directory).is_dir():
        raise UsageError(
            f"mask folder {directory!r} does not exist; expected masks:<dir> with "
            "<image_id>.png files"
        )
    return SegmenterSpec(
        kind="masks", spec=f"masks:{directory}", mask_dir=str(Path(directory).resolve())
    )


# ---------------------------------------------------------------- registry


def _torch_module() -> ModuleType:  # on use: it imports this module, and torch is slow
    from figureground.variants import segment_torch

    return segment_torch


SEGMENTERS: dict[str, SegmenterKind] = {
    "isnet": SegmenterKind(
        resolve_isnet, RembgSegmenter, "DIS general-use network via rembg (fetch-models isnet)"
    ),
    "isnet-torch": SegmenterKind(
        lambda argument: _torch_module().resolve_isnet_torch(argument),
        lambda spec: _torch_module().TorchIsnetSegmenter(spec),
        "ISNet run by PyTorch in batches on a GPU (isnet-torch[:bf16|fp16|fp32])",
        batched=True,
    ),
    "u2net": SegmenterKind(resolve_u2net, RembgSegmenter, "rembg's U^2-Net"),
    "rembg": SegmenterKind(resolve_rembg, RembgSegmenter, "rembg:<model>, any local rembg model"),
    "grabcut": SegmenterKind(
        resolve_grabcut,
        lambda spec: GrabCutSegmenter(),
        "OpenCV GrabCut from a centred rectangle (no weights)",
    ),
    "masks": SegmenterKind(
        resolve_masks,
        lambda spec: MaskDirSegmenter(Path(spec.mask_dir)),
        "masks:<dir>, precomputed <image_id>.png masks",
    ),
}


def resolve_segmenter(spec: str) -> SegmenterSpec:
    """Resolve a spec string (``isnet``, ``rembg:u2netp``, ``masks:<dir>``...).

    Raises
    ------
    UsageError
        Unknown kind.
    ModelUnavailableError
        The model file is missing; the message says how to get it.
    """
    kind, _, argument = spec.partition(":")
    if kind not in SEGMENTERS:
        raise UsageError(
            f"unknown segmenter {spec!r}; expected one of "
            f"{', '.join(sorted(SEGMENTERS))} (rembg:<model>, masks:<dir>)"
        )
    return SEGMENTERS[kind].resolve(argument)


def is_batched_kind(spec: SegmenterSpec) -> bool:
    """Whether the segmenter runs batches on a device (one process, loader threads)."""
    return SEGMENTERS[spec.kind].batched


def build_segmenter(spec: SegmenterSpec) -> Segmenter:
    """Create the session of a resolved segmenter (once per worker process)."""
    return SEGMENTERS[spec.kind].build(spec)
