"""``figureground layers MODEL``: list the layer names a model's graph offers."""

from __future__ import annotations

import argparse

NAME = "layers"
HELP = "list the layer (graph node and module) names of a model, for --layers"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of the ``layers`` command."""
    parser.add_argument(
        "model",
        nargs="?",
        default="resnet50",
        help="resnet50, timm:NAME, custom:MODULE:FUNCTION, efficientnet_lite0 (default resnet50)",
    )
    parser.add_argument(
        "--nodes-only",
        action="store_true",
        help="only operation nodes, not the enclosing module names",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the untrained network traced (weights do not change names)",
    )


def run(args: argparse.Namespace) -> int:
    """Print one layer name per line, in graph order."""
    from figureground.features import models

    loaded = models.load_model(args.model, models.UNTRAINED, seed=args.seed)
    for name in models.list_layers(loaded, modules=not args.nodes_only):
        print(name)
    return 0
