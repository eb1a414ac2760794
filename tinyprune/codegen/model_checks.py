"""Validation of every tensor and operator field the generated C relies on, run by the TFLite reader.

A model that passes these checks gives the emitter, the planner and the C kernels only values they
were written for: positive, bounded shapes consistent with each operator (so no index computation
in the kernels can overflow int32 and no buffer is sized negative), strides/dilations/filters >= 1,
finite positive scales, zero points in range, per-channel arrays that match their channels, and a
dataflow graph the generated code can execute in order. Each refusal is an ``UnsupportedModelError``
(exit 2) naming the operator (TFLite index, op name) or tensor (index, name) and the field.

    check_tensor(label, desc, dtype, shape, quant)     -- per tensor, as it is read
    check_op(label, where, kind, ins, outs, options, tensors)   -- per operator, before lowering
    check_graph(label, graph, tensor_index, op_index)  -- dataflow and the arena bound

Bounds (``MAX_*``) are far above any microcontroller model and keep every product the kernels form
(offsets, accumulators, the planner's per-pixel tables) within int32 and within seconds.

This module may import only tinyprune.errors and tinyprune.codegen.ir (+ numpy).
"""
from __future__ import annotations

import math
from math import prod

import numpy as np

from tinyprune.codegen import ir
from tinyprune.errors import UnsupportedModelError

MAX_RANK = 5                      # ADD/MUL broadcast up to 5-D; window ops are 4-D
MAX_DIM = 1 << 16                 # any one dimension, stride, dilation, filter size or padding
MAX_ELEMENTS = 1 << 24            # elements of one tensor (16 M)
MAX_ACTIVATION_BYTES = 1 << 23    # one activation tensor in the arena (8 MiB)
MAX_ARENA_BYTES = 1 << 26         # all activation tensors together (64 MiB): the arena cannot exceed it
ACC_LIMIT = (1 << 31) - 1         # int32 accumulator of CONV/DEPTHWISE/FC
ACC_TERM = 255 * 128              # |(x - zp_in) * w| for int8 x, zp_in in [-128, 127], w in [-128, 127]

INT_RANGES = {"int8": (-128, 127), "int16": (0, 0), "int32": (0, 0), "int64": (0, 0)}

# operator -> (min inputs, max inputs, optional input positions); every supported op has one output
ARITY = {
    "CONV_2D": (2, 3, {2}), "DEPTHWISE_CONV_2D": (2, 3, {2}), "FULLY_CONNECTED": (2, 3, {2}),
    "ADD": (2, 2, set()), "MUL": (2, 2, set()), "AVERAGE_POOL_2D": (1, 1, set()), "MAX_POOL_2D": (1, 1, set()),
    "MEAN": (2, 2, set()), "PAD": (2, 2, set()), "PADV2": (2, 3, {2}), "RESHAPE": (1, 2, {1}),
    "SQUEEZE": (1, 1, set()), "CONCATENATION": (1, 64, set()), "SOFTMAX": (1, 1, set()),
    "LOGISTIC": (1, 1, set()), "HARD_SWISH": (1, 1, set()), "RELU": (1, 1, set()), "RELU6": (1, 1, set()),
    "QUANTIZE": (1, 1, set()), "DEQUANTIZE": (1, 1, set()), "TRANSPOSE": (2, 2, set()),
    "RESIZE_NEAREST_NEIGHBOR": (2, 2, set()), "TANH": (1, 1, set()), "LEAKY_RELU": (1, 1, set()),
    "PRELU": (2, 2, set()), "STRIDED_SLICE": (4, 4, set()),
}
SAME_SHAPE_OPS = ("SOFTMAX", "LOGISTIC", "HARD_SWISH", "RELU", "RELU6", "QUANTIZE", "DEQUANTIZE", "TANH",
                  "LEAKY_RELU", "PRELU")


_SIZE_HINT = "reduce the input resolution or the channel counts (or prune the model) before code generation"


