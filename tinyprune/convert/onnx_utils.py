"""PyTorch -> ONNX export and the checks done before any conversion: readable file, static
shapes, one input, and only operators the int8 TFLite path can take.

May import torch, onnx, onnxruntime and tinyprune.errors; never TensorFlow.
"""
from __future__ import annotations

import io
import os
import re
import warnings
from pathlib import Path

import numpy as np

from tinyprune.convert.quiet import quiet
from tinyprune.errors import UnsupportedModelError, UserInputError

OPSET = 14  # within 13-17; 14 is the first with HardSwish (at 13 torch decomposes it into HardSigmoid * x)

# ONNX operators the onnx2tf + full-integer TFLite path turns into int8 TFLITE_BUILTINS.
SUPPORTED_OPS = frozenset({
    "Add", "AveragePool", "BatchNormalization", "Clip", "Concat", "Constant", "Conv", "Div", "Dropout",
    "Flatten", "Gemm", "GlobalAveragePool", "GlobalMaxPool", "HardSigmoid", "HardSwish", "Identity",
    "LeakyRelu", "MatMul", "PRelu", "Slice", "Split", "MaxPool", "Mul", "Pad", "ReduceMean", "Relu", "Reshape", "Sigmoid", "Softmax",
    "Resize", "Squeeze", "Sub", "Tanh", "Transpose", "Unsqueeze",
})
# Resize (nearest only: RESIZE_NEAREST_NEIGHBOR) is further checked by _resize_problem; these attributes
# are how torch.onnx exports nn.Upsample / F.interpolate(mode="nearest"), which onnx2tf maps onto that op
RESIZE_NEAREST_ATTRS = {"coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}


def export_onnx(module, example_input, path: str | os.PathLike, *, opset: int = OPSET, debug: bool = False) -> Path:
    """Export ``module`` (eval mode; BatchNorm folded into convolutions by the exporter) with a static
    batch-1 input named ``input`` and output(s) ``output``. Raises UnsupportedModelError when torch
    cannot export an operator."""
    import torch

    path = Path(path)
    module = module.eval()
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad(), quiet(debug):
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (example_input,), buf, dynamo=False, opset_version=opset,
                              input_names=["input"], output_names=["output"], do_constant_folding=True)
    except Exception as e:  # noqa: BLE001 - torch raises many kinds for unexportable ops
        msg = " ".join(str(e).split())[:300]
        raise UnsupportedModelError(f"the model cannot be exported to ONNX: {msg}",
                                    hint="replace the operator named above with standard layers "
                                         "(conv, linear, pooling, ReLU/ReLU6/hard-swish, add, concat)") from e
    path.write_bytes(buf.getvalue())
    return path


def load_onnx(path: str | os.PathLike):
    """Read and structurally check an ONNX file (UserInputError if corrupt or truncated)."""
    import onnx

    p = Path(path)
    if not p.is_file():
        raise UserInputError(f"ONNX file not found: {p}")
    try:
        model = onnx.load(str(p))
        onnx.checker.check_model(model)
    except Exception as e:  # noqa: BLE001 - protobuf DecodeError, ValidationError, ...
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserInputError(f"{p} is not a valid ONNX model (corrupt or truncated?): {first[:200]}",
                             hint="re-export it, e.g. with torch.onnx.export(..., dynamo=False)") from None
    return model


def _graph_inputs(model):
    inits = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits]


def input_shape_of(model) -> tuple[int, ...]:
    """Static input shape, or UserInputError naming the symbolic dimension."""
    inputs = _graph_inputs(model)
    if len(inputs) != 1:
        raise UnsupportedModelError(f"the model has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); "
                                    "tinyprune takes models with exactly one input")
    inp = inputs[0]
    dims = inp.type.tensor_type.shape.dim
    shape = []
    for k, d in enumerate(dims):
        if d.HasField("dim_value") and d.dim_value > 0:
            shape.append(int(d.dim_value))
        else:
            name = d.dim_param or "?"
            raise UserInputError(
                f"input '{inp.name}' has a dynamic dimension {k} ('{name}'); microcontroller models need static shapes",
                hint="re-export with a fixed input, e.g. torch.onnx.export(model, torch.zeros(1, C, H, W), ...) "
                     "without dynamic_axes")
    if inp.type.tensor_type.elem_type != 1:
        raise UnsupportedModelError(f"input '{inp.name}' is not float32", hint="export the float model")
    if len(shape) not in (2, 3, 4) or shape[0] != 1:
        raise UnsupportedModelError(f"input '{inp.name}' has shape {tuple(shape)}; tinyprune takes (1, C, H, W), "
                                    "(1, C, L) or (1, F)", hint="export with batch 1")
    for o in model.graph.output:
        for k, d in enumerate(o.type.tensor_type.shape.dim):
            if not (d.HasField("dim_value") and d.dim_value > 0):
                raise UserInputError(f"output '{o.name}' has a dynamic dimension {k} ('{d.dim_param or '?'}')",
                                     hint="re-export with static shapes (no dynamic_axes)")
    return tuple(shape)


