"""The whole study at THINGS size on one machine, stage by stage, time and peak memory each.

What "the whole study" means here (one participant of synthetic data from
:func:`figureground.synth.data.make_synth`; participants are independent, so four cost four
times the time and no more memory when run one after another):

- ``meg_exp``: the THINGS-MEG loader on the experiment trials (22,248 images seen once),
  epochs read in chunks, at ``decim`` (default 2: 100 Hz, 141 samples; the data are
  low-passed at 40 Hz, so this does not alias).
- ``features``: pooled features of the three variants read from the Zarr store.
- ``rsa``: time-resolved RSA at the concept level (1,854 concepts, 1.7 M pairs), three
  conditions + two partial curves, float32 condensed RDMs
  (:func:`figureground.analysis.study.rsa_results.rsa_one`). Image-level RSA over all
  22,248 images (247 M pairs x 141 times, 1 GB per RDM) is left out: it is infeasible on any
  single machine and adds nothing the concept level and the encoding models do not show.
- ``permutations``: the RSA permutation test of each condition in batches
  (:func:`figureground.analysis.study.rsa_results.rsa_inference`, ``n_permutations``).
- ``bootstrap``: bootstrap intervals over concepts (``n_boot`` samples; each sample re-ranks
  every RDM, so time is linear in ``n_boot``).
- ``meg_test`` and ``ceilings``: the 200 test images x 12 repetitions, RSA noise ceiling from
  the repetitions and the encoding split-half band.
- ``encoding``: ridge encoding (himalaya) of each condition and variance partitioning, at
  every ``time_step``-th sample (:func:`figureground.analysis.study.encoding_results`).

The seed method is not run: pooled features have no spatial grid, so its Lanczos resampling
of sensors x time onto channels x positions has nothing to resample onto; on real layer2
features it is per image and linear in images (measured in ``bench/bench_features.py``'s
peers, not here).

Each group of stages runs in a fresh process (``python -m figureground.synth.study``); peak
RSS is the process's VmHWM, reset before each stage, so a stage's peak includes what the
process holds from earlier stages of its group (the responses, the RDMs): what the study
itself holds at that point.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from figureground import logs

log = logs.get_logger(__name__)

GROUPS = ("meg_exp", "ceilings", "rsa", "encoding")


@dataclasses.dataclass(frozen=True)
class StudySettings:
    """Analysis sizes of the measured study (time is linear in each count)."""

    decim: int = 2
    n_permutations: int = 20
    n_boot: int = 1
    time_step: int = 35
    encoding_splits: int = 2
    n_iter: int = 2
    ceiling_splits: int = 20
    rsa_backend: str = "numpy"  # torch_cuda: RDMs, permutations and bootstrap on the GPU


def _reset_peak() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # Linux: reset VmHWM


def _peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


class StageClock:
    """Runs stages one after another, recording seconds, peak RSS (MiB) and work of each."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def __call__(self, name: str, work: float, func: Callable[[], Any]) -> Any:
        """Run ``func`` as stage ``name`` of ``work`` units; return its value."""
        _reset_peak()
        start = time.perf_counter()
        value = func()
        seconds = time.perf_counter() - start
        self.records.append(
            {"stage": name, "seconds": seconds, "peak_rss_mb": _peak_mb(), "work": float(work)}
        )
        log.info("%s: %.1f s, peak %.0f MiB", name, seconds, self.records[-1]["peak_rss_mb"])
        return value


def analyses_config(settings: StudySettings) -> Any:
    """The project's analyses settings for the measured study."""
    from figureground.config import (
        AnalysesConfig,
        EncodingConfig,
        NoiseCeilingConfig,
        ResponsesConfig,
        RsaConfig,
    )

    return AnalysesConfig(
        responses=ResponsesConfig(decim=settings.decim),
        rsa=RsaConfig(
            levels=("concept",),
            n_boot=settings.n_boot,
            n_permutations=settings.n_permutations,
            backend=settings.rsa_backend,
        ),
        encoding=EncodingConfig(
            time_step=settings.time_step, n_splits=settings.encoding_splits, n_iter=settings.n_iter
        ),
        noise_ceiling=NoiseCeilingConfig(n_splits=settings.ceiling_splits),
    )


def _files(data: Path) -> dict[str, dict[str, Path | None]]:
    meg = data / "meg"
    return {"P1": {"epochs": meg / "preprocessed_P1-epo.fif",
                   "attributes": meg / "sample_attributes_P1.csv"}}  # fmt: skip


def _store(data: Path) -> Any:
    from figureground.features.store import FeatureStore

    return FeatureStore(data / "features.zarr", "synthetic", "none", ("layer2",), "synthetic")


