"""Lowering of TRANSPOSE and STRIDED_SLICE to the 4-D firmware kernels (``tp_transpose_s8``,
``tp_strided_slice_s8``).

A TRANSPOSE of any rank is the same byte movement as a smaller one after
  * dropping size-1 dimensions (they do not move anything), and
  * merging input dimensions that stay adjacent and in the same order under the permutation
    (they move as one block).
A channel shuffle's 5-D ``(1, H, W, g, C/g)`` with perm ``(0, 1, 2, 4, 3)`` becomes the 3-D
``(H*W, g, C/g)`` with perm ``(0, 2, 1)``. The TFLite reader calls ``lower_transpose`` at read time
(so a TRANSPOSE that stays above 4-D is refused before anything is written) and the emitter calls
it again to write the kernel's dims/perm: one function, one rule.

STRIDED_SLICE: ``resolve_strided_slice`` turns TFLite's begin/end/strides and masks into the first
index, count and step per axis, as TFLite Micro's reference does at run time
(StridedSlicePadIndices, StridedSliceStartForAxis / StridedSliceEndForAxis); the reader refuses
the options TFLite Micro ignores (ellipsis/new-axis masks, offset), and the emitter writes the
resolved indices, so the kernel only copies.

SPLIT / SPLIT_V (several outputs) are read as one STRIDED_SLICE per output (``split_pieces`` gives their
begin/end along the axis): the same bytes, and every other stage keeps to single-output operators.

May import: tinyprune.errors only.
"""
from __future__ import annotations

from math import prod

from tinyprune.errors import UnsupportedModelError

KERNEL_RANK = 4  # tp_transpose_s8 takes 4-D dims and perm


def reduce_transpose(shape, perm) -> tuple[list[int], list[int]]:
    """(dims, perm) of the smallest transpose that moves the bytes like ``perm`` on ``shape``
    (rank >= 1; a transpose that moves nothing is ``([n], [0])``)."""
    shape = [int(s) for s in shape]
    perm = [int(p) for p in perm]
    keep = [a for a in range(len(shape)) if shape[a] != 1]
    renum = {a: i for i, a in enumerate(keep)}
    p1 = [renum[p] for p in perm if shape[p] != 1]
    s1 = [shape[a] for a in keep]
    groups: list[list[int]] = []           # runs, in output order, of consecutive input axes
    for p in p1:
        if groups and groups[-1][-1] + 1 == p:
            groups[-1].append(p)
        else:
            groups.append([p])
    by_input = sorted(range(len(groups)), key=lambda k: groups[k][0])
    dims = [prod(s1[a] for a in groups[k]) for k in by_input]
    rank_of = {k: i for i, k in enumerate(by_input)}
    new_perm = [rank_of[k] for k in range(len(groups))]
    if not dims:
        return [1], [0]
    return dims, new_perm


def lower_transpose(shape, perm, where: str = "TRANSPOSE") -> tuple[list[int], list[int]]:
    """(dims[4], perm[4]) for ``tp_transpose_s8``, padded with leading size-1 axes; refuses a
    transpose that still has more than 4 dimensions after dropping and merging."""
    dims, p = reduce_transpose(shape, perm)
    if len(dims) > KERNEL_RANK:
        raise UnsupportedModelError(
            f"{where}: TRANSPOSE of shape {list(shape)} with permutation {list(perm)} still has {len(dims)} "
            f"dimensions ({dims}) after dropping size-1 dimensions and merging dimensions that stay adjacent; "
            f"at most {KERNEL_RANK} are supported",
            hint="reorder the model so that each transpose moves at most 4 independent axes "
                 "(e.g. a channel shuffle over (H, W, groups, channels))")
    off = KERNEL_RANK - len(dims)
    return [1] * off + dims, list(range(off)) + [q + off for q in p]


def _clamp(v: int, lo: int, hi: int) -> int:
    return hi if v > hi else lo if v < lo else v


def resolve_strided_slice(shape, begin, end, strides, begin_mask: int, end_mask: int, shrink_mask: int,
                          where: str = "STRIDED_SLICE") -> tuple[list[int], list[int], list[int], list[int], list[int]]:
    """(in_dims[4], begin[4], stride[4], count[4], out_shape) of a STRIDED_SLICE of ``shape`` (rank 1-4):
    output element k along axis d is input element begin[d] + k * stride[d]; ``out_shape`` drops the
    shrunk axes (what the output tensor must have)."""
    r = len(shape)
    if not 1 <= r <= KERNEL_RANK or not len(begin) == len(end) == len(strides) == r:
        raise UnsupportedModelError(f"{where}: STRIDED_SLICE of a {r}-D input with {len(begin)}/{len(end)}/"
                                    f"{len(strides)} begin/end/strides values; 1-D to 4-D inputs with one value "
                                    "per axis are supported")
    first, step, count, out_shape = [], [], [], []
    for d in range(r):
        n, s = int(shape[d]), int(strides[d])
        if s == 0:
            raise UnsupportedModelError(f"{where}: stride 0 on axis {d}")
        lo, hi = (0, n) if s > 0 else (-1, n - 1)
        b = int(begin[d])
        b = _clamp(b + n if b < 0 else b, lo, hi)
        if begin_mask >> d & 1:
            b = 0 if s > 0 else n - 1
        if shrink_mask >> d & 1:
            e = b if b >= n else b + 1
        else:
            e = int(end[d])
            e = _clamp(e + n if e < 0 else e, lo, hi)
            if end_mask >> d & 1:
                e = n if s > 0 else -1
        c = max(-(-(e - b) // s), 0)
        if c == 0:
            raise UnsupportedModelError(f"{where}: STRIDED_SLICE selects no element on axis {d} (begin {b}, end "
                                        f"{e}, stride {s}); empty tensors are not supported")
        first.append(b)
        step.append(s)
        count.append(c)
        if not shrink_mask >> d & 1:
            out_shape.append(c)
    off = KERNEL_RANK - r
    return ([1] * off + [int(x) for x in shape], [0] * off + first, [1] * off + step, [1] * off + count,
            out_shape)


def split_pieces(shape, axis: int, sizes, where: str = "SPLIT") -> list[tuple[int, int]]:
    """[(begin, end)] along ``axis`` of each output of a SPLIT (``sizes`` all equal) or SPLIT_V (one
    size may be -1: the rest of the axis), refused unless they tile the axis exactly."""
    r = len(shape)
    if not -r <= axis < r:
        raise UnsupportedModelError(f"{where}: axis {axis} out of range for a {r}-D input")
    n = int(shape[axis % r])
    sizes = [int(v) for v in sizes]
    if sizes.count(-1) == 1:
        sizes[sizes.index(-1)] = n - sum(v for v in sizes if v != -1)
    if not sizes or any(v < 1 for v in sizes) or sum(sizes) != n:
        raise UnsupportedModelError(f"{where}: split sizes {sizes} do not divide the {n} elements of axis "
                                    f"{axis % r} into non-empty pieces")
    out, b = [], 0
    for v in sizes:
        out.append((b, b + v))
        b += v
    return out
