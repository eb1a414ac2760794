"""The planner's scratch sizes for the DSP kernels (tinyprune/codegen/scratch.py, kernels "dsp") are
exactly what the C kernels ask for (``tp_<op>_s8_get_buffer_size`` built with TP_USE_ARM_DSP for a
Cortex-M7 and run in QEMU).

Too little scratch in the plan would make a DSP kernel silently run its reference (correct but slow);
too much wastes arena. Shapes: the conv/depthwise/fully-connected layers of a spread of synthetic
shapes, plus every op of the MLPerf Tiny IC and KWS models when ../shared/models is present.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tinyprune.codegen import ir
from tinyprune.codegen.scratch import scratch_bytes

from test_kernels_arm import build_kernel_test, run_kernel_test

pytestmark = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
    reason="needs arm-none-eabi-gcc and qemu-system-arm (make setup)")

MLPERF = Path(__file__).resolve().parents[1].parent / "shared/models/mlperf-tiny"

# (kind, input NHWC, filter shape as in the graph, output NHWC)
SYNTHETIC = [
    ("CONV_2D", (1, 49, 10, 1), (64, 10, 4, 1), (1, 25, 5, 64)),
    ("CONV_2D", (1, 25, 5, 64), (64, 1, 1, 64), (1, 25, 5, 64)),
    ("CONV_2D", (1, 32, 32, 3), (16, 3, 3, 3), (1, 32, 32, 16)),
    ("CONV_2D", (1, 8, 8, 64), (64, 3, 3, 64), (1, 8, 8, 64)),
    ("CONV_2D", (1, 5, 7, 5), (3, 2, 5, 5), (1, 4, 3, 3)),
    ("CONV_2D", (1, 8, 8, 12), (12, 1, 1, 4), (1, 8, 8, 12)),                 # 3 groups: none (reference)
    ("CONV_2D", (1, 9, 9, 10), (6, 3, 3, 5), (1, 5, 5, 6)),                   # 2 groups: none (reference)
    ("DEPTHWISE_CONV_2D", (1, 25, 5, 64), (1, 3, 3, 64), (1, 25, 5, 64)),
    ("DEPTHWISE_CONV_2D", (1, 9, 9, 12), (1, 5, 5, 12), (1, 5, 5, 12)),
    ("DEPTHWISE_CONV_2D", (1, 9, 9, 6), (1, 3, 3, 6), (1, 9, 9, 6)),         # c % 4 != 0: none
    ("DEPTHWISE_CONV_2D", (1, 9, 9, 4), (1, 3, 3, 8), (1, 9, 9, 8)),         # ch_mult 2: none
    ("FULLY_CONNECTED", (1, 256), (10, 256), (1, 10)),
    ("FULLY_CONNECTED", (2, 33), (7, 33), (2, 7)),
]


def _graph(kind, xs, fs, os_) -> tuple[ir.Op, ir.Graph]:
    t = {"x": ir.Tensor("x", tuple(xs)), "w": ir.Tensor("w", tuple(fs), is_const=True),
         "y": ir.Tensor("y", tuple(os_))}
    op = ir.Op(kind, ["x", "w", ""], ["y"])
    return op, ir.Graph(t, [op], ["x"], ["y"])


def _c_call(op: ir.Op, g: ir.Graph) -> str | None:
    if op.kind not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
        return None
    x, f, y = (g.tensors[op.inputs[0]].shape, g.tensors[op.inputs[1]].shape, g.tensors[op.outputs[0]].shape)
    if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        name = "conv" if op.kind == "CONV_2D" else "depthwise_conv"
        return (f"tp_dims id = {{{x[0]}, {x[1]}, {x[2]}, {x[3]}}}; tp_dims fd = {{{f[0]}, {f[1]}, {f[2]}, {f[3]}}}; "
                f"tp_dims od = {{{y[0]}, {y[1]}, {y[2]}, {y[3]}}};\n"
                f"r->arm_insns = (uint32_t)tp_{name}_s8_get_buffer_size(&id, &fd, &od);\n")
    if op.kind == "FULLY_CONNECTED":
        return f"r->arm_insns = (uint32_t)tp_fully_connected_s8_get_buffer_size({f[-1]}, {f[0]});\n"
    return None


def _cases() -> list[tuple[str, ir.Op, ir.Graph]]:
    out = [(f"{k.lower()}{i}", *_graph(k, xs, fs, os_)) for i, (k, xs, fs, os_) in enumerate(SYNTHETIC)]
    if MLPERF.is_dir():
        from tinyprune.codegen.tflite_reader import read_model
        for m in ("ic_resnet8_int8.tflite", "kws_dscnn_int8.tflite"):
            if (MLPERF / m).is_file():
                g = read_model(MLPERF / m).graph
                out += [(f"{m[:3]}{i}", op, g) for i, op in enumerate(g.ops)]
    return [c for c in out if _c_call(c[1], c[2]) is not None]


def test_planner_scratch_equals_the_dsp_kernels_buffer_sizes(tmp_path):
    cases = _cases()
    parts, names, expected = [], [], []
    for i, (label, op, g) in enumerate(cases):
        expected.append(scratch_bytes(op, g, "dsp"))
        parts.append(f"static void case_{i}(tp_case_result *r)\n{{\n"
                     f"r->op = \"{label}\"; r->n = 0; r->st_ref = 0; r->st_arm = 0;\n"
                     f"r->ref_insns = {expected[-1]}u;\n" + _c_call(op, g) + "}\n")
        names.append(f"case_{i}")
    # the harness's helpers this program does not need (else -Werror=unused-function)
    parts.append("__attribute__((unused)) static void touch_(void) { (void)tp_test_ctx(0); tp_test_prefill(0); }\n")
    src = "".join(parts) + f"#define TP_NUM_CASES {len(cases)}\n" + \
        "static void (*const tp_cases[])(tp_case_result *) = {" + ", ".join(names) + "};\n"
    rc, stdout, got = run_kernel_test(build_kernel_test("mps2-an500", tmp_path, src), "mps2-an500")
    assert rc == 0 and len(got) == len(cases), stdout[-2000:]
    wrong = [(cases[i][0], int(g[6]), int(g[7])) for i, g in enumerate(got) if g[6] != g[7]]
    assert not wrong, f"(layer, planner bytes, kernel bytes) differ: {wrong}"
    # the DSP kernels of these shapes really take scratch (the comparison is not 0 == 0 throughout)
    assert sum(1 for e in expected if e > 0) >= len(SYNTHETIC) - 4