def _err(msg: str, hint: str | None = None) -> UnsupportedModelError:
    return UnsupportedModelError(msg, hint=hint or "the model file is inconsistent: re-export it with the TFLite "
                                                   "converter (or `tinyprune convert`)")


def check_tensor(label: str, desc: str, dtype: str, shape: tuple[int, ...], quant: ir.Quant | None,
                 has_buffer: bool = False) -> None:
    """``desc`` is "tensor I ('name')". Shape: rank <= MAX_RANK+1, dims in 1..MAX_DIM, elements bounded
    (an empty 1-D constant, e.g. RESHAPE's new shape of a scalar, may have length 0).
    Quantization: finite positive float32 scales, zero points in the type's range, per-channel
    arrays of the quantized dimension's length."""
    where = f"{label}: {desc}"
    if len(shape) > MAX_RANK + 1:
        raise _err(f"{where}: shape {list(shape)} has rank {len(shape)}; at most {MAX_RANK + 1} is supported")
    for d in shape:
        if d == 0 and has_buffer and len(shape) == 1:
            continue
        if d < 1 or d > MAX_DIM:
            raise _err(f"{where}: shape {list(shape)} has dimension {d}; every dimension must be in 1..{MAX_DIM} "
                       "(no dynamic -1 or empty 0 dimensions)")
    if prod(shape) > MAX_ELEMENTS:
        raise _err(f"{where}: shape {list(shape)} has {prod(shape)} elements, more than {MAX_ELEMENTS}")
    if quant is None:
        return
    n = len(quant.scales)
    if n == 0 or len(quant.zero_points) != n:
        raise _err(f"{where}: quantization has {n} scales and {len(quant.zero_points)} zero points")
    for s in quant.scales:
        s32 = np.float32(s)
        if not (math.isfinite(float(s)) and np.isfinite(s32) and s32 > 0):
            raise _err(f"{where}: quantization scale {s:.7g} is not a finite positive number")
    lo, hi = INT_RANGES.get(dtype, (-(1 << 31), (1 << 31) - 1))
    for z in quant.zero_points:
        if not lo <= z <= hi:
            raise _err(f"{where}: zero point {z} out of range for {dtype} ({lo}..{hi})")
    if n > 1:
        if not 0 <= quant.axis < len(shape):
            raise _err(f"{where}: quantized_dimension {quant.axis} out of range for shape {list(shape)}")
        if shape[quant.axis] != n:
            raise _err(f"{where}: {n} per-channel scales but dimension {quant.axis} of shape {list(shape)} is "
                       f"{shape[quant.axis]}")


def _window_out(size: int, k: int, stride: int, dilation: int, padding: str) -> int:
    """TFLite's output size (ComputeOutSize)."""
    eff = (k - 1) * dilation + 1
    if padding == "SAME":
        return (size + stride - 1) // stride
    return (size - eff + stride) // stride


def _quant_len(t: ir.Tensor) -> int:
    return len(t.quant.scales) if t.quant is not None else 0


