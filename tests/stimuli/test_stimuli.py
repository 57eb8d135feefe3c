"""Stimulus manifests: THINGS layout, plain folders, CSV sources, ids, paths, round trips."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from figureground.errors import UsageError
from figureground.stimuli import (
    COLUMNS,
    build_manifest,
    parse_things_name,
    read_manifest,
    write_manifest,
)


def _image(path: Path, size: tuple[int, int] = (6, 4), value: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.full((size[1], size[0], 3), value % 256, np.uint8)
    Image.fromarray(array).save(path, format="PNG" if path.suffix == ".png" else "JPEG")
    return path


@pytest.mark.parametrize(
    ("stem", "expected"),
    [
        ("coat_rack_03s", ("coat_rack", 3)),
        ("aardvark_10a", ("aardvark", 10)),
        ("x_2b", ("x", 2)),
        ("ice_cream_cone_120", ("ice_cream_cone", 120)),
        ("no_number_here", ("no_number", None)),
        ("plain", ("plain", None)),
    ],
)
def test_parse_things_name(stem: str, expected: tuple) -> None:
    assert parse_things_name(stem) == expected


@pytest.fixture
def things_root(tmp_path: Path) -> Path:
    root = tmp_path / "things"
    for number in range(1, 14):
        name = "x_2b" if number == 2 else f"x_{number:02d}{'abksn'[number % 5]}"
        _image(root / "object_images" / "x" / f"{name}.jpg", value=number)
    # unpadded numbers: string order would put x_10a before x_2b
    _image(root / "object_images" / "coat_rack" / "coat_rack_03s.jpg")
    _image(root / "object_images" / "coat_rack" / "coat_rack_1a.jpg")
    _image(root / "object_images" / "coat_rack" / "coat_rack_10c.jpg")
    _image(root / "object_images" / "coat_rack" / "coat_rack_2z.jpg")
    _image(root / "object_images" / "coat_rack" / "readme_image.png")  # does not parse
    _image(root / "images_test_meg" / "beaver_13s.jpg")
    _image(root / "images_catch_meg" / "catch_01.png")
    (root / "object_images" / "x" / "notes.txt").write_text("not an image suffix")
    return root


def test_things_layout_first_n_by_exemplar_number(things_root: Path) -> None:
    frame = build_manifest(things_root, exemplars=3)
    exp = frame[frame["set"] == "exp"]
    assert exp[exp["concept"] == "coat_rack"]["image_id"].tolist() == [
        "coat_rack_1a",
        "coat_rack_2z",
        "coat_rack_03s",
    ]
    assert exp[exp["concept"] == "x"]["exemplar"].tolist() == [1, 2, 3]
    assert set(exp["path"]) >= {"object_images/coat_rack/coat_rack_03s.jpg"}
    assert frame.attrs["skipped"] == [
        "object_images/coat_rack/readme_image.png: name is not <concept>_<NN><letter>"
    ]


def test_things_layout_default_twelve_and_test_catch_sets(things_root: Path) -> None:
    frame = build_manifest(things_root)
    assert list(frame.columns) == list(COLUMNS)
    assert frame[frame["concept"] == "x"]["exemplar"].tolist() == list(range(1, 13))
    by_id = frame.set_index("image_id")
    assert by_id.loc["beaver_13s", ["set", "concept", "exemplar"]].tolist() == [
        "test",
        "beaver",
        13,
    ]
    assert by_id.loc["catch_01", "set"] == "catch"
    assert by_id.loc["catch_01", "path"] == "images_catch_meg/catch_01.png"
    assert (frame["status"] == "ok").all()
    assert (frame["error"] == "").all()
    assert len(build_manifest(things_root, exemplars=None)) == len(frame) + 1  # x_13s


def test_manifest_hash_size_and_sort_order(things_root: Path) -> None:
    frame = build_manifest(things_root, exemplars=None)
    row = frame.set_index("image_id").loc["x_10a"]
    assert frame.set_index("image_id").loc["x_2b", "exemplar"] == 2
    data = (things_root / row["path"]).read_bytes()
    assert row["sha256"] == hashlib.sha256(data).hexdigest()
    assert (row["width"], row["height"]) == (6, 4)
    keys = list(zip(frame["concept"], frame["exemplar"], frame["image_id"], strict=True))
    assert keys == sorted(keys)
    assert frame["exemplar"].dtype == "Int64"


def test_images_meg_parent_accepted(tmp_path: Path) -> None:
    _image(tmp_path / "images_meg" / "dog" / "dog_01b.jpg")
    frame = build_manifest(tmp_path)
    assert frame["path"].tolist() == ["images_meg/dog/dog_01b.jpg"]
    assert frame["set"].tolist() == ["exp"]


def test_things_layout_missing_folders_is_usage_error(tmp_path: Path) -> None:
    _image(tmp_path / "dog" / "dog_01b.jpg")
    with pytest.raises(UsageError, match="object_images/"):
        build_manifest(tmp_path)
    with pytest.raises(UsageError, match="not a folder"):
        build_manifest(tmp_path / "absent")
    with pytest.raises(UsageError, match="unknown stimulus layout"):
        build_manifest(tmp_path, layout="flat")


def test_plain_folder_source(tmp_path: Path) -> None:
    _image(tmp_path / "animals" / "cat" / "whiskers.png")
    _image(tmp_path / "animals" / "dog" / "dog_07q.jpg")
    _image(tmp_path / "top_level_04.png")
    _image(tmp_path / ".hidden" / "ghost.png")
    frame = build_manifest(tmp_path, layout="folder").set_index("image_id")
    assert sorted(frame.index) == ["dog_07q", "top_level_04", "whiskers"]
    assert frame.loc["whiskers", "concept"] == "cat"
    assert pd.isna(frame.loc["whiskers", "exemplar"])
    assert frame.loc["dog_07q", "exemplar"] == 7
    assert frame.loc["dog_07q", "path"] == "animals/dog/dog_07q.jpg"
    assert frame.loc["top_level_04", "concept"] == "top_level"
    assert set(frame["set"]) == {"other"}


def test_duplicate_ids_name_both_paths(tmp_path: Path) -> None:
    _image(tmp_path / "a" / "same.png")
    _image(tmp_path / "b" / "same.jpg")
    with pytest.raises(UsageError, match=r"a/same\.png and b/same\.jpg"):
        build_manifest(tmp_path, layout="folder")


def test_csv_source_with_optional_columns(tmp_path: Path) -> None:
    _image(tmp_path / "imgs" / "one.png")
    _image(tmp_path / "imgs" / "sub" / "two_05x.jpg")
    csv = tmp_path / "list.csv"
    csv.write_text(
        "path,image_id,concept,exemplar,set\n"
        "imgs/one.png,first,widget,2,exp\n"
        "imgs/./sub/two_05x.jpg,,,,\n"
        "imgs/missing.png,,,,\n"
    )
    frame = build_manifest(tmp_path, csv_path=csv).set_index("image_id")
    assert frame.loc["first", ["concept", "exemplar", "set", "status"]].tolist() == [
        "widget",
        2,
        "exp",
        "ok",
    ]
    assert frame.loc["two_05x", ["concept", "exemplar", "path", "set"]].tolist() == [
        "sub",
        5,
        "imgs/sub/two_05x.jpg",
        "other",
    ]
    assert frame.loc["missing", ["status", "error"]].tolist() == ["failed", "file not found"]


@pytest.mark.parametrize(
    ("path_text", "match"),
    [
        ("/etc/passwd", "row 2: .*absolute"),
        ("../outside.png", "row 2: .*leaves its root"),
        ("imgs/../../outside.png", "row 2: .*leaves its root"),
        ("", "row 2: empty path"),
    ],
)
def test_csv_paths_must_stay_inside_root(tmp_path: Path, path_text: str, match: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    _image(tmp_path / "outside.png")
    csv = tmp_path / "list.csv"
    csv.write_text(f"path\n{path_text}\n" if path_text else "path,concept\n,x\n")
    with pytest.raises(UsageError, match=match) as info:
        build_manifest(root, layout="csv", csv_path=csv)
    assert "\n" not in str(info.value)


def test_csv_without_path_column_or_bad_values(tmp_path: Path) -> None:
    csv = tmp_path / "list.csv"
    csv.write_text("file\na.png\n")
    with pytest.raises(UsageError, match="no 'path' column"):
        build_manifest(tmp_path, csv_path=csv)
    csv.write_text("path,exemplar\na.png,three\n")
    with pytest.raises(UsageError, match="row 2: exemplar 'three'"):
        build_manifest(tmp_path, csv_path=csv)
    with pytest.raises(UsageError, match="needs csv_path"):
        build_manifest(tmp_path, layout="csv")


def test_symlink_loop_does_not_hang(tmp_path: Path) -> None:
    _image(tmp_path / "cats" / "cat_01a.png")
    os.symlink(tmp_path, tmp_path / "cats" / "loop")
    os.symlink(tmp_path / "self_link.png", tmp_path / "self_link.png")  # file link loop
    frame = build_manifest(tmp_path, layout="folder").set_index("image_id")
    assert frame.loc["cat_01a", "status"] == "ok"
    assert frame.loc["self_link", "status"] == "failed"
    assert any("already visited" in reason for reason in frame.attrs["skipped"])


@pytest.mark.skipif(sys.platform != "linux", reason="needs a file system with byte names")
def test_non_utf8_names_are_skipped_and_reported(tmp_path: Path) -> None:
    _image(tmp_path / "good" / "fine.png")
    bad_name = os.fsencode(tmp_path / "good") + b"/caf\xe9.png"
    with open(bad_name, "wb") as handle:
        handle.write((tmp_path / "good" / "fine.png").read_bytes())
    frame = build_manifest(tmp_path, layout="folder")
    assert frame["image_id"].tolist() == ["fine"]
    assert len(frame.attrs["skipped"]) == 1
    assert "caf\\xe9.png: file name is not valid UTF-8" in frame.attrs["skipped"][0]


def test_write_read_round_trip(things_root: Path, tmp_path: Path) -> None:
    frame = build_manifest(things_root)
    (things_root / "images_catch_meg" / "broken.jpg").write_bytes(b"")
    with_failure = build_manifest(things_root)
    target = tmp_path / "out" / "manifest.csv"
    for original in (frame, with_failure):
        write_manifest(original, target)
        back = read_manifest(target)
        pd.testing.assert_frame_equal(back, original)
    assert back.set_index("image_id").loc["broken", "error"] == "empty file (0 bytes)"
    assert [p.name for p in target.parent.iterdir()] == ["manifest.csv"]


def test_read_manifest_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not found"):
        read_manifest(tmp_path / "none.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("image_id,path\na,b\n")
    with pytest.raises(UsageError, match="lacks column"):
        read_manifest(bad)
    bad.write_text(",".join(COLUMNS) + "\na,c,1.5,p,h,3,4,exp,ok,\n")
    with pytest.raises(UsageError, match="'exemplar' holds"):
        read_manifest(bad)
