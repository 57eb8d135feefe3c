"""``figureground preprocess-meg``: THINGS-MEG raw runs (ds004212) to the authors' epochs."""

from __future__ import annotations

import argparse

from figureground.commands.common_options import add_scheduler

NAME = "preprocess-meg"
HELP = (
    "preprocess THINGS-MEG raw runs (OpenNeuro ds004212, BIDS) as the authors did: 0.1-40 Hz, "
    "MRO11 dropped, epochs -0.1..1.3 s at events.tsv onsets, baseline z-score, 200 Hz"
)
EXIT_OK, EXIT_PARTIAL = 0, 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``preprocess-meg``."""
    parser.add_argument("--bids-root", required=True, help="BIDS folder of ds004212")
    parser.add_argument(
        "--participant",
        action="append",
        required=True,
        help="subject: 1, BIGMEG1 or sub-BIGMEG1 (repeat for several)",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="output folder (default <bids-root>/derivatives/preprocessed, as the authors)",
    )
    parser.add_argument(
        "--no-resume",
        action="store_true",
        help="recompute every run even when its cached epochs are up to date",
    )
    parser.add_argument(
        "--onset-tolerance",
        type=float,
        default=0.02,
        help="seconds an events.tsv onset may lie from the photodiode onset (0.02)",
    )
    parser.add_argument(
        "--lag-tolerance",
        type=float,
        default=0.05,
        help="seconds a trigger-to-onset lag may differ from the run's median lag (0.05)",
    )
    parser.add_argument(
        "--no-onset-checks",
        action="store_true",
        help="skip the photodiode and lag checks (the trigger count is always checked)",
    )
    parser.add_argument(
        "--no-eye-tracking",
        action="store_true",
        help="do not epoch the EyeLink channels into gaze_P{n}.npz",
    )
    add_scheduler(
        parser,
        help="where the runs are computed, one task each: serial (default), local[:N] (a Dask "
        "LocalCluster) or a Dask scheduler address such as tcp://host:8786",
    )


def run(args: argparse.Namespace) -> int:
    """Preprocess each participant, print the written files; exit 3 when runs were skipped."""
    from pathlib import Path

    from figureground.neural.preprocess import PreprocessSettings
    from figureground.neural.preprocess_io import preprocess_participant

    settings = PreprocessSettings(
        onset_tolerance=args.onset_tolerance,
        lag_tolerance=args.lag_tolerance,
        check_onsets=not args.no_onset_checks,
        eye_tracking=not args.no_eye_tracking,
    )
    out = Path(args.out) if args.out else Path(args.bids_root) / "derivatives" / "preprocessed"
    any_failed = False
    for participant in args.participant:
        result = preprocess_participant(
            args.bids_root,
            participant,
            out,
            settings,
            resume=not args.no_resume,
            scheduler=args.scheduler,
        )
        print(result.epochs_path)
        any_failed |= bool(result.failed)
    return EXIT_PARTIAL if any_failed else EXIT_OK