def check_op(label: str, where: str, kind: str, ins: list[str], outs: list[str], options: dict,
             tensors: dict[str, ir.Tensor]) -> None:
    """Arity, required inputs, shapes against the operator's semantics, option ranges, per-channel
    quantization of filters, accumulator bounds. ``where`` names the operator (index, kind, output)."""
    w_ = f"{label}: {where}"
    lo, hi, optional = ARITY[kind]
    if not lo <= len(ins) <= hi or len(outs) != 1:
        raise _err(f"{w_}: has {len(ins)} inputs and {len(outs)} outputs; {kind} takes "
                   f"{lo if lo == hi else f'{lo} to {hi}'} inputs and 1 output")
    for j, t in enumerate(ins):
        if not t and j not in optional:
            raise _err(f"{w_}: input {j} is missing (tensor index -1)")
    if not outs[0]:
        raise _err(f"{w_}: output is missing (tensor index -1)")
    out = tensors[outs[0]]
    if out.is_const:
        raise _err(f"{w_}: output tensor {outs[0]!r} is a constant (has a data buffer)")
    if outs[0] in ins:
        raise _err(f"{w_}: tensor {outs[0]!r} is both an input and the output")
    x = tensors[ins[0]]
    for key in ("stride_h", "stride_w", "dilation_h", "dilation_w", "filter_h", "filter_w"):
        if key in options and not 1 <= int(options[key]) <= MAX_DIM:
            raise _err(f"{w_}: option {key} = {options[key]}; must be in 1..{MAX_DIM}")
    if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        _check_conv(w_, kind, x, tensors[ins[1]], tensors[ins[2]] if len(ins) > 2 and ins[2] else None, out,
                    options)
    elif kind == "FULLY_CONNECTED":
        _check_fc(w_, x, tensors[ins[1]], tensors[ins[2]] if len(ins) > 2 and ins[2] else None, out, options)
    elif kind in ("ADD", "MUL"):
        a, b = tensors[ins[0]].shape, tensors[ins[1]].shape
        try:
            bshape = tuple(np.broadcast_shapes(a, b))
        except ValueError:
            raise _err(f"{w_}: input shapes {list(a)} and {list(b)} do not broadcast") from None
        if tuple(out.shape) != bshape:
            raise _err(f"{w_}: output shape {list(out.shape)} is not the broadcast shape {list(bshape)}")
    elif kind in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        if len(x.shape) != 4 or len(out.shape) != 4:
            raise _err(f"{w_}: input and output must be 4-D, got {list(x.shape)} and {list(out.shape)}")
        _check_window(w_, x.shape, out.shape, options["filter_h"], options["filter_w"], options, 1, 1)
        if out.shape[3] != x.shape[3] or out.shape[0] != x.shape[0]:
            raise _err(f"{w_}: output shape {list(out.shape)} does not keep the input's batch and channels "
                       f"{list(x.shape)}")
        _same_quant(w_, x, out, "int8 pooling keeps them equal (TFLite int8 spec)")
    elif kind == "MEAN":
        axes = _int_const(w_, tensors, ins[1], "axis list")
        r = len(x.shape)
        if axes.size == 0 or any(not -r <= int(a) < r for a in axes):
            raise _err(f"{w_}: axes {axes.tolist()} out of range for a {r}-D input")
        red = {int(a) % r for a in axes}
        keep = [d for i, d in enumerate(x.shape) if i not in red]
        if prod(out.shape) != prod(keep):
            raise _err(f"{w_}: output shape {list(out.shape)} does not match the mean of {list(x.shape)} over "
                       f"axes {sorted(red)}")
    elif kind in ("PAD", "PADV2"):
        pads = _int_const(w_, tensors, ins[1], "paddings")
        r = len(x.shape)
        if pads.size != 2 * r or not 1 <= r <= 4:
            raise _err(f"{w_}: paddings have {pads.size} values for a {r}-D input; PAD takes 1-D to 4-D inputs "
                       "and rank x 2 paddings")
        pads = pads.reshape(r, 2)
        if pads.min() < 0 or pads.max() > MAX_DIM:
            raise _err(f"{w_}: paddings {pads.tolist()} must be in 0..{MAX_DIM}")
        want = tuple(int(d + a + b) for d, (a, b) in zip(x.shape, pads))
        if tuple(out.shape) != want:
            raise _err(f"{w_}: output shape {list(out.shape)} != padded input shape {list(want)}")
        if kind == "PADV2" and len(ins) > 2 and ins[2]:
            v = tensors[ins[2]]
            if not v.is_const or v.dtype != "int8" or v.data.size != 1:
                raise _err(f"{w_}: the pad value must be a constant int8 scalar")
    elif kind in ("RESHAPE", "SQUEEZE"):
        if prod(out.shape) != prod(x.shape) or out.dtype != x.dtype:
            raise _err(f"{w_}: {kind} from {x.dtype} {list(x.shape)} to {out.dtype} {list(out.shape)} changes "
                       "the element count or type")
    elif kind == "TRANSPOSE":
        perm = _int_const(w_, tensors, ins[1], "permutation").ravel()
        r = len(x.shape)
        if sorted(int(p) for p in perm) != list(range(r)):
            raise _err(f"{w_}: permutation {perm.tolist()} is not a permutation of the {r} input axes")
        want = tuple(x.shape[int(p)] for p in perm)
        if tuple(out.shape) != want:
            raise _err(f"{w_}: output shape {list(out.shape)} != permuted input shape {list(want)}")
    elif kind == "CONCATENATION":
        r = len(out.shape)
        axis = int(options["axis"])
        if r == 0 or not -r <= axis < r:
            raise _err(f"{w_}: axis {axis} out of range for a {r}-D output")
        axis %= r
        total = 0
        for t in ins:
            s = tensors[t].shape
            if len(s) != r or any(s[i] != out.shape[i] for i in range(r) if i != axis):
                raise _err(f"{w_}: input {t!r} of shape {list(s)} does not fit output {list(out.shape)} along "
                           f"axis {axis}")
            total += s[axis]
        if total != out.shape[axis]:
            raise _err(f"{w_}: inputs add up to {total} along axis {axis}, the output has {out.shape[axis]}")
    elif kind == "RESIZE_NEAREST_NEIGHBOR":
        _check_resize(w_, x, tensors[ins[1]], out)
    elif kind == "PRELU":
        _check_prelu(w_, x, tensors[ins[1]])
    elif kind == "STRIDED_SLICE":
        for j, what in ((1, "begin"), (2, "end"), (3, "strides")):
            t = tensors[ins[j]]
            if not t.is_const or t.dtype != "int32" or len(t.shape) != 1 or t.shape[0] != len(x.shape):
                raise _err(f"{w_}: {what} must be a constant int32 vector of {len(x.shape)} values (one per input "
                           f"axis; TFLite Micro reads int32), got {'constant ' if t.is_const else ''}{t.dtype} "
                           f"{list(t.shape)}")
        if not 1 <= len(x.shape) <= 4:
            raise _err(f"{w_}: input of rank {len(x.shape)}; STRIDED_SLICE takes 1-D to 4-D inputs")
        _same_quant(w_, x, out, "int8 STRIDED_SLICE copies values unchanged (TFLite Micro does not requantize), so "
                                "they must be equal")
    if kind in SAME_SHAPE_OPS and tuple(x.shape) != tuple(out.shape):
        raise _err(f"{w_}: output shape {list(out.shape)} != input shape {list(x.shape)}")
    if kind == "SOFTMAX":
        beta = float(options.get("beta", 1.0))
        if not (math.isfinite(beta) and beta > 0) or not x.shape:
            raise _err(f"{w_}: beta {beta} must be a finite positive number (and the input at least 1-D)")


