"""Dask execution: results equal serial ones, and a worker killed mid-task loses nothing.

One LocalCluster (loopback, 2 worker processes, 1 thread each) serves every test.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import cloudpickle
import cv2
import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import pdist
from scipy.stats import spearmanr

from figureground.analysis import stats
from figureground.errors import UsageError
from figureground.features import distributed as features_distributed
from figureground.features import extract, store
from figureground.parallel import SchedulerSpec, parse_scheduler
from figureground.variants import distributed as variants_distributed
from figureground.variants import make_variants

# Workers must run this module's crash wrappers without importing it.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

FEATURES = {
    "model": "resnet18",
    "weights": "none",
    "layers": ["layer1"],
    "pool": "avg",
    "resize": 32,
    "crop": 32,
    "batch_size": 2,
    "device": "cpu",
}


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=":0",
            env={"OMP_NUM_THREADS": "1"},
        ) as cluster,
        distributed.Client(cluster) as dask_client,
    ):
        yield dask_client


@pytest.fixture(scope="module")
def stimuli(tmp_path_factory) -> Path:
    """Five THINGS-layout PNG scenes with an ellipse object, and their masks."""
    root = tmp_path_factory.mktemp("stimuli")
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        folder = root / "object_images" / f"thing{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        image = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
        mask = np.zeros((64, 80), np.uint8)
        cv2.ellipse(mask, (40 + i, 32), (15, 20), 0, 0, 360, 255, -1)
        stem = f"thing{i % 2}_{i + 1:02d}b"
        cv2.imwrite(str(folder / f"{stem}.png"), image)
        cv2.imwrite(str(root / "masks" / f"{stem}.png"), mask)
    return root


def _files(out: Path) -> dict[str, bytes]:
    return {
        p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()
    }


def _variants(stimuli: Path, out: Path, **kwargs):
    return make_variants(stimuli, out, segmenter=f"masks:{stimuli / 'masks'}", **kwargs)


def test_parse_scheduler():
    assert parse_scheduler(None) == SchedulerSpec("serial")
    assert parse_scheduler("local:3") == SchedulerSpec("local", n_workers=3)
    assert parse_scheduler("tcp://10.0.0.1:8786").address == "tcp://10.0.0.1:8786"
    assert not parse_scheduler("serial").distributed
    for bad in ("local:0", "cluster", "http://x:1"):
        with pytest.raises(UsageError, match="scheduler"):
            parse_scheduler(bad)


# ------------------------------------------------------------------------------ equality


def test_variants_on_dask_equal_serial(stimuli, tmp_path, client):
    serial = _variants(stimuli, tmp_path / "serial")
    dask = _variants(stimuli, tmp_path / "dask", scheduler=client)
    assert (serial["status"] == "ok").all() and dask.equals(serial)
    assert _files(tmp_path / "serial") == _files(tmp_path / "dask")


def _stored(path: Path) -> dict[str, np.ndarray]:
    return {
        v: store.open_features(path, v)["layer1"].values
        for v in store.read_root_attrs(path)["variants"]
    }


def test_features_on_dask_equal_serial(stimuli, tmp_path, client):
    serial = extract.extract_features(stimuli, tmp_path / "serial.zarr", **FEATURES)
    dask = extract.extract_features(stimuli, tmp_path / "dask.zarr", scheduler=client, **FEATURES)
    expected, found = _stored(serial), _stored(dask)
    assert expected["original"].shape == (5, 64)
    np.testing.assert_allclose(found["original"], expected["original"], rtol=1e-6, atol=1e-7)


def test_permutations_on_dask_equal_serial(client):
    rng = np.random.default_rng(1)
    patterns = rng.standard_normal((12, 5))
    model = pdist(patterns, "correlation")
    data = np.stack([model + rng.normal(0, s, model.size) for s in (0.1, 1.0, 5.0)])
    options = {"n_permutations": 300, "block_size": 100, "seed": 4}
    serial = stats.rdm_permutation_test_blocks(data, model, **options)
    dask = stats.rdm_permutation_test_blocks(data, model, scheduler=client, **options)
    np.testing.assert_array_equal(serial.null, dask.null)
    np.testing.assert_array_equal(serial.p_value, dask.p_value)
    reference = [spearmanr(row, model)[0] for row in data]
    np.testing.assert_allclose(serial.observed, reference, rtol=1e-10)
    assert serial.null.shape == (300, 3)
    assert serial.p_value[0] == pytest.approx(1 / 301)  # strong effect beats every permutation
    assert abs(serial.null.mean()) < 0.05
    # The same draws as the one-call test, whatever the blocks and the scheduler.
    plain = stats.rdm_permutation_test(data, model, 300, seed=4)
    np.testing.assert_array_equal(serial.null, plain.null)
    np.testing.assert_array_equal(serial.p_value, plain.p_value)


# ------------------------------------------------------------------------------ killed workers


def _die_once(marker: str) -> None:
    if not os.path.exists(marker):
        Path(marker).write_text(str(os.getpid()))
        os._exit(1)  # the worker process dies mid-task


def _crashing_variants(batch, spec, marker, real):
    real(batch[:1], spec)  # part of the batch is written, then the worker dies
    _die_once(marker)
    return real(batch, spec)


def _crashing_features(job, spec, marker, real):
    real(job, spec)  # the chunk is written, the status never returned
    _die_once(marker)
    return real(job, spec)


def test_killed_variants_worker_is_retried(stimuli, tmp_path, client, monkeypatch):
    marker = tmp_path / "killed"
    real = variants_distributed.variants_batch
    crash = functools.partial(_crashing_variants, marker=str(marker), real=real)
    monkeypatch.setattr(variants_distributed, "variants_batch", crash)
    serial = _variants(stimuli, tmp_path / "serial")
    dask = _variants(stimuli, tmp_path / "dask", scheduler=client)
    assert marker.is_file()  # a worker did die
    assert dask.equals(serial)
    assert _files(tmp_path / "serial") == _files(tmp_path / "dask")


def test_killed_features_worker_is_retried(stimuli, tmp_path, client, monkeypatch):
    marker = tmp_path / "killed"
    real = features_distributed.features_chunk
    crash = functools.partial(_crashing_features, marker=str(marker), real=real)
    monkeypatch.setattr(features_distributed, "features_chunk", crash)
    serial = extract.extract_features(stimuli, tmp_path / "serial.zarr", **FEATURES)
    dask = extract.extract_features(stimuli, tmp_path / "dask.zarr", scheduler=client, **FEATURES)
    assert marker.is_file()
    expected, found = _stored(serial), _stored(dask)
    np.testing.assert_allclose(found["original"], expected["original"], rtol=1e-6, atol=1e-7)
    done = store.GroupWriter(dask, "original", []).done()
    assert (done == store.DONE).all() and done.size == 5


def test_local_scheduler_string_runs_a_cluster(stimuli, tmp_path):
    serial = _variants(stimuli, tmp_path / "serial")
    local = _variants(stimuli, tmp_path / "local", scheduler="local:1")
    assert local.equals(serial)


# ------------------------------------------------------------------------------ a whole study


def test_run_study_on_dask_writes_what_the_serial_run_writes(client, tmp_path: Path) -> None:
    """Variants, features and the RSA permutation tests of a study on a LocalCluster."""
    from figureground.config import parse_study
    from figureground.pipeline import run_study
    from figureground.reliability.harness import tiny_study

    spec = {
        **tiny_study(),
        "analyses": {
            "seed_method": {"enabled": False},
            "responses": {"decim": 4},
            "rsa": {"n_boot": 0, "n_permutations": 300, "levels": ["image"], "partial": False},
            "encoding": {"enabled": False},
            "noise_ceiling": {"enabled": False},
        },
    }
    runs = {}
    for name, scheduler in (("serial", "serial"), ("dask", client)):
        study = parse_study(spec, base_dir=tmp_path / name)
        runs[name] = run_study(study, scheduler=scheduler).run_dir
    serial, dask = runs["serial"], runs["dask"]
    pngs = sorted(p.relative_to(serial) for p in (serial / "variants").rglob("*.png"))
    assert pngs and all((serial / p).read_bytes() == (dask / p).read_bytes() for p in pngs)
    store_name = next((serial / "features").glob("*.zarr")).name
    for variant in ("no_background", "no_foreground"):
        ours, theirs = (
            store.open_features(r / "features" / store_name, variant) for r in runs.values()
        )
        np.testing.assert_array_equal(ours["layer2"].values, theirs["layer2"].values)
    table = (serial / "results" / "rsa_timecourse.csv").read_bytes()
    assert table == (dask / "results" / "rsa_timecourse.csv").read_bytes()
    p_values = pd.read_csv(serial / "results" / "rsa_timecourse.csv")["p_perm"]
    assert p_values.notna().any() and (p_values >= 1 / 301).all()
