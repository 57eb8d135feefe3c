"""``figureground simulate-meg``: a THINGS-MEG-format dataset with a known figure/ground answer."""

from __future__ import annotations

import argparse

NAME = "simulate-meg"
HELP = (
    "simulate THINGS-MEG files whose responses mix foreground and background embeddings "
    "with known weights"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``simulate-meg``."""
    parser.add_argument("--features", required=True, help="feature store (Zarr) to simulate from")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--fg-weight",
        type=float,
        required=True,
        help="weight of the foreground (no_background) signal",
    )
    parser.add_argument(
        "--bg-weight",
        type=float,
        required=True,
        help="weight of the background (no_foreground) signal",
    )
    parser.add_argument(
        "--snr",
        type=float,
        required=True,
        help="single-trial signal-to-noise variance ratio (0 = no signal)",
    )
    parser.add_argument("--seed", type=int, required=True, help="random seed")
    parser.add_argument("--participants", type=int, default=4)
    parser.add_argument("--layer", default="layer2", help="feature layer (default layer2)")
    parser.add_argument(
        "--test-images",
        type=int,
        default=None,
        help="stimuli used as repeated test images (default n/10, at most 200)",
    )
    parser.add_argument(
        "--test-reps",
        type=int,
        default=12,
        help="repetitions of each test image, one per session (default 12)",
    )
    parser.add_argument("--catch", type=int, default=0, help="catch trials per participant")
    parser.add_argument(
        "--components", type=int, default=4, help="principal components per embedding (default 4)"
    )


def run(args: argparse.Namespace) -> int:
    """Write the simulation and print its folder."""
    from figureground.neural.simulate import simulate_meg

    out = simulate_meg(
        args.features,
        args.out,
        fg_weight=args.fg_weight,
        bg_weight=args.bg_weight,
        snr=args.snr,
        seed=args.seed,
        participants=args.participants,
        layer=args.layer,
        test_images=args.test_images,
        test_reps=args.test_reps,
        catch=args.catch,
        components=args.components,
    )
    print(out)
    return 0
