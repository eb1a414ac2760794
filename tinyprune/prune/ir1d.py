"""1-D models (input (1, C, L)) for ``irgraph.build_graph``: what the convert stage (onnx2tf + the TF
converter) emits for Conv1d, MaxPool1d / AvgPool1d and a mean over time, measured on converted models:

  * a (N, C, L) tensor is (1, L, C) in the int8 model (channels last), the input too;
  * Conv1d -> RESHAPE to (1, 1, L, C) + CONV_2D with filter [O, 1, k, I] (stride_h 1, fused BatchNorm1d
    and ReLU as for Conv2d) with output (1, 1, L', O);
  * padding: SAME when the output length equals the input length (stride 1, padding (k - 1) / 2), else a
    PAD of the 3-D tensor (int32 [3, 2] paddings) before the RESHAPE, then a VALID conv (onnx2tf's rule:
    SAME only when the spatial size is kept);
  * MaxPool1d / AvgPool1d / F.max_pool1d / F.avg_pool1d -> MAX_POOL_2D / AVERAGE_POOL_2D 1 x k, VALID;
  * consecutive 1-D convs and pools stay 4-D: the converter drops the RESHAPE pairs between them;
    any other consumer gets the tensor RESHAPEd back to (1, L, C) (RESHAPEs are aliases for the
    memory planner, so they cost no arena);
  * ``x.mean(-1)`` (mean over time) -> MEAN axes [1] (int32 [1] const) on the 3-D tensor;
  * flatten of (N, C, L) -> TRANSPOSE to (1, C, L) (when L > 1) + RESHAPE, as PyTorch orders it.
Grouped/depthwise Conv1d and padded or ceil-mode 1-D pooling are refused with the layer's name.

May import: torch, tinyprune.errors, tinyprune.codegen.ir. Not other stages.
"""
from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F

from tinyprune.codegen import ir
from tinyprune.errors import UnsupportedModelError

POOL1D_FUNCS = {F.max_pool1d: "MAX_POOL_2D", F.avg_pool1d: "AVERAGE_POOL_2D"}
POOL1D_ARGS = ("kernel_size", "stride", "padding")
_Q = ir.Quant([1.0], [0])


def _one(v) -> int:
    return int(v[0]) if isinstance(v, (tuple, list)) else int(v)


def nlc(shape) -> tuple:
    """(N, C, L) in PyTorch -> (N, L, C) in the int8 model."""
    n, c, length = (int(s) for s in shape)
    return (n, length, c)


def act3(b, name: str, shape) -> str:
    """A 3-D activation (channels last)."""
    b.tensors[name] = ir.Tensor(name, nlc(shape), "int8", _Q)
    return name


def act4(b, name: str, shape) -> str:
    """The (1, 1, L, C) map of a 1-D conv or pool output; remembered so that other consumers get it
    reshaped back to 3-D (``Builder.src``)."""
    n, c, length = (int(s) for s in shape)
    b.tensors[name] = ir.Tensor(name, (n, 1, length, c), "int8", _Q)
    b.maps1d.add(name)
    return name


def to3(b, x: str) -> str:
    """(1, 1, L, C) -> (1, L, C) RESHAPE (once per tensor)."""
    name = f"{x}_3d"
    if name not in b.tensors:
        n, _, length, c = b.tensors[x].shape
        b.tensors[name] = ir.Tensor(name, (n, length, c), "int8", _Q)
        b.ops.append(ir.Op("RESHAPE", [x, b.const(f"{x}.shape3", (3,), "int32")], [name], {}, x))
    return name


def to4(b, x: str) -> str:
    """A 3-D (1, L, C) tensor -> (1, 1, L, C) RESHAPE (once per tensor); a 1-D map stays as it is."""
    if x in b.maps1d:
        return x
    name = f"{x}_4d"
    if name not in b.tensors:
        n, length, c = b.tensors[x].shape
        b.tensors[name] = ir.Tensor(name, (n, 1, length, c), "int8", _Q)
        b.ops.append(ir.Op("RESHAPE", [x, b.const(f"{x}.shape4", (4,), "int32")], [name], {}, x))
    return name


