"""Bad inputs not covered by test_image_loading / test_stimuli / test_models / test_things_meg:
a decompression bomb header, infinite MEG samples, manifests and study files through the CLI."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from figureground import cli
from figureground.errors import ImageLoadError
from figureground.reliability import bad_inputs


def test_bomb_header_is_refused_in_one_line(tmp_path: Path) -> None:
    from figureground.stimuli import load_rgb

    path = tmp_path / "bomb_01a.png"
    path.write_bytes(bad_inputs._bomb_png(40_000))
    assert path.stat().st_size < 100_000
    with pytest.raises(ImageLoadError) as info:
        load_rgb(path)
    assert "bomb_01a.png" in str(info.value) and "\n" not in str(info.value)


def test_meg_with_infinite_or_nan_samples_and_short_metadata(tmp_path: Path) -> None:
    outcomes = bad_inputs.bad_meg(tmp_path)
    assert [o.case for o in outcomes] == [
        "MEG with NaN samples",
        "MEG with infinite samples",
        "metadata mismatched with epochs",
    ]
    assert all(o.ok for o in outcomes), [o.detail for o in outcomes]


@pytest.mark.parametrize(
    ("path_text", "needle"), [("../outside.png", "leaves"), ("/etc/passwd", "absolute")]
)
def test_manifest_paths_outside_the_root_through_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], path_text: str, needle: str
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    csv = tmp_path / "list.csv"
    pd.DataFrame({"path": [path_text]}).to_csv(csv, index=False)
    args = ["variants", str(root), "--layout", "csv", "--csv", str(csv), "--out",
            str(tmp_path / "o"), "--segmenter", "grabcut"]  # fmt: skip
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and path_text in err[0]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("variants:\n  workers: many\n", "variants.workers"),
        ("varaints:\n  workers: 1\n", "varaints"),
        ("name: !!python/object/apply:os.system [id]\n", "study.yaml"),
    ],
)
def test_bad_study_files_through_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, needle: str
) -> None:
    study = tmp_path / "study.yaml"
    study.write_text(text)
    assert cli.main(["run", str(study)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]
    assert not (tmp_path / "run").exists()


def test_disk_full_anywhere_in_a_command_is_one_line(monkeypatch, capsys) -> None:
    import errno

    from figureground import cli
    from figureground.commands import report as report_command

    def full(args):
        raise OSError(errno.ENOSPC, "No space left on device", "/data/run/x.png")

    monkeypatch.setattr(report_command, "run", full)
    assert cli.main(["report", "/data/run"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no space left" in err[0] and "/data/run/x.png" in err[0]
