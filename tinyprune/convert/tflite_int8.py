"""ONNX -> float TensorFlow (onnx2tf) -> full-integer int8 TFLite (TFLiteConverter), the layout
check/fix, and evaluation of int8 models with the TFLite Micro interpreter (the project's reference).

Layout contract: the int8 model's input is the PyTorch tensor permuted to channels-last,
(0, 2, 3, 1) for (N, C, H, W) and (0, 2, 1) for (N, C, L). onnx2tf may pick another axis order
(e.g. when a reshape follows the input); the float TF model is run on data under every candidate
permutation and compared with onnxruntime, and a transpose from the natural layout is folded in
front of the model when onnx2tf's order is not the natural one.

May import numpy, onnx, onnxruntime, TensorFlow, onnx2tf, tflite, tflite_micro and tinyprune.errors, tinyprune._int8, tinyprune.tflm,
tinyprune.convert.{onnx_utils,quiet}; never torch (the int8 side works without it).
"""
from __future__ import annotations

import contextlib
import itertools
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinyprune.convert.onnx_utils import load_onnx, ort_run, ort_session
from tinyprune.convert.quiet import import_tensorflow, quiet
from tinyprune._int8 import quantize_int8
from tinyprune.errors import TinypruneError, UnsupportedModelError, UserInputError

LAYOUT_CHECK_SAMPLES = 32


def natural_perm(rank: int) -> tuple[int, ...]:
    """PyTorch layout -> channels-last: (0, 2, 3, 1) for rank 4, (0, 2, 1) for rank 3."""
    return (0,) + tuple(range(2, rank)) + (1,)


def to_channels_last(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(natural_perm(x.ndim))) if x.ndim >= 3 else x


def _inverse(p):
    inv = [0] * len(p)
    for i, a in enumerate(p):
        inv[a] = i
    return tuple(inv)


@dataclass
class Int8Conversion:
    path: Path
    tf_input_layout: str                  # how onnx2tf's float model takes the PyTorch tensor x
    input_transpose: bool                 # a transpose/reshape was put in front to take channels-last input
    float_tf_max_abs_err: float           # float TF vs onnxruntime on the layout-check samples
    log: str = ""
    notes: list[str] = field(default_factory=list)


@dataclass
class _Layout:
    """One way onnx2tf's input tensor T can relate to the PyTorch tensor x."""
    label: str
    perm: tuple[int, ...] | None          # T = x.transpose(perm) ...
    reshape: bool = False                 # ... or T = x.reshape(T's shape) (row-major reinterpretation)

    def apply(self, x_nchw: np.ndarray, tf_shape) -> np.ndarray:
        if self.reshape:
            return np.ascontiguousarray(x_nchw.reshape((len(x_nchw),) + tuple(tf_shape[1:])))
        return np.ascontiguousarray(x_nchw.transpose(self.perm))


def _candidates(x_shape, tf_shape) -> list[_Layout]:
    rank = len(x_shape)
    nat = natural_perm(rank)
    out = []
    for p in [nat] + [(0,) + p for p in itertools.permutations(range(1, rank)) if (0,) + p != nat]:
        if tuple(x_shape[a] for a in p)[1:] == tuple(tf_shape[1:]):
            out.append(_Layout(f"transpose{p}", p))
    if int(np.prod(x_shape[1:])) == int(np.prod(tf_shape[1:])):
        out.append(_Layout("reshape", None, reshape=True))
    return out


# onnx2tf checks its conversion of any model whose input is 4-D with 3 channels on sample images it
# downloads from GitHub, unless a file of this name is in the working directory (onnx2tf 1.29
# utils/common_functions.py: download_test_image_data). tinyprune writes one made of the user's own
# calibration samples, so conversion never touches the network.
ONNX2TF_SAMPLE_FILE = "calibration_image_sample_data_20x128x128x3_float32.npy"
ONNX2TF_SAMPLE_SHAPE = (20, 128, 128, 3)


