"""Per-layer float-vs-int8 error: which layers of the int8 model lose accuracy (docs/convert.md, "Int8 accuracy").

Both models run on the same samples. The int8 model runs in TFLite Micro (tinyprune.tflm, the project's
reference) with every tensor preserved; each operator's int8 output is dequantised with its own scale and
zero point. The float reference is the ONNX model the int8 model was converted from, run by onnxruntime with
every node's output exposed. The converter's tensor names carry no ONNX or PyTorch names, so each int8
tensor is matched to the float tensor of the same (channels-last) shape that it is closest to (lowest
relative error; a fused conv + ReLU matches the ReLU's output). A PyTorch export names ONNX tensors after
module paths (``/features/features.3/conv/Conv_output_0``), which gives the layer as the user wrote it
(``features.3.conv``); functional code in ``forward`` (``torch.cat``, ``x * 100``) is named by its operator.

For each int8 tensor: SNR in dB, ``10 log10(sum f^2 / sum (f - q)^2)``, and the cosine of the dequantised
int8 activation q with the float activation f; ``snr_drop_db`` is how much SNR the operator loses against
its best-kept int8 input (the error it adds, not the error it inherits). Layers are ranked by that drop.

May import numpy, onnx, onnxruntime, tflite, tinyprune.tflm, tinyprune.errors and the convert modules
tflite_int8 / onnx_utils / quiet (never torch, never a later stage).
"""
from __future__ import annotations

import re

import numpy as np

from tinyprune.convert.onnx_utils import ort_session
from tinyprune.convert.tflite_int8 import _op_names, natural_perm, quantize_input

DIAGNOSE_SAMPLES = 32
MAX_HELD_VALUES = 16_000_000   # activations kept per side (float32): fewer samples for models with large ones
SNR_CAP_DB = 120.0          # no error at all (or less than this) is reported as this many dB
MATCH_MAX_REL_ERR = 3.0     # an int8 tensor further than this from every float tensor is left unmatched
TOP_LAYERS = 5


def _graph(flat: bytes) -> tuple[list[dict], dict[int, dict], int]:
    """The int8 model's operators ({op, inputs, outputs}) and its int8 activation tensors
    ({index: {name, shape, scale, zero_point}}), and the input tensor index."""
    import tflite

    m = tflite.Model.GetRootAsModel(flat, 0)
    sg = m.Subgraphs(0)
    names = _op_names()
    acts = {}
    for i in range(sg.TensorsLength()):
        t = sg.Tensors(i)
        q = t.Quantization()
        buf = m.Buffers(t.Buffer())
        if t.Type() != 9 or q is None or q.ScaleLength() != 1 or (buf is not None and buf.DataLength() > 0):
            continue   # int8 activations with one scale only (weights are constants)
        acts[i] = {"name": t.Name().decode(), "shape": [int(d) for d in t.ShapeAsNumpy()],
                   "scale": float(q.Scale(0)), "zero_point": int(q.ZeroPoint(0))}
    ops = []
    for k in range(sg.OperatorsLength()):
        op = sg.Operators(k)
        code = m.OperatorCodes(op.OpcodeIndex())
        b = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        ops.append({"index": k, "op": names.get(b, f"BUILTIN_{b}"),
                    "inputs": [int(v) for v in op.InputsAsNumpy() if v >= 0 and int(v) in acts],
                    "outputs": [int(v) for v in op.OutputsAsNumpy() if int(v) in acts]})
    return ops, acts, int(sg.Inputs(0))


def _int8_activations(flat: bytes, x_cl: np.ndarray, acts: dict, input_index: int) -> dict[int, np.ndarray]:
    """Every int8 activation, dequantised, for every sample: {tensor index: (N, *shape) float32}."""
    from tinyprune.tflm import interpreter

    inp = acts[input_index]
    xi = quantize_input(x_cl, inp["scale"], inp["zero_point"])
    interp = interpreter(flat, preserve_all_tensors=True)
    out: dict[int, list] = {i: [] for i in acts}
    for s in range(len(xi)):
        interp.set_input(np.ascontiguousarray(xi[s:s + 1]), 0)
        interp.invoke()
        for i, a in acts.items():
            got = interp.GetTensor(i, 0)
            v = np.asarray(got["tensor_data"] if isinstance(got, dict) else got).astype(np.float32)
            out[i].append(((v - a["zero_point"]) * a["scale"]).reshape(a["shape"]))
    return {i: np.concatenate(v) for i, v in out.items()}


