"""Read a full-integer TFLite flatbuffer into the shared ``ir.Graph`` (schema-based: the ``tflite`` package).

``read_tflite(path)`` returns the Graph the pruning stage and the planner use; ``read_model(path)``
also returns what code generation needs besides the graph (TFLite tensor indices, the model's hash,
the float boundary of models that take/return float through QUANTIZE/DEQUANTIZE).

Refusals (all before any file is written):
  * ``UserInputError``: not a TFLite flatbuffer / truncated / corrupt; a model that is not full-integer
    int8 (float, int16 16x8, dynamic-range, ...: ``tinyprune._tflite_kind`` names which).
  * ``UnsupportedModelError``: an operator or option outside SUPPORTED_OPS (message names the op,
    its node index and output tensor, and the supported list); any tensor or operator field the
    generated code relies on out of range or inconsistent (``model_checks``: shapes, strides,
    scales, zero points, indices, buffers, execution order, the arena bound).

Boundary QUANTIZE (float32 model input -> int8) and DEQUANTIZE (int8 -> float32 model output) are
removed from the graph: the generated C takes and returns the int8 tensors; ``Boundary`` keeps
their scale/zero point so that the host check can feed TFLite Micro floats that quantize exactly.

This module may import only tinyprune.errors, tinyprune._fs, tinyprune._tflite_kind, tinyprune.codegen.ir,
tinyprune.codegen.model_checks, tinyprune.codegen.layout_ops and tinyprune.codegen.split_ops (+ numpy, tflite).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinyprune._tflite_kind import DESCRIPTION, tflite_kind
from tinyprune.codegen import ir, layout_ops, model_checks, split_ops
from tinyprune.errors import UnsupportedModelError, UserInputError

SUPPORTED_OPS = (
    "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "MUL", "AVERAGE_POOL_2D", "MAX_POOL_2D",
    "MEAN", "PAD", "PADV2", "RESHAPE", "SQUEEZE", "CONCATENATION", "SOFTMAX", "LOGISTIC", "HARD_SWISH",
    "RELU", "RELU6", "QUANTIZE", "DEQUANTIZE", "TRANSPOSE",
    "RESIZE_NEAREST_NEIGHBOR", "TANH", "LEAKY_RELU", "PRELU", "STRIDED_SLICE", "SPLIT", "SPLIT_V",
)
SPLIT_OPS = ("SPLIT", "SPLIT_V")   # read as one STRIDED_SLICE per output (split_ops.split_as_slices)
SUPPORTED_ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")

_TYPE_NAMES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 5: "string", 6: "bool",
               7: "int16", 8: "complex64", 9: "int8", 10: "float64"}
_NP = {"float32": np.float32, "int32": np.int32, "uint8": np.uint8, "int64": np.int64, "int16": np.int16,
       "int8": np.int8, "bool": np.bool_, "float16": np.float16, "float64": np.float64}
_ACT = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}
_PAD = {0: "SAME", 1: "VALID"}


@dataclass
class Boundary:
    """A float model input/output converted at the boundary: float = (q - zero_point) * scale."""
    float_tensor_index: int
    scale: float
    zero_point: int


@dataclass
class TfliteModel:
    graph: ir.Graph
    sha256: str
    data: bytes
    tensor_index: dict[str, int]                       # ir tensor name -> TFLite tensor index
    op_index: list[int]                                # ir op -> TFLite operator index
    input_boundary: dict[str, Boundary] = field(default_factory=dict)   # int8 graph input -> float input
    output_boundary: dict[str, Boundary] = field(default_factory=dict)  # int8 graph output -> float output
    tflite_inputs: list[int] = field(default_factory=list)
    tflite_outputs: list[int] = field(default_factory=list)


def read_tflite(path: str | Path) -> ir.Graph:
    return read_model(path).graph


def _corrupt(path, why: str) -> UserInputError:
    return UserInputError(f"{path}: not a valid TFLite flatbuffer ({why})",
                          hint="pass the .tflite file written by `tinyprune convert` or the TFLite converter; "
                               "re-export it if it was truncated or modified")


def read_model(path: str | Path) -> TfliteModel:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UserInputError(f"cannot read model {path}: {e.strerror or e}") from None
    return read_model_bytes(data, str(path))


def read_model_bytes(data: bytes, label: str = "model") -> TfliteModel:
    import tflite  # schema package

    if len(data) < 16:
        raise _corrupt(label, f"only {len(data)} bytes")
    if data[4:8] != b"TFL3":
        raise _corrupt(label, "missing the 'TFL3' file identifier")
    try:
        model = tflite.Model.GetRootAsModel(data, 0)
        parsed = _parse(model, data, label)
    except (UserInputError, UnsupportedModelError):
        raise
    except Exception as e:  # noqa: BLE001 - flatbuffers raises assorted errors on bad offsets
        raise _corrupt(label, f"{type(e).__name__} while decoding: {e}") from None
    return parsed


def _opname(model, op, i: int = -1, label: str = "model") -> str:
    import tflite
    if not 0 <= op.OpcodeIndex() < model.OperatorCodesLength():
        raise UnsupportedModelError(f"{label}: operator {i}: opcode index {op.OpcodeIndex()} out of range "
                                    f"(the model has {model.OperatorCodesLength()} operator codes)",
                                    hint="the model file is corrupt: re-export it")
    oc = model.OperatorCodes(op.OpcodeIndex())
    code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
    if code == 32:  # CUSTOM
        return "CUSTOM:" + (oc.CustomCode() or b"?").decode(errors="replace")
    try:
        return tflite.opcode2name(code)
    except ValueError:
        return f"BUILTIN_{code}"


def _options(op, cls, where: str = "", required: bool = False):
    """The operator's builtin options table read as ``cls``; None when absent and not ``required``.
    A table of another type (BuiltinOptionsType) is refused, not read with the wrong layout."""
    import tflite
    table = op.BuiltinOptions()
    want = getattr(tflite.BuiltinOptions, cls.__name__)
    if table is None or op.BuiltinOptionsType() != want:
        if table is None and op.BuiltinOptionsType() == 0 and not required:
            return None
        got = "missing" if table is None else f"of type {op.BuiltinOptionsType()}"
        raise UnsupportedModelError(f"{where}: builtin options {got}; needs {cls.__name__} ({want})",
                                    hint="the model file is corrupt: re-export it")
    o = cls()
    o.Init(table.Bytes, table.Pos)
    return o


def _padding(v: int, where: str) -> str:
    if v not in _PAD:
        raise UnsupportedModelError(f"{where}: padding {v} is not SAME (0) or VALID (1)",
                                    hint="the model file is corrupt: re-export it")
    return _PAD[v]


def _parse(model, data: bytes, label: str) -> TfliteModel:
    import tflite

    if model.SubgraphsLength() != 1:
        raise UnsupportedModelError(f"{label}: {model.SubgraphsLength()} subgraphs; only single-subgraph models "
                                    "are supported (no control flow)")
    sg = model.Subgraphs(0)
    n_t = sg.TensorsLength()

    # --- tensors ---
    names: list[str] = []
    seen: set[str] = set()
    tensors: dict[str, ir.Tensor] = {}
    tensor_index: dict[str, int] = {}
    for i in range(n_t):
        t = sg.Tensors(i)
        name = (t.Name() or b"").decode(errors="replace") or f"tensor_{i}"
        if name in seen:
            name = f"{name}#{i}"
        seen.add(name)
        names.append(name)
        dtype = _TYPE_NAMES.get(t.Type(), f"type{t.Type()}")
        shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        quant = None
        q = t.Quantization()
        if q is not None and q.ScaleLength() > 0:
            quant = ir.Quant(scales=[float(s) for s in q.ScaleAsNumpy()],
                             zero_points=[int(z) for z in q.ZeroPointAsNumpy()] if q.ZeroPointLength() else
                             [0] * q.ScaleLength(),
                             axis=int(q.QuantizedDimension()))
            if len(shape) == 1 and quant.axis != 0 and len(quant.scales) == shape[0]:
                # a 1-D tensor has one dimension: TFLite Micro never reads its quantized_dimension, and
                # some converters copy the filter's (3) onto per-channel biases (TFLM's person_detect)
                quant.axis = 0
        desc = f"tensor {i} ({name!r})"
        arr = None
        buf_i = t.Buffer()
        model_checks.check_tensor(label, desc, dtype, shape, quant, has_buffer=buf_i > 0)
        if buf_i >= model.BuffersLength():
            raise UnsupportedModelError(f"{label}: {desc}: buffer index {buf_i} out of range (the model has "
                                        f"{model.BuffersLength()} buffers)",
                                        hint="the model file is corrupt: re-export it")
        if buf_i > 0:
            b = model.Buffers(buf_i)
            raw = None
            if b.DataLength() > 0:
                raw = b.DataAsNumpy().tobytes()
            elif b.Offset() > 1:  # large models store buffers after the flatbuffer
                raw = data[b.Offset():b.Offset() + b.Size()]
            if raw is not None:
                if dtype not in _NP:
                    raise UnsupportedModelError(f"{label}: constant {desc} has type {dtype}")
                count = int(np.prod(shape)) if shape else 1
                npd = np.dtype(_NP[dtype])
                if len(raw) != count * npd.itemsize:
                    raise _corrupt(label, f"buffer {buf_i} of {desc} has {len(raw)} bytes, "
                                          f"shape {list(shape)} of {dtype} needs {count * npd.itemsize}")
                arr = np.frombuffer(raw, dtype=npd).reshape(shape).copy()
        tensors[name] = ir.Tensor(name=name, shape=shape, dtype=dtype, quant=quant, data=arr,
                                  is_const=arr is not None)
        tensor_index[name] = i

    def tname(i: int, where: str = "the subgraph") -> str:
        if i == -1:
            return ""  # an omitted optional input; check_op refuses it where the input is required
        if not 0 <= i < n_t:
            raise UnsupportedModelError(f"{label}: {where}: tensor index {i} out of range (the model has {n_t} "
                                        "tensors)", hint="the model file is corrupt: re-export it")
        return names[i]

    inputs = [tname(int(i), "model inputs") for i in sg.InputsAsNumpy()] if sg.InputsLength() else []
    outputs = [tname(int(i), "model outputs") for i in sg.OutputsAsNumpy()] if sg.OutputsLength() else []

    # --- an int8 model? (before op checks, so a float or int16 model is told so, not an op error) ---
    try:
        kind = tflite_kind(data)
    except Exception:  # noqa: BLE001 - a damaged model: the checks below name what is wrong
        kind = "int8"
    if kind != "int8":
        raise UserInputError(
            f"{label}: {DESCRIPTION[kind]}; code generation needs a full-integer int8 model",
            hint="quantize it to int8 on your data: `tinyprune convert MODEL --data CALIB.npz -o OUT` (or `tinyprune "
                 "build MODEL`) takes a float .tflite" if kind == "float" else
                 "tinyprune's kernels are int8: quantize the float model (float .tflite, Keras .keras/.h5, SavedModel, "
                 "PyTorch or ONNX) to full-integer int8 with `tinyprune convert FLOAT_MODEL --data CALIB.npz -o OUT`")

    # --- ops ---
    ops: list[ir.Op] = []
    op_index: list[int] = []
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        kind = _opname(model, op, i, label)
        ins = [tname(int(j), f"operator {i} ({kind})") for j in op.InputsAsNumpy()] if op.InputsLength() else []
        outs = [tname(int(j), f"operator {i} ({kind})") for j in op.OutputsAsNumpy()] if op.OutputsLength() else []
        where = f"operator {i} ({kind}, output {outs[0] if outs else '?'!r})"
        if kind not in SUPPORTED_OPS:
            raise UnsupportedModelError(
                f"{label}: unsupported operator {kind} at node {i} (output tensor "
                f"{outs[0] if outs else '?'!r})",
                hint="supported operators: " + ", ".join(SUPPORTED_OPS))
        if kind in SPLIT_OPS:
            ir_ops = split_ops.split_as_slices(kind, ins, outs, tensors, f"{label}: {where}")
        else:
            ir_ops = [(kind, ins, outs, _op_options(op, kind, tflite, f"{label}: {where}"))]
        for kind, ins, outs, options in ir_ops:
            where = f"operator {i} ({kind}, output {outs[0] if outs else '?'!r})"
            _read_op(label, where, kind, ins, outs, options, tensors, ops, op_index, i)
    for k, op in enumerate(ops):
        _check_op(op, tensors, f"operator {op_index[k]} ({op.kind}, output {op.outputs[0]!r})", label)
    # tensors _check_op derived (re-laid-out filters) get indices after the flatbuffer's own
    next_index = max(tensor_index.values(), default=-1) + 1
    for name in tensors:
        if name not in tensor_index:
            tensor_index[name] = next_index
            next_index += 1

    graph = ir.Graph(tensors=tensors, ops=ops, inputs=inputs, outputs=outputs,
                     name=(sg.Name() or b"model").decode(errors="replace") or "model")
    model_checks.check_graph(label, graph, tensor_index, op_index)
    result = TfliteModel(graph=graph, sha256=hashlib.sha256(data).hexdigest(), data=data,
                         tensor_index=tensor_index, op_index=op_index,
                         tflite_inputs=[int(i) for i in sg.InputsAsNumpy()],
                         tflite_outputs=[int(i) for i in sg.OutputsAsNumpy()])
    _strip_boundary(result, label)
    return result


def _read_op(label, where, kind, ins, outs, options, tensors, ops, op_index, i) -> None:
    model_checks.check_op(label, where, kind, ins, outs, options, tensors)
    for t in outs + [x for x in ins if x and not tensors[x].is_const]:
        dt = tensors[t].dtype
        if kind in ("QUANTIZE", "DEQUANTIZE") and dt == "float32":
            continue
        if dt != "int8" and not (kind in ("RESHAPE", "SQUEEZE") and dt == "int32"):
            raise UnsupportedModelError(f"{label}: {where}: tensor {t!r} has type {dt}; only int8 "
                                        "activations are supported (no int16/uint8 quantization)")
        if dt == "int8" and tensors[t].quant is None:
            raise UserInputError(f"{label}: {where}: int8 tensor {t!r} has no quantization parameters")
        if dt == "int8" and len(tensors[t].quant.scales) != 1:
            raise UnsupportedModelError(f"{label}: {where}: int8 activation {t!r} has "
                                        f"{len(tensors[t].quant.scales)} scales; activations are quantized "
                                        "per tensor (one scale and zero point)")
    ops.append(ir.Op(kind=kind, inputs=ins, outputs=outs, options=options, name=outs[0] if outs else kind))
    op_index.append(i)


def _op_options(op, kind: str, tflite, where: str) -> dict:
    o: dict = {}

    def act(v):
        a = _ACT.get(v, f"{v} (unknown)")
        if a not in SUPPORTED_ACTIVATIONS:
            raise UnsupportedModelError(f"{where}: fused activation {a} is not supported "
                                        f"(supported: {', '.join(SUPPORTED_ACTIVATIONS)})")
        return a

    if kind == "CONV_2D":
        x = _options(op, tflite.Conv2DOptions, where, required=True)
        o.update(padding=_padding(x.Padding(), where), stride_h=x.StrideH(), stride_w=x.StrideW(),
                 dilation_h=x.DilationHFactor(), dilation_w=x.DilationWFactor(),
                 fused_activation=act(x.FusedActivationFunction()))
    elif kind == "DEPTHWISE_CONV_2D":
        x = _options(op, tflite.DepthwiseConv2DOptions, where, required=True)
        o.update(padding=_padding(x.Padding(), where), stride_h=x.StrideH(), stride_w=x.StrideW(),
                 dilation_h=x.DilationHFactor(), dilation_w=x.DilationWFactor(),
                 depth_multiplier=x.DepthMultiplier(), fused_activation=act(x.FusedActivationFunction()))
    elif kind == "FULLY_CONNECTED":
        x = _options(op, tflite.FullyConnectedOptions, where)
        if x is not None:
            if x.WeightsFormat() != 0:
                raise UnsupportedModelError(f"{where}: shuffled FULLY_CONNECTED weights are not supported")
            o.update(fused_activation=act(x.FusedActivationFunction()), keep_num_dims=bool(x.KeepNumDims()))
        else:
            o.update(fused_activation="NONE", keep_num_dims=False)
    elif kind in ("ADD", "MUL"):
        cls = tflite.AddOptions if kind == "ADD" else tflite.MulOptions
        x = _options(op, cls, where)
        o.update(fused_activation=act(x.FusedActivationFunction()) if x is not None else "NONE")
    elif kind in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        x = _options(op, tflite.Pool2DOptions, where, required=True)
        o.update(padding=_padding(x.Padding(), where), stride_h=x.StrideH(), stride_w=x.StrideW(),
                 filter_h=x.FilterHeight(), filter_w=x.FilterWidth(),
                 fused_activation=act(x.FusedActivationFunction()))
    elif kind == "MEAN":
        x = _options(op, tflite.ReducerOptions, where)
        o.update(keep_dims=bool(x.KeepDims()) if x is not None else False)
    elif kind == "CONCATENATION":
        x = _options(op, tflite.ConcatenationOptions, where, required=True)
        o.update(axis=x.Axis(), fused_activation=act(x.FusedActivationFunction()))
        if o["fused_activation"] != "NONE":
            raise UnsupportedModelError(f"{where}: CONCATENATION with a fused activation is not supported")
    elif kind == "SOFTMAX":
        x = _options(op, tflite.SoftmaxOptions, where)
        o.update(beta=float(x.Beta()) if x is not None else 1.0)
    elif kind == "RESIZE_NEAREST_NEIGHBOR":
        x = _options(op, tflite.ResizeNearestNeighborOptions, where)
        o.update(align_corners=bool(x.AlignCorners()) if x is not None else False,
                 half_pixel_centers=bool(x.HalfPixelCenters()) if x is not None else False)
    elif kind == "LEAKY_RELU":
        x = _options(op, tflite.LeakyReluOptions, where)
        o.update(alpha=float(np.float32(x.Alpha())) if x is not None else 0.0)
    elif kind == "STRIDED_SLICE":
        x = _options(op, tflite.StridedSliceOptions, where)
        masks = {k: int(getattr(x, k)()) if x is not None else 0
                 for k in ("BeginMask", "EndMask", "ShrinkAxisMask", "EllipsisMask", "NewAxisMask")}
        if masks["EllipsisMask"] or masks["NewAxisMask"] or (x is not None and x.Offset()):
            raise UnsupportedModelError(f"{where}: STRIDED_SLICE with an ellipsis mask, a new-axis mask or offset "
                                        "is not supported (TFLite Micro ignores them)",
                                        hint="slice with explicit begin/end/strides on every axis")
        o.update(begin_mask=masks["BeginMask"], end_mask=masks["EndMask"], shrink_axis_mask=masks["ShrinkAxisMask"])
    return o


def _const(tensors, name, where, what) -> np.ndarray:
    if not name or not tensors[name].is_const:
        raise UnsupportedModelError(f"{where}: the {what} must be a constant tensor")
    return tensors[name].data


def _check_op(op: ir.Op, tensors: dict[str, ir.Tensor], where: str, label: str) -> None:
    k = op.kind
    inp = tensors[op.inputs[0]] if op.inputs and op.inputs[0] else None
    out = tensors[op.outputs[0]]
    if k in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        w = tensors[op.inputs[1]]
        _const(tensors, op.inputs[1], where, "filter")
        if len(inp.shape) != 4 or len(w.shape) != 4:
            raise UnsupportedModelError(f"{where}: expects 4-D input and filter, got {inp.shape} and {w.shape}")
        if w.dtype != "int8" or w.quant is None or any(z != 0 for z in w.quant.zero_points):
            raise UnsupportedModelError(f"{where}: filter must be int8 with zero point 0 (TFLite int8 spec)")
        if k == "CONV_2D" and w.shape[3] == 1 and inp.shape[3] > 1 and out.shape[3] % inp.shape[3] == 0 \
                and w.data is not None:
            # A grouped CONV_2D with one input channel per group is a depthwise convolution (output
            # channel o reads input channel o // m, m = out_c / in_c); converters emit it for some widths
            # of depthwise layers (e.g. pruned ones). Rewrite it as DEPTHWISE_CONV_2D: same integer sums,
            # same per-channel requantisation, so the same bit-exact results.
            dw_name = f"{op.inputs[1]}/as_depthwise"
            tensors[dw_name] = ir.Tensor(
                name=dw_name, shape=(1, w.shape[1], w.shape[2], w.shape[0]), dtype=w.dtype,
                quant=ir.Quant(list(w.quant.scales), list(w.quant.zero_points), axis=3),
                data=w.data.transpose(3, 1, 2, 0).copy(), is_const=True)
            op.inputs[1] = dw_name
            op.kind = k = "DEPTHWISE_CONV_2D"
        if k == "DEPTHWISE_CONV_2D":
            w = tensors[op.inputs[1]]
            if w.shape[3] % inp.shape[3] or out.shape[3] != w.shape[3]:
                raise UnsupportedModelError(f"{where}: filter channels {w.shape[3]} not a multiple of input "
                                            f"channels {inp.shape[3]}")
            op.options["depth_multiplier"] = w.shape[3] // inp.shape[3]
    elif k == "FULLY_CONNECTED":
        w = tensors[op.inputs[1]]
        _const(tensors, op.inputs[1], where, "weight matrix")
        if w.dtype != "int8" or len(w.shape) != 2:
            raise UnsupportedModelError(f"{where}: weights must be a 2-D int8 matrix, got {w.dtype} {w.shape}")
        if any(z != 0 for z in w.quant.zero_points):
            raise UnsupportedModelError(f"{where}: weight zero point must be 0")
        if int(np.prod(inp.shape)) % w.shape[1]:
            raise UnsupportedModelError(f"{where}: input of {int(np.prod(inp.shape))} elements is not a multiple "
                                        f"of the weight depth {w.shape[1]}")
    elif k in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
        pass
    if k in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") and len(op.inputs) > 2 and op.inputs[2]:
        b = tensors[op.inputs[2]]
        _const(tensors, op.inputs[2], where, "bias")
        if b.dtype != "int32":
            raise UnsupportedModelError(f"{where}: bias must be int32, got {b.dtype}")
    if k in ("ADD", "MUL"):
        a, b = tensors[op.inputs[0]], tensors[op.inputs[1]]
        if len(out.shape) > 5:
            raise UnsupportedModelError(f"{where}: more than 5 dimensions")
        for t in (a, b):
            if t.is_const and t.dtype != "int8":
                raise UnsupportedModelError(f"{where}: constant operand {t.name!r} must be int8")
    if k in ("AVERAGE_POOL_2D", "MAX_POOL_2D") and len(inp.shape) != 4:
        raise UnsupportedModelError(f"{where}: expects a 4-D input, got {inp.shape}")
    if k == "MEAN":
        axes = _const(tensors, op.inputs[1], where, "axis list")
        if len(inp.shape) > 4:
            raise UnsupportedModelError(f"{where}: MEAN over a tensor of more than 4 dimensions")
        op.options["axes"] = sorted({int(a) % len(inp.shape) for a in np.atleast_1d(axes)})
    if k in ("PAD", "PADV2"):
        pads = _const(tensors, op.inputs[1], where, "paddings")
        if len(inp.shape) > 4:
            raise UnsupportedModelError(f"{where}: PAD of more than 4 dimensions")
        op.options["paddings"] = [[int(a), int(b)] for a, b in np.asarray(pads).reshape(-1, 2)]
        if k == "PADV2" and len(op.inputs) > 2 and op.inputs[2]:
            op.options["pad_value"] = int(np.asarray(_const(tensors, op.inputs[2], where, "pad value")).ravel()[0])
    if k == "TRANSPOSE":
        perm = _const(tensors, op.inputs[1], where, "permutation")
        op.options["perm"] = [int(p) for p in np.asarray(perm).ravel()]
        layout_ops.lower_transpose(inp.shape, op.options["perm"], where)  # refuses > 4-D after merging
    if k == "CONCATENATION":
        op.options["axis"] = int(op.options["axis"]) % len(out.shape)
        for t in op.inputs:
            if tensors[t].is_const and tensors[t].dtype != "int8":
                raise UnsupportedModelError(f"{where}: constant input {t!r} must be int8")
    if k == "SOFTMAX":
        q = out.quant
        if q.zero_points[0] != -128 or np.float32(q.scales[0]) != np.float32(1.0 / 256):
            raise UnsupportedModelError(f"{where}: int8 SOFTMAX output must have scale 1/256 and zero point -128 "
                                        "(TFLite int8 spec)")
    if k == "LOGISTIC":
        if out.quant.zero_points[0] != -128:
            raise UnsupportedModelError(f"{where}: int8 LOGISTIC output must have zero point -128")
    if k == "TANH":
        q = out.quant
        if q.zero_points[0] != 0 or np.float32(q.scales[0]) != np.float32(1.0 / 128):
            raise UnsupportedModelError(f"{where}: int8 TANH output must have scale 1/128 and zero point 0 "
                                        "(TFLite int8 spec; TFLite Micro's kernel assumes them)")
    if k == "STRIDED_SLICE":
        vals = [np.asarray(_const(tensors, op.inputs[j], where, what)).ravel()
                for j, what in ((1, "begin"), (2, "end"), (3, "strides"))]
        dims, first, step, count, out_shape = layout_ops.resolve_strided_slice(
            inp.shape, *vals, op.options["begin_mask"], op.options["end_mask"], op.options["shrink_axis_mask"], where)
        if list(out.shape) != out_shape:
            raise UnsupportedModelError(f"{where}: output shape {list(out.shape)} != the slice's shape {out_shape}")
        op.options.update(slice_dims=dims, slice_begin=first, slice_stride=step, slice_count=count)
    if k in ("QUANTIZE", "DEQUANTIZE"):
        if k == "QUANTIZE" and inp.dtype == "int8":
            return
        if k == "QUANTIZE" and inp.dtype == "float32":
            return  # boundary; validated by _strip_boundary
        if k == "DEQUANTIZE" and out.dtype == "float32" and inp.dtype == "int8":
            return
        raise UnsupportedModelError(f"{where}: {k} from {inp.dtype} to {out.dtype} is not supported "
                                    "(only int8->int8, and float32<->int8 at the model boundary)")


def _strip_boundary(m: TfliteModel, label: str) -> None:
    g = m.graph
    keep: list[int] = []
    consumers = g.consumers()
    for i, op in enumerate(g.ops):
        if op.kind == "QUANTIZE" and g.tensors[op.inputs[0]].dtype == "float32":
            src, dst = op.inputs[0], op.outputs[0]
            if src not in g.inputs or len(consumers.get(src, [])) != 1:
                raise UnsupportedModelError(f"{label}: QUANTIZE from float inside the model (node "
                                            f"{m.op_index[i]}); only at a model input")
            q = g.tensors[dst].quant
            g.inputs[g.inputs.index(src)] = dst
            m.input_boundary[dst] = Boundary(m.tensor_index[src], q.scales[0], q.zero_points[0])
            del g.tensors[src]
            continue
        if op.kind == "DEQUANTIZE":
            src, dst = op.inputs[0], op.outputs[0]
            if dst not in g.outputs or dst in consumers:
                raise UnsupportedModelError(f"{label}: DEQUANTIZE inside the model (node {m.op_index[i]}); "
                                            "only at a model output")
            q = g.tensors[src].quant
            g.outputs[g.outputs.index(dst)] = src
            m.output_boundary[src] = Boundary(m.tensor_index[dst], q.scales[0], q.zero_points[0])
            del g.tensors[dst]
            continue
        keep.append(i)
    if len(keep) != len(g.ops):
        g.ops = [g.ops[i] for i in keep]
        m.op_index = [m.op_index[i] for i in keep]
    for t in g.inputs + g.outputs:
        if g.tensors[t].dtype != "int8":
            raise UnsupportedModelError(f"{label}: model input/output {t!r} has type {g.tensors[t].dtype}; "
                                        "only int8 (or float through QUANTIZE/DEQUANTIZE) is supported")
