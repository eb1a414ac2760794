"""C emitter: ``TfliteModel`` + memory plan -> the files of a self-contained C99 module.

``render(model, prefix, kernels, plan)`` is a pure function returning {relative path: text}; the
only place C text is produced is this module and its templates (``templates/*.tmpl``, filled with
``string.Template``). Identifiers are derived from the prefix and TFLite tensor/op indices and
checked against C reserved words. Output is deterministic (sorted, no timestamps, no absolute paths).

Lowering of each op to one kernel call is in ``_lower_<kind>``; each returns a ``Layer`` with its
static parameter definitions, the call, and the kernel files it needs.

This module may import tinyprune.codegen (ir, quant, relayout, tflite_reader, planner types), tinyprune._paths
and tinyprune.errors; not the CLI, the pipeline or TensorFlow.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from math import prod
from pathlib import Path
from string import Template

import numpy as np

from tinyprune import __version__
from tinyprune._paths import KERNELS_DIR
from tinyprune.codegen import ir, layout_ops, quant, relayout
from tinyprune.codegen.accounting import ARRAY_ALIGN
from tinyprune.codegen.tflite_reader import TfliteModel
from tinyprune.errors import UnsupportedModelError, UserInputError

TEMPLATES = Path(__file__).resolve().parent / "templates"

C_RESERVED = frozenset("""auto break case char const continue default do double else enum extern float for goto
if inline int long register restrict return short signed sizeof static struct switch typedef union unsigned
void volatile while _Bool _Complex _Imaginary _Alignas _Alignof _Atomic _Generic _Noreturn _Static_assert
_Thread_local asm fortran main errno assert NULL bool true false""".split())

ALIAS_OPS = ("RESHAPE", "SQUEEZE")
COMMON_KERNEL_FILES = ("tp_nn.h", "tp_nn_types.h", "tp_nn_support.h", "tp_elementwise_s8.h")
KERNEL_FILES = {
    "CONV_2D": ("tp_conv_s8.c",), "DEPTHWISE_CONV_2D": ("tp_depthwise_conv_s8.c",),
    "FULLY_CONNECTED": ("tp_fully_connected_s8.c",), "ADD": ("tp_add_s8.c",), "MUL": ("tp_mul_s8.c",),
    "AVERAGE_POOL_2D": ("tp_pool_s8.c",), "MAX_POOL_2D": ("tp_pool_s8.c",), "MEAN": ("tp_mean_s8.c",),
    "SOFTMAX": ("tp_softmax_s8.c",), "LOGISTIC": ("tp_logistic_s8.c",), "HARD_SWISH": ("tp_hard_swish_s8.c",),
    "RELU": ("tp_requantize_s8.c",), "RELU6": ("tp_requantize_s8.c",), "QUANTIZE": ("tp_requantize_s8.c",),
    "PAD": ("tp_layout_s8.c", "tp_requantize_s8.c"), "PADV2": ("tp_layout_s8.c", "tp_requantize_s8.c"),
    "CONCATENATION": ("tp_layout_s8.c", "tp_requantize_s8.c"),
    "TRANSPOSE": ("tp_layout_s8.c", "tp_requantize_s8.c"),
    "RESIZE_NEAREST_NEIGHBOR": ("tp_resize_s8.c",), "TANH": ("tp_tanh_s8.c",),
    "LEAKY_RELU": ("tp_prelu_s8.c",), "PRELU": ("tp_prelu_s8.c",),
    "STRIDED_SLICE": ("tp_layout_s8.c", "tp_requantize_s8.c"),
}


def check_identifier(name: str, what: str = "--prefix") -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,40}", name or ""):
        raise UserInputError(f"{what} {name!r} is not a C identifier",
                             hint="use letters, digits and '_', starting with a letter (e.g. model, kws)")
    if name in C_RESERVED or name.startswith("tp_") or name.startswith("__"):
        raise UserInputError(f"{what} {name!r} is a C reserved word or clashes with the kernel namespace tp_",
                             hint="pick another name, e.g. model or net")
    return name


@dataclass
class Layer:
    index: int          # position in the schedule (layer number)
    op: int             # ir op index
    kind: str
    name: str
    defs: list[str]     # static const definitions in NAME.c
    call: str           # the kernel call expression (returns tp_status)
    files: tuple[str, ...]
    out_tensor: str
    cmsis: bool = False


@dataclass
class Arrays:
    """Constant arrays for NAME_weights.c, emitted once each, in first-use order."""
    prefix: str
    items: dict[str, tuple[str, np.ndarray, str]] = field(default_factory=dict)  # cname -> (ctype, data, comment)

    def add(self, cname: str, ctype: str, data, comment: str = "") -> str:
        if cname not in self.items:
            self.items[cname] = (ctype, np.asarray(data).ravel(), comment)
        return cname

    def nbytes(self) -> int:
        total = 0
        for ctype, data, _ in self.items.values():
            n = data.size * {"int8_t": 1, "int16_t": 2, "int32_t": 4}[ctype]
            total += -(-n // ARRAY_ALIGN) * ARRAY_ALIGN
        return total


def _dims(shape) -> tuple[int, int, int, int]:
    s = list(shape)
    if len(s) > 4:
        raise UnsupportedModelError(f"tensor of rank {len(s)} where at most 4 are supported")
    s = [1] * (4 - len(s)) + s
    return tuple(int(x) for x in s)


def _pad(in_size: int, out_size: int, stride: int, k: int, dilation: int = 1) -> int:
    eff = (k - 1) * dilation + 1
    total = (out_size - 1) * stride + eff - in_size
    return max(total, 0) // 2


def _c_array(values, per_line: int = 16) -> str:
    vals = [str(int(v)) for v in values]
    if not vals:
        vals = ["0"]
    lines = [", ".join(vals[i:i + per_line]) for i in range(0, len(vals), per_line)]
    return "    " + ",\n    ".join(lines)


def _cstr(s: str) -> str:
    out = s.replace("\\", "\\\\").replace('"', '\\"')
    out = re.sub(r"[^\x20-\x7e]", "?", out)
    return '"' + out + '"'


def _comment(s: str) -> str:
    return re.sub(r"[^\x20-\x7e]", "?", s).replace("*/", "* /")[:120]


class _Lowering:
    def __init__(self, model: TfliteModel, prefix: str, plan, kernels: str, fast_weights: bool = False):
        self.fast_weights = fast_weights
        self.m = model
        self.g = model.graph
        self.p = prefix
        self.plan = plan
        self.kernels = kernels
        self.arrays = Arrays(prefix)

    # --- addressing ---
    def tid(self, name: str) -> int:
        return self.m.tensor_index[name]

    def ptr(self, name: str, const: bool = True) -> str:
        t = self.g.tensors[name]
        if t.is_const:
            if t.dtype != "int8":
                raise UnsupportedModelError(f"constant tensor {name!r} of type {t.dtype} used as an activation")
            return self.arrays.add(f"{self.p}_t{self.tid(name)}", "int8_t", t.data, name)
        off = self.plan.offsets[name]
        return f"({'const ' if const else ''}int8_t *)(A + {off})"

    def q(self, name: str) -> tuple[float, int]:
        qq = self.g.tensors[name].quant
        return float(qq.scales[0]), int(qq.zero_points[0])

    def ctx(self, op_i: int) -> str:
        off = self.plan.scratch_offsets.get(op_i)
        size = self.plan.scratch.get(op_i, 0) if hasattr(self.plan, "scratch") else 0
        if off is None or not size:
            return "tp_context ctx = { 0, 0 };"
        return f"tp_context ctx = {{ A + {off}, {size} }};"

    # --- ops ---
    def lower(self, layer: int, op_i: int) -> Layer:
        op = self.g.ops[op_i]
        fn = getattr(self, "_lower_" + op.kind.lower(), None)
        if fn is None:
            raise UnsupportedModelError(f"no code generator for {op.kind} (node {self.m.op_index[op_i]})")
        pre = f"{self.p}_l{layer}"
        try:  # quant.* raises ValueError on scales no integer kernel can represent
            if self.kernels == "cmsis-nn":
                from tinyprune.codegen import cmsis
                r = cmsis.lower(self, op, op_i, pre)
                if r is not None:
                    return Layer(index=layer, op=op_i, kind=op.kind, name=op.name, defs=r[0], call=r[1], files=(),
                                 out_tensor=op.outputs[0], cmsis=True)
            defs, call = fn(op, op_i, pre)
        except (ValueError, OverflowError, ZeroDivisionError) as e:
            raise UnsupportedModelError(f"operator {self.m.op_index[op_i]} ({op.kind}, output {op.outputs[0]!r}): "
                                        f"its quantization parameters cannot be computed: {e}",
                                        hint="re-quantize the model (scales must be consistent between an "
                                             "operator's inputs and output)") from None
        return Layer(index=layer, op=op_i, kind=op.kind, name=op.name, defs=defs, call=call,
                     files=KERNEL_FILES[op.kind], out_tensor=op.outputs[0])

    def _weights_quant(self, op, op_i, pre, channels):
        in_s, _ = self.q(op.inputs[0])
        out_s, _ = self.q(op.outputs[0])
        wq = self.g.tensors[op.inputs[1]].quant
        if op.kind == "FULLY_CONNECTED" and len(wq.scales) == 1:
            m, s = quant.fc_per_tensor_multiplier(in_s, wq.scales[0], out_s)
            mults, shifts = [m] * channels, [s] * channels
        else:
            if len(wq.scales) not in (1, channels):
                raise UnsupportedModelError(f"{op.kind} {op.name!r}: {len(wq.scales)} filter scales for "
                                            f"{channels} output channels")
            mults, shifts = quant.per_channel_multipliers(in_s, wq.scales, out_s, channels)
        # named by the weight tensor: ops sharing weights share these arrays
        wt = self.tid(op.inputs[1])
        mname = self.arrays.add(f"{self.p}_t{wt}_mult", "int32_t", np.array(mults, np.int64), "multipliers")
        sname = self.arrays.add(f"{self.p}_t{wt}_shift", "int32_t", np.array(shifts, np.int64), "shifts")
        return [f"static const tp_quant_params {pre}_quant = {{ {mname}, {sname}, 1 }};"]

    def _weights(self, op):
        w = self.g.tensors[op.inputs[1]]
        if self.fast_weights and op.kind == "CONV_2D":
            wname = None     # emitted as its int16 re-layout by _lower_conv_2d
        else:
            wname = self.arrays.add(f"{self.p}_t{self.tid(op.inputs[1])}", "int8_t", w.data, w.name)
        bname = "0"
        if len(op.inputs) > 2 and op.inputs[2]:
            b = self.g.tensors[op.inputs[2]]
            bname = self.arrays.add(f"{self.p}_t{self.tid(op.inputs[2])}", "int32_t", b.data.astype(np.int64),
                                    b.name)
        return wname, bname

    def _act(self, op):
        s, z = self.q(op.outputs[0])
        return quant.activation_range(op.options.get("fused_activation", "NONE"), s, z)

    def _lower_conv_2d(self, op, op_i, pre, depthwise=False):
        i_n, i_h, i_w, i_c = _dims(self.g.tensors[op.inputs[0]].shape)
        o_n, o_h, o_w, o_c = _dims(self.g.tensors[op.outputs[0]].shape)
        w = self.g.tensors[op.inputs[1]].shape
        kh, kw = int(w[1]), int(w[2])
        sh, sw = op.options["stride_h"], op.options["stride_w"]
        dh, dw = op.options.get("dilation_h", 1), op.options.get("dilation_w", 1)
        ph, pw = _pad(i_h, o_h, sh, kh, dh), _pad(i_w, o_w, sw, kw, dw)
        _, in_zp = self.q(op.inputs[0])
        _, out_zp = self.q(op.outputs[0])
        lo, hi = self._act(op)
        defs = self._weights_quant(op, op_i, pre, o_c)
        wname, bname = self._weights(op)
        defs.append(f"static const tp_dims {pre}_in = {{ {i_n}, {i_h}, {i_w}, {i_c} }};")
        defs.append(f"static const tp_dims {pre}_out = {{ {o_n}, {o_h}, {o_w}, {o_c} }};")
        if depthwise:
            mult = o_c // i_c
            defs.append(f"static const tp_dims {pre}_filter = {{ 1, {kh}, {kw}, {o_c} }};")
            defs.append(f"static const tp_dw_conv_params {pre}_params = {{ {-in_zp}, {out_zp}, {mult}, "
                        f"{{ {sh}, {sw} }}, {{ {ph}, {pw} }}, {{ {dh}, {dw} }}, {{ {lo}, {hi} }} }};")
            fn = "tp_depthwise_conv_s8"
        else:
            defs.append(f"static const tp_dims {pre}_filter = {{ {o_c}, {kh}, {kw}, {int(w[3])} }};")
            defs.append(f"static const tp_conv_params {pre}_params = {{ {-in_zp}, {out_zp}, "
                        f"{{ {sh}, {sw} }}, {{ {ph}, {pw} }}, {{ {dh}, {dw} }}, {{ {lo}, {hi} }} }};")
            fn = "tp_conv_s8"
            if self.fast_weights:
                # the filter re-laid-out as int16 for the DSP kernel (tp_nn.h, tp_conv_s8_x16)
                wt = self.g.tensors[op.inputs[1]]
                wname = self.arrays.add(f"{self.p}_t{self.tid(op.inputs[1])}_x16", "int16_t",
                                        relayout.conv_filter_x16(wt.data), f"{wt.name} (fast weights)")
                fn = "tp_conv_s8_x16"
        call = (f"{fn}(&ctx, &{pre}_params, &{pre}_quant, &{pre}_in, {self.ptr(op.inputs[0])}, "
                f"&{pre}_filter, {wname}, {bname}, &{pre}_out, {self.ptr(op.outputs[0], False)})")
        return defs, call

    def _lower_depthwise_conv_2d(self, op, op_i, pre):
        return self._lower_conv_2d(op, op_i, pre, depthwise=True)

    def _lower_fully_connected(self, op, op_i, pre):
        w = self.g.tensors[op.inputs[1]].shape
        out_depth, depth = int(w[0]), int(w[1])
        batches = prod(self.g.tensors[op.inputs[0]].shape) // depth
        _, in_zp = self.q(op.inputs[0])
        _, out_zp = self.q(op.outputs[0])
        lo, hi = self._act(op)
        defs = self._weights_quant(op, op_i, pre, out_depth)
        wname, bname = self._weights(op)
        defs.append(f"static const tp_fc_params {pre}_params = {{ {-in_zp}, 0, {out_zp}, {{ {lo}, {hi} }} }};")
        call = (f"tp_fully_connected_s8(&ctx, &{pre}_params, &{pre}_quant, {batches}, {depth}, {out_depth}, "
                f"{self.ptr(op.inputs[0])}, {wname}, {bname}, {self.ptr(op.outputs[0], False)})")
        return defs, call

    def _bcast(self, op, pre):
        out = list(self.g.tensors[op.outputs[0]].shape)
        a = list(self.g.tensors[op.inputs[0]].shape)
        b = list(self.g.tensors[op.inputs[1]].shape)
        if a == b == out or (prod(a) == prod(b) == prod(out)):
            return [], "0", prod(out)
        rank = max(len(out), 1)
        if rank > 5:
            raise UnsupportedModelError(f"{op.kind} {op.name!r}: broadcasting over more than 5 dimensions")
        out = [1] * (rank - len(out)) + out

        def strides(s):
            s = [1] * (rank - len(s)) + s
            st, acc = [0] * rank, 1
            for d in range(rank - 1, -1, -1):
                st[d] = 0 if s[d] == 1 and out[d] != 1 else acc
                acc *= s[d]
            return st

        def arr(v):
            v = list(v) + [0] * (5 - len(v))
            return "{ " + ", ".join(str(int(x)) for x in v) + " }"
        defs = [f"static const tp_broadcast {pre}_bcast = {{ {rank}, {arr(out)}, {arr(strides(a))}, "
                f"{arr(strides(b))} }};"]
        return defs, f"&{pre}_bcast", prod(out)

    def _lower_add(self, op, op_i, pre):
        s1, z1 = self.q(op.inputs[0])
        s2, z2 = self.q(op.inputs[1])
        so, zo = self.q(op.outputs[0])
        p = quant.add_params(s1, z1, s2, z2, so, zo, op.options.get("fused_activation", "NONE"))
        defs, bc, size = self._bcast(op, pre)
        defs.append(f"static const tp_add_params {pre}_params = {{ {p['input1_offset']}, {p['input2_offset']}, "
                    f"{p['output_offset']}, {p['input1_multiplier']}, {p['input1_shift']}, "
                    f"{p['input2_multiplier']}, {p['input2_shift']}, {p['output_multiplier']}, "
                    f"{p['output_shift']}, {p['left_shift']}, {{ {p['act_min']}, {p['act_max']} }} }};")
        call = (f"tp_add_s8(&{pre}_params, {bc}, {size}, {self.ptr(op.inputs[0])}, {self.ptr(op.inputs[1])}, "
                f"{self.ptr(op.outputs[0], False)})")
        return defs, call

    def _lower_mul(self, op, op_i, pre):
        s1, z1 = self.q(op.inputs[0])
        s2, z2 = self.q(op.inputs[1])
        so, zo = self.q(op.outputs[0])
        p = quant.mul_params(s1, z1, s2, z2, so, zo, op.options.get("fused_activation", "NONE"))
        defs, bc, size = self._bcast(op, pre)
        defs.append(f"static const tp_mul_params {pre}_params = {{ {p['input1_offset']}, {p['input2_offset']}, "
                    f"{p['output_offset']}, {p['output_multiplier']}, {p['output_shift']}, "
                    f"{{ {p['act_min']}, {p['act_max']} }} }};")
        call = (f"tp_mul_s8(&{pre}_params, {bc}, {size}, {self.ptr(op.inputs[0])}, {self.ptr(op.inputs[1])}, "
                f"{self.ptr(op.outputs[0], False)})")
        return defs, call

    def _lower_average_pool_2d(self, op, op_i, pre, fn="tp_avgpool_s8"):
        i_n, i_h, i_w, i_c = _dims(self.g.tensors[op.inputs[0]].shape)
        o_n, o_h, o_w, o_c = _dims(self.g.tensors[op.outputs[0]].shape)
        fh, fw = op.options["filter_h"], op.options["filter_w"]
        sh, sw = op.options["stride_h"], op.options["stride_w"]
        ph, pw = _pad(i_h, o_h, sh, fh), _pad(i_w, o_w, sw, fw)
        lo, hi = self._act(op)
        defs = [f"static const tp_dims {pre}_in = {{ {i_n}, {i_h}, {i_w}, {i_c} }};",
                f"static const tp_dims {pre}_out = {{ {o_n}, {o_h}, {o_w}, {o_c} }};",
                f"static const tp_pool_params {pre}_params = {{ {{ {sh}, {sw} }}, {{ {ph}, {pw} }}, "
                f"{{ {fh}, {fw} }}, {{ {lo}, {hi} }} }};"]
        call = (f"{fn}(&{pre}_params, &{pre}_in, {self.ptr(op.inputs[0])}, &{pre}_out, "
                f"{self.ptr(op.outputs[0], False)})")
        return defs, call

    def _lower_max_pool_2d(self, op, op_i, pre):
        return self._lower_average_pool_2d(op, op_i, pre, fn="tp_maxpool_s8")

    def _lower_softmax(self, op, op_i, pre):
        shape = self.g.tensors[op.inputs[0]].shape
        s, _ = self.q(op.inputs[0])
        p = quant.softmax_params(op.options.get("beta", 1.0), s)
        depth = int(shape[-1])
        rows = prod(shape) // depth
        defs = [f"static const tp_softmax_params {pre}_params = {{ {p['input_multiplier']}, "
                f"{p['input_left_shift']}, {p['diff_min']} }};"]
        call = (f"tp_softmax_s8(&{pre}_params, {rows}, {depth}, {self.ptr(op.inputs[0])}, "
                f"{self.ptr(op.outputs[0], False)})")
        return defs, call

    def _lower_logistic(self, op, op_i, pre):
        s, z = self.q(op.inputs[0])
        p = quant.logistic_params(s, z)
        defs = [f"static const tp_logistic_params {pre}_params = {{ {p['input_zero_point']}, "
                f"{p['input_range_radius']}, {p['input_multiplier']}, {p['input_left_shift']} }};"]
        n = prod(self.g.tensors[op.inputs[0]].shape)
        return defs, (f"tp_logistic_s8(&{pre}_params, {n}, {self.ptr(op.inputs[0])}, "
                      f"{self.ptr(op.outputs[0], False)})")

    def _lower_tanh(self, op, op_i, pre):
        s, z = self.q(op.inputs[0])
        p = quant.logistic_params(s, z)     # TFLite Micro's TanhPrepare computes the same four values
        defs = [f"static const tp_logistic_params {pre}_params = {{ {p['input_zero_point']}, "
                f"{p['input_range_radius']}, {p['input_multiplier']}, {p['input_left_shift']} }};"]
        n = prod(self.g.tensors[op.inputs[0]].shape)
        return defs, f"tp_tanh_s8(&{pre}_params, {n}, {self.ptr(op.inputs[0])}, {self.ptr(op.outputs[0], False)})"

    def _lower_leaky_relu(self, op, op_i, pre):
        si, zi = self.q(op.inputs[0])
        so, zo = self.q(op.outputs[0])
        p = quant.leaky_relu_params(si, zi, op.options["alpha"], so, zo)
        defs = [f"static const tp_leaky_relu_params {pre}_params = {{ {p['input_zero_point']}, "
                f"{p['output_zero_point']}, {p['identity_multiplier']}, {p['identity_shift']}, "
                f"{p['alpha_multiplier']}, {p['alpha_shift']}, {p['alpha_negative']} }};"]
        n = prod(self.g.tensors[op.inputs[0]].shape)
        return defs, (f"tp_leaky_relu_s8(&{pre}_params, {n}, {self.ptr(op.inputs[0])}, "
                      f"{self.ptr(op.outputs[0], False)})")

    def _lower_prelu(self, op, op_i, pre):
        si, zi = self.q(op.inputs[0])
        sa, za = self.q(op.inputs[1])
        so, zo = self.q(op.outputs[0])
        p = quant.prelu_params(si, zi, sa, za, so, zo)
        dims = _dims(self.g.tensors[op.inputs[0]].shape)
        adims = _dims(self.g.tensors[op.inputs[1]].shape)
        defs = [f"static const int32_t {pre}_dims[4] = {{ {', '.join(map(str, dims))} }};",
                f"static const tp_prelu_params {pre}_params = {{ {p['input_zero_point']}, {p['alpha_zero_point']}, "
                f"{p['output_zero_point']}, {p['identity_multiplier']}, {p['identity_shift']}, "
                f"{p['alpha_multiplier']}, {p['alpha_shift']}, {{ {', '.join(map(str, adims))} }} }};"]
        return defs, (f"tp_prelu_s8(&{pre}_params, {pre}_dims, {self.ptr(op.inputs[0])}, {self.ptr(op.inputs[1])}, "
                      f"{self.ptr(op.outputs[0], False)})")

    def _lower_strided_slice(self, op, op_i, pre):
        o = op.options

        def arr(v):
            return "{ " + ", ".join(str(int(x)) for x in v) + " }"
        defs = [f"static const tp_slice_params {pre}_params = {{ {arr(o['slice_dims'])}, {arr(o['slice_begin'])}, "
                f"{arr(o['slice_stride'])}, {arr(o['slice_count'])} }};"]
        return defs, f"tp_strided_slice_s8(&{pre}_params, {self.ptr(op.inputs[0])}, {self.ptr(op.outputs[0], False)})"

    def _lower_hard_swish(self, op, op_i, pre):
        si, zi = self.q(op.inputs[0])
        so, zo = self.q(op.outputs[0])
        p = quant.hard_swish_params(si, zi, so, zo)
        defs = [f"static const tp_hard_swish_params {pre}_params = {{ {p['input_zero_point']}, "
                f"{p['output_zero_point']}, {p['reluish_multiplier_fixedpoint_int16']}, "
                f"{p['reluish_multiplier_exponent']}, {p['output_multiplier_fixedpoint_int16']}, "
                f"{p['output_multiplier_exponent']} }};"]
        n = prod(self.g.tensors[op.inputs[0]].shape)
        return defs, (f"tp_hard_swish_s8(&{pre}_params, {n}, {self.ptr(op.inputs[0])}, "
                      f"{self.ptr(op.outputs[0], False)})")

    def _requant(self, op, pre, p):
        defs = [f"static const tp_requant_params {pre}_params = {{ {p['input_offset']}, {p['output_offset']}, "
                f"{p['multiplier']}, {p['shift']}, {{ {p['act_min']}, {p['act_max']} }} }};"]
        n = prod(self.g.tensors[op.inputs[0]].shape)
        return defs, (f"tp_requantize_s8(&{pre}_params, {n}, {self.ptr(op.inputs[0])}, "
                      f"{self.ptr(op.outputs[0], False)})")

    def _lower_quantize(self, op, op_i, pre):
        si, zi = self.q(op.inputs[0])
        so, zo = self.q(op.outputs[0])
        return self._requant(op, pre, quant.requantize_params(si, zi, so, zo))

    def _lower_relu(self, op, op_i, pre, six=False):
        si, zi = self.q(op.inputs[0])
        so, zo = self.q(op.outputs[0])
        return self._requant(op, pre, quant.relu_params(si, zi, so, zo, six))

    def _lower_relu6(self, op, op_i, pre):
        return self._lower_relu(op, op_i, pre, six=True)

    def _lower_mean(self, op, op_i, pre):
        shape = list(self.g.tensors[op.inputs[0]].shape)
        axes = op.options["axes"]
        off = 4 - len(shape)
        dims = _dims(shape)
        red = [0, 0, 0, 0]
        for a in axes:
            red[a + off] = 1
        count = prod(dims[d] for d in range(4) if red[d])
        si, zi = self.q(op.inputs[0])
        so, zo = self.q(op.outputs[0])
        p = quant.mean_params(si, zi, so, zo, count)
        defs = [f"static const tp_mean_params {pre}_params = {{ {p['input_zero_point']}, {p['output_zero_point']}, "
                f"{p['multiplier']}, {p['shift']}, {{ {', '.join(map(str, dims))} }}, "
                f"{{ {', '.join(map(str, red))} }} }};"]
        return defs, f"tp_mean_s8(&{pre}_params, {self.ptr(op.inputs[0])}, {self.ptr(op.outputs[0], False)})"

    def _lower_pad(self, op, op_i, pre):
        shape = list(self.g.tensors[op.inputs[0]].shape)
        pads = [[0, 0]] * (4 - len(shape)) + op.options["paddings"]
        _, zo = self.q(op.outputs[0])
        value = op.options.get("pad_value", zo)
        dims = _dims(shape)
        defs = [f"static const int32_t {pre}_dims[4] = {{ {', '.join(map(str, dims))} }};",
                f"static const int32_t {pre}_before[4] = {{ {', '.join(str(p[0]) for p in pads)} }};",
                f"static const int32_t {pre}_after[4] = {{ {', '.join(str(p[1]) for p in pads)} }};"]
        return defs, (f"tp_pad_s8({pre}_dims, {pre}_before, {pre}_after, {int(value)}, {self.ptr(op.inputs[0])}, "
                      f"{self.ptr(op.outputs[0], False)})")

    _lower_padv2 = _lower_pad

    def _lower_transpose(self, op, op_i, pre):
        dims, perm = layout_ops.lower_transpose(self.g.tensors[op.inputs[0]].shape, op.options["perm"],
                                                f"operator {op_i} (TRANSPOSE)")
        defs = [f"static const int32_t {pre}_dims[4] = {{ {', '.join(map(str, dims))} }};",
                f"static const int32_t {pre}_perm[4] = {{ {', '.join(map(str, perm))} }};"]
        return defs, (f"tp_transpose_s8({pre}_dims, {pre}_perm, {self.ptr(op.inputs[0])}, "
                      f"{self.ptr(op.outputs[0], False)})")

    def _lower_resize_nearest_neighbor(self, op, op_i, pre):
        i_n, i_h, i_w, i_c = _dims(self.g.tensors[op.inputs[0]].shape)
        o_n, o_h, o_w, o_c = _dims(self.g.tensors[op.outputs[0]].shape)
        defs = [f"static const tp_dims {pre}_in = {{ {i_n}, {i_h}, {i_w}, {i_c} }};",
                f"static const tp_dims {pre}_out = {{ {o_n}, {o_h}, {o_w}, {o_c} }};",
                f"static const tp_resize_params {pre}_params = {{ {int(op.options['align_corners'])}, "
                f"{int(op.options['half_pixel_centers'])} }};"]
        return defs, (f"tp_resize_nearest_s8(&{pre}_params, &{pre}_in, {self.ptr(op.inputs[0])}, &{pre}_out, "
                      f"{self.ptr(op.outputs[0], False)})")

    def _lower_concatenation(self, op, op_i, pre):
        out = list(self.g.tensors[op.outputs[0]].shape)
        axis = op.options["axis"]
        outer = prod(out[:axis])
        out_inner = prod(out[axis:])
        so, zo = self.q(op.outputs[0])
        defs, calls, offset = [], [], 0
        for k, t in enumerate(op.inputs):
            shape = list(self.g.tensors[t].shape)
            inner = prod(shape[axis:])
            si, zi = self.q(t)
            pp = "0"
            if np.float32(si) != np.float32(so) or zi != zo:
                p = quant.requantize_params(si, zi, so, zo)
                defs.append(f"static const tp_requant_params {pre}_rq{k} = {{ {p['input_offset']}, "
                            f"{p['output_offset']}, {p['multiplier']}, {p['shift']}, {{ -128, 127 }} }};")
                pp = f"&{pre}_rq{k}"
            calls.append(f"tp_concat_s8({pp}, {outer}, {inner}, {out_inner}, {offset}, {self.ptr(t)}, "
                         f"{self.ptr(op.outputs[0], False)})")
            offset += inner
        call = " | ".join(f"(int){c}" for c in calls) if len(calls) > 1 else calls[0]
        if len(calls) > 1:
            call = f"(tp_status)({call})"
        return defs, call


def _tmpl(name: str) -> Template:
    return Template((TEMPLATES / name).read_text())


def render(model: TfliteModel, prefix: str, kernels: str, plan, *,
           cmsis_path: Path | None = None, fast_weights: bool = False) -> tuple[dict[str, str], list[Layer], Arrays]:
    """Return ({relative path: file text} for NAME.h/.c/_weights.c/_weights.h/Makefile, layers, arrays)."""
    check_identifier(prefix)
    g = model.graph
    low = _Lowering(model, prefix, plan, kernels, fast_weights)
    layers: list[Layer] = []
    for op_i in plan.order:
        if g.ops[op_i].kind in ALIAS_OPS:
            continue
        layers.append(low.lower(len(layers), op_i))
    P = prefix.upper()
    banner = (f"/* generated by tinyprune {__version__} from {model.sha256} \u2014 do not edit */")
    banner_ascii = banner.encode("ascii", "replace").decode().replace("?", "-")
    # ---- header ----
    ins = [g.tensors[t] for t in g.inputs]
    outs = [g.tensors[t] for t in g.outputs]

    def shape_arrays(kind, tensors):
        lines = []
        t0 = tensors[0]
        lines.append(f"const int32_t {prefix}_{kind}_shape[{max(len(t0.shape), 1)}] = "
                     f"{{ {', '.join(str(int(d)) for d in (t0.shape or (1,)))} }};")
        for k, t in enumerate(tensors):
            dims = ", ".join(str(int(d)) for d in (t.shape or (1,)))
            lines.append(f"const int32_t {prefix}_{kind}{k}_shape[{max(len(t.shape), 1)}] = {{ {dims} }};")
        return lines

    def shape_decls(kind, tensors):
        return [f"extern const int32_t {prefix}_{kind}{k}_shape[{max(len(t.shape), 1)}];"
                for k, t in enumerate(tensors)]

    io_defines = []
    for kind, tensors in (("INPUT", ins), ("OUTPUT", outs)):
        for k, t in enumerate(tensors):
            s, z = float(t.quant.scales[0]), int(t.quant.zero_points[0])
            io_defines.append(f"#define {P}_{kind}{k}_BYTES {t.nbytes}")
            io_defines.append(f"#define {P}_{kind}{k}_SCALE {float(np.float32(s))!r}f")
            io_defines.append(f"#define {P}_{kind}{k}_ZERO_POINT ({z})")
            io_defines.append(f"#define {P}_{kind}{k}_DIMS {max(len(t.shape), 1)}")
    header = _tmpl("model.h.tmpl").substitute(
        BANNER=banner_ascii, P=P, p=prefix, NUM_IN=len(ins), NUM_OUT=len(outs), NUM_LAYERS=max(len(layers), 1),
        ARENA=max(plan.arena_bytes, 1), HASH=model.sha256, IO_DEFINES="\n".join(io_defines),
        SHAPE_DECLS="\n".join(shape_decls("input", ins) + shape_decls("output", outs)),
        IN_BYTES=ins[0].nbytes, OUT_BYTES=outs[0].nbytes, BACKEND=kernels)
    # ---- model.c ----
    defs, body, names = [], [], []
    for L in layers:
        op = g.ops[L.op]
        defs.append(f"/* layer {L.index}: {L.kind} (TFLite node {model.op_index[L.op]}) "
                    f"{_comment(L.name)} */")
        defs.extend(L.defs)
        out_t = L.out_tensor
        cctx = "\n        cmsis_nn_context cctx;\n        cctx.buf = ctx.buf;\n        cctx.size = ctx.size;\n        (void)cctx;" \
            if L.cmsis else ""
        body.append(f"    /* layer {L.index}: {L.kind}{' (CMSIS-NN)' if L.cmsis else ''} */\n"
                    f"    if (hook) hook({L.index}, 0);\n"
                    f"    {{\n        {low.ctx(L.op)}{cctx}\n        (void)ctx;\n"
                    f"        st = {L.call};\n    }}\n"
                    f"    if (hook) hook({L.index}, 1);\n"
                    f"    if (st != TP_OK) return {P}_ERR_LAYER_BASE + {L.index} * 16 + (int)st;\n"
                    f"    {P}_DUMP({L.index}, {model.tensor_index[out_t]}, "
                    f"(const int8_t *)(A + {plan.offsets[out_t]}), {g.tensors[out_t].nbytes});")
        names.append(f"    {_cstr(f'{L.index}:{L.kind}:{L.name}'[:96])}")
    if not layers:
        names.append('    "empty"')
    copy_in = []
    for k, t in enumerate(ins):
        copy_in.append(f"    if ((const uint8_t *)inputs[{k}] != A + {plan.offsets[t.name]}) "
                       f"memcpy(A + {plan.offsets[t.name]}, inputs[{k}], {t.nbytes});")
    copy_out = []
    for k, t in enumerate(outs):
        copy_out.append(f"    if ((uint8_t *)outputs[{k}] != A + {plan.offsets[t.name]}) "
                        f"memcpy(outputs[{k}], A + {plan.offsets[t.name]}, {t.nbytes});")
    uses_cmsis = any(L.cmsis for L in layers)
    source = _tmpl("model.c.tmpl").substitute(
        BANNER=banner_ascii, P=P, p=prefix, DEFS="\n".join(defs),
        EXTRA_INCLUDES='#include "arm_nnfunctions.h"\n' if uses_cmsis else "", BODY="\n".join(body),
        LAYER_NAMES=",\n".join(names), COPY_IN="\n".join(copy_in), COPY_OUT="\n".join(copy_out),
        SHAPES="\n".join(shape_arrays("input", ins) + shape_arrays("output", outs)),
        IN_LIST=", ".join(f"{prefix}_input{k}_shape" for k in range(len(ins))),
        OUT_LIST=", ".join(f"{prefix}_output{k}_shape" for k in range(len(outs))))
    # ---- weights ----
    wdecl, wdef = [], []
    for cname, (ctype, data, comment) in low.arrays.items.items():
        wdecl.append(f"extern const {ctype} {cname}[{max(data.size, 1)}];")
        wdef.append(f"/* {_comment(comment)} */\nconst {ctype} {cname}[{max(data.size, 1)}] TP_ALIGN(4) = {{\n"
                    f"{_c_array(data)}\n}};")
    wh = _tmpl("weights.h.tmpl").substitute(BANNER=banner_ascii, P=P, p=prefix, DECLS="\n".join(wdecl),
                                            WEIGHT_BYTES=low.arrays.nbytes())
    wc = _tmpl("weights.c.tmpl").substitute(BANNER=banner_ascii, p=prefix, DEFS="\n\n".join(wdef))
    files_used = sorted({f for L in layers for f in L.files})
    cmsis_mk = ""
    if uses_cmsis:
        from tinyprune.codegen.cmsis import SOURCE_DIRS
        cmsis_mk = (f"# ARM CMSIS-NN (v6+): override with make CMSIS_NN_PATH=...\n"
                    f"CMSIS_NN_PATH ?= {cmsis_path}\nCPPFLAGS += -I$(CMSIS_NN_PATH)/Include\n"
                    f"CMSIS_SRCS = $(filter-out %_f32.c %_f16.c," + " ".join(f"$(wildcard $(CMSIS_NN_PATH)/Source/{d}/*.c)"
                                                                 for d in SOURCE_DIRS) + ")\n")
    mk = _tmpl("Makefile.tmpl").substitute(p=prefix, KERNEL_SRCS=" ".join(f"kernels/{f}" for f in files_used),
                                           CMSIS=cmsis_mk)
    files = {f"{prefix}.h": header, f"{prefix}.c": source, f"{prefix}_weights.h": wh,
             f"{prefix}_weights.c": wc, "Makefile": mk}
    return files, layers, low.arrays


def kernel_files(layers: list[Layer]) -> list[str]:
    """Kernel sources to copy into OUT/kernels (relative to firmware/kernels), sorted."""
    used = sorted({f for L in layers for f in L.files} | set(COMMON_KERNEL_FILES))
    arm = KERNELS_DIR / "arm"
    if arm.is_dir():
        stems = {f[:-2] for f in used if f.endswith(".c")}
        for p in sorted(arm.iterdir()):
            if p.is_file() and (p.suffix == ".h" or any(p.name.startswith(s) for s in stems)):
                used.append(f"arm/{p.name}")
    return used