def _float_activations(onnx_model, x_nchw: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, tuple]]:
    """Every ONNX node output (float) for every sample, channels-last where the rank allows:
    ({tensor name: (N, ...)}, {tensor name: (node position, op type, node name)})."""
    import copy

    import onnx

    m = copy.deepcopy(onnx_model)
    have = {o.name for o in m.graph.output}
    producers = {}
    for k, n in enumerate(m.graph.node):
        for o in n.output:
            producers[o] = (k, n.op_type, list(n.input), n.name)
            if o and o not in have:
                m.graph.output.append(onnx.ValueInfoProto(name=o))
    sess = ort_session(m)
    in_name = sess.get_inputs()[0].name
    names = [o.name for o in sess.get_outputs()]
    res: dict[str, list] = {n: [] for n in names}
    for s in range(len(x_nchw)):
        for n, v in zip(names, sess.run(None, {in_name: x_nchw[s:s + 1].astype(np.float32)})):
            res[n].append(np.asarray(v, dtype=np.float32))
    out = {}
    for n, vs in res.items():
        v = np.concatenate(vs) if vs[0].ndim else np.stack(vs)
        out[n] = v
    out["__input__"] = x_nchw.astype(np.float32)
    producers["__input__"] = (-1, "input", [], "input")
    return out, producers


def _candidates(v: np.ndarray) -> list[np.ndarray]:
    """The float tensor in the int8 model's layout: channels-last first, then as it is."""
    outs = []
    if v.ndim in (3, 4):
        outs.append(np.ascontiguousarray(v.transpose(natural_perm(v.ndim))))
    outs.append(v)
    return outs


def layer_name(onnx_tensor: str, op_type: str) -> str:
    """The PyTorch module a torch.onnx tensor name carries: ``/features/features.3/conv/Conv_output_0`` ->
    ``features.3.conv``; ``/Add_1_output_0`` (functional code in forward) -> ``Add_1``; other names as
    they are."""
    if not onnx_tensor.startswith("/"):
        return onnx_tensor
    parts = [p for p in onnx_tensor.strip("/").split("/") if p]
    if len(parts) <= 1:     # functional code in the top module's forward: ONNX numbers repeats (Add, Add_1)
        stem = re.sub(r"_output_\d+$", "", parts[0]) if parts else ""
        return stem or op_type
    scopes = parts[:-1]
    # torch.onnx repeats the full dotted path at each level: the last scope is the module's full name
    return scopes[-1] if "." in scopes[-1] or len(scopes) == 1 else ".".join(scopes)


ACTIVATIONS = ("Relu", "Clip", "HardSwish", "HardSigmoid", "LeakyRelu", "Sigmoid", "Tanh")
WEIGHTED = ("Conv", "Gemm", "MatMul", "ConvTranspose")
FUSED_ACTIVATIONS = ("Relu", "Clip")      # what TFLite fuses into a conv / fully-connected operator
KINDS = {"CONV_2D": ("Conv",), "DEPTHWISE_CONV_2D": ("Conv",), "FULLY_CONNECTED": ("Gemm", "MatMul"),
         "ADD": ("Add",), "MUL": ("Mul",), "CONCATENATION": ("Concat",), "MEAN": ("ReduceMean", "GlobalAveragePool"),
         "AVERAGE_POOL_2D": ("AveragePool", "GlobalAveragePool"), "MAX_POOL_2D": ("MaxPool",),
         "SOFTMAX": ("Softmax",), "HARD_SWISH": ("HardSwish",), "LOGISTIC": ("Sigmoid",),
         "RELU": ("Relu", "Clip"), "RELU6": ("Clip",), "RESIZE_NEAREST_NEIGHBOR": ("Resize",)}
LAYOUT_OPS = ("PAD", "PADV2", "RESHAPE", "TRANSPOSE", "SQUEEZE")
CONCAT_RANGE_RATIO = 10.0


def _user_layer(tensor: str, producers: dict) -> str:
    """The layer's name for the user: a fused conv + activation (``head`` then ``torch.relu``) is named
    after the conv, ``head+Relu``."""
    _, op_type, inputs, node = producers[tensor]
    name = layer_name(tensor, op_type)
    if not tensor.startswith("/") and node.endswith("_" + op_type):    # the graph output: the node's name
        name = node[:-len(op_type) - 1]     # (sanitised from the module path: fc_Gemm -> fc)
    if tensor == "__input__":
        return "input"
    if op_type in ACTIVATIONS and inputs and inputs[0] in producers and inputs[0] != "__input__" and \
            (producers[inputs[0]][1] in WEIGHTED or "/" not in tensor.strip("/")):     # conv + ReLU, or torch.relu(a + b)
        inner = _user_layer(inputs[0], producers)
        if inner != name:
            return f"{inner}+{op_type}"
    return name


