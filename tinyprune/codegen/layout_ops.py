"""Lowering of TRANSPOSE to the 4-D firmware kernel (``tp_transpose_s8``).

A TRANSPOSE of any rank is the same byte movement as a smaller one after
  * dropping size-1 dimensions (they do not move anything), and
  * merging input dimensions that stay adjacent and in the same order under the permutation
    (they move as one block).
A channel shuffle's 5-D ``(1, H, W, g, C/g)`` with perm ``(0, 1, 2, 4, 3)`` becomes the 3-D
``(H*W, g, C/g)`` with perm ``(0, 2, 1)``. The TFLite reader calls ``lower_transpose`` at read time
(so a TRANSPOSE that stays above 4-D is refused before anything is written) and the emitter calls
it again to write the kernel's dims/perm: one function, one rule.

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
