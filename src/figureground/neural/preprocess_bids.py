"""The runs of a THINGS-MEG participant in a BIDS tree (OpenNeuro ds004212).

Subject labels, the raw runs mne-bids finds (ordered as the authors' sorted paths) and the
runs the tree names but holds no recording of.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from figureground.errors import UsageError
from figureground.neural.preprocess_settings import RAW_EXTENSIONS, RunFile


def subject_label(bids_root: str | Path, participant: str | int) -> str:
    """The BIDS subject label of ``participant``: ``1``, ``"BIGMEG1"`` or ``"sub-BIGMEG1"``."""
    root = Path(bids_root)
    if not root.is_dir():
        raise UsageError(f"BIDS root {root} not found")
    label = str(participant).removeprefix("sub-")
    if (root / f"sub-{label}").is_dir():
        return label
    if label.isdigit() and (root / f"sub-BIGMEG{label}").is_dir():
        return f"BIGMEG{label}"
    found = sorted(path.name for path in root.glob("sub-*") if path.is_dir())
    raise UsageError(f"participant {participant!r} not in {root} (found {found})")


def participant_number(label: str) -> str:
    """The number of a THINGS-MEG subject label (``"BIGMEG1"`` -> ``"1"``) for file names."""
    match = re.search(r"(\d+)$", label)
    if match is None:
        raise UsageError(f"subject {label!r} has no number; expected e.g. 'BIGMEG1'")
    return str(int(match.group(1)))


def find_runs(bids_root: str | Path, participant: str | int) -> list[RunFile]:
    """The MEG runs of a participant, ordered by session and run (the authors' sorted paths).

    Any raw format mne-bids knows for MEG is found (CTF ``.ds`` in ds004212); split FIF
    files are listed once (MNE follows the parts). Each run's events.tsv path is the
    run's BIDS path with suffix ``events``; it is read (and may be missing) per run.
    """
    from mne_bids import find_matching_paths

    label = subject_label(bids_root, participant)
    paths = find_matching_paths(
        bids_root,
        subjects=label,
        datatypes="meg",
        suffixes="meg",
        extensions=list(RAW_EXTENSIONS),
    )
    runs = []
    for path in paths:
        if path.split not in (None, "01"):
            continue
        events = path.copy().update(suffix="events", extension=".tsv", split=None)
        stem = path.copy().update(suffix=None, extension=None, split=None)
        runs.append(
            RunFile(
                label, path.session, path.run, Path(path.fpath), Path(events.fpath), stem.basename
            )
        )
    if not runs:
        raise UsageError(f"no MEG runs of sub-{label} under {bids_root}")
    return sorted(runs, key=lambda run: run.name)


def missing_runs(bids_root: str | Path, runs: list[RunFile]) -> list[tuple[str, str]]:
    """Runs of the participant that are named in the tree but have no recording.

    A run is missing when its ``_events.tsv`` exists without a raw file, or when the
    session's ``_scans.tsv`` lists a MEG file that is not there. Returns (run, reason) pairs.
    """
    if not runs:
        return []
    subject = Path(bids_root) / f"sub-{runs[0].subject}"
    have = {run.name for run in runs}
    missing: dict[str, str] = {}
    for events in sorted(subject.rglob("meg/*_events.tsv")):
        name = events.name.removesuffix("_events.tsv")
        if name not in have:
            missing[name] = f"{events.name} has no raw recording beside it"
    for scans in sorted(subject.rglob("*_scans.tsv")):
        try:
            listed = pd.read_csv(scans, sep="\t", dtype=str)["filename"]
        except (OSError, KeyError, ValueError, pd.errors.ParserError):
            continue
        for filename in listed.dropna():
            path = scans.parent / filename
            if "/meg/" not in f"/{filename}" or path.exists():
                continue
            name = re.sub(r"(_split-\d+)?_meg\.[a-z]+$", "", Path(filename).name)
            if name not in have:
                missing.setdefault(name, f"{scans.name} lists {filename}, which is missing")
    return sorted(missing.items())