def conv(b, node, m: nn.Conv1d, raw: str, ishape, oshape, out_name: str):
    """RESHAPE (+ PAD) + CONV_2D of a Conv1d; returns (op, MACs). ``raw`` is the input's tensor name
    (3-D, or a 1-D map), ``out_name`` the fx node whose name the output takes (after a folded BatchNorm)."""
    if m.groups != 1:
        raise UnsupportedModelError(f"layer {node.target!r}: grouped or depthwise Conv1d (groups={m.groups}) has no "
                                    "int8 TFLite equivalent that tinyprune supports",
                                    hint="use groups=1, or a Conv2d on (N, C, 1, L)")
    if m.padding_mode != "zeros":
        raise UnsupportedModelError(f"layer {node.target!r}: Conv1d padding_mode={m.padding_mode!r} is not supported",
                                    hint="use padding_mode='zeros'")
    k, s, d = _one(m.kernel_size), _one(m.stride), _one(m.dilation)
    lin, lout = int(ishape[2]), int(oshape[2])
    if isinstance(m.padding, str):
        pad, padding = 0, ("VALID" if m.padding == "valid" else "SAME")
    else:
        pad = _one(m.padding)
        padding = "SAME" if (pad and lout == lin) or (k == 1 and s == 1 and pad == 0) else "VALID"
    x = raw
    if padding == "VALID" and pad:
        x3 = to3(b, x) if x in b.maps1d else x
        pt = f"{node.target}_pad"
        b.tensors[pt] = ir.Tensor(pt, (1, lin + 2 * pad, m.in_channels), "int8", _Q)
        b.ops.append(ir.Op("PAD", [x3, b.const(f"{node.target}.paddings", (3, 2), "int32")], [pt],
                           {"paddings": [[0, 0], [pad, pad], [0, 0]]}, node.target))
        x = pt
    x = to4(b, x)
    w = b.const(f"{node.target}.weight", (m.out_channels, 1, k, m.in_channels), "int8")
    bias = b.const(f"{node.target}.bias", (m.out_channels,), "int32")
    op = ir.Op("CONV_2D", [x, w, bias], [act4(b, out_name, oshape)],
               {"stride_h": 1, "stride_w": s, "dilation_h": 1, "dilation_w": d, "padding": padding,
                "fused_activation": "NONE"}, node.target)
    b.ops.append(op)
    return op, lout * m.out_channels * k * m.in_channels


def pool(b, node, raw: str, oshape, kind: str, kernel, stride, padding, ceil_mode, name: str):
    """MAX_POOL_2D / AVERAGE_POOL_2D 1 x k of a 1-D map; returns the op."""
    if _one(padding or 0) or ceil_mode:
        raise UnsupportedModelError(f"layer {name!r}: padded or ceil-mode 1-D pooling has no int8 TFLite "
                                    "equivalent that tinyprune supports", hint="use padding=0, ceil_mode=False")
    k = _one(kernel)
    s = _one(stride) if stride else k
    op = ir.Op(kind, [to4(b, raw)], [act4(b, node.name, oshape)],
               {"stride_h": 1, "stride_w": s, "filter_h": 1, "filter_w": k, "padding": "VALID",
                "fused_activation": "NONE"}, name)
    b.ops.append(op)
    return op


def module_pool(m) -> tuple | None:
    """(kind, kernel, stride, padding, ceil_mode) of nn.MaxPool1d / nn.AvgPool1d, else None."""
    if isinstance(m, nn.MaxPool1d):
        if _one(m.dilation) != 1:
            return None
        return "MAX_POOL_2D", m.kernel_size, m.stride, m.padding, m.ceil_mode
    if isinstance(m, nn.AvgPool1d):
        return "AVERAGE_POOL_2D", m.kernel_size, m.stride, m.padding, m.ceil_mode
    return None


def mean(b, node, x3: str, ishape, oshape, dims, keepdim: bool):
    """MEAN over time (axis 2 of (N, C, L)) of a 3-D tensor -> MEAN axes [1]."""
    dims = [dims] if isinstance(dims, int) else list(dims or [])
    if [d % 3 for d in dims] != [2]:
        raise UnsupportedModelError(f"{node.name}: mean over dims {dims} of an (N, C, L) tensor; only the mean over "
                                    "time (dim -1 / 2) is supported")
    out = act3(b, node.name, oshape) if len(oshape) == 3 else b.act(node.name, oshape)
    b.ops.append(ir.Op("MEAN", [x3, b.const(f"{node.name}.axes", (1,), "int32")], [out],
                       {"axes": [1], "keep_dims": bool(keepdim)}, node.name))


def flatten(b, node, x3: str, ishape, oshape):
    """Flatten of (N, C, L) in PyTorch's order: TRANSPOSE to (N, C, L) when L > 1, then RESHAPE."""
    x = x3
    if int(ishape[2]) > 1:
        t = f"{node.name}_ncl"
        b.tensors[t] = ir.Tensor(t, tuple(int(s) for s in ishape), "int8", _Q)
        b.ops.append(ir.Op("TRANSPOSE", [x, b.const(f"{node.name}.perm", (3,), "int32")], [t], {"perm": [0, 2, 1]},
                           node.name))
        x = t
    b.ops.append(ir.Op("RESHAPE", [x, b.const(f"{node.name}.shape", (len(oshape),), "int32")],
                       [b.act(node.name, oshape)], {}, node.name))
