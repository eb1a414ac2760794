"""``--kernels cmsis-nn``: lower ops to ARM CMSIS-NN (v6+ API) calls where CMSIS-NN is bit-exact with
TFLite Micro (TFLM's own cmsis_nn kernels call the same functions with the same parameters):

    CONV_2D            arm_convolve_wrapper_s8
    DEPTHWISE_CONV_2D  arm_depthwise_conv_wrapper_s8
    FULLY_CONNECTED    arm_fully_connected_s8 (per-tensor) / arm_fully_connected_per_channel_s8
    ADD                arm_elementwise_add_s8 (same shapes; broadcasting uses the portable kernel)
    AVERAGE_POOL_2D    arm_avgpool_s8          MAX_POOL_2D  arm_max_pool_s8
    SOFTMAX            arm_softmax_s8
Every other op, and a grouped CONV_2D (not every CMSIS-NN v6 release takes one), uses the portable
tp_* kernel (codegen.json says so per layer: ``kernel``). Scratch comes from scratch.py (variant "cmsis-nn",
an upper bound over CMSIS-NN's plain-C and DSP builds); the generated code checks CMSIS-NN's own
``*_get_buffer_size`` at run time and returns TP_ERR_SCRATCH rather than overrun (MVE builds, whose
buffers differ, are not supported). The CMSIS-NN checkout is found through ``--cmsis-nn PATH`` or
``CMSIS_NN_PATH``; the Makefile compiles its sources (``make CMSIS_NN_PATH=...`` to move it).

This module may import tinyprune.codegen (ir, quant), tinyprune.errors.
"""
from __future__ import annotations

import os
from pathlib import Path

from tinyprune.errors import UserInputError

CMSIS_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "AVERAGE_POOL_2D", "MAX_POOL_2D",
                       "SOFTMAX"})
SOURCE_DIRS = ("ConvolutionFunctions", "FullyConnectedFunctions", "NNSupportFunctions", "PoolingFunctions",
               "SoftmaxFunctions", "BasicMathFunctions")


def find_cmsis_nn(path: str | os.PathLike | None) -> Path:
    p = path or os.environ.get("CMSIS_NN_PATH")
    if not p:
        raise UserInputError("--kernels cmsis-nn needs a CMSIS-NN checkout",
                             hint="pass --cmsis-nn PATH or set CMSIS_NN_PATH (git clone "
                                  "https://github.com/ARM-software/CMSIS-NN)")
    root = Path(p).expanduser().resolve()
    if not (root / "Include" / "arm_nnfunctions.h").is_file() or not (root / "Source").is_dir():
        raise UserInputError(f"{root} is not a CMSIS-NN checkout (no Include/arm_nnfunctions.h or Source/)",
                             hint="point --cmsis-nn / CMSIS_NN_PATH at the repository root")
    header = (root / "Include" / "arm_nnfunctions.h").read_text(errors="replace")
    if "arm_convolve_wrapper_s8" not in header or "cmsis_nn_context" not in header:
        raise UserInputError(f"{root}: CMSIS-NN older than v6 (no arm_convolve_wrapper_s8/cmsis_nn_context)")
    return root


def sources(root: Path) -> list[Path]:
    return sorted(p for d in SOURCE_DIRS for p in (root / "Source" / d).glob("*.c")
                  if not p.name.endswith(("_f32.c", "_f16.c")))


def _tile(h, w) -> str:
    return f"{{ {w}, {h} }}"   # cmsis_nn_tile is { w, h }


