"""SPLIT / SPLIT_V (several outputs) as one STRIDED_SLICE per output, for the TFLite reader: the reader
turns every split into slices with constant int32 begin/end/strides tensors made here, so every later
stage (checks, planner, emitter, accounting) keeps to single-output operators and the generated code
copies the bytes TFLite Micro's SPLIT copies.

May import: numpy, tinyprune.errors, tinyprune.codegen.ir, tinyprune.codegen.layout_ops.
"""
from __future__ import annotations

import numpy as np

from tinyprune.codegen import ir, layout_ops
from tinyprune.errors import UnsupportedModelError


def split_as_slices(kind: str, ins: list[str], outs: list[str], tensors: dict, where: str) -> list[tuple]:
    """SPLIT (inputs: axis, x) / SPLIT_V (x, size_splits, axis) -> one STRIDED_SLICE per output, with
    constant int32 begin/end/strides tensors made here (TFLite Micro's split copies the same bytes)."""
    if len(ins) != (2 if kind == "SPLIT" else 3) or not outs or any(not t for t in ins + outs):
        raise UnsupportedModelError(f"{where}: {kind} with {len(ins)} inputs and {len(outs)} outputs")
    x_name, axis_name = (ins[1], ins[0]) if kind == "SPLIT" else (ins[0], ins[2])
    axis_t = tensors[axis_name]
    if not axis_t.is_const or axis_t.dtype != "int32" or axis_t.data.size != 1:
        raise UnsupportedModelError(f"{where}: the axis must be a constant int32 scalar")
    shape = tensors[x_name].shape
    axis = int(axis_t.data.ravel()[0])
    if kind == "SPLIT":
        n = int(shape[axis % len(shape)]) if -len(shape) <= axis < len(shape) else 0
        if n % len(outs):
            raise UnsupportedModelError(f"{where}: {n} elements on axis {axis} do not split into {len(outs)} pieces")
        sizes = [n // len(outs)] * len(outs)
    else:
        st = tensors[ins[1]]
        if not st.is_const or st.dtype not in ("int32", "int64") or st.data.size != len(outs):
            raise UnsupportedModelError(f"{where}: size_splits must be a constant int32 vector of {len(outs)} values")
        sizes = st.data.ravel().tolist()
    pieces = layout_ops.split_pieces(shape, axis, sizes, where)
    axis %= len(shape)
    result = []
    for out, (b, e) in zip(outs, pieces):
        consts = []
        for k, v in (("begin", b), ("end", e), ("strides", 1)):
            vec = np.array([v if d == axis else (0 if k == "begin" else 1 if k == "strides" else shape[d])
                            for d in range(len(shape))], np.int32)
            name = f"{out}/{k}"
            tensors[name] = ir.Tensor(name=name, shape=(len(shape),), dtype="int32", quant=None, data=vec,
                                      is_const=True)
            consts.append(name)
        result.append(("STRIDED_SLICE", [x_name, *consts], [out],
                       {"begin_mask": 0, "end_mask": 0, "shrink_axis_mask": 0, "split_of": kind}))
    return result
