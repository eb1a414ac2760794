"""Scratch bytes of the Cortex-M DSP kernel variants (firmware/kernels/arm): the Python twin of
``tp_<op>_s8_arm_get_buffer_size`` in C, which the public ``tp_<op>_s8_get_buffer_size`` returns
when the firmware is built with TP_USE_ARM_DSP for a core with the DSP extension.

    dsp_scratch_bytes(op: ir.Op, graph: ir.Graph) -> int

The memory plan must reserve these bytes for each op when the generated code may be compiled for a
Cortex-M4/M7 (tinyprune/codegen/scratch.py, kernels "dsp"); a DSP kernel given less scratch runs the
reference kernel instead (correct, but not faster). Formulas (8 = alignment slack):
    CONV_2D            8 + 64 * ceil(kh*kw*in_c / 4) + 16 * out_c
    DEPTHWISE_CONV_2D  8 + kh*kw*c*2 + c*16  when depth_multiplier == 1 and c % 4 == 0, else 0
    FULLY_CONNECTED    8 + 8 * ceil(in / 4)
    others             0
This module may import only tinyprune.codegen.ir.
"""
from __future__ import annotations

from math import prod

from tinyprune.codegen import ir

ALIGN_SLACK = 8


def dsp_scratch_bytes(op: ir.Op, graph: ir.Graph) -> int:
    if op.kind == "CONV_2D":
        f = graph.tensors[op.inputs[1]].shape          # [out_c, kh, kw, in_c]
        k = f[1] * f[2] * f[3]
        return ALIGN_SLACK + 64 * ((k + 3) // 4) + 16 * f[0]
    if op.kind == "DEPTHWISE_CONV_2D":
        x = graph.tensors[op.inputs[0]].shape          # [n, h, w, c]
        f = graph.tensors[op.inputs[1]].shape          # [1, kh, kw, c * ch_mult]
        c_in, c_out = x[-1], f[3]
        if c_out != c_in or c_out % 4:
            return 0
        return ALIGN_SLACK + f[1] * f[2] * c_out * 2 + c_out * 16
    if op.kind == "FULLY_CONNECTED":
        w = graph.tensors[op.inputs[1]].shape          # [out, in]
        depth = w[-1] if len(w) >= 2 else prod(w)
        return ALIGN_SLACK + 8 * ((depth + 3) // 4)
    return 0
