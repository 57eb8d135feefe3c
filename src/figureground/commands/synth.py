"""``figureground synth --out DIR --fraction F``: THINGS-size synthetic inputs."""

from __future__ import annotations

import argparse
from fractions import Fraction

from figureground.commands.common_options import stage_keywords

NAME = "synth"
HELP = (
    "write a synthetic THINGS-size data set (manifest, pooled features, THINGS-MEG epochs) "
    "to try the full scale without the real data"
)


def _fraction(text: str) -> float:
    try:
        value = float(Fraction(text))
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number such as 0.125 or 1/8") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is outside (0, 1]")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``synth``."""
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--fraction",
        type=_fraction,
        default=1.0,
        help="share of the THINGS-MEG sizes, e.g. 1/8 (default 1: 22,248 images, "
        "27,048 epochs, 8.2 GB per participant)",
    )
    parser.add_argument("--participants", type=int, default=1, help="MEG participants (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--snr", type=float, default=0.1, help="signal-to-noise variance ratio")
    parser.add_argument("--fg-weight", type=float, default=1.0, help="weight of the figure")
    parser.add_argument("--bg-weight", type=float, default=0.0, help="weight of the ground")
    parser.add_argument(
        "--part-epochs",
        type=int,
        default=3500,
        help="epochs per FIF split part; peak memory is about 1.2 MB per epoch (default 3500)",
    )


def run(args: argparse.Namespace) -> int:
    """Write the data set; print where it is and how big it is."""
    import json
    from pathlib import Path

    from figureground.synth.data import make_synth

    out = make_synth(args.out, **stage_keywords(args, make_synth, "out"))
    sizes = json.loads((Path(out) / "synth.json").read_text())["sizes"]
    print(
        f"synth: {sizes['concepts'] * sizes['exemplars']} exp images, {sizes['epochs']} epochs "
        f"x {args.participants} participants -> {out}"
    )
    return 0
