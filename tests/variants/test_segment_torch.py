"""ISNet in PyTorch (``isnet-torch``): the ONNX runner against onnxruntime, the masks against
rembg's, and the batched variants path against the one-image-at-a-time path."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper, save
from test_segment import photo_composite
from test_variants_run import output_files, things_folder

from figureground.errors import ModelUnavailableError, UsageError
from figureground.stimuli import load_rgb
from figureground.variants import make_variants, modelfiles, segmenters
from figureground.variants.batched import DeviceError
from figureground.variants.onnx_torch import OnnxTorchGraph
from figureground.variants.segmenters import TorchIsnetSegmenter

needs_isnet = pytest.mark.skipif(
    not modelfiles.isnet_model_path().is_file(),
    reason="ISNet model absent: run `figureground fetch-models isnet` (make test does)",
)


def small_graph(path: Path, op: str = "Relu") -> Path:
    """A graph with each operator ISNet uses, saved like a float16 conversion would: float16
    weights, a cast after the input, casts around Resize, nodes out of order."""
    rng = np.random.default_rng(0)

    def weight(name: str, *shape: int) -> TensorProto:
        return numpy_helper.from_array(rng.normal(0, 0.3, shape).astype(np.float16), name)

    def ints(name: str, values: list[int]) -> TensorProto:
        return helper.make_node(
            "Constant", [], [name], value=numpy_helper.from_array(np.array(values, np.int64))
        )

    nodes = [
        helper.make_node("Conv", ["x16", "w1", "b1"], ["c1"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node(op, ["c1"], ["r1"]),
        helper.make_node(
            "MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1
        ),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], pads=[2, 2, 2, 2], dilations=[2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Shape", ["r2"], ["shape"]),
        ints("zero", [0]),
        ints("two", [2]),
        helper.make_node("Slice", ["shape", "zero", "two", "zero"], ["nc"]),
        ints("hw", [9, 9]),
        helper.make_node("Concat", ["nc", "hw"], ["sizes"], axis=0),
        helper.make_node("Cast", ["r2"], ["r2f"], to=TensorProto.FLOAT),
        helper.make_node(
            "Resize",
            ["r2f", "", "", "sizes"],
            ["up_f"],
            mode="linear",
            coordinate_transformation_mode="half_pixel",
        ),
        helper.make_node("Cast", ["up_f"], ["up"], to=TensorProto.FLOAT16),
        helper.make_node("Concat", ["up", "r1"], ["cat"], axis=1),
        helper.make_node("Conv", ["cat", "w3", "b3"], ["c3"]),
        helper.make_node("Add", ["c3", "c3"], ["twice"]),
        helper.make_node("Sigmoid", ["twice"], ["s16"]),
        helper.make_node("Cast", ["s16"], ["y"], to=TensorProto.FLOAT),
    ]
    nodes.insert(5, helper.make_node("Cast", ["x"], ["x16"], to=TensorProto.FLOAT16))
    nodes = nodes[1:] + nodes[:1]  # out of order, as after float16 conversion
    graph = helper.make_graph(
        nodes,
        "small",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 17, 17])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [
            weight("w1", 8, 3, 3, 3),
            weight("b1", 8),
            weight("w2", 6, 8, 3, 3),
            weight("b2", 6),
            weight("w3", 1, 14, 1, 1),
            weight("b3", 1),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    model.ir_version = 8
    save(model, str(path))
    return path


def test_runner_matches_onnxruntime_on_every_isnet_operator(tmp_path: Path) -> None:
    path = small_graph(tmp_path / "small.onnx")
    x = np.random.default_rng(1).normal(0, 1, (3, 3, 17, 17)).astype(np.float32)
    reference = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        ["y"], {"x": x}
    )[0]
    with torch.inference_mode():
        ours = OnnxTorchGraph(path)(torch.from_numpy(x)).numpy()
        half = OnnxTorchGraph(path, torch.bfloat16)(torch.from_numpy(x)).numpy()
    assert ours.shape == reference.shape == (3, 1, 9, 9)
    # onnxruntime computes in float16, we in float32: differences of float16 rounding only.
    np.testing.assert_allclose(ours, reference, atol=2e-3)
    assert ours.dtype == np.float32 and 0 < np.abs(half - ours).max() < 0.05
    with torch.inference_mode():  # each sample of a batch is computed on its own
        alone = OnnxTorchGraph(path)(torch.from_numpy(x[1:2])).numpy()
    np.testing.assert_allclose(alone[0], ours[1], atol=1e-6)


def test_runner_refuses_unsupported_operators_and_unreadable_files(tmp_path: Path) -> None:
    path = small_graph(tmp_path / "tanh.onnx", op="Tanh")
    with pytest.raises(ModelUnavailableError, match="Tanh"):
        OnnxTorchGraph(path)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00not a protobuf" * 10)
    with pytest.raises(ModelUnavailableError, match=r"bad\.onnx"):
        OnnxTorchGraph(bad)


def test_unknown_precision_is_one_clear_error() -> None:
    with pytest.raises(UsageError, match="fp64"):
        segmenters.resolve_segmenter("isnet-torch:fp64")


@pytest.mark.network_model
@needs_isnet
def test_isnet_torch_masks_match_rembg_in_one_batch() -> None:
    spec = segmenters.resolve_segmenter("isnet-torch:fp32")
    assert spec.precision == "fp32" and spec.model_sha256 == modelfiles.ISNET_SHA256
    ours = segmenters.build_segmenter(spec)
    rembg = segmenters.build_segmenter(segmenters.resolve_segmenter("isnet"))
    images = [photo_composite(name)[0] for name in ("coffee", "chelsea")]
    masks = ours.infer([ours.prepare(image) for image in images])  # one batch of two
    for image, mask in zip(images, masks, strict=True):
        alpha = ours.restore(mask, image.shape[:2])
        reference = rembg(image, "photo")
        # rembg's fp16 network on onnxruntime vs the same weights in float32 torch.
        assert np.abs(alpha - reference).mean() < 1 / 255
        agree = ((alpha > 0.5) == (reference > 0.5)).mean()
        assert agree > 0.999


# ------------------------------------------------------------------ the batched variants path


class FakeBatched:
    """A batched segmenter whose mask is the blue channel above 150 (the test scenes' object),
    at 32 x 32 like a network's input. ``fail_batches`` makes every batch of more than one
    image run out of memory; a batch holding an image whose prepared bytes hash to
    ``poison`` fails (as a broken device or network would)."""

    def __init__(self, fail_batches: bool = False, poison: str = "") -> None:
        self.fail_batches, self.poison, self.batch_sizes = fail_batches, poison, []

    @staticmethod
    def prepare(rgb: np.ndarray) -> np.ndarray:
        return cv2.resize(rgb, (32, 32), interpolation=cv2.INTER_AREA)

    def infer(self, prepared: list[np.ndarray]) -> np.ndarray:
        self.batch_sizes.append(len(prepared))
        if self.fail_batches and len(prepared) > 1:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore text")
        if any(hashlib.sha256(p.tobytes()).hexdigest() == self.poison for p in prepared):
            raise ValueError("illegal memory access")
        return np.stack([(p[..., 2] > 150).astype(np.uint8) * 255 for p in prepared])

    @staticmethod
    def restore(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        resized = cv2.resize(mask, shape[::-1], interpolation=cv2.INTER_LINEAR)
        return resized.astype(np.float32) / 255.0

    def __call__(self, rgb: np.ndarray, image_id: str) -> np.ndarray:
        return self.restore(self.infer([self.prepare(rgb)])[0], rgb.shape[:2])


def register(monkeypatch: pytest.MonkeyPatch, name: str, segmenter: object, batched: bool) -> None:
    kind = segmenters.SegmenterKind(
        lambda _: segmenters.SegmenterSpec(kind=name, spec=name),
        lambda _: segmenter,
        "test segmenter",
        batched=batched,
    )
    monkeypatch.setitem(segmenters.SEGMENTERS, name, kind)


def images_only(out: Path) -> dict[str, bytes]:
    return {k: v for k, v in output_files(out).items() if k.endswith(".png")}


@pytest.mark.parametrize("fail_batches", [False, True])
def test_batched_path_writes_what_the_one_by_one_path_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_batches: bool
) -> None:
    root = things_folder(tmp_path / "src", concepts=3, exemplars=2, corrupt=True)
    batched = FakeBatched(fail_batches)
    register(monkeypatch, "fake-batched", batched, batched=True)
    register(monkeypatch, "fake-single", FakeBatched(), batched=False)

    one = make_variants(root, tmp_path / "one", segmenter="fake-single")
    many = make_variants(root, tmp_path / "many", segmenter="fake-batched", batch_size=4, workers=2)

    assert images_only(tmp_path / "one") == images_only(tmp_path / "many")
    assert len(images_only(tmp_path / "many")) == 3 * 6  # 6 images; the corrupt one failed
    status = many.set_index("image_id")["status"]
    assert status.to_dict() == one.set_index("image_id")["status"].to_dict()
    assert status["broken_01b"] == "failed" and (status.drop("broken_01b") == "ok").all()
    if fail_batches:  # every batch ran out of memory and was retried one image at a time
        assert batched.batch_sizes == [4, 1, 1, 1, 1, 2, 1, 1]
    else:
        assert batched.batch_sizes == [4, 2]  # the corrupt image never reached the device

    batched.batch_sizes.clear()  # a rerun reuses every finished image
    again = make_variants(root, tmp_path / "many", segmenter="fake-batched", batch_size=4)
    assert batched.batch_sizes == [] and again["status"].tolist() == many["status"].tolist()


def test_device_failure_stops_the_run_in_one_line_and_keeps_finished_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = things_folder(tmp_path / "src", concepts=3, exemplars=2)
    last = root / "object_images" / "thing2" / "thing2_02b.png"
    poison = hashlib.sha256(FakeBatched.prepare(load_rgb(last)).tobytes()).hexdigest()
    register(monkeypatch, "fake-broken", FakeBatched(poison=poison), batched=True)
    out = tmp_path / "out"
    with pytest.raises(DeviceError) as caught:
        make_variants(root, out, segmenter="fake-broken", batch_size=4)
    assert "illegal memory access" in str(caught.value) and "\n" not in str(caught.value)
    done = sorted(p.stem for p in (out / "records").rglob("*.json"))
    assert len(done) == 4  # the first batch finished and was kept

    healthy = FakeBatched()
    register(monkeypatch, "fake-broken", healthy, batched=True)
    table = make_variants(root, out, segmenter="fake-broken", batch_size=4)
    assert (table["status"] == "ok").all() and healthy.batch_sizes == [2]


@pytest.mark.gpu
@needs_isnet
def test_isnet_torch_on_gpu_in_bf16_agrees_with_fp32() -> None:
    image = photo_composite("coffee")[0]
    gpu = TorchIsnetSegmenter(segmenters.resolve_segmenter("isnet-torch:bf16"), device="cuda")
    cpu = TorchIsnetSegmenter(segmenters.resolve_segmenter("isnet-torch:fp32"), device="cpu")
    agree = ((gpu(image, "coffee") > 0.5) == (cpu(image, "coffee") > 0.5)).mean()
    assert agree > 0.995
