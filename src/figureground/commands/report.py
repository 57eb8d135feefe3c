"""``figureground report RUN``: rebuild the report of a finished run."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "report"
HELP = "rebuild RUN/report.html from a finished run folder"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``figureground report``."""
    parser.add_argument("run_dir", type=Path, metavar="RUN", help="a finished run folder")
    parser.add_argument("--examples", type=int, default=4, help="example images in Fig. 1")


def run(args: argparse.Namespace) -> int:
    """Render the report and print its path."""
    from figureground.report.html import build_report

    print(f"report: {build_report(args.run_dir, examples=args.examples)}")
    return 0
