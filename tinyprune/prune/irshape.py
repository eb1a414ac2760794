"""Shape access and channel-shuffle layouts for ``irgraph.build_graph``.

Shape access in forward() (``x.shape``, ``x.size()``, ``x.size(i)``, ``x.dim()``, unpacking, and
integer arithmetic on those such as ``c // g``) gives torch.fx nodes that carry Python values, not
tensors: they add no operator to the int8 graph (the converter folds them into constant shapes).

A channel shuffle (ShuffleNet) is what the converter emits in channels-last order:
  * ``view``/``reshape`` of an (N, C, H, W) tensor to (N, c1, ..., ck, H, W) with c1*...*ck = C
    -> RESHAPE to (N, H, W, c1, ..., ck): the tensor is "split" (k channel dimensions, last);
  * ``transpose``/``permute`` of a split tensor that only reorders its channel dimensions
    -> TRANSPOSE with that order on the trailing dimensions (e.g. perm (0, 1, 2, 4, 3));
  * ``view``/``reshape``/``flatten`` of a split tensor back to (N, C, H, W) -> RESHAPE to NHWC;
  * ``contiguous`` vanishes.
Anything else on a split tensor is refused with the layer's name.

May import: torch, tinyprune.errors, tinyprune.codegen.ir. Not other stages.
"""
from __future__ import annotations

import operator
from math import prod

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


def _split_shape(shape, k):
    """Channels-last shape of a split torch shape (N, c1..ck, H, W)."""
    return (shape[0], shape[-2], shape[-1], *shape[1:1 + k])


def reshape(b, node, src: str, ishape, oshape, split: dict) -> bool:
    """RESHAPE into or out of a split layout; False when neither side is split (plain reshape)."""
    k_in = split.get(node.args[0].name)
    k_out = len(oshape) - 3
    if k_in is None:
        if (len(ishape) == 4 and k_out >= 2 and oshape[0] == ishape[0] and tuple(oshape[-2:]) == tuple(ishape[2:])
                and prod(oshape[1:1 + k_out]) == ishape[1]):
            _emit_reshape(b, node, src, _split_shape(oshape, k_out))
            split[node.name] = k_out
            return True
        return False
    if len(oshape) == 4 and oshape[0] == ishape[0] and tuple(oshape[2:]) == tuple(ishape[-2:]):
        _emit_reshape(b, node, src, (oshape[0], oshape[2], oshape[3], oshape[1]))
        return True
    raise UnsupportedModelError(
        f"{node.name}: reshape of the channel-split tensor {list(ishape)} to {list(oshape)}; after splitting the "
        "channels (as in a channel shuffle) tinyprune supports only reshaping back to (N, C, H, W)")


def transpose(b, node, src: str, ishape, oshape, split: dict):
    """TRANSPOSE of a split tensor's channel dimensions (a channel shuffle)."""
    k = split.get(node.args[0].name)
    r = len(ishape)
    if node.target in ("permute", torch.permute):
        dims = node.args[1:] if len(node.args) > 2 or not isinstance(node.args[1], (list, tuple)) else node.args[1]
        dims = node.kwargs.get("dims", dims)
        perm = [int(d) % r for d in dims]
    else:
        d0 = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim0")
        d1 = node.args[2] if len(node.args) > 2 else node.kwargs.get("dim1")
        perm = list(range(r))
        perm[int(d0) % r], perm[int(d1) % r] = perm[int(d1) % r], perm[int(d0) % r]
    if k is None or perm[0] != 0 or perm[-2:] != [r - 2, r - 1]:
        raise UnsupportedModelError(
            f"{node.name}: transpose/permute {perm} of a {r}-D tensor; tinyprune supports only reordering the "
            "channel groups of a channel shuffle (view (N, g, C/g, H, W), transpose(1, 2), view (N, C, H, W))")
    perm_t = [0, 1, 2] + [2 + p for p in perm[1:1 + k]]
    out = b.act_shaped(node.name, _split_shape(oshape, k))
    pc = b.const(f"{node.name}.perm", (len(perm_t),), "int32")
    b.ops.append(ir.Op("TRANSPOSE", [src, pc], [out], {"perm": perm_t}, node.name))
    split[node.name] = k


def _emit_reshape(b, node, src, tshape):
    sc = b.const(f"{node.name}.shape", (len(tshape),), "int32")
    b.ops.append(ir.Op("RESHAPE", [src, sc], [b.act_shaped(node.name, tshape)], {}, node.name))

