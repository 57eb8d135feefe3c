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


# ---- resnet50_coco: the ResNet50 backbone of torchvision's COCO-trained Faster R-CNN ----

COCO_FILE = "fasterrcnn_resnet50_fpn_coco-258fb6c6.pth"


@pytest.fixture(scope="module")
def detector_file(tmp_path_factory):
    """A seeded random Faster R-CNN (ResNet50-FPN) and its state dict, written by the test.

    The backbone's batch-norm parameters and statistics are randomised, so that a mapping
    which lost or swapped them would change the activations.
    """
    from torchvision.models.detection import fasterrcnn_resnet50_fpn

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(11)
        detector = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None).eval()
        with torch.no_grad():
            for module in detector.backbone.body.modules():
                if isinstance(module, torch.nn.BatchNorm2d):
                    module.weight.uniform_(0.5, 1.5)
                    module.bias.normal_(0.0, 0.1)
                    module.running_mean.normal_(0.0, 0.1)
                    module.running_var.uniform_(0.5, 2.0)
    path = tmp_path_factory.mktemp("detector") / "faster_rcnn_random.pth"
    torch.save(detector.state_dict(), path)
    return detector, path


def _layer2(module, batch):
    from torchvision.models.feature_extraction import create_feature_extractor

    with torch.inference_mode():
        return create_feature_extractor(module, ["layer2"])(batch)["layer2"]


def _detector_layer2(detector, batch):
    # IntermediateLayerGetter returns layer1..layer4 as "0".."3".
    with torch.inference_mode():
        return detector.backbone.body(batch)["1"]


@pytest.mark.parametrize("layout", ["detector", "frozen_batchnorm", "bare_resnet50"])
def test_resnet50_coco_file_matches_the_detector_backbone(detector_file, tmp_path, layout):
    detector, path = detector_file
    if layout != "detector":
        state = torch.load(path, weights_only=True)
        if layout == "frozen_batchnorm":
            # The trained detector's FrozenBatchNorm2d layout: no num_batches_tracked.
            state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
        else:
            prefix = "backbone.body."
            state = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
            state.update(
                {f"fc.{k}": v for k, v in torch.nn.Linear(2048, 1000).state_dict().items()}
            )
        path = tmp_path / f"{layout}.pth"
        torch.save(state, path)
    loaded = models.load_model("resnet50_coco", str(path))
    assert isinstance(loaded.module, torchvision.models.ResNet)
    assert isinstance(loaded.module.fc, torch.nn.Identity)
    batch = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    ours = _layer2(loaded.module, batch)
    assert ours.shape == (2, 512, 28, 28)
    torch.testing.assert_close(ours, _detector_layer2(detector, batch), rtol=0, atol=1e-5)
    if layout == "frozen_batchnorm":
        # The trained detector's own backbone (FrozenBatchNorm2d) computes the same, up to
        # rounding (it folds the statistics into one scale and shift: about 2e-5 here).
        from torchvision.ops.misc import FrozenBatchNorm2d

        frozen = torchvision.models.resnet50(norm_layer=FrozenBatchNorm2d).eval()
        prefix = "backbone.body."
        result = frozen.load_state_dict(
            {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)},
            strict=False,
        )
        assert set(result.missing_keys) == {"fc.weight", "fc.bias"}
        assert not result.unexpected_keys
        torch.testing.assert_close(ours, _layer2(frozen, batch), rtol=1e-4, atol=1e-4)
    body = detector.backbone.body.state_dict()
    for key, value in loaded.module.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(value, body[key]), key
    assert loaded.weights.name == "file" and loaded.weights.sha256 == weights.sha256_file(path)


def test_resnet50_coco_refuses_another_architecture_in_one_line(resnet18_file):
    with pytest.raises(UsageError, match="do not fit resnet50_coco") as info:
        models.load_model("resnet50_coco", str(resnet18_file))
    assert "keys missing" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["COCO_V1", "DEFAULT"])
def test_resnet50_coco_offline_names_the_file(empty_torch_home, name):
    with pytest.raises(ModelUnavailableError) as info:
        models.load_model("resnet50_coco", name)
    message = str(info.value)
    assert COCO_FILE in message
    assert str(empty_torch_home / "hub" / "checkpoints") in message
    assert f"https://download.pytorch.org/models/{COCO_FILE}" in message
    assert "\n" not in message


def test_resnet50_coco_cached_file_with_wrong_hash_is_refused(empty_torch_home, detector_file):
    # A file the test writes cannot have the SHA-256 prefix 258fb6c6 of the official one.
    cache = empty_torch_home / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    (cache / COCO_FILE).write_bytes(detector_file[1].read_bytes())
    with pytest.raises(ModelUnavailableError, match="258fb6c6") as info:
        models.load_model("resnet50_coco", "COCO_V1")
    assert COCO_FILE in str(info.value) and "\n" not in str(info.value)


def test_resnet50_coco_found_in_the_cache(empty_torch_home, detector_file, monkeypatch):
    # The hash check is tested above; here it is bypassed to test resolution and loading.
    detector, path = detector_file
    cache = empty_torch_home / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    (cache / COCO_FILE).write_bytes(path.read_bytes())
    monkeypatch.setattr(weights, "verify_hash_prefix", weights.sha256_file)
    loaded = models.load_model("resnet50_coco", "COCO_V1")
    assert loaded.weights.name == "COCO_V1"
    assert loaded.weights.file == str(cache / COCO_FILE)
    assert loaded.weights.sha256 == weights.sha256_file(path)
    batch = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(
        _layer2(loaded.module, batch), _detector_layer2(detector, batch), rtol=0, atol=1e-5
    )


def test_resnet50_coco_layers_preprocessing_and_untrained(detector_file, capsys):
    detector, _ = detector_file
    loaded = models.load_model("resnet50_coco", "none", seed=4)
    names = models.list_layers(loaded)
    for name in ("conv1", "layer1", "layer2", "layer3", "layer4", "avgpool"):
        assert name in names, name
    again = models.load_model("resnet50_coco", "none", seed=4)
    assert torch.equal(loaded.module.conv1.weight, again.module.conv1.weight)
    assert loaded.weights.seed == 4 and loaded.weights.name == "none"
    # The detector normalises with ImageNet mean/std; resize 256 / crop 224 as resnet50 V1.
    pre = loaded.preprocessing
    assert list(pre.mean) == list(detector.transform.image_mean)
    assert list(pre.std) == list(detector.transform.image_std)
    assert (pre.resize, pre.crop) == (256, 224)
    with pytest.raises(UsageError, match="COCO_V1"):
        models.load_model("resnet50_coco", "IMAGENET1K_V1")
    assert cli.main(["layers", "resnet50_coco"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert all(name in lines for name in ("layer1", "layer2", "layer3", "layer4"))