def onnx2tf_sample_images(calib_nhwc: np.ndarray) -> np.ndarray | None:
    """The 20x128x128x3 float32 images onnx2tf checks a 3-channel 4-D input on, from the calibration
    samples (nearest-neighbour resized, repeated to 20; channels cycled to 3 when the input has others,
    since onnx2tf tests the input's last dimension, which keeping an NCHW shape can make 3);
    None when the input is not 4-D."""
    if calib_nhwc.ndim != 4 or len(calib_nhwc) == 0:
        return None
    n, h, w, c = ONNX2TF_SAMPLE_SHAPE
    x = calib_nhwc[np.arange(n) % len(calib_nhwc)][..., np.arange(c) % calib_nhwc.shape[-1]]
    rows = (np.arange(h) * x.shape[1]) // h
    cols = (np.arange(w) * x.shape[2]) // w
    return np.ascontiguousarray(x[:, rows][:, :, cols], dtype=np.float32)


def _run_onnx2tf(src: Path, out_dir: Path, debug: bool, calib_nhwc: np.ndarray, **options) -> str:
    samples = onnx2tf_sample_images(calib_nhwc)
    if samples is not None:
        np.save(src.parent / ONNX2TF_SAMPLE_FILE, samples)
    with quiet(debug) as captured, contextlib.chdir(src.parent):
        try:
            import onnx2tf
            onnx2tf.convert(input_onnx_file_path=str(src), output_folder_path=str(out_dir),
                            non_verbose=True, verbosity="error" if not debug else "info", **options)
        except BaseException as e:  # noqa: BLE001 - onnx2tf calls sys.exit() on failures
            if isinstance(e, KeyboardInterrupt):
                raise
            tail = " | ".join(ln.strip() for ln in captured().strip().splitlines()[-3:])
            raise UnsupportedModelError(
                f"onnx2tf could not convert the model: {type(e).__name__}: {str(e)[:200]} {tail[:300]}",
                hint="re-run with --debug to see onnx2tf's log") from e
        log = captured()
    if not (out_dir / "saved_model.pb").exists():
        raise TinypruneError(f"onnx2tf wrote no saved_model: {log[-500:]}")
    return log


