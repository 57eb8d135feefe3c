"""Study-file validation: types, unknown keys with the nearest-key hint, path resolution."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from figureground.cli import main
from figureground.config import StudyConfig, load_study, parse_study
from figureground.errors import UsageError


def test_defaults_follow_the_study() -> None:
    study = parse_study({})
    assert study.features.models[0].name == "resnet50"
    assert study.features.models[0].layers == ("layer2",)
    assert study.variants.segmenter == "isnet"
    assert study.analyses.seed_method.zscore is False


def test_nested_values_are_typed() -> None:
    study = parse_study(
        {
            "features": {
                "models": [
                    {
                        "name": "resnet18",
                        "layers": "layer3",
                        "fallback": {"name": "efficientnet_lite0"},
                    }
                ]
            },
            "neural": {"simulate": {"snr": 2}},
        }
    )
    model = study.features.models[0]
    assert model.layers == ("layer3",)
    assert model.fallback is not None and model.fallback.name == "efficientnet_lite0"
    assert study.neural.simulate.snr == 2.0
    assert isinstance(study.neural.simulate.snr, float)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"stimulus": {}}, "did you mean 'stimuli'"),
        ({"variants": {"segmnter": "isnet"}}, "did you mean 'segmenter'"),
        ({"analyses": {"seed": {"zscor": True}}}, "did you mean 'zscore'"),
        ({"variants": {"threshold": "high"}}, "variants.threshold: 'high' is not a number"),
        ({"variants": {"inpaint": "telia"}}, "did you mean 'telea'"),
        ({"variants": {"workers": 1.5}}, "not an integer"),
        ({"analyses": {"seed": {"zscore": "yes"}}}, "not true or false"),
        ({"features": {"models": [{"layers": [{"a": 1}]}]}}, "features.models[0].layers[0]"),
        ([1, 2], "expected a mapping"),
    ],
)
def test_bad_study_files_name_the_key(data: object, message: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_study(data)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_typo_in_file_fails_in_one_line_with_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    study_file = tmp_path / "study.yaml"
    study_file.write_text("name: x\nvariants:\n  inpaint: telea\n  dilatte: 3\n")
    assert main(["run", str(study_file)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "variants.dilatte" in err[0] and "did you mean 'dilate'" in err[0]


def test_relative_paths_resolve_against_the_study_file(tmp_path: Path) -> None:
    study_file = tmp_path / "sub" / "study.yaml"
    study_file.parent.mkdir()
    study_file.write_text(yaml.safe_dump({"stimuli": {"root": "images"}, "output": "out"}))
    study = load_study(study_file)
    assert study.resolve(study.stimuli.root) == (tmp_path / "sub" / "images").resolve()


def test_invalid_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(UsageError, match="not valid YAML"):
        load_study(bad)
    with pytest.raises(UsageError, match="does not exist"):
        load_study(tmp_path / "missing.yaml")


def test_yaml_tags_that_build_objects_are_refused(tmp_path: Path) -> None:
    evil = tmp_path / "evil.yaml"
    evil.write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(UsageError, match="not valid YAML"):
        load_study(evil)


_KEYS = [f.name for f in StudyConfig.__dataclass_fields__.values() if f.name != "base_dir"]


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12))
def test_any_unknown_top_level_key_is_refused(key: str) -> None:
    if key in _KEYS:
        return
    with pytest.raises(UsageError, match=f"unknown key '{key}'"):
        parse_study({key: 1})


def test_shipped_things_study_file_is_valid() -> None:
    """docs/studies/things_gpu.yaml (the full study on a GPU) parses into the settings it names."""
    from figureground.config import load_study

    path = Path(__file__).resolve().parents[1] / "docs" / "studies" / "things_gpu.yaml"
    study = load_study(path)
    assert study.variants.segmenter == "isnet-torch:bf16"
    assert study.features.precision == "bf16" and study.analyses.rsa.backend == "torch_cuda"
    assert study.neural.participants == (1, 2, 3, 4)
    assert study.features.models[0].layers == ("layer2",)
    where = study.analyses
    assert where.readout.enabled and where.readout.device == "cuda"
    assert where.mask_partition.enabled and where.sensors.enabled and where.decoding.enabled
    assert (
        where.seed_method.mode == "fused" and where.seed_method.batch_size == 128
    )  # the faithful map


def test_earlier_seed_keys_are_read_under_their_current_names() -> None:
    from figureground.config import earlier_key_names, parse_study

    earlier = parse_study(
        {
            "features": {"models": [{"name": "resnet18", "weights": "none", "seed": 3}]},
            "neural": {"source": "simulate", "simulate": {"seed": 5}},
            "analyses": {"seed": {"zscore": True, "seed": 7}, "rsa": {"seed": 2}},
        }
    )
    current = parse_study(
        {
            "features": {"models": [{"name": "resnet18", "weights": "none", "random_state": 3}]},
            "neural": {"source": "simulate", "simulate": {"random_state": 5}},
            "analyses": {
                "seed_method": {"zscore": True, "random_state": 7},
                "rsa": {"random_state": 2},
            },
        }
    )
    assert earlier == current
    assert current.analyses.seed_method.random_state == 7 and current.analyses.rsa.random_state == 2
    assert current.features.models[0].random_state == 3
    # Cache keys hash the earlier names, so runs made before the renaming keep their keys.
    fields = earlier_key_names(dataclasses.asdict(current.analyses))
    assert fields["seed"]["seed"] == 7 and fields["rsa"]["seed"] == 2
    assert "seed_method" not in fields and "random_state" not in fields["rsa"]
    with pytest.raises(UsageError, match=r"analyses.rsa.seed and analyses.rsa.random_state"):
        parse_study({"analyses": {"rsa": {"seed": 1, "random_state": 1}}})
    with pytest.raises(
        UsageError, match=r"analyses.seed and analyses.seed_method are the same setting"
    ):
        parse_study({"analyses": {"seed": {}, "seed_method": {}}})