def check_supported_ops(model) -> list[str]:
    """The op types in graph order; UnsupportedModelError naming every unsupported op and its node."""
    ops, bad = [], []
    for node in model.graph.node:
        name = node.name or (node.output[0] if node.output else "?")
        if node.domain not in ("", "ai.onnx"):
            bad.append(f"{node.domain}.{node.op_type} (node '{name}', a custom operator)")
        elif node.op_type not in SUPPORTED_OPS:
            bad.append(f"{node.op_type} (node '{name}')")
        elif node.op_type == "Resize":
            why = _resize_problem(node, model)
            if why:
                bad.append(f"Resize (node '{name}': {why})")
        ops.append(node.op_type)
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise UnsupportedModelError(
            f"the int8 TFLite path cannot take operator{'s' if len(bad) > 1 else ''} {shown}",
            hint="replace those layers; supported ONNX operators: " + ", ".join(sorted(SUPPORTED_OPS)))
    return ops


def _constants(model) -> dict:
    """Constant tensors by name: initializers and Constant nodes' outputs."""
    from onnx import numpy_helper
    consts = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    return consts


def _resize_problem(node, model) -> str | None:
    """Why this Resize cannot become RESIZE_NEAREST_NEIGHBOR, or None. Taken: mode nearest with
    RESIZE_NEAREST_ATTRS, a constant output size or constant whole-number scale factors >= 1 on the
    height and width of a 4-D (N, C, H, W) tensor (scale 1 on batch and channels; a size that changes
    them is left to the TFLite reader, which refuses RESIZE_NEAREST_NEIGHBOR changing them)."""
    from onnx import helper
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    attrs = {k: v.decode() if isinstance(v, bytes) else v for k, v in attrs.items()}
    mode = attrs.get("mode", "nearest")
    if mode != "nearest":
        return (f"mode '{mode}' ({'bilinear' if mode == 'linear' else mode} interpolation); only nearest-neighbour "
                "resizing is supported: nn.Upsample(scale_factor=k, mode='nearest') or F.interpolate(..., "
                "mode='nearest')")
    for key, want in RESIZE_NEAREST_ATTRS.items():
        got = attrs.get(key, {"coordinate_transformation_mode": "half_pixel", "nearest_mode": "round_prefer_floor"}[key])
        if got != want:
            return (f"{key} '{got}'; nearest resizing is supported as torch exports mode='nearest' "
                    f"({', '.join(f'{k} {v!r}' for k, v in RESIZE_NEAREST_ATTRS.items())}), without align_corners")
    consts = _constants(model)
    names = list(node.input) + [""] * (4 - len(node.input))
    scales = consts.get(names[2]) if names[2] else None
    sizes = consts.get(names[3]) if names[3] else None
    if (names[2] and scales is None) or (names[3] and sizes is None):
        return "the output size or scale factors are computed at run time; they must be constants"
    scales = None if scales is None or scales.size == 0 else np.asarray(scales, dtype=np.float64).ravel()
    sizes = None if sizes is None or sizes.size == 0 else np.asarray(sizes, dtype=np.int64).ravel()
    vec = scales if scales is not None else sizes
    if vec is None or vec.size != 4:
        return ("only 4-D (N, C, H, W) tensors resized in height and width are supported (got "
                f"{'no scales or sizes' if vec is None else f'{vec.size} dimensions'})")
    if scales is not None:
        if scales[0] != 1 or scales[1] != 1:
            return f"scale factors {scales.tolist()} resize the batch or channels; only height and width can change"
        if any(f < 1 or f != int(f) for f in scales[2:]):
            return (f"scale factors {scales[2:].tolist()} on height and width; only whole-number factors >= 1 "
                    "(or an explicit output size) are supported")
    elif any(int(v) < 1 for v in sizes):
        return f"output size {sizes.tolist()} has a dimension below 1"
    return None


def simplify(model):
    """Constant-fold shape arithmetic (Shape/Gather/... from ``x.view(x.size(0), -1)``) with onnxsim;
    returns the model unchanged if simplification fails."""
    try:
        import onnxsim
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            simplified, ok = onnxsim.simplify(model)
        return simplified if ok else model
    except Exception:  # noqa: BLE001 - best effort
        return model


_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.]")


