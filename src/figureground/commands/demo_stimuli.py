"""``figureground demo-stimuli``: build the small demo stimulus set from shipped photos."""

from __future__ import annotations

import argparse

NAME = "demo-stimuli"
HELP = (
    "build a small THINGS-layout demo stimulus set (24 images, 6 concepts, composites "
    "with exact masks) from photos shipped with scikit-image and matplotlib"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``demo-stimuli``."""
    parser.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="output folder (THINGS layout: DIR/object_images/<concept>/...)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of crops, flips, sizes and placements (default 0)"
    )


def run(args: argparse.Namespace) -> int:
    """Build the demo set and print where it is."""
    import json

    from figureground.demo_stimuli import DESCRIPTION_FILE, make_demo_stimuli

    out = make_demo_stimuli(args.out, seed=args.seed)
    plan = json.loads((out / DESCRIPTION_FILE).read_text(encoding="utf-8"))["images"]
    concepts = {recipe["concept"] for recipe in plan}
    masks = sum(recipe["kind"] == "composite" for recipe in plan)
    print(
        f"{out}: {len(plan)} images in {len(concepts)} concepts, {masks} with ground-truth "
        f"masks in {out / 'ground_truth'}"
    )
    return 0