def lower(low, op, op_i: int, pre: str):
    """Return (defs, call) using CMSIS-NN for ``op`` or None when the portable kernel must be used."""
    from math import prod

    from tinyprune.codegen import ir, quant
    from tinyprune.codegen.emit import _dims, _pad
    g = low.g
    if op.kind not in CMSIS_OPS or ir.conv_groups(op, g) > 1:
        return None
    ok = "== ARM_CMSIS_NN_SUCCESS ? TP_OK : TP_ERR_ARG)"
    if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        i_n, i_h, i_w, i_c = _dims(g.tensors[op.inputs[0]].shape)
        o_n, o_h, o_w, o_c = _dims(g.tensors[op.outputs[0]].shape)
        w = g.tensors[op.inputs[1]].shape
        kh, kw = int(w[1]), int(w[2])
        sh, sw = op.options["stride_h"], op.options["stride_w"]
        dh, dw = op.options.get("dilation_h", 1), op.options.get("dilation_w", 1)
        ph, pw = _pad(i_h, o_h, sh, kh, dh), _pad(i_w, o_w, sw, kw, dw)
        _, in_zp = low.q(op.inputs[0])
        _, out_zp = low.q(op.outputs[0])
        lo, hi = low._act(op)
        qdefs = low._weights_quant(op, op_i, pre, o_c)   # defines {pre}_quant (tp); reuse its arrays
        wname, bname = low._weights(op)
        wt = low.tid(op.inputs[1])
        del qdefs  # only the multiplier/shift arrays are used (as CMSIS-NN's per-channel params)
        defs = []
        defs.append(f"static const cmsis_nn_per_channel_quant_params {pre}_cq = {{ (int32_t *){low.p}_t{wt}_mult, "
                    f"(int32_t *){low.p}_t{wt}_shift }};")
        defs.append(f"static const cmsis_nn_dims {pre}_in = {{ {i_n}, {i_h}, {i_w}, {i_c} }};")
        defs.append(f"static const cmsis_nn_dims {pre}_out = {{ {o_n}, {o_h}, {o_w}, {o_c} }};")
        defs.append(f"static const cmsis_nn_dims {pre}_bias = {{ 1, 1, 1, {o_c} }};")
        if op.kind == "CONV_2D":
            defs.append(f"static const cmsis_nn_dims {pre}_filter = {{ {o_c}, {kh}, {kw}, {i_c} }};")
            defs.append(f"static const cmsis_nn_conv_params {pre}_params = {{ {-in_zp}, {out_zp}, {_tile(sh, sw)}, "
                        f"{_tile(ph, pw)}, {_tile(dh, dw)}, {{ {lo}, {hi} }} }};")
            fn, size_fn = "arm_convolve_wrapper_s8", "arm_convolve_wrapper_s8_get_buffer_size"
        else:
            defs.append(f"static const cmsis_nn_dims {pre}_filter = {{ 1, {kh}, {kw}, {o_c} }};")
            defs.append(f"static const cmsis_nn_dw_conv_params {pre}_params = {{ {-in_zp}, {out_zp}, {o_c // i_c}, "
                        f"{_tile(sh, sw)}, {_tile(ph, pw)}, {_tile(dh, dw)}, {{ {lo}, {hi} }} }};")
            fn, size_fn = "arm_depthwise_conv_wrapper_s8", "arm_depthwise_conv_wrapper_s8_get_buffer_size"
        bias = bname if bname != "0" else "NULL"
        call = (f"(ctx.size < {size_fn}(&{pre}_params, &{pre}_in, &{pre}_filter, &{pre}_out)) ? TP_ERR_SCRATCH : "
                f"(tp_status)({fn}(&cctx, &{pre}_params, &{pre}_cq, &{pre}_in, "
                f"{low.ptr(op.inputs[0])}, &{pre}_filter, {wname}, &{pre}_bias, {bias}, &{pre}_out, "
                f"{low.ptr(op.outputs[0], False)}) {ok}")
        return defs, call
    if op.kind == "FULLY_CONNECTED":
        w = g.tensors[op.inputs[1]].shape
        out_depth, depth = int(w[0]), int(w[1])
        batches = prod(g.tensors[op.inputs[0]].shape) // depth
        _, in_zp = low.q(op.inputs[0])
        _, out_zp = low.q(op.outputs[0])
        lo, hi = low._act(op)
        low._weights_quant(op, op_i, pre, out_depth)
        wname, bname = low._weights(op)
        wt = low.tid(op.inputs[1])
        per_channel = len(g.tensors[op.inputs[1]].quant.scales) > 1
        defs = [f"static const cmsis_nn_fc_params {pre}_params = {{ {-in_zp}, 0, {out_zp}, {{ {lo}, {hi} }} }};",
                f"static const cmsis_nn_dims {pre}_in = {{ {batches}, 1, 1, {depth} }};",
                f"static const cmsis_nn_dims {pre}_filter = {{ {depth}, 1, 1, {out_depth} }};",
                f"static const cmsis_nn_dims {pre}_bias = {{ 1, 1, 1, {out_depth} }};",
                f"static const cmsis_nn_dims {pre}_out = {{ {batches}, 1, 1, {out_depth} }};"]
        if per_channel:
            defs.append(f"static const cmsis_nn_per_channel_quant_params {pre}_cq = {{ (int32_t *){low.p}_t{wt}_mult, "
                        f"(int32_t *){low.p}_t{wt}_shift }};")
            fn = "arm_fully_connected_per_channel_s8"
            qexpr = f"&{pre}_cq"
        else:
            in_s, _ = low.q(op.inputs[0])
            out_s, _ = low.q(op.outputs[0])
            m, s = quant.fc_per_tensor_multiplier(in_s, g.tensors[op.inputs[1]].quant.scales[0], out_s)
            defs.append(f"static const cmsis_nn_per_tensor_quant_params {pre}_cq = {{ {m}, {s} }};")
            fn = "arm_fully_connected_s8"
            qexpr = f"&{pre}_cq"
        bias = bname if bname != "0" else "NULL"
        call = (f"(ctx.size < arm_fully_connected_s8_get_buffer_size(&{pre}_filter)) ? TP_ERR_SCRATCH : "
                f"(tp_status)({fn}(&cctx, &{pre}_params, {qexpr}, &{pre}_in, "
                f"{low.ptr(op.inputs[0])}, &{pre}_filter, {wname}, &{pre}_bias, {bias}, &{pre}_out, "
                f"{low.ptr(op.outputs[0], False)}) {ok}")
        return defs, call
    if op.kind == "ADD":
        a, b = g.tensors[op.inputs[0]], g.tensors[op.inputs[1]]
        out = g.tensors[op.outputs[0]]
        if not (prod(a.shape) == prod(b.shape) == prod(out.shape)):
            return None
        s1, z1 = low.q(op.inputs[0])
        s2, z2 = low.q(op.inputs[1])
        so, zo = low.q(op.outputs[0])
        p = quant.add_params(s1, z1, s2, z2, so, zo, op.options.get("fused_activation", "NONE"))
        n = prod(out.shape)
        call = (f"(tp_status)(arm_elementwise_add_s8({low.ptr(op.inputs[0])}, {low.ptr(op.inputs[1])}, "
                f"{p['input1_offset']}, {p['input1_multiplier']}, {p['input1_shift']}, {p['input2_offset']}, "
                f"{p['input2_multiplier']}, {p['input2_shift']}, {p['left_shift']}, {low.ptr(op.outputs[0], False)}, "
                f"{p['output_offset']}, {p['output_multiplier']}, {p['output_shift']}, {p['act_min']}, "
                f"{p['act_max']}, {n}) {ok}")
        return [], call
    if op.kind in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        i_n, i_h, i_w, i_c = _dims(g.tensors[op.inputs[0]].shape)
        o_n, o_h, o_w, o_c = _dims(g.tensors[op.outputs[0]].shape)
        fh, fw = op.options["filter_h"], op.options["filter_w"]
        sh, sw = op.options["stride_h"], op.options["stride_w"]
        ph, pw = _pad(i_h, o_h, sh, fh), _pad(i_w, o_w, sw, fw)
        lo, hi = low._act(op)
        defs = [f"static const cmsis_nn_dims {pre}_in = {{ {i_n}, {i_h}, {i_w}, {i_c} }};",
                f"static const cmsis_nn_dims {pre}_out = {{ {o_n}, {o_h}, {o_w}, {o_c} }};",
                f"static const cmsis_nn_dims {pre}_filter = {{ 1, {fh}, {fw}, 1 }};",
                f"static const cmsis_nn_pool_params {pre}_params = {{ {_tile(sh, sw)}, {_tile(ph, pw)}, "
                f"{{ {lo}, {hi} }} }};"]
        if op.kind == "AVERAGE_POOL_2D":
            fn = "arm_avgpool_s8"
            guard = f"(ctx.size < arm_avgpool_s8_get_buffer_size({o_w}, {i_c})) ? TP_ERR_SCRATCH : "
        else:
            fn, guard = "arm_max_pool_s8", ""
        call = (f"{guard}(tp_status)({fn}(&cctx, &{pre}_params, &{pre}_in, "
                f"{low.ptr(op.inputs[0])}, &{pre}_filter, &{pre}_out, {low.ptr(op.outputs[0], False)}) {ok}")
        return defs, call
    if op.kind == "SOFTMAX":
        shape = g.tensors[op.inputs[0]].shape
        s, _ = low.q(op.inputs[0])
        p = quant.softmax_params(op.options.get("beta", 1.0), s)
        depth = int(shape[-1])
        rows = prod(shape) // depth
        call = (f"(arm_softmax_s8({low.ptr(op.inputs[0])}, {rows}, {depth}, {p['input_multiplier']}, "
                f"{p['input_left_shift']}, {p['diff_min']}, {low.ptr(op.outputs[0], False)}), TP_OK)")
        return [], call
    return None