def onnx_to_int8_tflite(onnx_path: str | os.PathLike, calib_nhwc: np.ndarray, out_path: str | os.PathLike, *,
                        debug: bool = False) -> Int8Conversion:
    """Convert an ONNX model to a full-integer TFLite model: int8 input and output, per-channel int8
    weights, int32 biases, calibrated on ``calib_nhwc`` (float32, channels-last, one sample per row).
    ``onnx_path`` is never modified (onnx2tf works on a copy in a temporary directory).

    The float TF model onnx2tf writes is checked against onnxruntime on calibration samples under each
    candidate input layout (natural channels-last first). If onnx2tf took the input in another order:
    for input -> Flatten -> Gemm/MatMul graphs the weights are permuted to take channels-last input
    (``channels_last_flatten_variant``); otherwise the order found is composed in front of the model,
    so the int8 model still takes channels-last. When no layout agrees, onnx2tf is re-run keeping the
    input's ONNX shape (``keep_shape_absolutely_input_names``)."""
    tf = import_tensorflow(debug)
    calib_nhwc = np.ascontiguousarray(calib_nhwc, dtype=np.float32)
    onnx_model = load_onnx(onnx_path)
    inits = {i.name for i in onnx_model.graph.initializer}
    in_onnx = [i.name for i in onnx_model.graph.input if i.name not in inits][0]
    rank = calib_nhwc.ndim
    nat = natural_perm(rank)
    inv_nat = _inverse(nat)
    x_check = np.ascontiguousarray(calib_nhwc[:LAYOUT_CHECK_SAMPLES].transpose(inv_nat))  # PyTorch layout
    ref = ort_run(ort_session(onnx_model), x_check)
    with tempfile.TemporaryDirectory(prefix="tinyprune-onnx2tf-") as work:
        work = Path(work)
        src = work / "model.onnx"
        best_err, log = np.inf, ""
        keep = {"keep_shape_absolutely_input_names": [in_onnx]}
        plan = [("default", onnx_model, {})]
        variant = channels_last_flatten_variant(onnx_model)
        if variant is not None:
            plan.append(("channels_last_weights", variant, keep))
        plan.append(("keep_input_shape", onnx_model, keep))
        found = None
        for k, (attempt_name, model, options) in enumerate(plan):
            if found is not None and attempt_name == "keep_input_shape":
                break      # it would only give NCHW input, which needs a transpose as well
            src.write_bytes(model.SerializeToString())   # onnx2tf rewrites its input: always a fresh copy
            saved = work / f"saved_model_{k}"
            log += _run_onnx2tf(src, saved, debug, calib_nhwc, **options)
            res = _check_layouts(tf, saved, x_check, ref, debug)
            best_err = min(best_err, res["best_err"])
            if res["layout"] is None:
                continue
            res["attempt"] = attempt_name
            if res["layout"].perm == nat:
                found = res
                break
            if found is None:
                found = res
        if found is None:
            raise UnsupportedModelError(
                f"the float TensorFlow model from onnx2tf does not agree with the ONNX model under any input "
                f"layout (max abs error {best_err:.3g}); the model uses a construct onnx2tf converts wrongly",
                hint="re-run with --debug for onnx2tf's log")
        chosen, attempt, err = found["layout"], found["attempt"], found["err"]
        saved_model, loaded, sig, in_name, tf_shape = (found[k] for k in ("saved", "loaded", "sig", "in_name",
                                                                          "tf_shape"))
        transpose = chosen.perm != nat
        nhwc_shape = (1,) + tuple(calib_nhwc.shape[1:])

        with quiet(debug):
            if not transpose:
                conv = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
            else:
                @tf.function(input_signature=[tf.TensorSpec(nhwc_shape, tf.float32, name="input")])
                def wrapped(x):
                    x = tf.transpose(x, inv_nat)                       # back to the PyTorch layout
                    x = tf.reshape(x, tf_shape) if chosen.reshape else tf.transpose(x, chosen.perm)
                    res = sig(**{in_name: x})
                    return res[sorted(res)[0]]
                conv = tf.lite.TFLiteConverter.from_concrete_functions([wrapped.get_concrete_function()], loaded)
        flat, conv_log = full_integer(tf, conv, calib_nhwc, debug)
        log += conv_log
    out_path = Path(out_path)
    out_path.write_bytes(flat)
    check_int8_io(flat, nhwc_shape)
    notes = [] if not transpose else [f"onnx2tf ({attempt}) took the input as {chosen.label} of the PyTorch "
                                      "tensor; that step was put in front of the model so it takes channels-last"]
    return Int8Conversion(out_path, f"{attempt}:{chosen.label}", transpose, float(err), log, notes)


def representative(calib_nhwc: np.ndarray):
    """The representative dataset of TensorFlow's int8 calibration: one channels-last sample per step."""
    def gen():
        for i in range(len(calib_nhwc)):
            yield [calib_nhwc[i:i + 1]]
    return gen


def full_integer(tf, conv, calib_nhwc: np.ndarray, debug: bool = False) -> tuple[bytes, str]:
    """Run a TFLiteConverter as every float input form is quantized (ONNX via onnx2tf, Keras,
    SavedModel): ``Optimize.DEFAULT``, TFLITE_BUILTINS_INT8 only, int8 input and output, calibrated on
    ``calib_nhwc``. Returns (flatbuffer, captured log)."""
    with quiet(debug) as captured:
        try:
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.representative_dataset = representative(calib_nhwc)
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
            flat = conv.convert()
        except Exception as e:  # noqa: BLE001 - converter errors name the op
            raise converter_error(e) from e
        return flat, captured()


_MLIR_LOC = re.compile(r'fused\["([^":]+):?", "([^"@]+)')


