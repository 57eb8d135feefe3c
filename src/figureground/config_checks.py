"""Shared checks of the study file's sections (``figureground.config`` and its parts)."""

from __future__ import annotations

from typing import Any

from figureground.errors import UsageError


def require(ok: bool, key: str, value: Any, expected: str) -> None:
    """Raise a one-line UsageError naming ``key`` when a value is out of range."""
    if not ok:
        raise UsageError(f"{key}: {value!r} is out of range; expected {expected}")
