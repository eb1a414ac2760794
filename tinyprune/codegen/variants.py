"""Which kernel variant runs each layer, decided once at generation time.

One function per op family decides, from the layer's shapes, options and quantisation parameters,
exactly what the C entry point will do (firmware/kernels/arm/*: the DSP path and its block shape,
a slower DSP path, or the reference and why). The decision is

  * the scratch the memory planner reserves (``scratch.scratch_bytes`` asks ``choose``),
  * written per layer to codegen.json (``variant``, ``variant_code``, ``variant_reason``),
  * shown by ``tinyprune bench``; a layer that falls back to the reference on a DSP core is a warning,
  * checked against the C: a firmware built with -DTP_ARM_REPORT_VARIANT records the code each DSP
    entry took (``tp_arm_variant``), and tests/test_variants.py compares it, layer by layer in QEMU,
    with the code chosen here (CODES must equal the TP_VAR_* of tp_nn_arm.h; the test checks that too).

Graphs built by the pruning stage from PyTorch shapes have no weights or scales yet: the
numerical conditions (accumulator bound, requantisation shifts) are then assumed to hold and the
variant is marked ``assumed``.

    choose(op, graph, kernels) -> Variant      kernels: "portable" | "dsp" | "cmsis-nn"
    plan_kernels(kernels, board, fast_weights) -> str   the kernels a memory plan is made for

This module may import only tinyprune.codegen (ir, quant, scratch, cmsis's CMSIS_OPS).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from math import prod

from tinyprune.codegen import ir

ALIGN_SLACK = 8            # TP_ARM_ALIGN_SLACK
FAST_RQ_LIMIT = 1 << 30    # TP_ARM_FAST_RQ_LIMIT: |acc| below this for the doubled accumulators
CONV_PIX = 6               # TP_CONV_PIX: output pixels per assembly block
MAX_FAST_E = 22            # TP_CONV_MAX_FAST_E / TP_DW_MAX_FAST_E

# name -> TP_VAR_* code (firmware/kernels/arm/tp_nn_arm.h)
CODES = {
    "portable": 0,           # TP_VAR_NONE: no DSP variant for this op (or no DSP core)
    "reference/scratch": 1,
    "reference/accumulator": 2,
    "reference/shape": 3,
    "reference/alignment": 4,
    "reference/quantisation": 5,
    "conv-asm-1x6": 16,
    "conv-c-block": 17,
    "dw-asm-3x3": 18,
    "dw-simd-c": 19,
    "fc-dsp-4row": 20,
    "add-dsp": 21,
    "avgpool-dsp": 22,
}
C_NAMES = {
    "portable": "TP_VAR_NONE", "reference/scratch": "TP_VAR_REF_SCRATCH",
    "reference/accumulator": "TP_VAR_REF_ACC_BOUND", "reference/shape": "TP_VAR_REF_SHAPE",
    "reference/alignment": "TP_VAR_REF_ALIGN", "reference/quantisation": "TP_VAR_REF_QUANT",
    "conv-asm-1x6": "TP_VAR_CONV_ASM6", "conv-c-block": "TP_VAR_CONV_C6", "dw-asm-3x3": "TP_VAR_DW_ASM3X3",
    "dw-simd-c": "TP_VAR_DW_C", "fc-dsp-4row": "TP_VAR_FC_DSP", "add-dsp": "TP_VAR_ADD_DSP",
    "avgpool-dsp": "TP_VAR_AVGPOOL_DSP",
}
DSP_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "AVERAGE_POOL_2D")


@dataclass(frozen=True)
class Variant:
    name: str               # a key of CODES, or "cmsis-nn"
    scratch: int            # bytes the planner reserves (the C kernel's _get_buffer_size for it)
    reason: str = ""        # why this variant and not the fastest one ("" when it is the fastest)
    assumed: bool = False   # numerical conditions not known (no weights/scales): assumed to hold

    @property
    def code(self) -> int:
        return CODES.get(self.name, 0)

    @property
    def fallback(self) -> bool:
        """The reference runs an op that has a DSP variant (a warning on a DSP core)."""
        return self.name.startswith("reference/")

    @property
    def slow(self) -> bool:
        """A DSP path that is not the op's fastest one (told, not a warning)."""
        return self.name in ("conv-c-block", "dw-simd-c", "conv-grouped-rows")

    def to_json(self) -> dict:
        d = asdict(self)
        d["code"] = self.code
        d["fallback"] = self.fallback
        d["slow"] = self.slow
        return d


