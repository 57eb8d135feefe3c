"""``figureground simulate-meg``: a THINGS-MEG-format dataset with a known figure/ground answer."""

from __future__ import annotations

import argparse

NAME = "simulate-meg"
HELP = (
    "simulate THINGS-MEG files (z-scored epochs, the real design) whose responses follow "
    "network embeddings or pixel descriptors of figure and ground with known weights"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``simulate-meg``."""
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--driver",
        choices=("network", "pixels"),
        default="network",
        help="network: a feature store's embeddings (--features); pixels: descriptors of "
        "the stimulus pixels and object masks (--stimuli, --masks), no network",
    )
    parser.add_argument("--features", help="feature store (Zarr) to simulate from (network)")
    parser.add_argument("--stimuli", help="stimulus folder, THINGS layout (pixels)")
    parser.add_argument("--masks", help="folder of <image_id>.png object masks (pixels)")
    parser.add_argument(
        "--position",
        choices=("tolerant", "grid"),
        default="tolerant",
        help="pixels: pool each region over the image (tolerant) or per cell of a 4x4 grid",
    )
    parser.add_argument(
        "--fg-weight", type=float, required=True, help="weight of the figure (object) code"
    )
    parser.add_argument(
        "--bg-weight", type=float, required=True, help="weight of the ground (background) code"
    )
    parser.add_argument(
        "--image-weight", type=float, default=0.0, help="weight of the whole-image code (0)"
    )
    parser.add_argument(
        "--centre-weight",
        type=float,
        default=0.0,
        help="pixels: weight of a code of the image centre, whatever the mask (0)",
    )
    parser.add_argument(
        "--snr",
        type=float,
        required=True,
        help="single-trial signal-to-noise variance ratio before z-scoring (0 = no signal)",
    )
    parser.add_argument("--seed", type=int, required=True, help="random seed")
    parser.add_argument("--participants", type=int, default=4)
    parser.add_argument("--layer", default="layer2", help="feature layer (default layer2)")
    parser.add_argument(
        "--test-images",
        type=int,
        default=None,
        help="stimuli of distinct concepts shown once per session (default n/10, at most 200)",
    )
    parser.add_argument(
        "--sessions",
        type=int,
        default=None,
        help="sessions (default: the most exemplars of a concept; THINGS-MEG: 12)",
    )
    parser.add_argument(
        "--catch-per-session",
        type=int,
        default=None,
        help="catch trials per session (default: as many as test images)",
    )
    parser.add_argument(
        "--components", type=int, default=4, help="principal components per code (default 4)"
    )


def _pixel_inputs(args: argparse.Namespace) -> tuple[dict, dict]:
    from pathlib import Path

    from figureground.errors import UsageError
    from figureground.fsutil import resolve_inside
    from figureground.stimuli import build_manifest

    if not args.stimuli or not args.masks:
        raise UsageError("--driver pixels needs --stimuli (a THINGS-layout folder) and --masks")
    root, masks = Path(args.stimuli), Path(args.masks)
    if not masks.is_dir():
        raise UsageError(f"--masks {masks} is not a folder of <image_id>.png masks")
    manifest = build_manifest(root, layout="things", exemplars=None)
    manifest = manifest[(manifest["status"] == "ok") & (manifest["set"] == "exp")]
    images = {str(r.image_id): resolve_inside(root, r.path) for r in manifest.itertuples()}
    return images, {i: masks / f"{i}.png" for i in images}


def run(args: argparse.Namespace) -> int:
    """Write the simulation and print its folder."""
    from figureground.errors import UsageError
    from figureground.neural.simulate import pixel_weights, simulate_meg, simulate_pixels

    design = {
        "participants": args.participants,
        "test_images": args.test_images,
        "sessions": args.sessions,
        "catch_per_session": args.catch_per_session,
        "components": args.components,
    }
    if args.driver == "network":
        if not args.features:
            raise UsageError("--driver network needs --features (a feature store)")
        if args.centre_weight:
            raise UsageError("--centre-weight is a pixel code; use it with --driver pixels")
        out = simulate_meg(
            args.features,
            args.out,
            fg_weight=args.fg_weight,
            bg_weight=args.bg_weight,
            image_weight=args.image_weight,
            snr=args.snr,
            seed=args.seed,
            layer=args.layer,
            **design,
        )
    else:
        images, masks = _pixel_inputs(args)
        weights = pixel_weights(
            args.fg_weight, args.bg_weight, args.image_weight, args.centre_weight, args.position
        )
        out = simulate_pixels(images, masks, args.out, weights, args.snr, args.seed, **design)
    print(out)
    return 0
