"""Weights files: resolution (file, local cache, download), safe loading and fitting.

Resolution order for a named torchvision weight: an explicit file, then the local cache
(``torch.hub.get_dir()/checkpoints``, i.e. ``$TORCH_HOME/hub/checkpoints``), then a download.
Offline with nothing cached fails at once with one line naming the file and its URL.
"""

from __future__ import annotations

import pickle
import re
import socket
import urllib.parse
import zipfile
from collections.abc import Mapping
from pathlib import Path

from figureground import logs
from figureground.errors import ModelUnavailableError, UsageError
from figureground.fsutil import sha256_file

log = logs.get_logger(__name__)

WEIGHT_FILE_SUFFIXES = (".pth", ".pt", ".safetensors", ".bin", ".ckpt")
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{6,})\.")
CONNECT_TIMEOUT_S = 3.0


def looks_like_file(weights: str) -> bool:
    """Whether ``weights`` names a file (by suffix or because it exists) rather than a name."""
    return weights.lower().endswith(WEIGHT_FILE_SUFFIXES) or Path(weights).is_file()


def cache_dir() -> Path:
    """Where torchvision keeps downloaded weights: ``torch.hub.get_dir()/checkpoints``."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def hash_prefix_of(filename: str) -> str | None:
    """The SHA-256 prefix torchvision encodes in a weights file name (``resnet50-0676ba61.pth``)."""
    match = _HASH_IN_NAME.search(filename)
    return match.group(1) if match else None


def verify_hash_prefix(path: Path) -> str:
    """Return the file's SHA-256; raise if it contradicts the prefix in its name."""
    digest = sha256_file(path)
    prefix = hash_prefix_of(path.name)
    if prefix and not digest.startswith(prefix):
        raise ModelUnavailableError(
            f"weights file {path} is corrupt or not the expected one: its SHA-256 starts with "
            f"{digest[: len(prefix)]}, the file name promises {prefix}; delete it and download "
            "it again"
        )
    return digest


def can_reach(url: str, timeout: float = CONNECT_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the URL's host opens within ``timeout`` seconds."""
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def cached_or_download(url: str) -> Path:
    """Path of the weights file for ``url`` in the local cache, downloading it if reachable.

    Raises
    ------
    ModelUnavailableError
        Offline with nothing cached: one line naming the expected file and where to get it.
    """
    import torch

    filename = Path(urllib.parse.urlsplit(url).path).name
    target = cache_dir() / filename
    if target.is_file():
        return target
    if not can_reach(url):
        raise ModelUnavailableError(
            f"weights file {filename} is not in {target.parent}/ and {url} cannot be reached; "
            f"download it from {url} into that folder (or pass --weights FILE)"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s to %s", url, target)
    torch.hub.download_url_to_file(url, str(target), hash_prefix=hash_prefix_of(filename))
    return target


def _unwrap(state: object, path: Path) -> dict:
    if isinstance(state, Mapping):
        for key in ("state_dict", "model", "model_state_dict"):
            inner = state.get(key)
            if isinstance(inner, Mapping):
                state = inner
                break
    if not isinstance(state, Mapping):
        raise UsageError(
            f"weights file {path} holds a {type(state).__name__}, expected a "
            "state dict (names -> tensors)"
        )
    return {key.removeprefix("module."): value for key, value in state.items()}


def load_state_dict(path: str | Path) -> dict:
    """Read a state dict from ``.pth``/``.pt`` (``weights_only=True``) or ``.safetensors``.

    Raises
    ------
    UsageError
        One line for a missing file, a pickle containing code, or a truncated/unreadable file.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise UsageError(
            f"weights file {path} does not exist; expected a .pth, .pt or "
            ".safetensors file, or a weights name such as IMAGENET1K_V1 or none"
        )
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return _unwrap(load_file(str(path), device="cpu"), path)
        return _unwrap(torch.load(path, map_location="cpu", weights_only=True), path)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights only" in str(exc).lower() or "weights_only" in str(exc).lower():
            raise UsageError(
                f"weights file {path} was refused: it contains Python objects or "
                "code, not only tensors (loaded with weights_only=True)"
            ) from None
        raise UsageError(
            f"weights file {path} cannot be read ({first}); expected a "
            "state dict saved with torch.save"
        ) from None
    except UsageError:
        raise
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, Exception) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(
            f"weights file {path} is truncated or not a weights file ({first[:120]})"
        ) from None


def fit_state_dict(module: object, state: Mapping, source: str, architecture: str) -> None:
    """Load ``state`` into ``module`` strictly; one line if keys or shapes do not match.

    Raises
    ------
    UsageError
        Naming how many keys are missing, unexpected or of another shape, with an example.
    """
    expected = module.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    reshaped = [
        key
        for key in expected
        if key in state and tuple(getattr(state[key], "shape", ())) != tuple(expected[key].shape)
    ]
    if missing or unexpected or reshaped:
        example = ""
        if reshaped:
            key = reshaped[0]
            example = (
                f"; e.g. {key} is {list(state[key].shape)}, expected {list(expected[key].shape)}"
            )
        elif missing:
            example = f"; e.g. {missing[0]} is missing"
        elif unexpected:
            example = f"; e.g. {unexpected[0]} is unexpected"
        raise UsageError(
            f"weights {source} do not fit {architecture}: {len(missing)} keys missing, "
            f"{len(unexpected)} unexpected, {len(reshaped)} with another shape{example}"
        )
    module.load_state_dict(state, strict=True)
