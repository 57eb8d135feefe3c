"""Model registry, weights resolution and loading errors, preprocessing, layer names."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torchvision

from figureground import cli
from figureground.errors import ModelUnavailableError, UsageError
from figureground.features import models, weights


@pytest.fixture()
def empty_torch_home(tmp_path, monkeypatch):
    """An empty weights cache and no network (connection checks and downloads fail)."""
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setattr(weights, "can_reach", lambda url, timeout=0: False)

    def no_download(*args, **kwargs):
        raise AssertionError("must not try to download")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    return home


@pytest.fixture()
def resnet18_file(tmp_path):
    """A seeded random resnet18 state dict saved by the test."""
    torch.manual_seed(3)
    path = tmp_path / "resnet18_random.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    return path


def test_offline_missing_weights_names_the_file_and_url(empty_torch_home):
    with pytest.raises(ModelUnavailableError) as info:
        models.load_model("resnet50", "IMAGENET1K_V1")
    message = str(info.value)
    assert "resnet50-0676ba61.pth" in message
    assert str(empty_torch_home / "hub" / "checkpoints") in message
    assert "https://download.pytorch.org/models/resnet50-0676ba61.pth" in message
    assert "\n" not in message


def test_offline_missing_weights_cli_one_line(empty_torch_home, tmp_path, capsys):
    (tmp_path / "imgs").mkdir()
    from PIL import Image

    Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / "imgs" / "red.png")
    code = cli.main(["features", str(tmp_path / "imgs"), "--out", str(tmp_path / "f.zarr")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert "resnet50-0676ba61.pth" in err[-1] and "Traceback" not in "\n".join(err)
    assert not (tmp_path / "f.zarr").exists()


def test_cached_file_with_wrong_hash_is_refused(empty_torch_home):
    cache = empty_torch_home / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    (cache / "resnet50-0676ba61.pth").write_bytes(b"not the real weights")
    with pytest.raises(ModelUnavailableError, match="0676ba61"):
        models.load_model("resnet50", "IMAGENET1K_V1")


def test_hash_prefix_parsing():
    assert weights.hash_prefix_of("resnet50-0676ba61.pth") == "0676ba61"
    assert weights.hash_prefix_of("mine.pth") is None


def test_weights_file_loads_exactly(resnet18_file, tmp_path):
    loaded = models.load_model("resnet18", str(resnet18_file))
    reference = torch.load(resnet18_file, weights_only=True)
    for key, value in loaded.module.state_dict().items():
        assert torch.equal(value, reference[key]), key
    assert loaded.weights.sha256 == weights.sha256_file(resnet18_file)
    from safetensors.torch import save_file

    st_path = tmp_path / "w.safetensors"
    save_file(reference, str(st_path))
    again = models.load_model("resnet18", str(st_path))
    assert torch.equal(again.module.fc.weight, reference["fc.weight"])


def test_wrong_architecture_counts_keys(resnet18_file):
    with pytest.raises(UsageError) as info:
        models.load_model("resnet50", str(resnet18_file))
    message = str(info.value)
    assert "do not fit resnet50" in message and "keys missing" in message
    missing = len(
        set(torchvision.models.resnet50().state_dict())
        - set(torch.load(resnet18_file, weights_only=True))
    )
    assert f"{missing} keys missing" in message
    assert "\n" not in message


class _RunsCode:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_with_code_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pth"
    torch.save({"fc.weight": _RunsCode(str(marker))}, path)
    with pytest.raises(UsageError, match="refused") as info:
        models.load_model("resnet18", str(path))
    assert not marker.exists()
    assert "\n" not in str(info.value)


def test_truncated_file(resnet18_file):
    data = resnet18_file.read_bytes()
    resnet18_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(UsageError, match="truncated") as info:
        models.load_model("resnet18", str(resnet18_file))
    assert "\n" not in str(info.value)


def test_untrained_weights_follow_the_seed_without_touching_global_rng():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = models.load_model("resnet18", "none", seed=5)
    after = torch.rand(1)
    b = models.load_model("resnet18", "none", seed=5)
    c = models.load_model("resnet18", "none", seed=6)
    assert torch.equal(before, after)
    assert torch.equal(a.module.conv1.weight, b.module.conv1.weight)
    assert not torch.equal(a.module.conv1.weight, c.module.conv1.weight)
    assert a.weights.seed == 5 and a.weights.name == "none"


def test_preprocessing_matches_torchvision_presets():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(300, 380, 3), dtype=np.uint8)
    tensor = torch.from_numpy(image).permute(2, 0, 1)
    loaded = models.load_model("resnet18", "none")
    expected = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.transforms()(tensor)
    torch.testing.assert_close(loaded.preprocessing(image), expected)
    v2 = models._preset_preprocessing(torchvision.models.ResNet50_Weights.IMAGENET1K_V2, "v2")
    assert (v2.resize, v2.crop) == (232, 224)
    assert (loaded.preprocessing.resize, loaded.preprocessing.crop) == (256, 224)
    custom = loaded.preprocessing.with_overrides(resize=64, crop=48)
    assert custom(image).shape == (3, 48, 48) and "overridden" in custom.origin


def test_unknown_layer_and_model_suggest_names():
    loaded = models.load_model("resnet18", "none")
    names = models.list_layers(loaded)
    assert "layer2" in names and "layer2.1.relu_1" in names and "fc" in names
    with pytest.raises(UsageError, match="layer2"):
        models.check_layers(names, ["layer22"], "resnet18")
    with pytest.raises(UsageError, match="resnet18"):
        models.load_model("resnet81", "none")
    with pytest.raises(UsageError, match="IMAGENET1K_V1"):
        models.load_model("resnet18", "IMAGENET9K")


def test_timm_and_custom_sources(tmp_path, monkeypatch):
    timm_model = models.load_model("timm:resnet18", "none", seed=1)
    assert timm_model.name == "timm:resnet18" and "layer2" in models.list_layers(timm_model)
    (tmp_path / "my_nets.py").write_text(
        "import torch\n\ndef tiny():\n    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3),"
        " torch.nn.ReLU())\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    custom = models.load_model("custom:my_nets:tiny", "none", seed=2)
    assert models.list_layers(custom)[1:] == ["0", "1"]
    path = tmp_path / "tiny.pth"
    torch.save(custom.module.state_dict(), path)
    again = models.load_model("custom:my_nets:tiny", str(path))
    assert torch.equal(again.module[0].weight, custom.module[0].weight)


def test_efficientnet_lite0_shipped_weights_recognise_a_cat():
    import skimage.data

    loaded = models.load_model("efficientnet_lite0", "DEFAULT")
    batch = loaded.preprocessing(skimage.data.chelsea())[None]
    with torch.inference_mode():
        top5 = loaded.module(batch).topk(5).indices[0].tolist()
    assert set(top5) & {281, 282, 283, 284, 285}, top5
    assert top5[0] in {281, 282, 283, 284, 285}
    assert loaded.weights.sha256 and "_blocks.3" in models.list_layers(loaded)


def test_layers_command_lists_names(capsys):
    assert cli.main(["layers", "resnet18"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "layer2" in lines and lines.index("layer2") < lines.index("layer2.0.conv1")
