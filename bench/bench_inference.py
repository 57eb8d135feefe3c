"""RSA inference at THINGS concept level: bootstrap samples and permutations (issue 16).

Synthetic condensed RDMs of the THINGS size (1,854 concepts, 1.72 M pairs, 141 time
points, float32 MEG RDMs, 3 float64 model RDMs) go through the project's own functions:

- bootstrap: :func:`figureground.analysis.rsa_bootstrap.bootstrap_rsa` (spearman, 3 models +
  2 partial curves) over all 141 time points on a timed fraction of the 1,000 samples (100:
  10 %), extrapolated linearly in samples (an upper bound: the sorts of the RDMs, a fixed
  cost, are counted ten times) and by a line through this run and one on ``--previous-samples``
  samples (fixed cost + cost per sample);
- permutations: :func:`figureground.analysis.stats.standardised_rdms` once, then
  :func:`figureground.analysis.stats.null_distribution` for each of the 3 models, on a timed
  fraction of the 1,000 permutations, extrapolated (the standardisation is counted once).

Each figure is printed with the fraction timed, the extrapolation, its ratio to the issue's
target, and the previous implementation (read from git: :data:`BOOTSTRAP_PREVIOUS` and
:data:`PERMUTATION_PREVIOUS`) timed on a small fraction in the same run. The machine's load
average is printed before and after: on a shared machine the times are upper bounds.

Usage: python bench/bench_inference.py [--samples 100] [--permutations 100]
       [--previous-samples 2] [--previous-permutations 14] [--skip-permutations]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import peak_rss_mb, report

N_CONCEPTS, N_TIMES, N_MODELS, FULL = 1854, 141, 3, 1000
BOOTSTRAP_TARGET_S, PERMUTATION_TARGET_S = 60 * 60, 15 * 60
PERMUTATION_PREVIOUS = "7c494cb"  # before the fast paths of issue 16
BOOTSTRAP_PREVIOUS = "e3082c9"  # the numpy re-weighted bootstrap, before the numba kernels
PARTIALS = [(1, [2]), (2, [1])]


def synthetic_rdms(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """MEG-like RDMs (times, pairs) float32 mixing the models with noise, and model RDMs."""
    rng = np.random.default_rng(seed)
    n_pairs = N_CONCEPTS * (N_CONCEPTS - 1) // 2
    models = rng.random((N_MODELS, n_pairs))
    data = np.empty((N_TIMES, n_pairs), dtype=np.float32)
    for t in range(N_TIMES):
        mix = np.sin(np.pi * t / N_TIMES) * rng.random(N_MODELS)
        data[t] = mix @ models + rng.random(n_pairs)
    return data, models


def previous(module: str, commit: str) -> types.ModuleType | None:
    """The module as it was at git ``commit`` (None without git)."""
    path = "src/" + module.replace(".", "/") + ".py"
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run(
        ["git", "show", f"{commit}:{path}"], cwd=root, capture_output=True, text=True
    )
    if proc.returncode:
        return None
    loaded = types.ModuleType(module + "_previous")
    sys.modules[loaded.__name__] = loaded  # dataclasses look their module up
    exec(compile(proc.stdout, path, "exec"), loaded.__dict__)
    return loaded


def timed(func: Callable[[], object]) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def bench_bootstrap(data: np.ndarray, models: np.ndarray, n_samples: int, n_previous: int) -> dict:
    from figureground.analysis.rsa_bootstrap import bootstrap_draws, bootstrap_rsa

    draws = bootstrap_draws(N_CONCEPTS, n_samples, 0)
    few = draws[: max(1, n_previous)]  # all times, a few samples: the fixed cost
    bootstrap_rsa(data[:1], models, few[:1], "spearman", PARTIALS)  # compile (or load) kernels
    ours_few = timed(lambda: bootstrap_rsa(data, models, few, "spearman", PARTIALS))
    seconds = timed(lambda: bootstrap_rsa(data, models, draws, "spearman", PARTIALS))
    full = seconds * FULL / n_samples
    per_sample = (seconds - ours_few) / (n_samples - len(few))
    fitted = seconds + per_sample * (FULL - n_samples)
    out = {"samples": n_samples, "times": data.shape[0], "seconds": seconds,
           "fraction": n_samples / FULL, "extrapolated_s": full,
           "target_ratio": full / BOOTSTRAP_TARGET_S, "few_samples": len(few),
           "few_s": ours_few, "per_sample_time_ms": 1e3 * per_sample / data.shape[0],
           "fitted_s": fitted, "fitted_target_ratio": fitted / BOOTSTRAP_TARGET_S}  # fmt: skip
    module = "figureground.analysis.rsa_bootstrap"
    old = previous(module, BOOTSTRAP_PREVIOUS) if n_previous else None
    if old is not None:
        old_few = timed(lambda: old.bootstrap_rsa(data, models, few, "spearman", PARTIALS))
        out.update(previous_commit=BOOTSTRAP_PREVIOUS, previous_samples=len(few),
                   previous_s=old_few, ours_same_s=ours_few,
                   speedup=old_few / ours_few)  # fmt: skip
        old_per_sample = (old_few - (ours_few - per_sample * len(few))) / len(few)
        if old_per_sample > 0:  # the same sorts of the RDMs: what the samples cost there
            out.update(previous_per_sample_time_ms=1e3 * old_per_sample / data.shape[0],
                       per_sample_speedup=old_per_sample / per_sample)  # fmt: skip
    return out


def bench_permutations(data: np.ndarray, models: np.ndarray, n_perms: int, n_previous: int) -> dict:
    from figureground.analysis.stats import null_distribution, permutation_draws, standardised_rdms

    perms = permutation_draws(N_CONCEPTS, n_perms, 0)
    start = time.perf_counter()
    z_data = standardised_rdms(data, "spearman")
    z_models = standardised_rdms(models, "spearman")
    standardise = time.perf_counter() - start
    nulls = timed(lambda: [null_distribution(z_data, z, perms) for z in z_models])
    full = standardise + nulls * FULL / n_perms
    out = {"standardise_s": standardise, "null_s": nulls, "fraction": n_perms / FULL,
           "extrapolated_s": full, "target_ratio": full / PERMUTATION_TARGET_S}  # fmt: skip
    old = previous("figureground.analysis.stats", PERMUTATION_PREVIOUS) if n_previous else None
    if old is not None:  # one model, a few permutations, against ours on the same
        few = perms[:n_previous]
        old_few = timed(lambda: old.null_correlations(z_data, z_models[0], few))
        ours_few = timed(lambda: null_distribution(z_data, z_models[0], few))
        out.update(previous_permutations=n_previous, previous_s=old_few, ours_same_s=ours_few,
                   speedup=old_few / ours_few)  # fmt: skip
    return out


def main() -> None:
    """Time both and report."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--permutations", type=int, default=100)
    parser.add_argument("--previous-samples", type=int, default=2)
    parser.add_argument("--previous-permutations", type=int, default=14)
    parser.add_argument("--skip-permutations", action="store_true")
    args = parser.parse_args()
    load_before = os.getloadavg()
    print(f"load average before: {load_before} on {os.cpu_count()} CPUs", flush=True)
    data, models = synthetic_rdms()
    perm = {}
    if not args.skip_permutations:
        perm = bench_permutations(data, models, args.permutations, args.previous_permutations)
        print(f"permutations: {perm}", flush=True)
    boot = bench_bootstrap(data, models, args.samples, args.previous_samples)
    print(f"bootstrap: {boot}", flush=True)
    load_after = os.getloadavg()
    summary = (
        f"bootstrap 1,000 x 3 models (+2 partials) x {boot['times']} times: "
        f"{boot['extrapolated_s'] / 60:.1f} min linear in samples "
        f"(timed {boot['samples']} samples = {boot['fraction']:.0%}: {boot['seconds']:.0f} s), "
        f"{boot['fitted_s'] / 60:.1f} min from fixed + per-sample cost "
        f"({boot['per_sample_time_ms']:.1f} ms per sample-time), "
        f"{boot['target_ratio']:.2f}x (fitted {boot['fitted_target_ratio']:.2f}x) the 60-min target"
        + (
            f", {boot['speedup']:.1f}x faster than {boot['previous_commit']} on "
            f"{boot['previous_samples']} samples"
            if "speedup" in boot
            else ""
        )
        + (
            f" ({boot['previous_per_sample_time_ms']:.1f} ms per sample-time there)"
            if "previous_per_sample_time_ms" in boot
            else ""
        )
        + (
            f"; permutations 1,000 x 3 models: {perm['extrapolated_s'] / 60:.1f} min "
            f"(timed {perm['fraction']:.0%}), {perm['target_ratio']:.2f}x the 15-min target"
            + (f", {perm['speedup']:.1f}x faster than before" if "speedup" in perm else "")
            if perm
            else ""
        )
        + f"; peak RSS {peak_rss_mb():.0f} MiB; load average {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after on {os.cpu_count()} CPUs (shared: upper bounds)"
    )
    report(
        "bench_inference",
        summary,
        bootstrap=boot,
        permutations=perm,
        load_average={"before": load_before, "after": load_after},
    )


if __name__ == "__main__":
    main()