def converter_error(e: Exception) -> UnsupportedModelError:
    """The converter's error, shortened: MLIR's first ``error: loc(... fused["Op:", "model/layer/..."]): why``
    becomes ``why (TF operator Op in model/layer)``."""
    text = str(e)
    first = next((ln for ln in text.splitlines() if "error:" in ln), "")
    m = _MLIR_LOC.search(first)
    if m and ")): " in first:
        why = first.rsplit(")): ", 1)[1].strip()
        where = m.group(2).rsplit("/", 1)[0] if "/" in m.group(2) else m.group(2)
        msg = f"{why} (TF operator {m.group(1)} in {where!r})"
    else:
        msg = " ".join(text.split())[:400]
    return UnsupportedModelError(f"TensorFlow's int8 converter refused the model: {msg}",
                                 hint="a layer has no int8 TFLite kernel (replace it); re-run with --debug for the "
                                      "converter's log")


def check_int8_io(flat: bytes, nhwc_shape: tuple[int, ...]) -> None:
    """The converted model takes ``nhwc_shape`` int8 and returns int8 (else an internal error)."""
    details = io_details(flat)
    got = tuple(details["input"]["shape"])
    if got != tuple(nhwc_shape) or details["input"]["dtype"] != "int8" or details["output"]["dtype"] != "int8":
        raise TinypruneError(f"internal: int8 model has input {got} {details['input']['dtype']}, "
                             f"expected {tuple(nhwc_shape)} int8 with int8 output")


def _check_layouts(tf, saved: Path, x_check, ref, debug):
    """Load onnx2tf's saved_model and find the first candidate layout under which it agrees with
    onnxruntime (``layout`` None if none does)."""
    with quiet(debug):
        loaded = tf.saved_model.load(str(saved))
    sig = loaded.signatures["serving_default"]
    in_specs = sig.structured_input_signature[1]
    in_name = sorted(in_specs)[0]
    tf_shape = tuple(int(d) for d in in_specs[in_name].shape)

    def run_float(t):
        outs = []
        for i in range(len(t)):
            res = sig(**{in_name: tf.constant(t[i:i + 1])})
            outs.append(res[sorted(res)[0]].numpy())
        return np.concatenate(outs, axis=0)

    out = {"saved": saved, "loaded": loaded, "sig": sig, "in_name": in_name, "tf_shape": tf_shape,
           "layout": None, "err": np.inf, "best_err": np.inf}
    for cand in _candidates(x_check.shape, tf_shape):
        err = _agreement_error(ref, run_float(cand.apply(x_check, tf_shape)))
        out["best_err"] = min(out["best_err"], err)
        if err <= 1e-3 * max(1.0, float(np.abs(ref).max())):
            out.update(layout=cand, err=err)
            break
    return out


