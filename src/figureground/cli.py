"""Thin command line: parses arguments, calls the stage functions, maps errors to exit codes.

Each subcommand lives in ``figureground.commands.<module>`` and defines ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``. Heavy libraries (torch, rembg, mne) are
imported inside ``run`` so that ``figureground --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from figureground import __version__, logs
from figureground.errors import FigureGroundError, UsageError

# Registry of subcommand modules, in the order --help lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "demo_stimuli",
    "variants",
    "fetch_models",
    "layers",
    "features",
    "simulate_meg",
    "preprocess_meg",
    "run_study",
    "report",
    "demo",
    "validate",
    "synth",
)

EXIT_OK, EXIT_USAGE, EXIT_PARTIAL = 0, 2, 3


def _load_commands() -> list:
    modules = []
    for name in COMMAND_MODULES:
        try:
            modules.append(importlib.import_module(f"figureground.commands.{name}"))
        except ModuleNotFoundError as exc:
            if exc.name != f"figureground.commands.{name}":
                raise
    return modules


def build_parser() -> argparse.ArgumentParser:
    """The ``figureground`` argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="figureground",
        description="figureground: do brain responses to object photos follow the figure "
        "or the ground?",
    )
    parser.add_argument("--version", action="version", version=f"figureground {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _load_commands():
        sub = subparsers.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        sub.add_argument(
            "-q",
            "--quiet",
            action="store_true",
            default=argparse.SUPPRESS,
            help="only warnings and errors",
        )
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``figureground`` console command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return EXIT_USAGE
    logs.setup(quiet=args.quiet, verbose=args.verbose)
    try:
        return int(args._run(args) or 0)
    except UsageError as exc:
        print(f"figureground {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except FigureGroundError as exc:
        print(f"figureground {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        from figureground.fsutil import is_disk_full

        if not is_disk_full(exc):
            raise
        where = getattr(exc, "filename", None) or "the output folder"
        print(
            f"figureground {args.command}: error: no space left on the device while writing "
            f"{where}; finished work is kept, free space and rerun to resume",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print("figureground: interrupted; finished work is kept, rerun to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
