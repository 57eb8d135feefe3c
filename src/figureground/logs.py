"""Logging set-up and progress bars that go quiet with ``--quiet``."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
LOGGER_NAME = "figureground"
_state = {"quiet": False}


class _CurrentStderrHandler(logging.StreamHandler):
    """A stream handler that writes to whatever ``sys.stderr`` is at the time of the record.

    Keeps logging correct when stderr is replaced (pytest capture, notebooks) after set-up.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # the base class assigns it; always follow sys.stderr
        pass


def setup(quiet: bool = False, verbose: bool = False) -> None:
    """Configure the ``figureground`` logger; ``quiet`` hides info and progress bars."""
    _state["quiet"] = quiet
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level)
    if not logger.handlers:
        handler = _CurrentStderrHandler()
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
        )
        logger.addHandler(handler)
    logger.propagate = False


@contextlib.contextmanager
def inner_progress_hidden() -> Iterator[None]:
    """Hide progress bars inside a block (e.g. thousands of small analyses under one bar)."""
    before = _state["quiet"]
    _state["quiet"] = True
    try:
        yield
    finally:
        _state["quiet"] = before


def is_quiet() -> bool:
    """Whether progress output is silenced."""
    return _state["quiet"]


def progress(items: Iterable[T], total: int | None = None, desc: str = "") -> Iterator[T]:
    """Wrap ``items`` in a tqdm bar unless quiet."""
    return iter(
        tqdm(
            items, total=total, desc=desc, disable=_state["quiet"], leave=False, dynamic_ncols=True
        )
    )


def get_logger(name: str) -> logging.Logger:
    """Return a child of the package logger (``figureground.<name>``)."""
    short = name.removeprefix(LOGGER_NAME + ".")
    return logging.getLogger(f"{LOGGER_NAME}.{short}")
