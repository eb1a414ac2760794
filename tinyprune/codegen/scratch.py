"""Scratch-buffer sizes of the kernels, per op: the Python twin of each C kernel's
``tp_<op>_s8_get_buffer_size``. The memory planner adds these to the arena.

Contract (owned by the code-generation stage; the planner and the pruning estimates call it):
    scratch_bytes(op: ir.Op, graph: ir.Graph, kernels: str = "portable") -> int
kernels is
  * "portable": the reference C kernels (firmware/kernels/tp_*_s8.c) -- no scratch at all;
  * "dsp": the Cortex-M4/M7 variants (firmware/kernels/arm, selected by TP_USE_ARM_DSP), whose
    ``tp_<op>_s8_arm_get_buffer_size`` are (8 bytes of alignment slack each):
        CONV_2D            8 + 48 * ceil(K / 4) + 16 * out_c + (4 * ceil(K / 4) if K % 4 else 0),
                           K = kh*kw*in_c (columns, per-channel table, the last filter row padded);
                           0 for a grouped CONV_2D (ir.conv_groups > 1: it runs the reference)
        DEPTHWISE_CONV_2D  8 + kh*kw*c*2 + c*16 + c  when depth_multiplier == 1 and c % 4 == 0, else 0
                           (int16 filter, folded biases + requantisation table, a padding row)
        FULLY_CONNECTED    8 + 8 * ceil(in / 4)
  * "cmsis-nn": ARM CMSIS-NN v6+ (an upper bound over its plain-C and DSP builds, so one plan
    serves every non-MVE core): arm_convolve_wrapper_s8 2 * align4(in_c*kh*kw) * 2 bytes (int16
    im2col of two columns; covers the 1x1 and 1xN paths); arm_depthwise_conv_wrapper_s8
    in_c*kh*kw*2 (its _opt path; the 3x3 path needs 0); arm_fully_connected_s8 0;
    arm_avgpool_s8 in_c * 4 (int32 sums); a grouped CONV_2D 0 (it runs tinyprune's reference,
    cmsis.py); others 0. The generated code checks CMSIS-NN's own
    *_get_buffer_size at run time.
This module may import only tinyprune.codegen.ir.
"""
from __future__ import annotations

from math import prod

from tinyprune.codegen import ir

ALIGN_SLACK = 8


def _dsp(op: ir.Op, graph: ir.Graph) -> int:
    if op.kind == "CONV_2D" and ir.conv_groups(op, graph) == 1:
        f = graph.tensors[op.inputs[1]].shape          # [out_c, kh, kw, in_c]
        k = f[1] * f[2] * f[3]
        return ALIGN_SLACK + 48 * ((k + 3) // 4) + 16 * f[0] + (4 * ((k + 3) // 4) if k % 4 else 0)
    if op.kind == "DEPTHWISE_CONV_2D":
        c_in = graph.tensors[op.inputs[0]].shape[-1]
        f = graph.tensors[op.inputs[1]].shape          # [1, kh, kw, c * ch_mult]
        if f[3] != c_in or f[3] % 4:
            return 0
        return ALIGN_SLACK + f[1] * f[2] * f[3] * 2 + f[3] * 16 + f[3]
    if op.kind == "FULLY_CONNECTED":
        w = graph.tensors[op.inputs[1]].shape          # [out, in]
        depth = w[-1] if len(w) >= 2 else prod(w)
        return ALIGN_SLACK + 8 * ((depth + 3) // 4)
    return 0


def _cmsis(op: ir.Op, graph: ir.Graph) -> int:
    if op.kind == "CONV_2D" and ir.conv_groups(op, graph) == 1:
        f = graph.tensors[op.inputs[1]].shape
        cols = f[1] * f[2] * f[3]
        return 2 * (cols + (-cols) % 4) * 2
    if op.kind == "DEPTHWISE_CONV_2D":
        f = graph.tensors[op.inputs[1]].shape
        c_in = graph.tensors[op.inputs[0]].shape[-1]
        return c_in * f[1] * f[2] * 2
    if op.kind == "AVERAGE_POOL_2D":
        return graph.tensors[op.inputs[0]].shape[-1] * 4
    return 0


def scratch_bytes(op: ir.Op, graph: ir.Graph, kernels: str = "portable") -> int:
    if kernels == "portable":
        return 0
    if kernels == "dsp":
        return _dsp(op, graph)
    if kernels == "cmsis-nn":
        return _cmsis(op, graph)
    raise ValueError(f"unknown kernel variant {kernels!r} (portable, dsp, cmsis-nn)")
