"""Run an ONNX segmentation network in PyTorch: batched, on any device, in any float precision.

rembg's ONNX files have a fixed batch of one and onnxruntime here is the CPU build. This
module reads the graph with the ``onnx`` package and executes it node by node with torch
operations, so the same weights run as a batch on a GPU in bfloat16 or float16 (and on the CPU
in float32, where the tests compare it with onnxruntime).

Only the operators that the rembg segmentation networks use are supported (``OPS``); any other
operator is refused by name when the file is loaded. Shapes are computed from the actual
input, so the batch size is free. Casts between float types are mapped to the chosen compute
precision; the outputs are returned as float32.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from figureground.errors import ModelUnavailableError

# Values flowing through the graph: tensors, or small integer arrays (shapes, constants).
Value = torch.Tensor | np.ndarray
_FLOAT_TYPES = {1, 10, 11, 16}  # ONNX FLOAT, FLOAT16, DOUBLE, BFLOAT16
_INT_TYPES = {6: np.int32, 7: np.int64}


def _attributes(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _symmetric_pads(pads: Sequence[int], op: str) -> tuple[int, int]:
    if len(pads) != 4 or pads[0] != pads[2] or pads[1] != pads[3]:
        raise ModelUnavailableError(f"ONNX {op} with asymmetric pads {list(pads)} is not supported")
    return int(pads[0]), int(pads[1])


def _conv(graph: OnnxTorchGraph, inputs: list[Value], attrs: dict[str, Any]) -> Value:
    x, weight = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    return functional.conv2d(
        x,
        weight,
        bias,
        stride=tuple(attrs.get("strides", (1, 1))),
        padding=_symmetric_pads(attrs.get("pads", (0, 0, 0, 0)), "Conv"),
        dilation=tuple(attrs.get("dilations", (1, 1))),
        groups=int(attrs.get("group", 1)),
    )


def _max_pool(graph: OnnxTorchGraph, inputs: list[Value], attrs: dict[str, Any]) -> Value:
    return functional.max_pool2d(
        inputs[0],
        kernel_size=tuple(attrs["kernel_shape"]),
        stride=tuple(attrs.get("strides", attrs["kernel_shape"])),
        padding=_symmetric_pads(attrs.get("pads", (0, 0, 0, 0)), "MaxPool"),
        ceil_mode=bool(attrs.get("ceil_mode", 0)),
    )


def _resize(graph: OnnxTorchGraph, inputs: list[Value], attrs: dict[str, Any]) -> Value:
    x = inputs[0]
    sizes = inputs[3] if len(inputs) > 3 else None
    scales = inputs[2] if len(inputs) > 2 else None
    mode = attrs.get("mode", b"nearest").decode()
    transform = attrs.get("coordinate_transformation_mode", b"half_pixel").decode()
    if sizes is not None and len(sizes):
        target = {"size": tuple(int(s) for s in np.asarray(sizes)[2:])}
    elif scales is not None and len(scales):
        target = {"scale_factor": tuple(float(s) for s in np.asarray(scales)[2:])}
    else:
        raise ModelUnavailableError("ONNX Resize without sizes or scales is not supported")
    if mode == "linear" and transform in ("half_pixel", "pytorch_half_pixel", "align_corners"):
        return functional.interpolate(
            x, mode="bilinear", align_corners=transform == "align_corners", **target
        )
    if mode == "nearest" and transform == "asymmetric":
        return functional.interpolate(x, mode="nearest", **target)
    raise ModelUnavailableError(f"ONNX Resize mode={mode} with {transform} is not supported")


def _concat(graph: OnnxTorchGraph, inputs: list[Value], attrs: dict[str, Any]) -> Value:
    axis = int(attrs["axis"])
    if all(isinstance(v, np.ndarray) for v in inputs):
        return np.concatenate(inputs, axis=axis)
    return torch.cat([graph.as_tensor(v) for v in inputs], dim=axis)


def _slice(graph: OnnxTorchGraph, inputs: list[Value], attrs: dict[str, Any]) -> Value:
    data, starts, ends = inputs[0], np.asarray(inputs[1]), np.asarray(inputs[2])
    axes = np.asarray(inputs[3]) if len(inputs) > 3 else np.arange(len(starts))
    steps = np.asarray(inputs[4]) if len(inputs) > 4 else np.ones(len(starts), np.int64)
    index: list[slice] = [slice(None)] * data.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        index[int(axis)] = slice(int(start), int(min(end, np.iinfo(np.int64).max)), int(step))
    return data[tuple(index)]


def _cast(graph: OnnxTorchGraph, inputs: list[Value], attrs: dict[str, Any]) -> Value:
    to = int(attrs["to"])
    value = inputs[0]
    if to in _FLOAT_TYPES:
        return graph.as_tensor(value).to(graph.dtype)
    if to in _INT_TYPES and isinstance(value, np.ndarray):
        return value.astype(_INT_TYPES[to])
    raise ModelUnavailableError(f"ONNX Cast to type {to} is not supported")


def _add(graph: OnnxTorchGraph, inputs: list[Value], attrs: dict[str, Any]) -> Value:
    if all(isinstance(v, np.ndarray) for v in inputs):
        return inputs[0] + inputs[1]
    return graph.as_tensor(inputs[0]) + graph.as_tensor(inputs[1])


def _mul(graph: OnnxTorchGraph, inputs: list[Value], attrs: dict[str, Any]) -> Value:
    if all(isinstance(v, np.ndarray) for v in inputs):
        return inputs[0] * inputs[1]
    return graph.as_tensor(inputs[0]) * graph.as_tensor(inputs[1])


def _shape(graph: OnnxTorchGraph, inputs: list[Value], attrs: dict[str, Any]) -> Value:
    return np.asarray(tuple(inputs[0].shape), dtype=np.int64)


OPS: dict[str, Callable[[OnnxTorchGraph, list[Value], dict[str, Any]], Value]] = {
    "Conv": _conv,
    "Relu": lambda g, i, a: functional.relu(i[0]),
    "Sigmoid": lambda g, i, a: torch.sigmoid(i[0]),
    "MaxPool": _max_pool,
    "Resize": _resize,
    "Upsample": lambda g, i, a: _resize(g, [i[0], None, i[1]], a),
    "Concat": _concat,
    "Add": _add,
    "Mul": _mul,
    "Slice": _slice,
    "Shape": _shape,
    "Cast": _cast,
}


class OnnxTorchGraph(nn.Module):
    """An ONNX graph as a torch module that returns the graph's first output.

    Parameters
    ----------
    path
        The ``.onnx`` file (read with ``onnx.load``; no code in it is executed).
    dtype
        Compute precision: ``torch.float32``, ``torch.bfloat16`` or ``torch.float16``.

    Raises
    ------
    ModelUnavailableError
        The file cannot be read, or uses an operator that is not supported (named).
    """

    def __init__(self, path: str | Path, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        import onnx
        from onnx import numpy_helper

        try:
            model = onnx.load(str(path))
        except Exception as exc:  # protobuf DecodeError, OSError
            raise ModelUnavailableError(f"{path} is not a readable ONNX file ({exc})") from None
        graph = model.graph
        self.dtype = dtype
        self.input_name = graph.input[0].name
        self.output_name = graph.output[0].name
        self.constants: dict[str, np.ndarray] = {}
        self._names: dict[str, str] = {}
        for index, initializer in enumerate(graph.initializer):
            array = numpy_helper.to_array(initializer)
            if array.dtype.kind == "f":
                buffer_name = f"w{index}"
                self.register_buffer(buffer_name, torch.from_numpy(array.astype(np.float32)))
                self._names[initializer.name] = buffer_name
            else:
                self.constants[initializer.name] = array
        self.nodes = _needed_nodes(graph.node, self.output_name)
        for node in self.nodes:
            if node.op_type == "Constant":
                self.constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        unsupported = sorted({n.op_type for n in self.nodes} - {*OPS, "Constant"})
        if unsupported:
            raise ModelUnavailableError(
                f"{path} uses ONNX operators {', '.join(unsupported)}, which the torch runner "
                f"does not support (supported: {', '.join(sorted(OPS))})"
            )
        self.to(dtype)
        self._attrs = [_attributes(node) for node in self.nodes]
        # After node k, the values no later node reads are dropped: peak memory is the live
        # activations, not all of them.
        last_use: dict[str, int] = {}
        for index, node in enumerate(self.nodes):
            for name in node.input:
                last_use[name] = index
        kept = {self.output_name, self.input_name, *self.constants, *self._names}
        self._drop_after: list[list[str]] = [[] for _ in self.nodes]
        for name, index in last_use.items():
            if name and name not in kept:
                self._drop_after[index].append(name)

    def as_tensor(self, value: Value) -> torch.Tensor:
        """A graph value as a tensor on the module's device."""
        if isinstance(value, torch.Tensor):
            return value
        device = next(iter(self.buffers())).device
        return torch.as_tensor(value, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The first graph output for the batch ``x`` (N, C, H, W), as float32."""
        values: dict[str, Value] = {self.input_name: x.to(self.dtype), **self.constants}
        values.update({name: getattr(self, buffer) for name, buffer in self._names.items()})
        for node, attrs, drop in zip(self.nodes, self._attrs, self._drop_after, strict=True):
            if node.op_type != "Constant":
                inputs = [values[name] if name else None for name in node.input]
                values[node.output[0]] = OPS[node.op_type](self, inputs, attrs)
                del inputs
            for name in drop:
                values.pop(name, None)
        return self.as_tensor(values[self.output_name]).float()


def _needed_nodes(nodes: Sequence[Any], output: str) -> list[Any]:
    """The nodes the output depends on, ordered so each runs after its inputs' producers.

    Converted files need not list nodes in order (float16 conversion appends its casts).
    """
    producer = {name: index for index, node in enumerate(nodes) for name in node.output}
    order: list[int] = []
    state: dict[int, bool] = {}  # False while being visited, True when placed
    stack: list[tuple[int, bool]] = [(producer[output], False)] if output in producer else []
    while stack:
        index, inputs_placed = stack.pop()
        if inputs_placed:
            state[index] = True
            order.append(index)
            continue
        if index in state:
            continue
        state[index] = False
        stack.append((index, True))
        for name in nodes[index].input:
            if name in producer and producer[name] not in state:
                stack.append((producer[name], False))
    return [nodes[index] for index in order]
