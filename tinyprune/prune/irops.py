"""Activations with parameters and channel slicing for ``irgraph.build_graph``, as the convert stage
(onnx2tf + the TF converter) emits them:

  * ``nn.Tanh`` / ``torch.tanh`` -> TANH;
  * ``nn.LeakyReLU`` / ``F.leaky_relu`` -> LEAKY_RELU (the slope is an option: no array);
  * ``nn.PReLU`` -> PRELU with a constant int8 slope tensor: (1, 1, C) for ``num_parameters=C`` on an
    (N, C, H, W) map, (1, 1, 1) for one shared slope (``(C,)`` / ``(1,)`` on an (N, C) tensor);
  * ``torch.chunk`` / ``torch.split`` / ``x.chunk`` / ``x.split`` add nothing themselves; each piece
    taken from them, and each ``x[...]`` slice of a tensor (``x[:, :c]``, ``x[:, :, 1:]``, ...), is one
    STRIDED_SLICE (begin/end/strides int32 constants, folded into code: no array).

May import: torch, tinyprune.errors, tinyprune.codegen.ir. Not other stages.
"""
from __future__ import annotations

import operator

import torch
import torch.nn as nn
import torch.nn.functional as F

from tinyprune.codegen import ir
from tinyprune.errors import UnsupportedModelError

TANH_MODULES = (nn.Tanh,)
TANH_FUNCS = (torch.tanh, F.tanh, "tanh")
LEAKY_FUNCS = (F.leaky_relu, "leaky_relu")
SPLIT_TARGETS = (torch.chunk, torch.split, "chunk", "split", torch.tensor_split, "tensor_split")


def unary(b, node, src: str, oshape, kind: str, options: dict | None = None, name: str | None = None) -> None:
    b.ops.append(ir.Op(kind, [src], [b.act(node.name, oshape)], dict(options or {}), name or node.name))


def leaky_relu(b, node, src: str, oshape, m: nn.Module | None = None) -> None:
    if m is not None:
        slope = float(m.negative_slope)
    else:
        slope = node.kwargs.get("negative_slope", node.args[1] if len(node.args) > 1 else 0.01)
    unary(b, node, src, oshape, "LEAKY_RELU", {"alpha": float(slope)}, node.target if m is not None else None)


def prelu(b, node, src: str, oshape, m: nn.PReLU) -> None:
    n = int(m.num_parameters)
    if n != 1 and (len(oshape) < 2 or oshape[1] != n):
        raise UnsupportedModelError(f"layer {node.target!r}: PReLU with {n} slopes on a tensor of shape "
                                    f"{tuple(oshape)}; one slope or one per channel (dimension 1) is supported")
    shape = (1, 1, n) if len(oshape) == 4 else (n,)
    alpha = b.const(f"{node.target}.weight", shape, "int8")
    b.ops.append(ir.Op("PRELU", [src, alpha], [b.act(node.name, oshape)], {}, node.target))


def is_split(node) -> bool:
    return node.op in ("call_function", "call_method") and node.target in SPLIT_TARGETS


def _slice(b, node, src: str, rank: int, oshape) -> None:
    consts = [b.const(f"{node.name}.{k}", (rank,), "int32") for k in ("begin", "end", "strides")]
    b.ops.append(ir.Op("STRIDED_SLICE", [src, *consts], [b.act(node.name, oshape)],
                       {"begin_mask": 0, "end_mask": 0, "shrink_axis_mask": 0}, node.name))


def getitem(b, node, src: str, ishape, oshape) -> bool:
    """A piece of a chunk/split or an ``x[...]`` slice -> STRIDED_SLICE; False if ``node`` is not one."""
    if node.target is not operator.getitem:
        return False
    base, idx = node.args[0], node.args[1]
    if not (is_split(base) or isinstance(idx, (slice, tuple, int))):
        return False
    items = idx if isinstance(idx, tuple) else (idx,)
    if any(not isinstance(i, (slice, int)) and i is not Ellipsis for i in items) and not is_split(base):
        raise UnsupportedModelError(f"{node.name}: indexing with {idx!r} has no int8 equivalent that tinyprune "
                                    "supports; slice with constants (x[:, a:b]) or use torch.chunk / torch.split")
    if tuple(oshape) == tuple(ishape):
        b.alias[node.name] = src        # x[:] or a one-piece split: the converter drops it
        return True
    _slice(b, node, src, len(ishape), oshape)
    return True