def channels_last_flatten_variant(model):
    """For a graph whose input goes straight into Flatten (or Reshape to (1, -1)) and then a
    Gemm/MatMul with constant weights, an equivalent graph taking the input channels-last: the
    weight rows are permuted from (C, H, W) to (H, W, C) order. Lets onnx2tf keep that input as it is,
    so the int8 model needs no TRANSPOSE in front. None when the pattern does not apply."""
    import copy

    from onnx import numpy_helper

    g = model.graph
    inits = {i.name: i for i in g.initializer}
    inp = [i for i in g.input if i.name not in inits][0]
    dims = [d.dim_value for d in inp.type.tensor_type.shape.dim]
    if len(dims) not in (3, 4):
        return None
    users = lambda name: [n for n in g.node if name in n.input]  # noqa: E731
    first = users(inp.name)
    if len(first) != 1:
        return None
    flat = first[0]
    if flat.op_type == "Flatten":
        if any(a.name == "axis" and a.i != 1 for a in flat.attribute):
            return None
    elif flat.op_type == "Reshape":
        target = inits.get(flat.input[1])
        if target is None or list(numpy_helper.to_array(target)) not in ([1, -1], [1, int(np.prod(dims[1:]))]):
            return None
    else:
        return None
    nxt = users(flat.output[0])
    if len(nxt) != 1 or nxt[0].op_type not in ("Gemm", "MatMul") or nxt[0].input[0] != flat.output[0]:
        return None
    mm = nxt[0]
    w_init = inits.get(mm.input[1])
    if w_init is None:
        return None
    trans_b = mm.op_type == "Gemm" and any(a.name == "transB" and a.i == 1 for a in mm.attribute)
    if mm.op_type == "Gemm" and any(a.name == "transA" and a.i == 1 for a in mm.attribute):
        return None
    w = numpy_helper.to_array(w_init)
    n_in = int(np.prod(dims[1:]))
    if w.shape[1 if trans_b else 0] != n_in:
        return None
    sample_perm = tuple(a - 1 for a in natural_perm(len(dims))[1:])     # (C, H, W) -> (H, W, C)
    idx = np.arange(n_in).reshape(dims[1:]).transpose(sample_perm).ravel()  # new position -> old feature
    new = copy.deepcopy(model)
    ng = new.graph
    w_new = w[:, idx] if trans_b else w[idx, :]
    name = mm.input[1] + "_channels_last"
    ng.initializer.append(numpy_helper.from_array(np.ascontiguousarray(w_new), name))
    for n in ng.node:
        if n.name == mm.name and list(n.input) == list(mm.input) and list(n.output) == list(mm.output):
            n.input[1] = name
    new_in = [i for i in ng.input if i.name == inp.name][0]
    for d, v in zip(new_in.type.tensor_type.shape.dim, [dims[a] for a in natural_perm(len(dims))]):
        d.dim_value = v
    return new


def _agreement_error(ref: np.ndarray, out: np.ndarray) -> float:
    """Max abs difference between onnxruntime's and TF's outputs (TF's may be channels-last);
    inf when shapes differ or, for a classifier, the top-1 classes differ."""
    best = np.inf
    for r in (ref, to_channels_last(ref)):
        if r.shape != out.shape:
            continue
        if r.ndim == 2 and not np.array_equal(out.argmax(1), r.argmax(1)):
            continue   # a different top-1 class never passes
        best = min(best, float(np.abs(out - r).max()))
    return best


# ---------------------------------------------------------------------------------------------
# Reading int8 models and running them with TFLite Micro

_TYPES = {0: "float32", 2: "int32", 3: "uint8", 4: "int64", 7: "int16", 9: "int8"}


def _op_names():
    from tflite.BuiltinOperator import BuiltinOperator
    return {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}


def tflite_ops(flat: bytes) -> list[str]:
    """Builtin operator names of subgraph 0, in execution order."""
    import tflite

    m = tflite.Model.GetRootAsModel(flat, 0)
    names = _op_names()
    sg = m.Subgraphs(0)
    ops = []
    for i in range(sg.OperatorsLength()):
        code = m.OperatorCodes(sg.Operators(i).OpcodeIndex())
        b = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        ops.append(names.get(b, f"BUILTIN_{b}"))
    return ops


def _tensor_info(sg, idx):
    t = sg.Tensors(idx)
    q = t.Quantization()
    scales = [float(s) for s in q.ScaleAsNumpy()] if q is not None and q.ScaleLength() else []
    zps = [int(z) for z in q.ZeroPointAsNumpy()] if q is not None and q.ZeroPointLength() else []
    return {"name": t.Name().decode(), "shape": [int(d) for d in t.ShapeAsNumpy()],
            "dtype": _TYPES.get(t.Type(), str(t.Type())),
            "scale": scales[0] if len(scales) == 1 else scales, "zero_point": zps[0] if len(zps) == 1 else zps}


def io_details(flat: bytes) -> dict:
    """Shape, dtype, scale and zero point of the (first) input and output."""
    import tflite

    m = tflite.Model.GetRootAsModel(flat, 0)
    sg = m.Subgraphs(0)
    return {"input": _tensor_info(sg, sg.Inputs(0)), "output": _tensor_info(sg, sg.Outputs(0)),
            "num_inputs": sg.InputsLength(), "num_outputs": sg.OutputsLength()}


