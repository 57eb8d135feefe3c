"""The Zarr v3 feature store: layout readable by xarray, done flags, partial stores."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from figureground.errors import DataError, UsageError
from figureground.features import store


def _make(tmp_path, n=5, chunk=2, shapes=None):
    shapes = shapes or {"layer2": (4, 3, 3), "avg": (4,)}
    ids = [f"img{i}" for i in range(n)]
    path = store.create_store(
        tmp_path / "f.zarr",
        ["original", "no_background"],
        ids,
        ["c"] * n,
        shapes,
        "float32",
        chunk,
        {"model": "m", "seed": 1},
    )
    return path, ids


def test_layout_opens_with_xarray(tmp_path):
    path, ids = _make(tmp_path)
    writer = store.GroupWriter(path, "original", ["layer2", "avg"])
    rng = np.random.default_rng(0)
    values = {"layer2": rng.normal(size=(2, 4, 3, 3)), "avg": rng.normal(size=(2, 4))}
    writer.write(2, values, ["a" * 64, "b" * 64], np.array([1, 1]))
    dataset = xr.open_zarr(path, group="original")
    assert dataset["layer2"].dims == ("image", "channel", "y", "x")
    assert dataset["avg"].dims == ("image", "channel")
    assert list(dataset["image"].values) == ids
    assert set(dataset.data_vars) == {"layer2", "avg"}
    assert dataset.attrs["model"] == "m" and dataset.attrs["variant"] == "original"
    np.testing.assert_allclose(dataset["layer2"].values[2:4], values["layer2"], rtol=1e-6)
    assert list(dataset["done"].values) == [0, 0, 1, 1, 0]
    assert writer.pending_chunks() == [0, 2]


def test_conflicting_sizes_get_layer_prefixed_dims():
    dims = store.layer_dims({"a": (4, 3, 3), "b": (8, 3, 3)})
    assert dims == {"a": ("a_channel", "a_y", "a_x"), "b": ("b_channel", "b_y", "b_x")}
    assert store.layer_dims({"a": (4, 3, 3), "b": (4,)}) == {
        "a": ("channel", "y", "x"),
        "b": ("channel",),
    }


def test_open_features_keeps_only_done_images(tmp_path):
    path, _ = _make(tmp_path, shapes={"layer2": (4, 3, 3)})
    writer = store.GroupWriter(path, "original", ["layer2"])
    writer.write(0, {"layer2": np.ones((2, 4, 3, 3))}, ["x", "y"], np.array([1, -1]))
    writer.write(4, {"layer2": np.ones((1, 4, 3, 3))}, ["z"], np.array([1]))
    with pytest.raises(DataError, match="2 of 5 images pending"):
        store.open_features(path, "original")
    partial = store.open_features(path, "original", allow_partial=True)
    assert list(partial["image"].values) == ["img0", "img4"]
    assert list(partial["sha256"].values) == ["x", "z"]
    with pytest.raises(UsageError, match="no_foreground"):
        store.open_features(path, "no_foreground")
    with pytest.raises(UsageError, match="does not exist"):
        store.open_features(tmp_path / "nothing.zarr")


def test_remove_partial_files(tmp_path):
    path, _ = _make(tmp_path)
    leftover = path / "original" / "layer2" / "x.abc.partial"
    leftover.write_bytes(b"half")
    assert store.remove_partial_files(path) == 1 and not leftover.exists()
