"""The int8 graph that code generation, memory planning and the pruning stage's estimates share.

A Graph is a list of Ops in execution order over named Tensors. It is built either from an
int8 TFLite flatbuffer (codegen.tflite_reader) or, for pruning estimates, from a PyTorch model's
shapes (prune stage) -- both must describe the same ops the same way so that the estimated
arena/flash equals what codegen reports for the converted model.

Conventions (TFLite's):
  * activations are NHWC (or (N, C) / (N, L, C)); dtype is the numpy dtype name ("int8", "int32", ...)
  * CONV_2D weights [out_c, kh, kw, in_c / groups] (TFLite's grouped convolution: groups = input
    channels / the filter's; see conv_groups); DEPTHWISE_CONV_2D weights [1, kh, kw, out_c];
    FULLY_CONNECTED weights [out, in]; biases int32 [out_c]
  * Op.kind is the TFLite builtin operator name ("CONV_2D", "ADD", ...)
  * Op.options keys (only those that apply): stride_h, stride_w, dilation_h, dilation_w,
    padding ("SAME" | "VALID"), depth_multiplier, fused_activation ("NONE" | "RELU" | "RELU6" | ...),
    filter_h, filter_w (pools), axis (concat), keep_dims, axes (mean), perm (transpose), beta (softmax),
    align_corners, half_pixel_centers (resize_nearest_neighbor)

This module may not import other tinyprune modules (other than numpy-free stdlib).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from math import prod
from typing import Any

DTYPE_BYTES = {"int8": 1, "uint8": 1, "int16": 2, "int32": 4, "int64": 8, "float32": 4, "bool": 1}


@dataclass
class Quant:
    scales: list[float]
    zero_points: list[int]
    axis: int = 0  # quantized dimension for per-channel parameters


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: str = "int8"
    quant: Quant | None = None
    data: Any = None          # numpy array for constants (weights/biases); None for activations
    is_const: bool = False    # lives in flash (weights, biases, constant shapes)

    @property
    def nbytes(self) -> int:
        return prod(self.shape) * DTYPE_BYTES[self.dtype] if self.shape else DTYPE_BYTES[self.dtype]


@dataclass
class Op:
    kind: str
    inputs: list[str]           # tensor names ("" for an omitted optional input)
    outputs: list[str]
    options: dict[str, Any] = field(default_factory=dict)
    name: str = ""              # human-readable node name (from the model) for error messages


@dataclass
class Graph:
    tensors: dict[str, Tensor]
    ops: list[Op]
    inputs: list[str]
    outputs: list[str]
    name: str = "model"

    def tensor(self, name: str) -> Tensor:
        return self.tensors[name]

    def producers(self) -> dict[str, int]:
        return {t: i for i, op in enumerate(self.ops) for t in op.outputs}

    def consumers(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for i, op in enumerate(self.ops):
            for t in op.inputs:
                if t:
                    out.setdefault(t, []).append(i)
        return out


def conv_groups(op: Op, graph: Graph) -> int:
    """Groups of a CONV_2D: input channels / the filter's input channels (1 for an ordinary
    convolution and for every other op). model_checks refuses a CONV_2D where this does not divide."""
    if op.kind != "CONV_2D" or len(op.inputs) < 2 or not op.inputs[0] or not op.inputs[1]:
        return 1
    fc = graph.tensors[op.inputs[1]].shape[-1]
    return max(graph.tensors[op.inputs[0]].shape[-1] // fc, 1) if fc > 0 else 1