def sanitize_node_names(model):
    """Give every node a name TensorFlow accepts as a variable scope.

    torch.onnx names nodes after module paths ("/dw/Conv"); onnx2tf turns node names into TF
    variable names, and TF rejects a name that starts with "/" ("'/dw/Conv/kernel' is not a valid
    root scope name"), which happens for some layer widths (e.g. pruned models). Names are made
    from [A-Za-z0-9_.] only, start with a letter, and stay unique; tensor names (the graph's
    edges) are left alone."""
    seen: set[str] = set()
    for i, node in enumerate(model.graph.node):
        base = _SAFE_NAME.sub("_", node.name.strip("/")).strip("_") or f"{node.op_type}_{i}"
        if not base[0].isalpha():
            base = f"n{base}"
        name, k = base, 1
        while name in seen:
            name, k = f"{base}_{k}", k + 1
        seen.add(name)
        node.name = name
    return model


def fuse_hardswish(model):
    """Rewrite ``Mul(x, HardSigmoid(x, alpha=1/6, beta=0.5))`` (how opset-13 exporters write hard-swish)
    into ``HardSwish(x)``: onnx2tf turns a lone HardSigmoid into RELU_0_TO_1, which TFLite Micro lacks,
    whereas HardSwish becomes the int8 HARD_SWISH kernel. Raises the opset to 14 when needed."""
    import onnx
    from onnx import helper

    graph = model.graph
    producers = {o: n for n in graph.node for o in n.output}
    uses: dict[str, int] = {}
    for n in graph.node:
        for i in n.input:
            uses[i] = uses.get(i, 0) + 1
    for o in graph.output:
        uses[o.name] = uses.get(o.name, 0) + 1
    drop, replace = set(), {}
    for n in graph.node:
        if n.op_type != "Mul" or len(n.input) != 2:
            continue
        for a, b in ((0, 1), (1, 0)):
            hs = producers.get(n.input[a])
            if hs is None or hs.op_type != "HardSigmoid" or hs.input[0] != n.input[b] or uses.get(hs.output[0]) != 1:
                continue
            attrs = {at.name: helper.get_attribute_value(at) for at in hs.attribute}
            if abs(attrs.get("alpha", 0.2) - 1 / 6) < 1e-5 and abs(attrs.get("beta", 0.5) - 0.5) < 1e-6:
                drop.add(id(hs))
                replace[id(n)] = helper.make_node("HardSwish", [n.input[b]], list(n.output), name=n.name or hs.name)
                break
    if not replace:
        return model
    nodes = [replace.get(id(n), n) for n in graph.node if id(n) not in drop]
    del graph.node[:]
    graph.node.extend(nodes)
    for op in model.opset_import:
        if op.domain in ("", "ai.onnx") and op.version < 14:
            op.version = 14
    onnx.checker.check_model(model)
    return model


def ort_session(model_or_path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    data = model_or_path.SerializeToString() if hasattr(model_or_path, "SerializeToString") else str(model_or_path)
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])


def ort_run(session, x: np.ndarray, batch: int = 1) -> np.ndarray:
    """Run the (batch-1) model over every sample of ``x``; returns the first output stacked."""
    name = session.get_inputs()[0].name
    outs = [session.run(None, {name: x[i:i + 1].astype(np.float32)})[0] for i in range(len(x))]
    return np.concatenate(outs, axis=0)


def _rewrite_nodes(model, op_type: str, rewrite):
    """Replace every ``op_type`` node by the nodes ``rewrite(node)`` returns (``[node]`` keeps it), in
    graph order; the model is checked when anything changed."""
    import onnx
    nodes, changed = [], False
    for n in model.graph.node:
        new = rewrite(n) if n.op_type == op_type else [n]
        changed |= new != [n]
        nodes += new
    if changed:
        del model.graph.node[:]
        model.graph.node.extend(nodes)
        onnx.checker.check_model(model)
    return model


_NON_NEGATIVE_OPS = ("Relu", "Sigmoid", "HardSigmoid")


def _non_negative(name: str, producers: dict, consts: dict, depth: int = 0) -> bool:
    """True when tensor ``name`` can never be negative (made by ReLU, a sigmoid, a Clip with min >= 0,
    or a max-pool or a concatenation of such tensors: SqueezeNet's fire modules)."""
    from onnx import helper
    for _ in range(64):
        n = producers.get(name)
        if n is None:
            return False
        if n.op_type in _NON_NEGATIVE_OPS:
            return True
        if n.op_type == "Concat":
            return depth < 16 and all(_non_negative(i, producers, consts, depth + 1) for i in n.input)
        if n.op_type == "Clip":
            lo = consts.get(n.input[1]) if len(n.input) > 1 and n.input[1] else None
            attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
            lo = attrs.get("min") if lo is None else float(np.asarray(lo).reshape(-1)[0])
            return lo is not None and lo >= 0
        if n.op_type != "MaxPool":
            return False
        name = n.input[0]
    return False


