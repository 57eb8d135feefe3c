"""Faults survived: killed runs resume to identical bytes, locks, a full disk, damaged caches.

The full set (many kill points, every damage kind, the CLI in subprocesses) runs in
``make reliability``; these tests run the same code with fewer tries.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from figureground.errors import UsageError
from figureground.features import store
from figureground.fsutil import DiskFullError, atomic_write_bytes, folder_lock
from figureground.pipeline import StageCache
from figureground.reliability import faults, security
from figureground.reliability.harness import differences


def test_killed_study_resumes_to_identical_outputs(tmp_path: Path) -> None:
    study, reference, seconds = faults.reference_run(tmp_path)
    delays = faults.kill_delays(seed=1, count=3, longest=seconds)
    outcome = faults.kill_and_resume(tmp_path, study, reference, delays)
    assert outcome.ok, outcome.detail
    assert "0 files differed" in outcome.detail and "0 finished files rewritten" in outcome.detail


def test_variants_and_features_lock_their_outputs(tmp_path: Path) -> None:
    from figureground.features.extract import extract_features
    from figureground.variants import make_variants

    out = tmp_path / "variants"
    with folder_lock(tmp_path, "variants folder", ".variants.lock"):
        with pytest.raises(UsageError, match="in use by another") as info:
            make_variants(tmp_path / "nowhere", out, segmenter="grabcut")
        assert "\n" not in str(info.value)
    with (
        folder_lock(tmp_path, "feature store", ".f.zarr.lock"),
        pytest.raises(UsageError, match="in use by another"),
    ):
        extract_features(tmp_path / "nowhere", tmp_path / "f.zarr")
    assert not (tmp_path / "f.zarr").exists()


def test_disk_full_is_one_line_and_keeps_the_old_file(tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr!r}")
    try:
        target = small / "out.bin"
        atomic_write_bytes(target, b"finished work")
        with pytest.raises(DiskFullError) as info:
            atomic_write_bytes(target, b"x" * 1_000_000)
        message = str(info.value)
        assert "no space left" in message and str(target) in message and "\n" not in message
        assert target.read_bytes() == b"finished work"
        assert [p.name for p in small.iterdir()] == ["out.bin"]  # no temporary left
    finally:
        subprocess.run(["umount", str(small)], check=False)


def _store(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    path = store.create_store(
        tmp_path / "f.zarr", ["original"], [f"i{k}" for k in range(4)], ["c"] * 4,
        {"layer2": (3, 2, 2)}, "float32", 2, {"params_hash": "x"},
    )  # fmt: skip
    values = np.random.default_rng(0).normal(size=(4, 3, 2, 2)).astype("float32")
    writer = store.GroupWriter(path, "original", ["layer2"])
    writer.write(0, {"layer2": values[:2]}, ["a", "b"], np.array([1, 1]))
    writer.write(2, {"layer2": values[2:]}, ["c", "d"], np.array([1, 1]))
    return path, {"layer2": values}


@pytest.mark.parametrize("damage", ["truncate", "delete", "edit"])
def test_damaged_store_chunk_is_found_and_marked_pending(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    path, values = _store(tmp_path)
    chunk = sorted(p for p in (path / "original" / "layer2").rglob("*") if "/c/" in p.as_posix()
                   and p.is_file())[1]  # fmt: skip
    data = chunk.read_bytes()
    if damage == "truncate":
        chunk.write_bytes(data[: len(data) // 2])
    elif damage == "delete":
        chunk.unlink()
    else:
        store.GroupWriter(path, "original", ["layer2"])._arrays["layer2"][3] = 0.0
    writer = store.GroupWriter(path, "original", ["layer2"])
    with caplog.at_level(logging.WARNING):
        assert writer.verify_done() == [1]
    assert "chunk 1 of original" in caplog.text
    assert str(path / "original" / "layer2" / "c" / "1" / "0" / "0" / "0") in caplog.text
    assert list(writer.done()) == [1, 1, 0, 0]
    assert writer.pending_chunks() == [1]
    writer.write(2, {"layer2": values["layer2"][2:]}, ["c", "d"], np.array([1, 1]))
    assert writer.verify_done() == []


def test_damaged_variant_output_is_detected(tmp_path: Path, caplog) -> None:
    from figureground.variants.image import outputs_intact, variant_path

    rel = "object_images/cat/cat_01a.jpg"
    hashes = {}
    for variant in ("no_background", "no_foreground", "mask"):
        atomic_write_bytes(variant_path(tmp_path, rel, variant), variant.encode())
        from figureground.fsutil import sha256_bytes

        hashes[variant] = sha256_bytes(variant.encode())
    record = {"outputs": hashes}
    assert outputs_intact(tmp_path, rel, record)
    damaged = variant_path(tmp_path, rel, "mask")
    damaged.write_bytes(b"mas")
    with caplog.at_level(logging.WARNING):
        assert not outputs_intact(tmp_path, rel, record)
    assert str(damaged) in caplog.text


def test_stage_cache_notices_a_truncated_file_inside_a_folder_output(tmp_path: Path) -> None:
    folder = tmp_path / "variants"
    (folder / "a").mkdir(parents=True)
    (folder / "a" / "x.png").write_bytes(b"12345678")
    (folder / ".hidden.lock").write_text("1")
    cache = StageCache(tmp_path)
    cache.mark_done("variants", "k", [folder])
    (folder / ".hidden.lock").write_text("22")  # locks and temporaries do not count
    assert cache.is_done("variants", "k") is not None
    (folder / "a" / "x.png").write_bytes(b"1234")
    assert cache.is_done("variants", "k") is None
    record = json.loads((tmp_path / ".stages" / "variants.json").read_text())
    assert record["outputs"][str(folder)].startswith("tree:")


def test_differences_names_changed_and_missing_files(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        (root / "results").mkdir(parents=True)
        (root / "results" / "x.csv").write_text("1")
        (root / "fig.svg").write_text(str(root))  # figures are compared too (fixed ids)
        (root / "stages.json").write_text(str(root))  # bookkeeping is not
    (b / "results" / "y.csv").write_text("2")
    assert differences(a, a) == []
    assert differences(a, b) == ["fig.svg", "results/y.csv"]


def test_source_has_no_shell_strings_unguarded_pickle_or_unsafe_yaml() -> None:
    source = Path(__file__).resolve().parents[2] / "src" / "figureground"
    outcomes = security.scan(source)
    assert outcomes and all(o.ok for o in outcomes), [o.detail for o in outcomes if not o.ok]


def test_truncated_compressed_chunk_is_an_error_not_a_crash(tmp_path: Path) -> None:
    """Blosc reads past a truncated buffer; the store's CRC-32C must stop that first."""
    script = f"""
import numpy as np
from pathlib import Path
from figureground.features import store
path = store.create_store(Path({str(tmp_path)!r}) / "f.zarr", ["original"],
                          [f"i{{k}}" for k in range(4)], ["c"] * 4, {{"layer2": (128, 28, 28)}},
                          "float32", 2, {{"params_hash": "x"}})
values = np.maximum(np.random.default_rng(0).normal(size=(4, 128, 28, 28)), 0).astype("float32")
writer = store.GroupWriter(path, "original", ["layer2"])
writer.write(0, {{"layer2": values[:2]}}, ["a", "b"], np.array([1, 1]))
writer.write(2, {{"layer2": values[2:]}}, ["c", "d"], np.array([1, 1]))
chunk = path / "original" / "layer2" / "c" / "1" / "0" / "0" / "0"
data = chunk.read_bytes()
chunk.write_bytes(data[: len(data) // 2])
print(store.GroupWriter(path, "original", ["layer2"]).verify_done())
"""
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert proc.stdout.strip().splitlines()[-1] == "[1]"
