"""Flash accounting, MAC counts and the estimate API (tinyprune.codegen.accounting / estimate),
on hand-built graphs and on the MLPerf Tiny models (with TFLite Micro's arena for comparison)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tinyprune.codegen import ir
from tinyprune.codegen import scratch as scratch_mod
from tinyprune.codegen.accounting import flash_bytes
from tinyprune.codegen.estimate import estimate, macs
from tinyprune.codegen.planner import plan_memory
from tinyprune.errors import UserInputError

ROOT = Path(__file__).resolve().parents[1]
MLPERF = ROOT.parent / "shared" / "models" / "mlperf-tiny"


def small_net() -> ir.Graph:
    """x[1,8,8,3] -conv3x3/2-> [1,4,4,8] -dw3x3-> [1,4,4,8] -ADD const-> -reshape-> [1,128] -fc-> [1,10]
    with a weight shared by two FCs, int32 shape tensor, int8 constant ADD operand."""
    T = {}

    def t(name, shape, dtype="int8", const=False):
        T[name] = ir.Tensor(name, shape, dtype, is_const=const)
        return name

    t("x", (1, 8, 8, 3))
    ops = [
        ir.Op("CONV_2D", ["x", t("w1", (8, 3, 3, 3), const=True), t("b1", (8,), "int32", True)],
              [t("a", (1, 4, 4, 8))], {"stride_h": 2, "stride_w": 2, "padding": "SAME"}, "conv"),
        ir.Op("DEPTHWISE_CONV_2D", ["a", t("w2", (1, 3, 3, 8), const=True), t("b2", (8,), "int32", True)],
              [t("d", (1, 4, 4, 8))], {"padding": "SAME", "depth_multiplier": 1}, "dw"),
        ir.Op("ADD", ["d", t("k", (1, 1, 1, 8), const=True)], [t("e", (1, 4, 4, 8))], {}, "add"),
        ir.Op("RESHAPE", ["e", t("shape", (2,), "int32", True)], [t("f", (1, 128))], {}, "flatten"),
        ir.Op("FULLY_CONNECTED", ["f", t("w3", (10, 128), const=True), t("b3", (10,), "int32", True)],
              [t("y1", (1, 10))], {}, "fc1"),
        ir.Op("FULLY_CONNECTED", ["f", "w3", ""], [t("y2", (1, 10))], {}, "fc2"),   # shared weights, no bias
    ]
    return ir.Graph(T, ops, ["x"], ["y1", "y2"])


def test_flash_bytes_exact():
    fb = flash_bytes(small_net())
    # weights: 216 (8*3*3*3) + 72 (3*3*8) + 1280 (10*128, shared by fc1 and fc2: once)
    assert fb.weights == 216 + 72 + 1280
    # biases: 8*4 + 8*4 + 10*4 ; fc2 has none
    assert fb.biases == 32 + 32 + 40
    # multiplier + shift per output channel: conv 8, dw 8, fc1 10, fc2 10
    assert fb.quant_params == 8 * (8 + 8 + 10 + 10)
    # the ADD operand (8 B); the RESHAPE shape tensor is folded into code
    assert fb.other == 8
    assert fb.total == 1568 + 104 + 288 + 8


def test_flash_arrays_are_padded_to_4_bytes():
    T = {"x": ir.Tensor("x", (1, 5)), "w": ir.Tensor("w", (3, 5), is_const=True),
         "b": ir.Tensor("b", (3,), "int32", is_const=True), "y": ir.Tensor("y", (1, 3)),
         "k": ir.Tensor("k", (1, 3), is_const=True), "z": ir.Tensor("z", (1, 3))}
    g = ir.Graph(T, [ir.Op("FULLY_CONNECTED", ["x", "w", "b"], ["y"]), ir.Op("MUL", ["y", "k"], ["z"])], ["x"], ["z"])
    fb = flash_bytes(g)
    assert (fb.weights, fb.biases, fb.quant_params, fb.other, fb.total) == (16, 12, 24, 4, 56)


def test_macs_per_op():
    g = small_net()
    assert macs(g.ops[0], g) == 4 * 4 * 8 * 3 * 3 * 3
    assert macs(g.ops[1], g) == 4 * 4 * 8 * 3 * 3
    assert macs(g.ops[2], g) == 0 and macs(g.ops[3], g) == 0
    assert macs(g.ops[4], g) == 10 * 128


def test_estimate_combines_plan_flash_and_macs(monkeypatch):
    g = small_net()
    monkeypatch.setattr(scratch_mod, "scratch_bytes",
                        lambda op, graph, kernels="portable": 300 if op.kind == "CONV_2D" and kernels == "dsp" else 0)
    e = estimate(g)
    assert e.macs == 3456 + 1152 + 1280 + 1280
    assert e.flash_bytes == flash_bytes(g).total
    assert e.weight_bytes == 1568 + 104 + 8
    assert e.arena_bytes == e.plan.arena_bytes == plan_memory(g).arena_bytes
    assert [row["kind"] for row in e.per_layer] == [op.kind for op in g.ops]
    assert e.per_layer[0] == {"op": 0, "kind": "CONV_2D", "name": "conv", "macs": 3456, "params": 216 + 8,
                              "output_bytes": 128, "scratch_bytes": 0}
    assert e.per_layer[3]["params"] == 0            # the shape tensor is not a parameter
    assert e.per_layer[5]["params"] == 1280
    e.plan.validate(g)
    d = estimate(g, "dsp")
    assert d.per_layer[0]["scratch_bytes"] == 300 and d.plan.scratch == {0: 300}
    # step 0 holds x (192 B), a (128 B) and the scratch: the arena must too
    assert d.arena_bytes >= 192 + 128 + 300 and d.plan.peak_lower_bound >= 620
    d.plan.validate(g)
    json.dumps(d.to_json())
    with pytest.raises(UserInputError, match="unknown kernel variant"):
        estimate(g, "avx")
    with pytest.raises(UserInputError, match="overlap cannot be used with the cmsis-nn kernels"):
        estimate(g, "cmsis-nn", overlap=True)


def models():
    paths = [MLPERF / "ic_resnet8_int8.tflite", MLPERF / "kws_dscnn_int8.tflite"]
    if not all(p.exists() for p in paths):
        pytest.skip(f"MLPerf Tiny models not found in {MLPERF} (a clone without ../shared)")
    return paths


@pytest.fixture(scope="session")
def mlperf_graphs():
    reader = pytest.importorskip("tinyprune.codegen.tflite_reader")
    return {p.stem: reader.read_tflite(p) for p in models()}


def _buffer_bytes(path: Path, kinds=("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")):
    """Weight and bias bytes straight from the flatbuffer's buffers (independent of ir)."""
    import tflite
    m = tflite.Model.GetRootAsModel(path.read_bytes(), 0)
    sg = m.Subgraphs(0)
    names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
    w = b = 0
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        oc = m.OperatorCodes(op.OpcodeIndex())
        if names[max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())] in kinds:
            ins = op.InputsAsNumpy()
            w += -(-m.Buffers(sg.Tensors(ins[1]).Buffer()).DataLength() // 4) * 4
            b += m.Buffers(sg.Tensors(ins[2]).Buffer()).DataLength()
    return w, b


@pytest.mark.parametrize("stem,readme_macs", [("ic_resnet8_int8", 12.5e6), ("kws_dscnn_int8", 2.66e6)])
def test_mlperf_models(mlperf_graphs, stem, readme_macs):
    g = mlperf_graphs[stem]
    e = estimate(g, overlap=False)
    assert abs(e.macs - readme_macs) / readme_macs < 0.005
    w, b = _buffer_bytes(MLPERF / f"{stem}.tflite")
    assert (e.flash.weights, e.flash.biases) == (w, b)
    e.plan.validate(g)
    o = estimate(g, overlap=True)
    o.plan.validate(g)
    # the largest tensors of both models are 32x32x16 (IC) and 25x5x64 (KWS) int8 activations
    assert e.plan.peak_lower_bound == {"ic_resnet8_int8": 3 * 16384, "kws_dscnn_int8": 2 * 8000}[stem]
    assert e.arena_bytes == e.plan.peak_lower_bound          # optimal without overlap
    baseline = {"ic_resnet8_int8": 54996, "kws_dscnn_int8": 22820}[stem]  # issue 7, TFLM on device
    assert e.arena_bytes < baseline
    assert o.arena_bytes <= 0.7 * baseline and o.arena_bytes >= o.plan.peak_lower_bound


def test_benchmark_script_against_tflite_micro():
    models()
    pytest.importorskip("tinyprune.codegen.tflite_reader")
    pytest.importorskip("tflite_micro")
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "arena_vs_tflm.py"), "--json"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    rows = {row["model"]: row for row in json.loads(r.stdout)}
    assert set(rows) == {"ic_resnet8_int8", "kws_dscnn_int8"}
    for row in rows.values():
        assert row["arena"] <= row["tflm_head"] <= row["tflm_total"]
        assert row["arena_overlap"] < row["arena"]
