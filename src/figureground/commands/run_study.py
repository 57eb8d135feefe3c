"""``figureground run study.yaml [--out RUN]``: every stage, cached and resumable."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "run"
HELP = "run every stage of a study file (cached: a rerun skips finished work)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``figureground run``."""
    parser.add_argument("study", type=Path, help="study file (YAML)")
    parser.add_argument(
        "--out", type=Path, default=None, help="run folder (default: the study file's 'output')"
    )
    parser.add_argument(
        "--scheduler",
        default="serial",
        help="where variants, features and permutation tests run: serial (default), "
        "local[:N] (a Dask LocalCluster) or a Dask scheduler address such as "
        "tcp://host:8786 (see docs/scale.md); results do not depend on it",
    )


def run(args: argparse.Namespace) -> int:
    """Validate the study, run it, print where the report is."""
    from figureground.config import load_study
    from figureground.pipeline import run_study

    study = load_study(args.study)
    state = run_study(study, args.out, scheduler=args.scheduler)
    print(f"report: {state.run_dir / 'report.html'}")
    return 0
