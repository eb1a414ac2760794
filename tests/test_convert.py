"""Conversion stage on real models: the bundled example and the test architectures (tests/archs.py)
become int8 TFLite models whose top-1 agreement with the float model is >= 98% on held-out digits,
evaluated with the TFLite Micro interpreter. Slow: each model is converted once per session."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import archs

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]

EXPECTED_OPS = {  # an op each architecture must keep, so a test fails if the converter drops a feature
    "residual": "ADD",
    "dwsep": "DEPTHWISE_CONV_2D",
    "concat": "CONCATENATION",
    "maxpool": "MAX_POOL_2D",
    "relu6_hswish": "HARD_SWISH",
    "conv1d": "CONV_2D",
}


def _report(out: Path) -> dict:
    return json.loads((out / "convert.json").read_text())


def _torch_predictions(model, x):
    import torch
    with torch.no_grad():
        return np.concatenate([model(torch.from_numpy(x[i:i + 1])).numpy() for i in range(len(x))]).argmax(1)


def test_example_converts_with_agreement(converted):
    from tinyprune.convert import evaluate_tflite, io_details, tflite_ops
    from tinyprune.data import load_dataset
    from tinyprune.example import load_example

    out = converted("example")
    assert sorted(p.name for p in out.iterdir()) == ["convert.json", "model.onnx", "model_int8.tflite"]
    rep = _report(out)
    flat = (out / "model_int8.tflite").read_bytes()
    det = io_details(flat)
    # the documented feed: channels-last int8, quantization params as in the flatbuffer
    assert rep["input"]["shape"] == [1, 16, 16, 1] and rep["input"]["pytorch_shape"] == [1, 1, 16, 16]
    assert rep["input"]["layout"] == "NCHW->NHWC" and rep["input"]["permutation"] == [0, 2, 3, 1]
    assert rep["input"]["dtype"] == rep["output"]["dtype"] == "int8"
    assert rep["input"]["scale"] == pytest.approx(det["input"]["scale"], rel=0, abs=0)
    assert rep["input"]["zero_point"] == det["input"]["zero_point"]
    assert rep["output"]["shape"] == [1, 10]
    assert rep["tflite"]["bytes"] == len(flat)
    assert rep["tflite"]["sha256"] == hashlib.sha256(flat).hexdigest()
    ops = rep["tflite"]["operators"]
    assert ops == tflite_ops(flat)
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "FULLY_CONNECTED"} <= set(ops)
    assert ops[0] != "TRANSPOSE" and not rep["tflite"]["input_transpose"]
    assert "BatchNormalization" not in rep["onnx"]["operators"]      # folded at export
    assert 13 <= rep["onnx"]["opset"] <= 17
    assert rep["versions"]["onnx2tf"] == "1.29.24" and rep["versions"]["tensorflow"] == "2.19.0"

    # accuracy numbers are recomputed independently here, not trusted from the report
    ds = load_dataset("digits", (1, 1, 16, 16))
    float_pred = _torch_predictions(load_example(), ds.x_test)
    ev = evaluate_tflite(out / "model_int8.tflite", ds.x_test, ds.y_test)
    agreement = float((float_pred == ev["pred"]).mean())
    assert rep["evaluation"]["samples"] == len(ds.y_test) == 450
    assert rep["evaluation"]["float_accuracy"] == pytest.approx(float((float_pred == ds.y_test).mean()))
    assert rep["evaluation"]["int8_accuracy"] == pytest.approx(ev["accuracy"])
    assert rep["evaluation"]["top1_agreement"] == pytest.approx(agreement)
    assert agreement >= 0.98
    assert ev["accuracy"] >= 0.97
    assert rep["data"]["calibration_samples"] == 200


def test_example_int8_outputs_track_float(converted):
    """Dequantized int8 logits stay close to the float logits (a loose but real bound: a few output
    quantization steps), so the model is not merely getting lucky on argmax."""
    import torch

    from tinyprune.convert import evaluate_tflite
    from tinyprune.data import load_dataset
    from tinyprune.example import load_example

    out = converted("example")
    scale = _report(out)["output"]["scale"]
    ds = load_dataset("digits", (1, 1, 16, 16))
    x = ds.x_test[:64]
    with torch.no_grad():
        ref = load_example()(torch.from_numpy(x)).numpy()
    got = evaluate_tflite(out / "model_int8.tflite", x)["output"]
    err = np.abs(got - ref)
    assert float(err.mean()) < 2 * scale
    assert float(err.max()) < 12 * scale


def test_manual_quantized_feed_matches_evaluate(converted):
    """The feed documented in convert.json, done by hand with the TFLM interpreter, gives exactly
    the int8 outputs evaluate_tflite reports."""
    from tflite_micro.python.tflite_micro import runtime

    from tinyprune.convert import evaluate_tflite
    from tinyprune.data import load_dataset

    out = converted("example")
    rep = _report(out)
    ds = load_dataset("digits", (1, 1, 16, 16))
    x = ds.x_test[:5]
    flat = (out / "model_int8.tflite").read_bytes()
    interp = runtime.Interpreter.from_bytes(flat)
    s, z = rep["input"]["scale"], rep["input"]["zero_point"]
    manual = []
    for i in range(len(x)):
        v = x[i:i + 1].transpose(0, 2, 3, 1) / np.float32(s)
        q = np.clip(np.sign(v) * np.floor(np.abs(v) + 0.5) + z, -128, 127).astype(np.int8)
        interp.set_input(q, 0)
        interp.invoke()
        manual.append(interp.get_output(0).copy())
    np.testing.assert_array_equal(np.concatenate(manual), evaluate_tflite(out / "model_int8.tflite", x)["output_int8"])


@pytest.mark.parametrize("name", sorted(archs.ARCHS))
def test_architecture_agreement(converted, name):
    out = converted(name)
    rep = _report(out)
    shape = archs.ARCHS[name][1]
    cl = [1, shape[2], shape[3], shape[1]] if len(shape) == 4 else [1, shape[2], shape[1]]
    assert rep["input"]["shape"] == cl
    assert rep["input"]["layout"] == ("NCHW->NHWC" if len(shape) == 4 else "NCL->NLC")
    assert rep["evaluation"]["top1_agreement"] >= 0.98, rep["evaluation"]
    assert rep["evaluation"]["int8_accuracy"] >= 0.9
    ops = rep["tflite"]["operators"]
    assert EXPECTED_OPS[name] in ops
    assert "TRANSPOSE" not in ops[:1] and not rep["tflite"]["input_transpose"]
    assert "DEQUANTIZE" not in ops and "QUANTIZE" not in ops       # full integer end to end


def test_conv1d_layout_is_nlc_not_ncl(converted):
    """C == L == 8 for the 1-D model, so only data can tell NLC from NCL: feeding the PyTorch (N, C, L)
    tensor without the permutation must do clearly worse than the documented (N, L, C) feed."""
    from tinyprune.convert import evaluate_tflite
    from tinyprune.data import load_dataset

    out = converted("conv1d")
    ds = load_dataset("digits", (1, 8, 8))
    right = evaluate_tflite(out / "model_int8.tflite", ds.x_test, ds.y_test)["accuracy"]
    wrong = evaluate_tflite(out / "model_int8.tflite", ds.x_test.transpose(0, 2, 1), ds.y_test)["accuracy"]
    assert right >= 0.9 and wrong < right - 0.2


def _naive_layout_accuracy(out: Path, shape) -> float:
    """Accuracy when the NCHW buffer is read as NHWC (what a silently permuted model would want)."""
    from tinyprune.convert import evaluate_tflite
    from tinyprune.data import load_dataset

    ds = load_dataset("digits", shape)
    n, c, h, w = ds.x_test.shape
    naive = ds.x_test.reshape(n, h, w, c).transpose(0, 3, 1, 2)
    return evaluate_tflite(out / "model_int8.tflite", naive, ds.y_test)["accuracy"]


def test_layout_fix_flatten_at_input_without_transpose(converted):
    """Flatten straight after the input: onnx2tf alone would read the input in NCHW order; the stage
    permutes the first linear layer's weights so the int8 model takes x.transpose(0, 2, 3, 1) with
    no TRANSPOSE op, and agrees with the float model."""
    out = converted("flat_mlp")
    rep = _report(out)
    assert rep["input"]["shape"] == [1, 8, 8, 2]
    assert rep["tflite"]["onnx2tf_input_layout"].startswith("channels_last_weights:")
    assert rep["tflite"]["input_transpose"] is False and "TRANSPOSE" not in rep["tflite"]["operators"]
    assert rep["evaluation"]["top1_agreement"] >= 0.98
    assert _naive_layout_accuracy(out, (1, 2, 8, 8)) < rep["evaluation"]["int8_accuracy"] - 0.2


def test_layout_fix_by_composing_a_transpose(converted):
    """When the weight permutation does not apply, the detected layout is composed in front of the
    model: the int8 model still takes channels-last and agrees with the float model."""
    out = converted("flat_relu_mlp")
    rep = _report(out)
    assert rep["input"]["shape"] == [1, 8, 8, 2]
    assert rep["tflite"]["input_transpose"] is True and rep["tflite"]["notes"]
    assert "TRANSPOSE" in rep["tflite"]["operators"]
    assert rep["evaluation"]["top1_agreement"] >= 0.98
    assert _naive_layout_accuracy(out, (1, 2, 8, 8)) < rep["evaluation"]["int8_accuracy"] - 0.2


def test_channels_last_flatten_variant_is_equivalent(tmp_path):
    """The weight-permuted ONNX graph on x.transpose(0, 2, 3, 1) equals the original on x (onnxruntime)."""
    import torch

    from tinyprune.convert import export_onnx, load_onnx
    from tinyprune.convert.onnx_utils import ort_run, ort_session
    from tinyprune.convert.tflite_int8 import channels_last_flatten_variant

    torch.manual_seed(0)
    model = archs.make_flat_mlp()
    onnx_model = load_onnx(export_onnx(model, torch.zeros(1, 2, 8, 8), tmp_path / "m.onnx"))
    variant = channels_last_flatten_variant(onnx_model)
    assert variant is not None
    x = np.random.default_rng(0).random((6, 2, 8, 8), dtype=np.float32)
    np.testing.assert_allclose(ort_run(ort_session(variant), x.transpose(0, 2, 3, 1).copy()),
                               ort_run(ort_session(onnx_model), x), rtol=1e-5, atol=1e-5)
    relu_first = load_onnx(export_onnx(archs.make_flat_relu_mlp(), torch.zeros(1, 2, 8, 8), tmp_path / "r.onnx"))
    assert channels_last_flatten_variant(relu_first) is None


def test_cli_converts_onnx_file_without_touching_it(converted, tmp_path):
    """`tinyprune convert model.onnx` end to end in a subprocess; the user's .onnx is not modified."""
    src = tmp_path / "user.onnx"
    src.write_bytes((converted("example") / "model.onnx").read_bytes())
    before = hashlib.sha256(src.read_bytes()).hexdigest()
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "tinyprune.cli", "convert", str(src), "--data", "digits",
                           "--calib-samples", "100", "-o", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert hashlib.sha256(src.read_bytes()).hexdigest() == before
    assert "top-1 agreement" in proc.stdout and "Traceback" not in proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 6, proc.stdout     # readable: no TF/onnx2tf noise
    assert lines[4] == "calibrated on 100 of 1347 training samples (--calib-samples)"
    assert lines[5].startswith("int8 loses ") and lines[5].endswith("(--max-int8-drop 1): layers not diagnosed")
    rep = _report(out)
    assert rep["source"]["kind"] == "onnx" and rep["data"]["calibration_samples"] == 100
    assert rep["input"]["shape"] == [1, 16, 16, 1]
    assert rep["evaluation"]["top1_agreement"] >= 0.98
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "user.onnx"]


def test_node_names_are_made_tensorflow_safe():
    """onnx2tf turns ONNX node names into TF variable scopes, which may not start with '/' (torch's
    module-path names do): the convert stage renames nodes, keeping them unique."""
    import onnx
    from onnx import helper

    from tinyprune.convert.onnx_utils import sanitize_node_names
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="/dw/Conv"),
             helper.make_node("Relu", ["a"], ["b"], name="/dw/Conv"),
             helper.make_node("Relu", ["b"], ["c"], name=""),
             helper.make_node("Relu", ["c"], ["y"], name="/0/Add:1")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
    m = sanitize_node_names(helper.make_model(g))
    names = [n.name for n in m.graph.node]
    assert names == ["dw_Conv", "dw_Conv_1", "Relu_2", "n0_Add_1"]
    assert [list(n.output) for n in m.graph.node] == [["a"], ["b"], ["c"], ["y"]]   # edges untouched
