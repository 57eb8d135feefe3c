"""Atomic writes, hashes and paths kept inside their root."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import hashlib
import inspect
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from figureground.errors import FigureGroundError, UsageError

_CHUNK = 1 << 20
F = TypeVar("F", bound=Callable[..., Any])
_UMASK = os.umask(0)
os.umask(_UMASK)


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """SHA-256 hex digest of bytes."""
    return hashlib.sha256(data).hexdigest()


def params_hash(params: Any) -> str:
    """Stable short hash of JSON-serialisable parameters (keys sorted)."""
    text = json.dumps(params, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    A crash at any moment leaves either the old file or the new one, never half of one.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=suffix or ".tmp", dir=target.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        if is_disk_full(exc):
            raise DiskFullError(disk_full_message(target)) from None
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def resolve_inside(root: str | os.PathLike, relative: str | os.PathLike) -> Path:
    """Resolve ``relative`` under ``root``; refuse absolute paths and paths that leave root."""
    root_path = Path(root).resolve()
    rel = Path(relative)
    if rel.is_absolute():
        raise UsageError(
            f"path {str(relative)!r} is absolute; expected a path relative to {root_path}"
        )
    resolved = (root_path / rel).resolve()
    if resolved != root_path and root_path not in resolved.parents:
        raise UsageError(f"path {str(relative)!r} leaves its root {root_path}")
    return resolved


class DiskFullError(FigureGroundError):
    """The file system ran out of space while writing; finished files are kept."""


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) is an out-of-space / out-of-quota error."""
    while exc is not None:
        if isinstance(exc, DiskFullError) or (
            isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
        ):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def disk_full_message(path: str | os.PathLike) -> str:
    """The one-line error for a write to ``path`` that found no space left."""
    return (
        f"no space left on device while writing {path}; finished work is kept, "
        "free some space (or choose another output folder) and rerun to resume"
    )


@contextlib.contextmanager
def disk_full_as_error(folder: str | os.PathLike) -> Iterator[None]:
    """Turn an out-of-space ``OSError`` raised inside into a one-line :class:`DiskFullError`."""
    try:
        yield
    except DiskFullError:
        raise
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        raise DiskFullError(disk_full_message(exc.filename or folder)) from None


@contextlib.contextmanager
def folder_lock(
    folder: str | os.PathLike, what: str = "run", lock_name: str = ".lock"
) -> Iterator[Path]:
    """Hold an exclusive lock (file ``folder/lock_name``) while the block runs.

    A second process asking for the same lock stops at once with a :class:`UsageError`
    naming the folder; the lock goes away with the process, even when it is killed.

    Parameters
    ----------
    folder : path
        The folder to guard (or holding the guarded store); created if missing.
    what : str
        What is guarded, for the message (``run folder``, ``variants folder``, ...).
    lock_name : str
        Name of the lock file inside ``folder``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock_path = folder / lock_name
    with open(lock_path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(
                f"{what} {folder} is in use by another figureground run "
                f"(lock {lock_path}); wait for it to finish"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield lock_path
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def locked_output(argument: str, what: str, beside: bool = False) -> Callable[[F], F]:
    """Decorate a function so that it holds a lock on the output its ``argument`` names.

    ``beside=False`` locks the folder itself (``OUT/.lock``); ``beside=True`` locks a file
    next to it (``.<name>.lock``), for outputs created by renaming a finished folder.
    """

    def decorate(func: F) -> F:
        signature = inspect.signature(func)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            target = Path(signature.bind(*args, **kwargs).arguments[argument])
            if beside:
                lock = folder_lock(
                    target.parent, f"{what} {target.name} in", f".{target.name}.lock"
                )
            else:
                lock = folder_lock(target, what)
            with lock:
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def tree_fingerprint(folder: str | os.PathLike) -> str:
    """Names and sizes of every file under ``folder`` (dot-files left out), hashed.

    Cheap enough for stores of 100,000 files; catches missing, added and truncated files.
    """
    root = Path(folder)
    entries = [
        (item.relative_to(root).as_posix(), item.stat().st_size)
        for item in sorted(root.rglob("*"))
        if item.is_file() and not any(part.startswith(".") for part in item.relative_to(root).parts)
    ]
    return params_hash(entries)