def _concat_note(op: dict, acts: dict, fl: dict, float_of: dict, by_tensor: dict) -> None:
    """TFLite's int8 CONCATENATION gives its inputs and output one scale: inputs whose float ranges differ
    by more than CONCAT_RANGE_RATIO lose the small ones' resolution. Says so on each input's layer."""
    ranges = {i: float(np.abs(fl[float_of[i]]).max()) for i in op["inputs"] if i in float_of}
    if len(ranges) < 2 or min(ranges.values()) <= 0:
        return
    ratio = max(ranges.values()) / min(ranges.values())
    out = by_tensor.get(op["outputs"][0]) if op["outputs"] else None
    if ratio < CONCAT_RANGE_RATIO or out is None:
        return
    small = min(ranges, key=ranges.get)
    big = max(ranges, key=ranges.get)
    text = (f"input of concatenation {out['layer']!r}, whose inputs share one int8 scale; their float ranges differ "
            f"{ratio:.0f}x ({by_tensor[big]['layer'] if big in by_tensor else '?'} up to {ranges[big]:.3g}, "
            f"{by_tensor[small]['layer'] if small in by_tensor else '?'} up to {ranges[small]:.3g})")
    for i in op["inputs"]:
        if i in by_tensor:
            by_tensor[i]["note"] = (by_tensor[i]["note"] + "; " if by_tensor[i].get("note") else "") + text
    out["note"] = text
    out["concat_range_ratio"] = round(ratio, 1)


def _metrics(f: np.ndarray, q: np.ndarray) -> tuple[float, float, float]:
    f = f.astype(np.float64).ravel()
    q = q.astype(np.float64).ravel()
    err = float(np.sum((f - q) ** 2))
    sig = float(np.sum(f ** 2))
    snr = SNR_CAP_DB if err == 0 or (sig > 0 and sig / err > 10 ** (SNR_CAP_DB / 10)) else \
        (10 * np.log10(sig / err) if sig > 0 else -SNR_CAP_DB)
    nf, nq = np.linalg.norm(f), np.linalg.norm(q)
    cos = float(f @ q / (nf * nq)) if nf > 0 and nq > 0 else (1.0 if nf == nq else 0.0)
    rel = float(np.sqrt(err / sig)) if sig > 0 else float("inf")
    return snr, cos, rel


