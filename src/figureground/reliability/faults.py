"""Fault trials: killed runs, concurrent runs, a full disk, damaged caches."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from figureground.conditions import CONDITIONS, NO_BACKGROUND
from figureground.reliability.harness import (
    Outcome,
    differences,
    finished_files,
    mtimes,
    run_cli,
    run_killed_after,
    start_cli,
    wait_for,
    write_study,
)


def reference_run(base: Path) -> tuple[Path, Path, float]:
    """Run the tiny study uninterrupted; return (study file, reference copy, seconds).

    The run is made at ``base/run`` and moved to ``base/reference`` so that later runs in
    ``base/run`` use the same absolute paths (recorded in provenance) as the reference.
    """
    study = write_study(base)
    start = time.perf_counter()
    proc = run_cli("run", str(study), cwd=base)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"reference run failed: {proc.stderr.strip()[-2000:]}")
    reference = base / "reference"
    shutil.rmtree(reference, ignore_errors=True)
    (base / "run").rename(reference)
    return study, reference, seconds


def kill_and_resume(base: Path, study: Path, reference: Path, delays: list[float]) -> Outcome:
    """SIGKILL runs of the study after each delay, resuming each time; compare every end.

    Runs go on in the same folder, each killed after its delay, until one finishes before
    its kill; that finished run is compared with the reference and the folder is emptied
    for the next kill. A try survives when nothing finished at its kill was rewritten
    (modification times) and the run it belongs to ends equal to the reference.
    """
    run_dir = base / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    protected: dict[str, int] = {}
    landed, pending, survived, diffs, rewritten = 0, 0, 0, set(), set()

    def check() -> None:
        nonlocal pending, survived, protected
        times = mtimes(run_dir)
        redone = {f for f, t in protected.items() if times.get(f) != t}
        diff = set(differences(run_dir, reference))
        diffs.update(diff)
        rewritten.update(redone)
        survived += pending if not diff and not redone else 0
        pending, protected = 0, {}
        shutil.rmtree(run_dir, ignore_errors=True)

    for delay in delays:
        if run_dir.is_dir():
            times = mtimes(run_dir)
            protected.update({f: times[f] for f in finished_files(run_dir) if f in times})
        if run_killed_after("run", str(study), delay=delay, cwd=base):
            landed += 1
            pending += 1
        else:
            check()
    if pending:
        proc = run_cli("run", str(study), cwd=base)
        if proc.returncode != 0:
            diffs.add("(final run failed)")
        check()
    detail = (
        f"kills at {', '.join(f'{d:.1f}' for d in delays)} s; {landed} landed before the "
        f"run's end (the others found it finished: it was compared and started afresh); "
        f"{len(diffs)} files differed from the uninterrupted run"
        f"{' (' + ', '.join(sorted(diffs)[:3]) + ')' if diffs else ''}; "
        f"{len(rewritten)} finished files rewritten"
        f"{' (' + ', '.join(sorted(rewritten)[:3]) + ')' if rewritten else ''}"
    )
    return Outcome("fault", "SIGKILL at a random moment, then rerun", landed, survived, detail)


def _second_refused(first_args: list[str], second_args: list[str], lock: Path) -> tuple[bool, str]:
    first = start_cli(*first_args)
    try:
        if not wait_for(lock, 120):
            return False, "first run never took its lock"
        time.sleep(0.5)
        second = run_cli(*second_args, timeout=300)
        lines = second.stderr.strip().splitlines()
        ok = second.returncode == 2 and len(lines) == 1 and "in use by another" in lines[0]
        return ok, lines[-1] if lines else f"exit {second.returncode}, no message"
    finally:
        first.kill()
        first.wait()
        first.stderr.close()


def concurrent_runs(base: Path, study: Path, demo_root: Path) -> list[Outcome]:
    """A second ``run``/``variants``/``features`` on the same output stops with a clear line."""
    outcomes = []
    folder = base / "concurrent"
    shutil.rmtree(folder, ignore_errors=True)
    variants = folder / "variants"
    cases = {
        "run": (["run", str(study), "--out", str(folder / "run")], folder / "run" / ".lock"),
        "variants": (
            ["variants", str(demo_root), "--out", str(variants), "--segmenter", "grabcut"],
            folder / ".variants.lock",
        ),
    }
    for name, (args, lock) in cases.items():
        ok, message = _second_refused(args, args, lock)
        outcomes.append(
            Outcome("fault", f"two `{name}` on the same output at once", 1, int(ok), message)
        )
    done = run_cli("variants", str(demo_root), "--out", str(variants), "--segmenter", "grabcut")
    store = folder / "f.zarr"
    args = [
        "features", str(variants), "--out", str(store), "--model", "resnet18", "--weights",
        "none", "--batch-size", "2", "--workers", "0",
    ]  # fmt: skip
    ok, message = _second_refused(args, args, folder / ".f.zarr.lock")
    ok = ok and done.returncode == 0
    outcomes.append(
        Outcome("fault", "two `features` on the same store at once", 1, int(ok), message)
    )
    return outcomes


@contextlib.contextmanager
def small_filesystem(folder: Path, size: str) -> Iterator[bool]:
    """Mount a tmpfs of ``size`` at ``folder`` (yields False when mounting is not permitted)."""
    folder.mkdir(parents=True, exist_ok=True)
    mount = shutil.which("mount")
    proc = subprocess.run(
        [mount or "mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        check=False,
    )
    try:
        yield proc.returncode == 0
    finally:
        if proc.returncode == 0:
            subprocess.run(["umount", str(folder)], capture_output=True, check=False)


def grow(folder: Path, size: str) -> None:
    """Remount the tmpfs at ``folder`` with ``size``."""
    subprocess.run(
        ["mount", "-o", f"remount,size={size}", str(folder)], capture_output=True, check=True
    )


def disk_full(base: Path, demo_root: Path, reference_variants: Path | None = None) -> list[Outcome]:
    """``variants`` and ``features`` on a 2 MiB file system: one line, work kept, rerun ends."""
    from figureground.features import store
    from figureground.variants.image import outputs_intact

    outcomes = []
    mount_dir = base / "small-fs"
    variants_args = ["variants", str(demo_root), "--segmenter", "grabcut", "--exemplars", "1"]
    reference = base / "disk-reference"
    shutil.rmtree(reference, ignore_errors=True)
    run_cli(*variants_args, "--out", str(reference / "variants"))
    features_args = [
        "--model", "resnet18", "--weights", "none", "--batch-size", "2", "--workers", "0",
    ]  # fmt: skip
    run_cli("features", str(reference / "variants"), "--out", str(reference / "f.zarr"),
            *features_args)  # fmt: skip
    with small_filesystem(mount_dir, "1m") as mounted:
        if not mounted:
            note = "skipped: mounting a tmpfs is not permitted here (needs root)"
            return [Outcome("fault", "disk full while writing", 0, 0, note)]
        out = mount_dir / "variants"
        first = run_cli(*variants_args, "--out", str(out))
        lines = first.stderr.strip().splitlines()
        one_line = (
            first.returncode != 0
            and len(lines) == 1
            and "no space left" in lines[0]
            and str(mount_dir) in lines[0]
        )
        records = list((out / "records").rglob("*.json"))
        import json

        intact = all(
            outputs_intact(
                out, r.relative_to(out / "records").as_posix(), json.loads(r.read_text())
            )
            for r in records
        )
        grow(mount_dir, "64m")
        second = run_cli(*variants_args, "--out", str(out))
        same = second.returncode == 0 and not differences(out, reference / "variants")
        ok = one_line and intact and same
        outcomes.append(
            Outcome(
                "fault",
                "disk full during `variants` (1 MiB tmpfs), then space freed",
                1,
                int(ok),
                f"exit {first.returncode}: {lines[-1] if lines else ''!s}; {len(records)} "
                f"finished images intact={intact}; rerun exit {second.returncode}, "
                f"identical={same}",
            )
        )
    with small_filesystem(base / "small-fs-2", "1m") as mounted:
        zarr_out = base / "small-fs-2" / "f.zarr"
        out = reference / "variants"
        first = run_cli("features", str(out), "--out", str(zarr_out), *features_args)
        lines = first.stderr.strip().splitlines()
        one_line = first.returncode != 0 and len(lines) == 1 and "no space left" in lines[0]
        grow(base / "small-fs-2", "64m")
        kept = 0
        if zarr_out.exists():
            for variant in CONDITIONS:
                writer = store.GroupWriter(zarr_out, variant, ["layer2"])
                kept += int((writer.done() == store.DONE).sum())
        second = run_cli("features", str(out), "--out", str(zarr_out), *features_args)
        same = second.returncode == 0 and not differences(zarr_out, reference / "f.zarr")
        ok = one_line and same
        outcomes.append(
            Outcome(
                "fault",
                "disk full during `features`, then space freed",
                1,
                int(ok),
                f"exit {first.returncode}: {lines[-1] if lines else ''}; {kept} embeddings kept; "
                f"rerun exit {second.returncode}, identical={same}",
            )
        )
    return outcomes


def _damage_truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _damage_delete(path: Path) -> None:
    path.unlink()


def _damage_edit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def damaged_cache(base: Path, study: Path, reference: Path) -> list[Outcome]:
    """Damage one cached output of the finished run at a time; the rerun repairs it."""
    run_dir = base / "run"
    if differences(run_dir, reference):
        shutil.rmtree(run_dir, ignore_errors=True)
        shutil.copytree(reference, run_dir, symlinks=True)
    pngs = sorted((run_dir / "variants" / NO_BACKGROUND).rglob("*.png"))
    chunks = sorted(
        p
        for p in (run_dir / "features").rglob("*")
        if p.is_file() and "/c/" in p.as_posix() and "/layer2/" in p.as_posix()
    )
    cases = [
        ("truncated variant PNG", pngs[0], _damage_truncate),
        ("truncated Zarr chunk", chunks[0], _damage_truncate),
        ("missing Zarr chunk", chunks[-1], _damage_delete),
        ("edited results CSV", run_dir / "results" / "seed_distance.csv", _damage_edit),
    ]
    outcomes = []
    for case, path, damage in cases:
        damage(path)
        proc = run_cli("run", str(study), cwd=base)
        named = str(path) in proc.stderr
        diff = differences(run_dir, reference)
        ok = proc.returncode == 0 and not diff and named
        outcomes.append(
            Outcome(
                "fault",
                f"damaged cache: {case}",
                1,
                int(ok),
                f"{path.relative_to(run_dir)}: warning names it={named}; rerun exit "
                f"{proc.returncode}; {len(diff)} files differ from the reference",
            )
        )
    return outcomes


def kill_delays(seed: int, count: int, longest: float) -> list[float]:
    """``count`` kill delays in seconds, seeded, spread over ``[1, 0.8 * longest]``."""
    rng = np.random.default_rng(seed)
    return [float(d) for d in np.round(rng.uniform(1.0, 0.8 * longest, size=count), 1)]
