"""``figureground validate``: the pipeline's verdict on brains with a known answer."""

from __future__ import annotations

import argparse

NAME = "validate"
HELP = (
    "simulate brains that follow the figure or the ground (driven by the analysed network, "
    "another network or pixel descriptors) and brains without a preference, run the "
    "pipeline's verdict on each, and report power and false-positive rates"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``validate``."""
    from figureground.analysis.validation import BRAINS, PoolSettings, SweepSettings

    defaults, pool = SweepSettings(), PoolSettings()
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--pool", default=None, help="stimulus pool folder (default OUT/pool)")
    parser.add_argument(
        "--replicates",
        type=int,
        default=defaults.replicates,
        help=f"datasets per planted cell ({defaults.replicates})",
    )
    parser.add_argument(
        "--null-replicates",
        type=int,
        default=defaults.null_replicates,
        help=f"datasets per null cell ({defaults.null_replicates})",
    )
    parser.add_argument(
        "--snrs",
        type=float,
        nargs="+",
        default=list(defaults.snrs),
        help="single-trial SNRs (default %(default)s)",
    )
    parser.add_argument("--participants", type=int, default=defaults.participants)
    parser.add_argument(
        "--concepts",
        type=int,
        default=defaults.concepts,
        help="concepts drawn per replicate (all their exemplars)",
    )
    parser.add_argument("--pool-concepts", type=int, default=pool.concepts)
    parser.add_argument("--exemplars", type=int, default=pool.exemplars)
    parser.add_argument("--image-size", type=int, default=pool.size, help="composite side (px)")
    parser.add_argument(
        "--views",
        nargs="+",
        default=list(defaults.views),
        help="views analysed (the first is the headline)",
    )
    parser.add_argument(
        "--brains",
        nargs="+",
        default=None,
        choices=list(BRAINS),
        help="brains to simulate (default: all)",
    )
    parser.add_argument("--n-boot", type=int, default=defaults.n_boot)
    parser.add_argument(
        "--workers",
        type=int,
        default=defaults.workers,
        help="processes, one replicate each (results do not depend on it)",
    )
    parser.add_argument("--alpha", type=float, default=defaults.alpha)
    parser.add_argument("--seed", type=int, default=defaults.seed, help="replicate r: seed + r")
    parser.add_argument("--model", default=pool.model, help="the analysed network")
    parser.add_argument("--weights", default=pool.weights)
    parser.add_argument("--layer", default=pool.layer)
    parser.add_argument("--other-model", default=pool.other_model)
    parser.add_argument("--other-weights", default=pool.other_weights)
    parser.add_argument("--other-layer", default=pool.other_layer)  # fmt: skip


def _print_table(summary) -> None:
    columns = ["brain", "snr", "view", "rule", "measure", "rate", "ci_low", "ci_high",
               "n_datasets"]  # fmt: skip
    print(summary[columns].to_string(index=False, float_format=lambda v: f"{v:.2f}"))


def run(args: argparse.Namespace) -> int:
    """Run the sweep; write the tables, the figure and the settings; print the summary."""
    from dataclasses import asdict
    from pathlib import Path

    from figureground import fsutil, provenance
    from figureground.analysis.validation import (
        BRAINS,
        PoolSettings,
        SweepSettings,
        plot_summary,
        run_sweep,
        summarise,
    )
    from figureground.analysis.validation.sweep import reliability_table
    from figureground.errors import UsageError

    if not 0 < args.alpha < 1:
        raise UsageError(f"--alpha {args.alpha} must lie strictly between 0 and 1")
    pool = PoolSettings(
        concepts=args.pool_concepts,
        exemplars=args.exemplars,
        size=args.image_size,
        seed=args.seed,
        model=args.model,
        weights=args.weights,
        layer=args.layer,
        other_model=args.other_model,
        other_weights=args.other_weights,
        other_layer=args.other_layer,
    )
    settings = SweepSettings(
        snrs=tuple(args.snrs),
        replicates=args.replicates,
        null_replicates=args.null_replicates,
        participants=args.participants,
        concepts=args.concepts,
        seed=args.seed,
        brains=tuple(args.brains or BRAINS),
        views=tuple(args.views),
        n_boot=args.n_boot,
        alpha=args.alpha,
        workers=args.workers,
        pool=pool,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    decisions = run_sweep(settings, args.pool or out / "pool", parts_dir=out / "datasets")
    summary = summarise(decisions)
    with fsutil.atomic_path(out / "validation.csv") as tmp:
        decisions.to_csv(tmp, index=False)
    with fsutil.atomic_path(out / "validation_summary.csv") as tmp:
        summary.to_csv(tmp, index=False)
    plot_summary(summary, out / "validation.png", alpha=args.alpha)
    reliability = reliability_table(settings, args.pool or out / "pool")
    with fsutil.atomic_path(out / "validation_reliability.csv") as tmp:
        reliability.to_csv(tmp, index=False)
    fsutil.atomic_write_json(
        out / "validation.json",
        provenance.stamp(stage="validate", settings=asdict(settings)),
    )
    _print_table(summary)
    return 0