def _same_quant(w_: str, x: ir.Tensor, out: ir.Tensor, why: str) -> None:
    if x.quant is not None and out.quant is not None and (
            np.float32(x.quant.scales[0]) != np.float32(out.quant.scales[0])
            or x.quant.zero_points[0] != out.quant.zero_points[0]):
        raise _err(f"{w_}: input and output quantization differ (scale {x.quant.scales[0]:.7g} / zero point "
                   f"{x.quant.zero_points[0]} vs {out.quant.scales[0]:.7g} / {out.quant.zero_points[0]}); {why}")


def _check_resize(w_: str, x: ir.Tensor, size: ir.Tensor, out: ir.Tensor) -> None:
    """RESIZE_NEAREST_NEIGHBOR: 4-D NHWC input and output of the same batch and channels, the output's
    height and width given by a constant int32 [2] size tensor (TFLite Micro refuses any other), and
    one quantization on both sides: the op copies int8 bytes (TFLite Micro does not requantize)."""
    if len(x.shape) != 4 or len(out.shape) != 4:
        raise _err(f"{w_}: input and output must be 4-D, got {list(x.shape)} and {list(out.shape)}")
    if not size.is_const or size.dtype != "int32" or tuple(size.shape) != (2,):
        raise _err(f"{w_}: the size must be a constant int32 tensor of 2 values (height, width), got "
                   f"{'constant ' if size.is_const else ''}{size.dtype} {list(size.shape)} {size.name!r}")
    hw = [int(v) for v in np.asarray(size.data).ravel()]
    if (out.shape[1], out.shape[2]) != tuple(hw):
        raise _err(f"{w_}: output shape {list(out.shape)} does not have the height and width {hw} of the size "
                   "tensor")
    if out.shape[0] != x.shape[0] or out.shape[3] != x.shape[3]:
        raise _err(f"{w_}: output shape {list(out.shape)} does not keep the input's batch and channels "
                   f"{list(x.shape)}")
    _same_quant(w_, x, out, "int8 RESIZE_NEAREST_NEIGHBOR copies values unchanged (TFLite int8 spec; TFLite "
                            "Micro does not requantize), so they must be equal")