def plan_kernels(kernels: str, board=None, fast_weights: bool = False) -> str:
    """The kernels a memory plan is made for: the generated C calls tp_*_s8, which a DSP core's
    firmware maps to the DSP variants, so "portable" on a DSP core plans for "dsp" (their scratch).
    Without a board, --fast-weights plans for "dsp" too (int16 filters only pay off there; a build
    without DSP runs the references, correct). The one place codegen and build decide this."""
    if kernels == "portable" and board is not None and getattr(board.core, "dsp", False):
        return "dsp"
    if kernels == "portable" and fast_weights and board is None:
        return "dsp"
    return kernels


# ----------------------------------------------------------------------------- helpers

def _shape(graph: ir.Graph, name: str) -> tuple[int, ...]:
    return tuple(graph.tensors[name].shape)


def _qparams(op: ir.Op, graph: ir.Graph):
    """(input_zp, output_zp, act_lo, act_hi, multipliers, shifts, bias values) or None when the
    graph has no scales/weights (pruning estimates)."""
    from tinyprune.codegen import quant
    t_in, t_out, t_w = (graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]], graph.tensors[op.inputs[1]])
    if t_in.quant is None or t_out.quant is None or t_w.quant is None or not t_w.quant.scales:
        return None
    channels = _shape(graph, op.outputs[0])[-1] if op.kind != "FULLY_CONNECTED" else _shape(graph, op.inputs[1])[0]
    try:
        mults, shifts = quant.layer_multipliers(op.kind, t_in.quant.scales[0], t_w.quant.scales,
                                                t_out.quant.scales[0], channels)
        lo, hi = quant.activation_range(op.options.get("fused_activation", "NONE"), float(t_out.quant.scales[0]),
                                        int(t_out.quant.zero_points[0]))
    except (ValueError, OverflowError, ZeroDivisionError):
        return None   # codegen reports these itself
    bias = None
    if len(op.inputs) > 2 and op.inputs[2]:
        b = graph.tensors[op.inputs[2]]
        if b.data is None:
            return None
        bias = [int(v) for v in b.data.ravel()]
    return (int(t_in.quant.zero_points[0]), int(t_out.quant.zero_points[0]), lo, hi, mults, shifts, bias)


def _bmax(bias) -> int:
    return max((abs(v) for v in bias), default=0) if bias else 0


# ----------------------------------------------------------------------------- per op family (DSP)

