"""Shape access and channel-shuffle layouts for ``irgraph.build_graph``.

Shape access in forward() (``x.shape``, ``x.size()``, ``x.size(i)``, ``x.dim()``, unpacking, and
integer arithmetic on those such as ``c // g``) gives torch.fx nodes that carry Python values, not
tensors: they add no operator to the int8 graph (the converter folds them into constant shapes).

A channel shuffle (ShuffleNet) is converted (onnx2tf + the TF converter) in PyTorch's order:
  * ``view``/``reshape`` of an (N, C, H, W) tensor to 5-D -> TRANSPOSE to NCHW, RESHAPE (as any
    reshape of a 4-D map, ``irgraph._reshape``); tensors of rank other than 4 keep PyTorch's order;
  * ``transpose``/``permute`` of a tensor of rank other than 4 -> TRANSPOSE with the same
    permutation (e.g. (0, 2, 1, 3, 4));
  * ``view``/``reshape`` back to (N, C, H, W) -> RESHAPE to (N, C, H, W), TRANSPOSE to NHWC
    (``reshape_to_map``);
  * ``contiguous`` vanishes.
A transpose/permute of a 4-D map (NHWC in the int8 model) is refused with the layer's name.

May import: torch, tinyprune.errors, tinyprune.codegen.ir. Not other stages.
"""
from __future__ import annotations

import operator

import torch

from tinyprune.codegen import ir
from tinyprune.errors import UnsupportedModelError

_SHAPE_METHODS = ("size", "dim", "numel")
_SHAPE_ATTRS = ("shape", "ndim")
_INT_OPS = {operator.floordiv, operator.mul, operator.add, operator.sub, operator.truediv, operator.mod,
            operator.neg, operator.getitem}
TRANSPOSE_TARGETS = (torch.transpose, torch.permute, torch.swapaxes, "transpose", "permute", "swapaxes")
CONTIGUOUS_TARGETS = ("contiguous",)


def is_shape_value(node, values: set) -> bool:
    """The fx node computes a Python value from tensor shapes (no tensor, no int8 operator)."""
    if node.op == "call_method" and node.target in _SHAPE_METHODS:
        return True
    if node.op == "call_function" and node.target is getattr:
        return len(node.args) > 1 and node.args[1] in _SHAPE_ATTRS
    if node.op == "call_function" and node.target in _INT_OPS:
        deps = [a for a in node.all_input_nodes]
        return bool(deps) and all(a.name in values for a in deps)
    return False


def _perm(node, r: int) -> list[int]:
    if node.target in ("permute", torch.permute):
        dims = node.kwargs.get("dims")
        if dims is None:
            dims = node.args[1] if len(node.args) == 2 and isinstance(node.args[1], (list, tuple)) else node.args[1:]
        return [int(d) % r for d in dims]
    d0 = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim0")
    d1 = node.args[2] if len(node.args) > 2 else node.kwargs.get("dim1")
    perm = list(range(r))
    perm[int(d0) % r], perm[int(d1) % r] = perm[int(d1) % r], perm[int(d0) % r]
    return perm


def transpose(b, node, src: str, ishape, oshape):
    """TRANSPOSE of a tensor the int8 model holds in PyTorch's order (rank other than 4)."""
    r = len(ishape)
    perm = _perm(node, r)
    if r == 4:
        raise UnsupportedModelError(
            f"{node.name}: transpose/permute {perm} of a 4-D (N, C, H, W) tensor has no int8 equivalent that "
            "tinyprune supports; reorder channels as a channel shuffle does: view (N, g, C/g, H, W), "
            "transpose(1, 2), view (N, C, H, W)")
    pc = b.const(f"{node.name}.perm", (r,), "int32")
    b.ops.append(ir.Op("TRANSPOSE", [src, pc], [b.act(node.name, oshape)], {"perm": perm}, node.name))


def reshape_to_map(b, node, src: str, ishape, oshape) -> bool:
    """RESHAPE of a tensor of rank other than 4 to an (N, C, H, W) map with H*W > 1: the converter
    reshapes in PyTorch's order, then transposes to NHWC. False when that is not the case."""
    if len(oshape) != 4 or len(ishape) == 4 or oshape[2] * oshape[3] == 1:
        return False
    t = f"{node.name}_nchw"
    b.tensors[t] = ir.Tensor(t, tuple(int(s) for s in oshape), "int8", ir.Quant([1.0], [0]))
    sc = b.const(f"{node.name}.shape", (4,), "int32")
    b.ops.append(ir.Op("RESHAPE", [src, sc], [t], {}, node.name))
    pc = b.const(f"{node.name}.perm", (4,), "int32")
    b.ops.append(ir.Op("TRANSPOSE", [t, pc], [b.act(node.name, oshape)], {"perm": [0, 2, 3, 1]}, node.name))
    return True