def _check_prelu(w_: str, x: ir.Tensor, alpha: ir.Tensor) -> None:
    """PRELU: a constant int8 slope tensor with one scale (TFLite Micro reads params.scale), at most
    4-D and broadcastable onto the input without growing it (each trailing-aligned axis 1 or equal)."""
    if not alpha.is_const or alpha.dtype != "int8" or alpha.quant is None or len(alpha.quant.scales) != 1:
        raise _err(f"{w_}: the slope {alpha.name!r} must be a constant int8 tensor with one scale, got "
                   f"{'constant ' if alpha.is_const else ''}{alpha.dtype} with "
                   f"{_quant_len(alpha)} scales")
    a, s = list(alpha.shape), list(x.shape)
    if len(s) > 4 or len(a) > len(s) or any(d not in (1, e) for d, e in zip(a[::-1], s[::-1])):
        raise _err(f"{w_}: slope shape {a} does not broadcast onto the input {s} (at most 4-D)")


def _int_const(w_: str, tensors, name: str, what: str) -> np.ndarray:
    t = tensors[name]
    if not t.is_const or t.dtype not in ("int32", "int64"):
        raise _err(f"{w_}: the {what} must be a constant int32 tensor, got {'constant ' if t.is_const else ''}"
                   f"{t.dtype} {name!r}")
    return np.asarray(t.data).astype(np.int64).ravel()


def _check_window(w_: str, in_shape, out_shape, kh: int, kw: int, options: dict, dh: int, dw: int) -> None:
    pad = options.get("padding", "VALID")
    for axis, k, s, d in ((1, kh, options["stride_h"], dh), (2, kw, options["stride_w"], dw)):
        name = "height" if axis == 1 else "width"
        eff = (k - 1) * d + 1
        if eff > MAX_DIM:
            raise _err(f"{w_}: dilated filter {name} {eff} exceeds {MAX_DIM}")
        want = _window_out(in_shape[axis], k, s, d, pad)
        if want < 1:
            raise _err(f"{w_}: {pad} window of {eff} does not fit the input {name} {in_shape[axis]}")
        if out_shape[axis] != want:
            raise _err(f"{w_}: output {name} {out_shape[axis]} != {want} (input {in_shape[axis]}, filter {k}, "
                       f"stride {s}, dilation {d}, padding {pad})")


def _check_per_channel(w_: str, t: ir.Tensor, channels: int, axis: int, what: str) -> None:
    n = _quant_len(t)
    if n == 0:
        raise _err(f"{w_}: the {what} {t.name!r} has no quantization parameters")
    if n != 1 and (n != channels or t.quant.axis != axis):
        raise _err(f"{w_}: the {what} {t.name!r} has {n} scales on dimension {t.quant.axis}; needs 1 or "
                   f"{channels} on dimension {axis}")


