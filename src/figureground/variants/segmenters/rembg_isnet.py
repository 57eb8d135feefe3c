"""rembg sessions (``isnet``, ``u2net``, ``rembg:<model>``) and where their model files are."""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from pathlib import Path

import numpy as np

from figureground.errors import ImageLoadError, ModelUnavailableError, UsageError
from figureground.fsutil import sha256_file
from figureground.variants import modelfiles
from figureground.variants.segmenters.base import SegmenterSpec

# MD5 that rembg 2.0.86 checks when it downloads isnet-general-use.onnx itself.
REMBG_ISNET_MD5 = "fc16ebd8b0c10d971d3513d564d01e29"
# rembg sessions that need a file the user names, or send images elsewhere: not for rembg:<name>.
_REMBG_REFUSED = ("dis_custom", "u2net_custom", "ben_custom")


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
