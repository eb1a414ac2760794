"""The kernel variant per layer: chosen once at generation time (tinyprune/codegen/variants.py), written
to codegen.json, and equal to what the C runs -- a firmware built with -DTP_ARM_REPORT_VARIANT records
the TP_VAR_* code each DSP kernel entry took, layer by layer in QEMU (Cortex-M7 and M4)."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinyprune.codegen import variants

ROOT = Path(__file__).resolve().parents[1]
ARM = ROOT / "firmware" / "kernels" / "arm"
HARNESS = ARM / "test" / "variants"
MLPERF = ROOT.parent / "shared/models/mlperf-tiny"

sys.path.insert(0, str(Path(__file__).resolve().parent))


def test_codes_equal_the_c_header():
    text = (ARM / "tp_nn_arm.h").read_text()
    c = {m.group(1): int(m.group(2)) for m in re.finditer(r"#define (TP_VAR_\w+) (\d+)", text)}
    assert {variants.C_NAMES[n]: code for n, code in variants.CODES.items()} == c


def _mixed_model(rng) -> bytes:
    """One model whose layers take every DSP decision: the conv assembly (with a RELU6 range), the conv
    C block (4 output pixels), depthwise 3x3 assembly, depthwise 5x5 in SIMD C, a depth multiplier of 2
    and 6 channels (reference: shape), ADD, a broadcasting ADD (reference: shape), AVERAGE_POOL_2D
    (4 channels per word, and 6 channels: reference), FULLY_CONNECTED."""
    import tensorflow as tf
    from codegen_opmodels import _w, convert
    w1, b1 = _w(rng, (1, 1, 8, 12)), _w(rng, (12,), 0.3)
    w2, b2 = _w(rng, (3, 3, 8, 8)), _w(rng, (8,), 0.3)
    d3, d5, dm = _w(rng, (3, 3, 12, 1)), _w(rng, (5, 5, 12, 1)), _w(rng, (3, 3, 8, 2))
    w6, b6 = _w(rng, (1, 1, 8, 6)), _w(rng, (6,), 0.3)
    d6 = _w(rng, (3, 3, 6, 1))
    wf, bf = _w(rng, (12 * 5 * 5, 10)), _w(rng, (10,), 0.3)
    bias_row = _w(rng, (1, 1, 1, 12))

    @tf.function
    def f(x):
        a = tf.nn.relu6(tf.nn.conv2d(x, w1, 1, "SAME") + b1)
        small = tf.nn.conv2d(x, w2, 5, "VALID") + b2                       # 2x2 output pixels
        g = tf.nn.depthwise_conv2d(a, d3, [1, 2, 2, 1], "SAME")
        h = tf.nn.depthwise_conv2d(a, d5, [1, 1, 1, 1], "SAME")
        m = tf.nn.depthwise_conv2d(x, dm, [1, 1, 1, 1], "SAME")
        s6 = tf.nn.conv2d(x, w6, 1, "SAME") + b6
        d6o = tf.nn.depthwise_conv2d(s6, d6, [1, 1, 1, 1], "SAME")
        p6 = tf.nn.avg_pool2d(s6, 2, 2, "VALID")
        added = a + h
        bc = added + bias_row
        pooled = tf.nn.avg_pool2d(bc, 2, 2, "VALID")
        fc = tf.matmul(tf.reshape(pooled, (1, -1)), wf) + bf
        return small, g, m, d6o, p6, fc
    return convert(f, [(1, 10, 10, 8)], rng)


def _build_and_run(model: Path, board: str, machine: str, tmp: Path, defines: dict | None = None):
    from tinyprune.codegen.generate import generate
    from tinyprune.firmware.build import build_firmware
    cg = generate(model, tmp / "cg", board=board, tflm_arena=False)
    d = {"TP_ARM_REPORT_VARIANT": 1, "TP_VARIANT_TEST_MAIN": 1,
         "TP_VARIANT_OUT_BYTES": max(o["bytes"] for o in cg.report["outputs"]),
         "TP_VARIANT_IN_BYTES": max(o["bytes"] for o in cg.report["inputs"]), **(defines or {})}
    fw = build_firmware(tmp / "cg", board, tmp / "fw", harness_dir=HARNESS, defines=d)
    r = subprocess.run(["qemu-system-arm", "-M", machine, "-display", "none", "-serial", "stdio", "-monitor", "none",
                        "-semihosting-config", "enable=on,target=native", "-kernel", str(fw.elf)],
                       capture_output=True, text=True, timeout=120)
    n = len(cg.report["layers"])
    assert f"TP_VARIANTS layers={n} status=0" in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]
    ran = {int(a): int(b) for a, b in re.findall(r"^VARIANT (\d+) (-?\d+)$", r.stdout, re.M)}
    return cg.report, ran


def mismatches(report: dict, ran: dict) -> list[str]:
    """Layers whose C code differs from codegen.json's choice (ops without a DSP variant must record 0)."""
    bad = []
    for L in report["layers"]:
        want = L["variant"]["code"]
        if ran.get(L["layer"]) != want:
            bad.append(f"layer {L['layer']} {L['kind']}: codegen chose {L['variant']['name']} ({want}), "
                       f"the C ran {ran.get(L['layer'])}")
    return bad


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    pytest.importorskip("tensorflow")
    path = tmp_path_factory.mktemp("variants") / "mixed.tflite"
    path.write_bytes(_mixed_model(np.random.default_rng(7)))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("board", ["mps2-an500", "mps2-an386"])
