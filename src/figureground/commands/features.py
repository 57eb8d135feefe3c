"""``figureground features SOURCE --out features.zarr``: embed images into a feature store."""

from __future__ import annotations

import argparse

from figureground.commands.common_options import add_scheduler, stage_keywords

NAME = "features"
HELP = "embed images (a variants folder or an image folder) with a network into a Zarr store"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of the ``features`` command."""
    parser.add_argument(
        "source", help="variants folder (variants.csv + variants.json) or a folder of images"
    )
    parser.add_argument("--out", required=True, help="Zarr store to write (resumed if it exists)")
    parser.add_argument(
        "--model",
        default="resnet50",
        help="resnet50 (torchvision), timm:NAME, custom:MODULE:FUNCTION or "
        "efficientnet_lite0 (default resnet50)",
    )
    parser.add_argument(
        "--weights",
        default="IMAGENET1K_V1",
        help="IMAGENET1K_V1, IMAGENET1K_V2, DEFAULT, none (untrained, from "
        "--seed) or a .pth/.pt/.safetensors file (default IMAGENET1K_V1)",
    )
    parser.add_argument(
        "--layers",
        nargs="+",
        default=["layer2"],
        help="layer names (see: figureground layers MODEL); default layer2, "
        "our reading of the study's 'second hidden layer' of ResNet50",
    )
    parser.add_argument(
        "--pool",
        default="none",
        help="none (full activation), avg (global average) or avgK, e.g. avg7",
    )
    parser.add_argument("--dtype", default="float32", choices=("float32", "float16"))
    parser.add_argument(
        "--precision",
        default="fp32",
        choices=("fp32", "bf16", "fp16"),
        help="autocast precision of the forward pass (bf16/fp16 for GPUs)",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    parser.add_argument("--seed", type=int, default=0, help="seed of untrained weights (recorded)")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="DataLoader processes decoding images (0: in process)",
    )
    parser.add_argument(
        "--resize", type=int, default=None, help="override the weights' resize (shorter side)"
    )
    parser.add_argument("--crop", type=int, default=None, help="override the weights' centre crop")
    add_scheduler(parser)


def run(args: argparse.Namespace) -> int:
    """Extract features; exit 3 if some images were skipped or could not be decoded."""

    from figureground import logs
    from figureground.features import extract, store

    extract_features = extract.extract_features
    out = extract_features(
        args.source, args.out, **stage_keywords(args, extract_features, "source", "out")
    )
    attrs = store.read_root_attrs(out)
    skipped = list(attrs.get("skipped_failed_images", []))
    undecodable = 0
    for variant in attrs.get("variants", []):
        status = store.GroupWriter(out, variant, []).done()
        undecodable += int((status == store.FAILED).sum())
    if skipped:
        logs.get_logger(__name__).warning("skipped (failed upstream): %s", ", ".join(skipped))
    stored = int(attrs.get("n_images", 0)) * len(attrs.get("variants", [])) - undecodable
    print(
        f"{out}: {stored} embeddings stored, {len(skipped)} images skipped, "
        f"{undecodable} could not be decoded"
    )
    return 3 if skipped or undecodable else 0