def run_group(group: str, data: Path, settings: StudySettings) -> list[dict[str, Any]]:
    """Run one group of stages (:data:`GROUPS`) on the synthetic data set in ``data``."""
    import numpy as np

    from figureground.analysis.rdm_calc import compute_rdms
    from figureground.analysis.rsa import PARTIAL_PAIRS
    from figureground.analysis.study import inputs, rsa_results
    from figureground.analysis.study.ceilings import encoding_ceiling, rsa_ceiling_repetitions
    from figureground.analysis.study.encoding_results import encoding_results

    cfg = analyses_config(settings)
    clock = StageClock()
    files = _files(data)
    window = {"decim": settings.decim}
    if group == "ceilings":
        test = clock("meg_test", 0, lambda: inputs.load_test_recordings(files, **window)["P1"])
        clock.records[-1]["work"] = test.sizes["image"] * test.sizes["repetition"]
        cells = test.sizes["image"] * test.sizes["repetition"] * test.sizes["time"]
        n_test = test.sizes["image"]
        pairs = n_test * (n_test - 1) // 2 * test.sizes["repetition"] * test.sizes["time"]
        clock("rsa_ceiling", pairs, lambda: rsa_ceiling_repetitions(test, cfg, "P1"))
        clock("encoding_ceiling", cells, lambda: encoding_ceiling(test, cfg, "P1"))
        return clock.records
    meg = clock("meg_exp", 0, lambda: inputs.load_recordings(files, **window)["P1"])
    clock.records[-1]["work"] = meg.sizes["image"]
    if group == "meg_exp":
        return clock.records
    n_images, n_times = meg.sizes["image"], meg.sizes["time"]
    features = clock(
        "features", 3 * n_images, lambda: inputs.condition_features(_store(data), "layer2")
    )
    if group == "encoding":
        work = n_images * (n_times // settings.time_step + 1)
        clock("encoding", work, lambda: encoding_results(cfg, {"P1": meg}, [_store(data)]))
        return clock.records
    plain = dataclasses.replace(cfg.rsa, n_boot=0, n_permutations=0)
    n_concepts = len(np.unique(meg["concept"].values))
    pairs_times = n_concepts * (n_concepts - 1) // 2 * n_times
    _table, meg_rdms, labels = clock(
        "rsa", pairs_times, lambda: rsa_results.rsa_one(meg, features, "concept", plain)
    )
    # Model RDMs of the concept means, as rsa_one builds them (a one-sample stub of the
    # responses gives level_patterns the images and concepts without another copy).
    meg = meg.isel(channel=[0], time=[0])  # frees the responses
    _, model_values, _ = rsa_results.level_patterns(meg, features, "concept")
    conditions = list(model_values)
    model_rdms = np.stack([compute_rdms(model_values[c], cfg.rsa.model_metric) for c in conditions])
    pairs = [(conditions.index(a), conditions.index(b)) for a, b in PARTIAL_PAIRS]
    perms = dataclasses.replace(cfg.rsa, n_boot=0)
    device = rsa_results.rsa_device(cfg.rsa.backend)[1]
    clock(
        "permutations",
        pairs_times * settings.n_permutations * len(conditions),
        lambda: rsa_results.rsa_inference(
            meg_rdms, model_rdms, len(labels), perms, pairs, device=device
        ),
    )
    boot = dataclasses.replace(cfg.rsa, n_permutations=0)
    clock(
        "bootstrap",
        pairs_times * max(1, settings.n_boot),
        lambda: rsa_results.rsa_inference(
            meg_rdms, model_rdms, len(labels), boot, pairs, device=device
        ),
    )
    return clock.records


def measure(
    data: Path, settings: StudySettings, groups: tuple[str, ...] = GROUPS
) -> list[dict[str, Any]]:
    """Run each group of stages in a fresh process; the stage records of all groups."""
    records = []
    for group in groups:
        command = [
            sys.executable, "-m", "figureground.synth.study", str(data), "--group", group,
            "--settings", json.dumps(dataclasses.asdict(settings)),
        ]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
        proc = subprocess.run(command, check=False, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            tail = proc.stderr.strip().splitlines()[-1:] or ["(no message)"]
            raise RuntimeError(f"study group {group} failed: {tail[0]}")
        found = json.loads(proc.stdout.strip().splitlines()[-1])
        records += [{**record, "group": group} for record in found]
    return records


def main(argv: list[str] | None = None) -> int:
    """``python -m figureground.synth.study DATA --group G``: one group's records as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="folder written by figureground synth")
    parser.add_argument("--group", choices=GROUPS, required=True)
    parser.add_argument("--settings", default="{}", help="StudySettings fields as JSON")
    args = parser.parse_args(argv)
    settings = StudySettings(**json.loads(args.settings))
    print(json.dumps(run_group(args.group, args.data, settings)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