def explicit_max_pool_padding(model):
    """Rewrite every MaxPool that pads (``padding=p``) or rounds its output size up (``ceil_mode``) into
    ``Pad(0) -> MaxPool(VALID)``. onnx2tf pads such a pool with -3.4e38, which becomes the int8 range of
    the tensor before it (scale ~1e36): the whole int8 model collapses. Padding with 0 is exact when the
    pool's input is never negative (it follows a ReLU in ResNet and ShuffleNet stems): every window holds
    at least one real element, and none is below 0. A padded pool over an input that can be negative is
    refused, naming the node."""
    import onnx
    from onnx import helper, numpy_helper

    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)}
    producers = {o: n for n in model.graph.node for o in n.output}
    consts = _constants(model)

    def rewrite(n):
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        ishape, oshape = shapes.get(n.input[0]), shapes.get(n.output[0])
        k = list(attrs.get("kernel_shape", []))
        pads = list(attrs.get("pads", [0] * 2 * len(k)))
        if not (any(pads) or attrs.get("ceil_mode", 0)) or attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            return [n]
        if not ishape or not oshape or len(ishape) != 2 + len(k) or 0 in ishape or 0 in oshape:
            raise UnsupportedModelError(f"max-pool node '{n.name}': padded/ceil-mode pooling needs static shapes")
        strides = list(attrs.get("strides", [1] * len(k)))
        dil = list(attrs.get("dilations", [1] * len(k)))
        r = len(k)
        begin, end = pads[:r], pads[r:]
        for a in range(r):   # the padded length VALID pooling needs for the output size ONNX computed
            need = (oshape[2 + a] - 1) * strides[a] + (k[a] - 1) * dil[a] + 1
            end[a] += max(need - (ishape[2 + a] + begin[a] + end[a]), 0)
        if not _non_negative(n.input[0], producers, consts):
            raise UnsupportedModelError(
                f"max-pool node '{n.name}' pads its input ({'ceil_mode' if attrs.get('ceil_mode') else f'pads {pads}'})"
                " and its input can be negative: int8 has no -infinity to pad with, and padding with the"
                " tensor's minimum would change its quantisation range",
                hint="put the ReLU before the pool (conv -> ReLU -> MaxPool, as ResNet does), or use padding=0")
        padded = f"{n.output[0]}__padded"
        pads_name = f"{n.name}__pads"
        model.graph.initializer.append(numpy_helper.from_array(
            np.array([0, 0] + begin + [0, 0] + end, dtype=np.int64), pads_name))
        keep = {a: v for a, v in attrs.items() if a not in ("pads", "ceil_mode", "auto_pad")}
        return [helper.make_node("Pad", [n.input[0], pads_name], [padded], name=f"{n.name}_pad", mode="constant"),
                helper.make_node("MaxPool", [padded], list(n.output), name=n.name, **keep)]
    return _rewrite_nodes(model, "MaxPool", rewrite)


def hardsigmoid_as_relu6(model):
    """Rewrite every ``HardSigmoid(x; alpha, beta)`` left after ``fuse_hardswish`` (a squeeze-and-excitation
    gate, as in MobileNetV3) into ``Mul(Clip(Add(x, beta/alpha), 0, 1/alpha), alpha)``, the same function.
    onnx2tf turns a HardSigmoid into RELU_0_TO_1, for which TFLite Micro has no kernel; the rewrite
    becomes ADD (with a fused RELU6 for PyTorch's alpha = 1/6) and MUL, which it has."""
    from onnx import helper, numpy_helper

    def rewrite(n):
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        alpha, beta = float(attrs.get("alpha", 0.2)), float(attrs.get("beta", 0.5))
        if alpha <= 0:
            raise UnsupportedModelError(f"HardSigmoid node '{n.name}' with alpha {alpha} <= 0 is not supported")
        base = n.name or n.output[0]
        consts = {"shift": beta / alpha, "lo": 0.0, "hi": 1.0 / alpha, "scale": alpha}
        names = {k: f"{base}__{k}" for k in consts}
        for k, v in consts.items():
            model.graph.initializer.append(numpy_helper.from_array(np.array(v, dtype=np.float32), names[k]))
        shifted, clipped = f"{base}__shifted", f"{base}__clipped"
        return [helper.make_node("Add", [n.input[0], names["shift"]], [shifted], name=f"{base}_add"),
                helper.make_node("Clip", [shifted, names["lo"], names["hi"]], [clipped], name=f"{base}_clip"),
                helper.make_node("Mul", [clipped, names["scale"]], list(n.output), name=f"{base}_mul")]
    return _rewrite_nodes(model, "HardSigmoid", rewrite)