def _check_bias(w_: str, bias: ir.Tensor | None, channels: int, k: int, x: ir.Tensor, w: ir.Tensor,
                out: ir.Tensor) -> None:
    """Bias shape and scale, and the accumulator bound: k terms of at most ACC_TERM plus the bias fit int32."""
    big = 0
    if bias is not None:
        if bias.shape != (channels,) and prod(bias.shape) != channels:
            raise _err(f"{w_}: bias {bias.name!r} has shape {list(bias.shape)}, needs {channels} values")
        if bias.quant is not None and x.quant is not None and w.quant is not None and out.quant is not None:
            # the kernels add the raw int32 bias to the accumulator, whose scale is input * filter scale:
            # TFLite Micro refuses a bias scale more than 2 % of the output scale away from it; so do we
            bs, ws = bias.quant.scales, w.quant.scales
            for c in range(channels):
                prod_s = float(np.float32(x.quant.scales[0])) * float(np.float32(ws[c if len(ws) > 1 else 0]))
                diff = abs(prod_s - float(np.float32(bs[c if len(bs) > 1 else 0])))
                if diff / float(np.float32(out.quant.scales[0])) > 0.02:
                    raise _err(f"{w_}: bias {bias.name!r} scale {bs[c if len(bs) > 1 else 0]:.7g} (channel {c}) is "
                               f"not input scale x filter scale ({prod_s:.6g})")
        if bias.is_const and bias.dtype == "int32":
            big = int(np.abs(np.asarray(bias.data, dtype=np.int64)).max(initial=0))
    if k * ACC_TERM + big > ACC_LIMIT:
        raise _err(f"{w_}: {k} products per output plus biases up to {big} can overflow the int32 accumulator",
                   hint="split the layer, or re-quantize it (the bias must stay far below 2^31)")