def quantize_input(x_nhwc: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """float -> int8 as TFLite's QUANTIZE does it (tinyprune._int8, the one rounding rule)."""
    return quantize_int8(x_nhwc, scale, zero_point)


def run_tflm(flat: bytes, x_int8: np.ndarray) -> np.ndarray:
    """Invoke the TFLite Micro interpreter on each int8 sample; returns the int8 outputs stacked."""
    from tinyprune.tflm import interpreter

    with quiet(False) as captured:
        try:
            interp = interpreter(flat)
        except RuntimeError as e:
            log = " ".join(ln.strip() for ln in captured().splitlines() if ln.strip())
            raise UnsupportedModelError(f"TFLite Micro cannot run the int8 model: {e}: {log[:300]}",
                                        hint="the model uses an operator TFLite Micro has no kernel for; "
                                             "replace that layer") from None
    outs = []
    for i in range(len(x_int8)):
        interp.set_input(np.ascontiguousarray(x_int8[i:i + 1]), 0)
        interp.invoke()
        outs.append(np.array(interp.get_output(0), copy=True))
    return np.concatenate(outs, axis=0)


def top1(out: np.ndarray, class_axis: int = 1) -> np.ndarray:
    """Top-1 class per sample (N,) for a classifier's (N, K) output, or per position (N, *positions) for a
    dense output such as per-pixel classes (the argmax along ``class_axis``: 1 in PyTorch's layout, -1 in
    the int8 model's channels-last one)."""
    out = np.asarray(out)
    if out.ndim <= 2 or int(np.prod(out.shape[1:])) == out.shape[class_axis]:
        return out.reshape(len(out), -1).argmax(1)
    return out.argmax(axis=class_axis)


def top1_agreement(float_nchw: np.ndarray, int8_cl: np.ndarray) -> float:
    """Share of samples (or of positions, for a dense output) where the float model's top-1 class in
    PyTorch layout equals the int8 model's in channels-last layout."""
    a, b = top1(float_nchw, 1), top1(int8_cl, -1)
    if a.shape != b.shape:   # the int8 model kept PyTorch's layout
        b = top1(int8_cl, 1)
    return float((a.reshape(len(a), -1) == b.reshape(len(b), -1)).mean())


def evaluate_tflite(path: str | os.PathLike, x_nchw: np.ndarray, y: np.ndarray | None = None) -> dict:
    """Run the int8 model with TFLite Micro on PyTorch-layout float data: permute to channels-last,
    quantize with the input's scale/zero point, invoke, dequantize. Returns ``accuracy`` (if ``y``; None
    for a dense output, which per-sample labels can't score), ``pred`` (top-1 per sample, or per position),
    ``output_int8`` and ``output`` (dequantized float)."""
    flat = Path(path).read_bytes()
    det = io_details(flat)
    exp = tuple(det["input"]["shape"][1:])
    x_cl = to_channels_last(np.asarray(x_nchw, dtype=np.float32))
    if tuple(x_cl.shape[1:]) != exp:
        raise UserInputError(f"data of shape {tuple(np.shape(x_nchw)[1:])} (channels-last {tuple(x_cl.shape[1:])}) "
                             f"does not fit the int8 model's input {exp}")
    xi = quantize_input(x_cl, det["input"]["scale"], det["input"]["zero_point"])
    out_q = run_tflm(flat, xi)
    out = (out_q.astype(np.float32) - det["output"]["zero_point"]) * det["output"]["scale"]
    pred = top1(out, -1)
    res = {"pred": pred, "output_int8": out_q, "output": out, "samples": int(len(x_cl))}
    if y is not None:   # one label per sample: only a classifier's output can be scored against it
        res["accuracy"] = float((pred == np.asarray(y)).mean()) if pred.ndim == 1 else None
    return res