def test_c_runs_the_variant_codegen_chose(tmp_path, mixed, board):
    report, ran = _build_and_run(mixed, board, board, tmp_path)
    assert not mismatches(report, ran)
    names = {L["variant"]["name"] for L in report["layers"]}
    # the model covers the decisions it was built for (else the comparison proves little)
    assert {"conv-asm-1x6", "conv-c-block", "dw-asm-3x3", "dw-simd-c", "reference/shape", "add-dsp",
            "avgpool-dsp", "fc-dsp-4row"} <= names, names
    # codegen.json and its warnings agree: every reference fallback is a warning naming its reason
    fb = [L for L in report["layers"] if L["variant"]["fallback"]]
    assert len(report["warnings"]) == len(fb) > 0
    assert all(L["variant"]["reason"] in w for L, w in zip(fb, report["warnings"]))
    # the planner reserved exactly the chosen variant's scratch
    assert [L["scratch_bytes"] for L in report["layers"]] == [L["variant"]["scratch"] for L in report["layers"]]


@pytest.mark.slow
def test_a_mismatch_is_detected(tmp_path, mixed):
    """The same model built without the DSP kernels records no variant: the comparison fails."""
    report, ran = _build_and_run(mixed, "mps2-an500", "mps2-an500", tmp_path, defines={"TP_NO_ARM_DSP": 1})
    bad = mismatches(report, ran)
    assert len(bad) == sum(1 for L in report["layers"] if L["variant"]["code"] != 0) > 0


@pytest.mark.parametrize("name", ["ic_resnet8_int8.tflite", "kws_dscnn_int8.tflite"])
def test_mlperf_models_run_the_chosen_variants_and_no_reference(tmp_path, name):
    model = MLPERF / name
    if not model.is_file():
        pytest.skip(f"MLPerf Tiny model {model} absent (../shared/models/mlperf-tiny is not beside this checkout)")
    report, ran = _build_and_run(model, "mps2-an500", "mps2-an500", tmp_path)
    assert not mismatches(report, ran)
    assert not report["kernel_fallbacks"] and not report["warnings"]
    assert not [L for L in report["layers"] if L["variant"]["slow"]]


def test_pruning_graphs_without_scales_are_assumed():
    """A graph from PyTorch shapes (no scales, no weights) decides on shapes and says so."""
    from tinyprune.codegen import ir
    g = ir.Graph(tensors={"x": ir.Tensor("x", (1, 8, 8, 16)), "w": ir.Tensor("w", (32, 1, 1, 16), is_const=True),
                          "y": ir.Tensor("y", (1, 8, 8, 32)), "d": ir.Tensor("d", (1, 3, 3, 6), is_const=True),
                          "x6": ir.Tensor("x6", (1, 8, 8, 6)), "y6": ir.Tensor("y6", (1, 8, 8, 6))},
                 ops=[ir.Op("CONV_2D", ["x", "w", ""], ["y"], {"stride_h": 1, "stride_w": 1}),
                      ir.Op("DEPTHWISE_CONV_2D", ["x6", "d", ""], ["y6"], {"stride_h": 1, "stride_w": 1})],
                 inputs=["x"], outputs=["y"])
    v = variants.choose(g.ops[0], g, "dsp")
    assert (v.name, v.assumed, v.scratch) == ("conv-asm-1x6", True, 8 + 48 * 4 + 16 * 32)
    v = variants.choose(g.ops[1], g, "dsp")
    assert (v.name, v.scratch, v.fallback) == ("reference/shape", 0, True)
    assert "6 channels" in v.reason
    assert variants.choose(g.ops[0], g, "portable").name == "portable"