def _check_conv(w_: str, kind: str, x: ir.Tensor, w: ir.Tensor, bias, out: ir.Tensor, options: dict) -> None:
    if len(x.shape) != 4 or len(w.shape) != 4 or len(out.shape) != 4:
        raise _err(f"{w_}: input, filter and output must be 4-D, got {list(x.shape)}, {list(w.shape)} and "
                   f"{list(out.shape)}")
    if options.get("padding") not in ("SAME", "VALID"):
        raise _err(f"{w_}: padding {options.get('padding')} is not SAME or VALID")
    _check_window(w_, x.shape, out.shape, w.shape[1], w.shape[2], options, options["dilation_h"],
                  options["dilation_w"])
    if out.shape[0] != x.shape[0]:
        raise _err(f"{w_}: output batch {out.shape[0]} != input batch {x.shape[0]}")
    oc = out.shape[3]
    if kind == "CONV_2D":
        if w.shape[0] != oc:
            raise _err(f"{w_}: filter shape {list(w.shape)} has {w.shape[0]} output channels, the output {oc}")
        ic, fc = x.shape[3], w.shape[3]
        if fc <= 0 or ic % fc or oc % (ic // fc):
            # TFLite's grouped CONV_2D: groups = input channels / filter channels, and the output
            # channels split evenly over the groups (TFLite Micro's ConvPerChannel)
            raise _err(f"{w_}: filter {list(w.shape)} reads {fc} input channels of {ic} and writes {oc} output "
                       f"channels; a CONV_2D needs input channels = groups x filter channels and output "
                       f"channels a multiple of groups",
                       hint="supported forms: an ordinary convolution (filter channels = input channels), a "
                            "grouped one (groups dividing both channel counts, e.g. nn.Conv2d(..., groups=g)), "
                            "or DEPTHWISE_CONV_2D (groups = input channels)")
        k = w.shape[1] * w.shape[2] * w.shape[3]
        axis = 0
    else:
        if w.shape[0] != 1 or w.shape[3] != oc:
            raise _err(f"{w_}: depthwise filter shape {list(w.shape)} must be [1, kh, kw, {oc}]")
        if oc % x.shape[3]:
            raise _err(f"{w_}: {oc} output channels are not a multiple of the {x.shape[3]} input channels")
        dm = int(options.get("depth_multiplier", oc // x.shape[3]))
        if dm != oc // x.shape[3]:  # TFLite Micro's kernel loops over the option
            raise _err(f"{w_}: option depth_multiplier {dm} != output channels / input channels "
                       f"({oc} / {x.shape[3]})")
        if bias is None:
            # TFLite Micro's depthwise kernel crashes without one: the reference could not validate it
            raise _err(f"{w_}: DEPTHWISE_CONV_2D without a bias is not supported (TFLite Micro, the reference "
                       "the generated code is validated against, cannot run it)",
                       hint="give the layer a (zero) bias, e.g. use_bias=True / bias=True before converting")
        k = w.shape[1] * w.shape[2]
        axis = 3
    if w.is_const:
        _check_per_channel(w_, w, oc, axis, "filter")
    _check_bias(w_, bias, oc, k, x, w, out)


def _check_fc(w_: str, x: ir.Tensor, w: ir.Tensor, bias, out: ir.Tensor, options: dict) -> None:
    if len(w.shape) != 2:
        raise _err(f"{w_}: weights must be a 2-D matrix, got shape {list(w.shape)}")
    units, depth = w.shape
    n_in = prod(x.shape)
    if n_in % depth:
        raise _err(f"{w_}: input of {n_in} elements is not a multiple of the weight depth {depth}")
    if prod(out.shape) != (n_in // depth) * units or out.shape[-1:] != (units,):
        raise _err(f"{w_}: output shape {list(out.shape)} != {n_in // depth} rows of {units} units")
    if w.is_const:
        _check_per_channel(w_, w, units, 0, "weight matrix")
    _check_bias(w_, bias, units, depth, x, w, out)


def check_graph(label: str, graph: ir.Graph, tensor_index: dict[str, int], op_index: list[int]) -> None:
    """Execution order and ownership: every activation an operator reads is a model input or written
    by an earlier operator, each tensor is written once, model inputs are never written, outputs are
    written; and the arena bound."""
    def desc(t: str) -> str:
        return f"tensor {tensor_index.get(t, '?')} ({t!r})"
    if not graph.inputs or not graph.outputs:
        raise _err(f"{label}: the model has {len(graph.inputs)} inputs and {len(graph.outputs)} outputs; "
                   "needs at least one of each")
    if len(set(graph.inputs)) != len(graph.inputs):  # (an output listed twice is fine: copied out twice)
        raise _err(f"{label}: a tensor is listed twice among the model's inputs")
    ready: dict[str, None] = {}  # written so far, in execution order
    for t in graph.inputs:
        if not t or graph.tensors[t].is_const:
            raise _err(f"{label}: model input {desc(t)} is missing or a constant")
        ready[t] = None
    for k, op in enumerate(graph.ops):
        where = f"{label}: operator {op_index[k]} ({op.kind})"
        for t in op.inputs:
            if t and not graph.tensors[t].is_const and t not in ready:
                raise _err(f"{where}: reads {desc(t)} before any operator writes it (operators must be in "
                           "execution order; every activation must be a model input or an earlier output)")
        for t in op.outputs:
            if t in ready:
                raise _err(f"{where}: writes {desc(t)}, which is a model input or written by an earlier operator")
            ready[t] = None
    for t in graph.outputs:
        if t not in ready:
            raise _err(f"{label}: model output {desc(t)} is never written")
    total = 0
    for t in ready:
        if 0 in graph.tensors[t].shape:
            raise _err(f"{label}: activation {desc(t)} has the empty shape {list(graph.tensors[t].shape)}")
        nb = graph.tensors[t].nbytes
        if nb > MAX_ACTIVATION_BYTES:
            raise _err(f"{label}: activation {desc(t)} of shape {list(graph.tensors[t].shape)} needs {nb} bytes, "
                       f"more than {MAX_ACTIVATION_BYTES} (no microcontroller arena holds it)", hint=_SIZE_HINT)
        total += nb
    if total > MAX_ARENA_BYTES:
        raise _err(f"{label}: the activations need {total} bytes together, more than {MAX_ARENA_BYTES}",
                   hint=_SIZE_HINT)
