"""Command-line pieces that several commands share: the ``--scheduler`` option, and the
hand-over of parsed options to a stage function whose parameters bear the same names."""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable
from typing import Any

SCHEDULER_HELP = (
    "serial (default), local[:N] (a Dask LocalCluster of N processes) or a Dask "
    "scheduler address such as tcp://host:8786 (see docs/scale.md)"
)


def add_scheduler(parser: argparse.ArgumentParser, help: str = SCHEDULER_HELP) -> None:
    """``--scheduler`` (default ``serial``): where a stage's tasks run."""
    parser.add_argument("--scheduler", default="serial", help=help)


def stage_keywords(
    args: argparse.Namespace, function: Callable[..., Any], *positional: str
) -> dict[str, Any]:
    """The parsed options named as parameters of ``function``, less those in ``positional``.

    A command's option ``--batch-size`` (``dest`` ``batch_size``) reaches the stage function's
    ``batch_size``: the command line and the stage share their parameter names.
    """
    parameters = inspect.signature(function).parameters
    return {
        name: value
        for name, value in vars(args).items()
        if name in parameters and name not in positional
    }