def layer_errors(onnx_model, flat: bytes, x_nchw: np.ndarray, samples: int = DIAGNOSE_SAMPLES) -> dict:
    """Per-layer float-vs-int8 error of the int8 model ``flat`` against ``onnx_model`` on the first
    ``samples`` rows of ``x_nchw`` (PyTorch layout; fewer when the activations would not fit
    MAX_HELD_VALUES). Returns {"samples", "layers": [per int8 operator output, in execution order],
    "worst": [the TOP_LAYERS layers with the largest positive snr_drop_db], "unmatched": [int8 tensors
    no float tensor matched]}."""
    ops, acts, in_idx = _graph(flat)
    per_sample = sum(int(np.prod(a["shape"])) for a in acts.values())
    samples = max(1, min(samples, MAX_HELD_VALUES // (2 * max(per_sample, 1))))
    x = np.ascontiguousarray(x_nchw[:samples], dtype=np.float32)
    x_cl = np.ascontiguousarray(x.transpose(natural_perm(x.ndim))) if x.ndim in (3, 4) else x
    q = _int8_activations(flat, x_cl, acts, in_idx)
    fl, producers = _float_activations(onnx_model, x)
    consumers: dict[str, list] = {}
    for name, (_, _, inputs, _) in producers.items():
        for i in inputs:
            consumers.setdefault(i, []).append(name)

    def kinds(name: str) -> set[str]:
        _, op_type, inputs, _ = producers[name]
        k = {op_type}
        if op_type in FUSED_ACTIVATIONS and inputs and inputs[0] in producers:
            k.add(producers[inputs[0]][1])
        return k

    def fused_away(name: str) -> bool:   # a conv output whose only use is an activation TFLite fuses into it
        c = consumers.get(name, [])
        return len(c) == 1 and producers[c[0]][1] in FUSED_ACTIVATIONS
    by_size: dict[int, list] = {}
    for name, v in fl.items():
        by_size.setdefault(v.size, []).append(name)

    snr_of = {}
    snr_of[in_idx] = _metrics(x_cl, q[in_idx])[0]
    layers, unmatched, float_of, by_tensor = [], [], {}, {}
    taken: set[str] = set()
    out_idx = next((o for op in ops[::-1] for o in op["outputs"]), None)
    out_name = onnx_model.graph.output[0].name
    pos_of = {in_idx: -1}        # int8 tensor -> position of its float tensor's node in the ONNX graph
    for op in ops:
        after = max((pos_of[i] for i in op["inputs"] if i in pos_of), default=-1)
        for t in op["outputs"]:
            qt = q[t]
            best = None
            want = KINDS.get(op["op"])
            names = by_size.get(qt.size, [])
            if want:     # the float tensors of the same kind of operator, when there are any
                same = [n for n in names if kinds(n) & set(want) and not (fused_away(n) and op["op"] in
                                                                           ("CONV_2D", "DEPTHWISE_CONV_2D",
                                                                            "FULLY_CONNECTED"))]
                names = same or names
            for name in names:
                p = producers[name][0]
                if p < after or (p == after and op["op"] not in LAYOUT_OPS) or \
                        (name in taken and op["op"] not in LAYOUT_OPS):
                    continue      # computed before this operator's inputs, or another operator's output already
                if t == out_idx and name != out_name:
                    continue      # the model's output is the ONNX graph's output
                for cand in _candidates(fl[name]):
                    if cand.shape != qt.shape:
                        if [d for d in cand.shape[1:] if d > 1] != [d for d in qt.shape[1:] if d > 1]:
                            continue
                        cand = cand.reshape(qt.shape)
                    m = _metrics(cand, qt)
                    # the closest float tensor; on a tie the earlier one
                    if best is None or m[2] < best[0][2] - 1e-9 or \
                            (abs(m[2] - best[0][2]) <= 1e-9 and p < producers[best[1]][0]):
                        best = (m, name)
            entry = {"tflite_op": op["op"], "tflite_index": op["index"], "tflite_tensor": acts[t]["name"],
                     "shape": acts[t]["shape"], "scale": acts[t]["scale"]}
            ins = [snr_of[i] for i in op["inputs"] if i in snr_of]
            if (best is None or best[0][2] > MATCH_MAX_REL_ERR) and op["op"] in LAYOUT_OPS and ins:
                snr_of[t] = max(ins)    # padding or a layout change: values pass through unchanged
                pos_of[t] = after
                entry.update(layer=None, onnx_tensor=None, onnx_op=None, snr_db=_r(max(ins)), cosine=None,
                             snr_drop_db=None, note="layout operator (no float tensor of its own)")
                layers.append(entry)
                continue
            if best is None or best[0][2] > MATCH_MAX_REL_ERR:
                entry.update(layer=None, onnx_tensor=None, onnx_op=None, snr_db=None, cosine=None, snr_drop_db=None)
                unmatched.append(acts[t]["name"])
                layers.append(entry)
                continue
            (snr, cos, _), name = best
            snr_of[t] = snr
            float_of[t] = name
            pos_of[t] = producers[name][0]
            taken.add(name)
            drop = (max(ins) - snr) if ins else None
            entry.update(layer=_user_layer(name, producers), onnx_op=producers[name][1], onnx_tensor=name,
                         snr_db=_r(snr), cosine=_r(cos, 6), snr_drop_db=_r(drop))
            if not np.any(qt):
                entry["note"] = "the int8 output is all zero: the layer's output is lost"
            layers.append(entry)
            by_tensor[t] = entry
        if op["op"] == "CONCATENATION":
            _concat_note(op, acts, fl, float_of, by_tensor)
    ranked = sorted((L for L in layers if L["snr_drop_db"] is not None and L["snr_drop_db"] > 0),
                    key=lambda L: -L["snr_drop_db"])
    return {"samples": int(len(x)), "interpreter": "tflite_micro", "float_reference": "onnxruntime",
            "layers": layers, "worst": ranked[:TOP_LAYERS], "unmatched": unmatched}


def _r(v, nd: int = 2):
    return None if v is None else round(float(v), nd) + 0.0   # + 0.0: no -0.0
