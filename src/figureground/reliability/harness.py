"""Subprocess runs of the CLI, the tiny study, output comparison and kill points."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from figureground.conditions import NO_BACKGROUND, NO_FOREGROUND

#: Files that legitimately differ between two runs: locks and stage bookkeeping. (SVG figures
#: are compared too: the report writes them with a fixed ``svg.hashsalt``.)
UNCOMPARED_SUFFIXES: tuple[str, ...] = ()
UNCOMPARED_NAMES = ("stages.json",)


@dataclasses.dataclass
class Outcome:
    """One row of the reliability table."""

    area: str
    case: str
    tries: int
    survived: int
    detail: str

    @property
    def ok(self) -> bool:
        """Whether every try was survived."""
        return self.tries > 0 and self.survived == self.tries


def tiny_study() -> dict[str, Any]:
    """The tiny study of tests/integration/test_pipeline.py (grabcut, untrained resnet18,
    2 participants).

    Analyses other than the seed method are switched off (they are tested elsewhere and
    would only lengthen every run).
    """
    from figureground.config import AnalysesConfig

    analyses: dict[str, Any] = {"seed_method": {"n_boot": 200}}
    for item in dataclasses.fields(AnalysesConfig):
        default = item.default
        switchable = dataclasses.is_dataclass(default) and "enabled" in {
            f.name for f in dataclasses.fields(default)
        }
        if item.name != "seed_method" and switchable:
            analyses[item.name] = {"enabled": False}
    return {
        "name": "tiny",
        "output": "run",
        "stimuli": {"demo": True, "root": "stimuli", "layout": "things", "exemplars": 1},
        "variants": {"segmenter": "grabcut", "workers": 1},
        "features": {
            "batch_size": 4,
            "models": [
                {"name": "resnet18", "weights": "none", "random_state": 3, "layers": ["layer2"]}
            ],
        },
        "neural": {
            "source": "simulate",
            "simulate": {
                "fg_weight": 1.0,
                "bg_weight": 0.0,
                "snr": 2.0,
                "random_state": 1,
                "participants": 2,
                "test_images": 1,
                "sessions": 2,
            },
        },
        "analyses": analyses,
        "report": {"examples": 2},
    }


def write_study(folder: Path, study: dict[str, Any] | None = None) -> Path:
    """Write ``study`` (default: :func:`tiny_study`) to ``folder/study.yaml``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(study or tiny_study(), sort_keys=False))
    return path


def cli_command(*args: str) -> list[str]:
    """The argument list running ``figureground ARGS`` with this interpreter (no shell)."""
    return [sys.executable, "-m", "figureground", "-q", *args]


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "2", **(extra or {})}


def run_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run the CLI to completion; stdout and stderr captured as text."""
    return subprocess.run(
        cli_command(*args),
        cwd=cwd,
        env=_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_cli(*args: str, cwd: Path | None = None) -> subprocess.Popen:
    """Start the CLI without waiting; stderr captured to a pipe, stdout discarded."""
    return subprocess.Popen(
        cli_command(*args),
        cwd=cwd,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_killed_after(*args: str, delay: float, cwd: Path | None = None) -> bool:
    """Run the CLI and SIGKILL it ``delay`` seconds after the start; True when it was killed."""
    proc = start_cli(*args, cwd=cwd)
    try:
        proc.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True
    finally:
        proc.stderr.close()


def compared_files(folder: Path) -> dict[str, bytes]:
    """Every output file under ``folder`` by relative path, without bookkeeping files."""
    files = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if not path.is_file() or any(part.startswith(".") for part in rel.parts):
            continue
        if path.suffix in UNCOMPARED_SUFFIXES or path.name in UNCOMPARED_NAMES:
            continue
        files[rel.as_posix()] = path.read_bytes()
    return files


def differences(folder: Path, reference: Path) -> list[str]:
    """Relative paths that are missing, extra or different in ``folder`` against ``reference``."""
    found, expected = compared_files(folder), compared_files(reference)
    return sorted(
        name for name in set(found) | set(expected) if found.get(name) != expected.get(name)
    )


def mtimes(folder: Path) -> dict[str, int]:
    """Modification times (ns) of every file under ``folder``."""
    return {
        p.relative_to(folder).as_posix(): p.stat().st_mtime_ns
        for p in folder.rglob("*")
        if p.is_file()
    }


def finished_files(run_dir: Path) -> set[str]:
    """Files of work that a run has finished: variant images with a record, stage outputs."""
    finished: set[str] = set()
    variants = run_dir / "variants"
    for record in (variants / "records").rglob("*.json") if variants.is_dir() else []:
        rel = record.relative_to(variants / "records").with_suffix(".png").as_posix()
        finished.add(f"variants/records/{record.relative_to(variants / 'records').as_posix()}")
        finished.update(f"variants/{v}/{rel}" for v in (NO_BACKGROUND, NO_FOREGROUND, "mask"))
    import json

    for stage in (run_dir / ".stages").glob("*.json"):
        try:
            outputs = json.loads(stage.read_text()).get("outputs", {})
        except ValueError:
            continue
        for output in outputs:
            path = Path(output)
            if path.is_file() and run_dir in path.parents:
                finished.add(path.relative_to(run_dir).as_posix())
    return finished


def wait_for(path: Path, timeout: float = 60.0) -> bool:
    """Wait until ``path`` exists; False on timeout."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
