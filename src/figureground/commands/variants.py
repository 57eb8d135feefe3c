"""``figureground variants SOURCE --out OUT``: no-background, no-foreground and mask images."""

from __future__ import annotations

import argparse
from pathlib import Path

from figureground.commands.common_options import add_scheduler, stage_keywords

NAME = "variants"
HELP = "segment every stimulus and write its no-background / no-foreground / mask variants"

EXIT_OK, EXIT_PARTIAL = 0, 3


def _fill_colour(text: str) -> tuple[int, int, int]:
    parts = text.split(",")
    if len(parts) != 3 or not all(p.strip().isdigit() and int(p) <= 255 for p in parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not R,G,B with values 0..255")
    return tuple(int(p) for p in parts)  # type: ignore[return-value]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``figureground variants``."""
    _add_input_options(parser)
    _add_image_options(parser)
    _add_run_options(parser)


def _add_input_options(parser: argparse.ArgumentParser) -> None:
    """SOURCE, ``--out`` and how the stimuli are listed."""
    parser.add_argument("source", type=Path, metavar="SOURCE", help="stimulus root folder")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--layout",
        choices=("things", "folder", "csv"),
        default="things",
        help="how SOURCE is organised (default: things)",
    )
    parser.add_argument(
        "--csv", type=Path, default=None, dest="csv_path", help="image list for --layout csv"
    )
    parser.add_argument(
        "--exemplars",
        type=int,
        default=12,
        help="exemplars per concept in the THINGS layout (default: 12)",
    )


def _add_image_options(parser: argparse.ArgumentParser) -> None:
    """The image parameters (:class:`figureground.variants.VariantParams`)."""
    parser.add_argument(
        "--segmenter",
        default="isnet",
        help="isnet (default), isnet-torch[:bf16|fp16|fp32] (batched, for a GPU), u2net, "
        "rembg:<model>, grabcut or masks:<dir>",
    )
    parser.add_argument(
        "--inpaint",
        choices=("telea", "ns"),
        default="telea",
        help="OpenCV inpainting method (default: telea)",
    )
    parser.add_argument("--inpaint-radius", type=int, default=3, help="inpainting radius (px)")
    parser.add_argument(
        "--inpaint-max-side",
        type=int,
        default=1024,
        help="inpaint larger images at this long side, pasting the fill back "
        "(0 = full resolution; default: 1024)",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        help="alpha above which a pixel is object (default: 0.5)",
    )
    parser.add_argument(
        "--dilate",
        type=int,
        default=5,
        help="dilate the object mask by this many pixels (default: 5)",
    )
    parser.add_argument(
        "--fill",
        type=_fill_colour,
        default=(255, 255, 255),
        help="background colour of no-background images, R,G,B (default: white)",
    )
    parser.add_argument(
        "--little-background-above",
        type=float,
        default=0.9,
        help="foreground fraction from which an image is flagged little_background (0.9)",
    )
    parser.add_argument(
        "--alpha-floor",
        type=float,
        default=0.0,
        help="alpha below which no-background images show only the fill colour, removing the "
        "faint haze of background a soft mask leaves (0..threshold; default: 0 = off)",
    )


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    """Where and how the images are processed (none of them changes an image)."""
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes (default: 1); with isnet-torch, loader threads (default: cores)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=16,
        help="images per device batch (isnet-torch) or per Dask task (default: 16)",
    )
    add_scheduler(parser)


def run(args: argparse.Namespace) -> int:
    """Make the variants; exit 0 when every image succeeded, 3 when some failed."""
    from figureground import logs
    from figureground.variants import make_variants

    log = logs.get_logger(__name__)
    table = make_variants(args.source, args.out, **stage_keywords(args, make_variants))
    n_failed = int((table["status"] != "ok").sum())
    print(f"variants: {len(table) - n_failed} of {len(table)} images ok -> {args.out}")
    if n_failed:
        log.warning("%d images failed; see %s", n_failed, args.out / "variants.csv")
        return EXIT_PARTIAL
    return EXIT_OK