def conv_scratch(k: int, out_c: int) -> int:
    """tp_conv_s8_arm_get_buffer_size: columns, per-channel table, the last filter row padded."""
    return ALIGN_SLACK + 48 * ((k + 3) // 4) + 16 * out_c + (4 * ((k + 3) // 4) if k % 4 else 0)


def _grouped_conv(op: ir.Op, graph: ir.Graph, groups: int) -> Variant:
    """tp_conv_s8.c runs a grouped CONV_2D on a DSP core output row by output row and group by group
    through the DSP convolution (tp_conv_grouped_arm), or the reference when rows are narrower than
    GROUPED_MIN_W pixels."""
    from tinyprune.codegen.scratch import GROUPED_MIN_W
    f, x, out = _shape(graph, op.inputs[1]), _shape(graph, op.inputs[0]), _shape(graph, op.outputs[0])
    if out[2] < GROUPED_MIN_W:
        return Variant("reference/shape", 0, f"grouped convolution (groups={groups}) with output rows of {out[2]} "
                                             f"pixels, fewer than {GROUPED_MIN_W}: the DSP convolution run group "
                                             "by group is slower there")
    scratch = f[1] * x[2] * f[3] + out[2] * out[3] + conv_scratch(f[1] * f[2] * f[3], f[0] // groups)
    return Variant("conv-grouped-rows", scratch, f"grouped convolution (groups={groups}): the DSP convolution "
                                                 "per output row and group")


def _conv(op: ir.Op, graph: ir.Graph) -> Variant:
    groups = ir.conv_groups(op, graph)
    if groups > 1:
        return _grouped_conv(op, graph, groups)
    f = _shape(graph, op.inputs[1])                     # [out_c, kh, kw, in_c]
    out = _shape(graph, op.outputs[0])
    k = f[1] * f[2] * f[3]
    scratch = conv_scratch(k, f[0])
    q = _qparams(op, graph)
    npix = prod(out[:-1])
    if q is None:
        if npix < CONV_PIX:
            return Variant("conv-c-block", scratch, f"{npix} output pixels, fewer than the block's {CONV_PIX}",
                           assumed=True)
        return Variant("conv-asm-1x6", scratch, assumed=True)
    _, _, lo, hi, mults, shifts, bias = q
    bound = k * 255 * 128 + _bmax(bias)
    if bound >= FAST_RQ_LIMIT:
        return Variant("reference/accumulator", 0,
                       f"K*255*128 + max|bias| = {bound:,} >= 2^30 (K = {k}): the doubled int32 accumulators "
                       "could overflow")
    if npix < CONV_PIX:
        return Variant("conv-c-block", scratch, f"{npix} output pixels, fewer than the block's {CONV_PIX}")
    if not (-128 <= lo <= hi <= 127):
        return Variant("conv-c-block", scratch, f"activation range [{lo}, {hi}] outside int8")
    for c, (m, s) in enumerate(zip(mults, shifts)):
        if not (s < 0 and -s <= MAX_FAST_E and m >= 0):
            return Variant("conv-c-block", scratch,
                           f"channel {c}: requantisation shift {s} outside -{MAX_FAST_E}..-1 (general requantisation in C)")
    return Variant("conv-asm-1x6", scratch)


def dw_scratch(kh: int, kw: int, c: int) -> int:
    """tp_depthwise_conv_s8_arm_get_buffer_size (ch_mult 1, c % 4 == 0)."""
    return ALIGN_SLACK + kh * kw * c * 2 + c * 16 + c


def _depthwise(op: ir.Op, graph: ir.Graph) -> Variant:
    c_in = _shape(graph, op.inputs[0])[-1]
    f = _shape(graph, op.inputs[1])                     # [1, kh, kw, c * ch_mult]
    if f[3] != c_in:
        return Variant("reference/shape", 0, f"depth multiplier {f[3] // max(c_in, 1)} (the DSP kernel needs 1)")
    if c_in % 4:
        return Variant("reference/shape", 0, f"{c_in} channels, not a multiple of 4")
    scratch = dw_scratch(f[1], f[2], c_in)
    q = _qparams(op, graph)
    taps = f[1] * f[2]
    three = f[1] == 3 and f[2] == 3 and op.options.get("dilation_h", 1) == 1 and op.options.get("dilation_w", 1) == 1
    if q is None:
        return (Variant("dw-asm-3x3", scratch, assumed=True) if three else
                Variant("dw-simd-c", scratch, f"{f[1]}x{f[2]} filter: SIMD C path", assumed=True))
    _, _, lo, hi, mults, shifts, bias = q
    if not three:
        what = (f"{f[1]}x{f[2]} filter" if (f[1], f[2]) != (3, 3) else "dilation > 1")
        return Variant("dw-simd-c", scratch, f"{what}: SIMD C path (the assembly is 3x3, dilation 1)")
    bound = taps * 255 * 128 + _bmax(bias)
    if bound >= FAST_RQ_LIMIT:
        return Variant("dw-simd-c", scratch, f"taps*255*128 + max|bias| = {bound:,} >= 2^30")
    bad = [c for c, (m, s) in enumerate(zip(mults, shifts)) if not (s < 0 and s >= -MAX_FAST_E and m >= 0)]
    if bad:
        return Variant("dw-simd-c", scratch, f"channel {bad[0]}: requantisation shift {shifts[bad[0]]} outside "
                                             f"-{MAX_FAST_E}..-1")
    if not (-128 <= lo <= 127 and -128 <= hi <= 127):
        return Variant("dw-simd-c", scratch, f"activation range [{lo}, {hi}] outside int8")
    return Variant("dw-asm-3x3", scratch)


def fc_scratch(depth: int) -> int:
    """tp_fully_connected_s8_arm_get_buffer_size."""
    return ALIGN_SLACK + 8 * ((depth + 3) // 4)


def _fc(op: ir.Op, graph: ir.Graph) -> Variant:
    w = _shape(graph, op.inputs[1])                     # [out, in]
    depth = w[-1] if len(w) >= 2 else prod(w)
    return Variant("fc-dsp-4row", fc_scratch(depth))    # the generated filter_offset is always 0


def _add(op: ir.Op, graph: ir.Graph) -> Variant:
    a, b, out = (_shape(graph, op.inputs[0]), _shape(graph, op.inputs[1]), _shape(graph, op.outputs[0]))
    if not (a == b == out or prod(a) == prod(b) == prod(out)):   # emit: no tp_broadcast then
        return Variant("reference/shape", 0, f"broadcast {list(a)} + {list(b)} -> {list(out)}")
    ts = [graph.tensors[t].quant for t in (op.inputs[0], op.inputs[1], op.outputs[0])]
    if any(t is None for t in ts):
        return Variant("add-dsp", 0, assumed=True)
    from tinyprune.codegen import quant
    try:
        p = quant.add_params(float(ts[0].scales[0]), int(ts[0].zero_points[0]), float(ts[1].scales[0]),
                             int(ts[1].zero_points[0]), float(ts[2].scales[0]), int(ts[2].zero_points[0]),
                             op.options.get("fused_activation", "NONE"))
    except (ValueError, OverflowError, ZeroDivisionError):
        return Variant("add-dsp", 0, assumed=True)
    if not (0 <= p["left_shift"] <= 20) or max(p["input1_shift"], p["input2_shift"], p["output_shift"]) > 0:
        return Variant("reference/quantisation", 0, "a left shift in the input/output rescaling")
    return Variant("add-dsp", 0)


def _avgpool(op: ir.Op, graph: ir.Graph) -> Variant:
    c = _shape(graph, op.inputs[0])[-1]
    window = op.options.get("filter_h", 1) * op.options.get("filter_w", 1)
    if c % 4:
        return Variant("reference/shape", 0, f"{c} channels, not a multiple of 4")
    if window > 255:
        return Variant("reference/shape", 0, f"window of {window} elements (the 16-bit sums take at most 255)")
    return Variant("avgpool-dsp", 0)


_DSP = {"CONV_2D": _conv, "DEPTHWISE_CONV_2D": _depthwise, "FULLY_CONNECTED": _fc, "ADD": _add,
        "AVERAGE_POOL_2D": _avgpool}


def choose(op: ir.Op, graph: ir.Graph, kernels: str = "portable") -> Variant:
    """The variant the C runs for ``op`` with ``kernels`` (a plan's kernels: portable, dsp, cmsis-nn)."""
    if kernels == "portable":
        return Variant("portable", 0)
    if kernels == "dsp":
        fn = _DSP.get(op.kind)
        return fn(op, graph) if fn else Variant("portable", 0)
    if kernels == "cmsis-nn":
        from tinyprune.codegen.cmsis import CMSIS_OPS
        from tinyprune.codegen.scratch import cmsis_scratch
        if op.kind == "CONV_2D" and ir.conv_groups(op, graph) > 1:
            return Variant("reference/shape", 0, f"grouped convolution (groups={ir.conv_groups(op, graph)}): "
                                                 "CMSIS-NN's convolution takes groups=1, tinyprune's reference runs it")
        return Variant("cmsis-nn", cmsis_scratch(op, graph)) if op.kind in CMSIS_OPS else Variant("portable", 0)
    raise ValueError(f"unknown kernel variant {kernels!r} (portable, dsp, cmsis-nn)")

