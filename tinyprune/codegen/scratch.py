"""Scratch-buffer sizes of the kernels, per op: the Python twin of each C kernel's
``tp_<op>_get_buffer_size``. The memory planner adds these to the arena.

Contract (owned by the code-generation stage; the planner and the pruning estimates call it):
    scratch_bytes(op: ir.Op, graph: ir.Graph, kernels: str = "portable") -> int
kernels is "portable" (reference C), "dsp" (Cortex-M4/M7 SIMD variants) or "cmsis-nn".
"""
from __future__ import annotations

from tinyprune.codegen import ir


def scratch_bytes(op: ir.Op, graph: ir.Graph, kernels: str = "portable") -> int:
    # Placeholder until the kernels land: the reference kernels need no scratch.
    return 0
