"""``figureground demo [--out demo-output]``: the embedded demo study, end to end."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "demo"
HELP = "run the embedded demo study (stimuli from installed packages, simulated MEG)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``figureground demo``."""
    parser.add_argument("--out", type=Path, default=Path("demo-output"), help="run folder")


def run(args: argparse.Namespace) -> int:
    """Write the demo study file into the run folder, then run it."""
    from importlib import resources

    import yaml

    from figureground.config import parse_study
    from figureground.fsutil import atomic_write_text
    from figureground.pipeline import run_study

    text = resources.files("figureground").joinpath("demo_study.yaml").read_text("utf-8")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "demo_study.yaml", text)
    study = parse_study(yaml.safe_load(text), base_dir=out)
    state = run_study(study, out)
    print(f"report: {state.run_dir / 'report.html'}")
    return 0
