"""``figureground validate``: every method on simulated brains with a known answer."""

from __future__ import annotations

import argparse

NAME = "validate"
HELP = (
    "simulate fg-only, equal and bg-only brains at several SNRs and report each method's "
    "recovery, power and false-positive rate"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``validate``."""
    parser.add_argument(
        "--features",
        default=None,
        help="feature store (Zarr) with no_background/no_foreground groups; default: a "
        "synthetic store drawn per replicate",
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--replicates", type=int, default=10, help="datasets per cell (10)")
    parser.add_argument(
        "--snrs",
        type=float,
        nargs="+",
        default=[0.002, 0.005, 0.02, 0.1],
        help="simulator SNRs (default 0.002 0.005 0.02 0.1)",
    )
    parser.add_argument("--seed", type=int, default=0, help="replicate r uses seed + r")
    parser.add_argument("--participants", type=int, default=4)
    parser.add_argument("--layer", default="layer2", help="feature layer (default layer2)")
    parser.add_argument(
        "--images", type=int, default=48, help="images of the synthetic store (default 48)"
    )
    parser.add_argument(
        "--norm-ratio",
        type=float,
        default=1.25,
        help="scale of the synthetic no_background embedding (default 1.25)",
    )
    parser.add_argument("--alpha", type=float, default=0.05, help="test level (0.05)")
    parser.add_argument(
        "--methods",
        nargs="+",
        default=None,
        help="methods to run (default: seed rsa partial_rsa variance_partitioning)",
    )


def _print_table(summary) -> None:
    columns = ["method", "condition", "snr", "n_datasets", "recovery", "power", "fpr"]
    table = summary[columns].assign(snr=summary["snr"].map(lambda v: f"{v:g}"))
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))


def run(args: argparse.Namespace) -> int:
    """Run the sweep, write the tables and the figure, print the summary table."""
    from pathlib import Path

    from figureground import fsutil, logs, provenance
    from figureground.analysis.validation import (
        METHODS,
        MethodSettings,
        SweepSettings,
        plot_summary,
        run_sweep,
        summarise,
    )
    from figureground.errors import UsageError

    log = logs.get_logger(__name__)
    if not 0 < args.alpha < 1:
        raise UsageError(f"--alpha {args.alpha} must lie strictly between 0 and 1")
    settings = SweepSettings(
        snrs=tuple(args.snrs),
        replicates=args.replicates,
        participants=args.participants,
        seed=args.seed,
        n_images=args.images,
        layer=args.layer,
        norm_ratio=args.norm_ratio,
        methods=tuple(args.methods) if args.methods else tuple(METHODS),
        analysis=MethodSettings(alpha=args.alpha),
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    decisions = run_sweep(settings, args.features, parts_dir=out / "datasets")
    summary = summarise(decisions, settings.methods)
    with fsutil.atomic_path(out / "validation.csv") as tmp:
        decisions.to_csv(tmp, index=False)
    with fsutil.atomic_path(out / "validation_summary.csv") as tmp:
        summary.to_csv(tmp, index=False)
    plot_summary(summary, out / "validation.png", alpha=args.alpha)
    fsutil.atomic_write_json(
        out / "validation.json",
        provenance.stamp(
            stage="validate",
            features=args.features or "synthetic",
            **{
                "settings": {
                    "snrs": list(settings.snrs),
                    "replicates": settings.replicates,
                    "participants": settings.participants,
                    "seed": settings.seed,
                    "n_images": settings.n_images,
                    "layer": settings.layer,
                    "norm_ratio": settings.norm_ratio,
                    "methods": list(settings.methods),
                    "alpha": args.alpha,
                }
            },
        ),
    )
    log.info(
        "wrote %s, %s and %s",
        out / "validation.csv",
        out / "validation_summary.csv",
        out / "validation.png",
    )
    _print_table(summary)
    return 0
