"""Fast weights: CONV_2D filters pre-expanded to int16 at generation time (codegen --fast-weights,
tinyprune/codegen/relayout.py, tp_conv_s8_x16 in firmware/kernels).

- the layout itself (exact positions, padding);
- the kernels: random convolutions (K % 4 != 0, padding, strides, dilation, per-tensor and
  per-channel quantisation, activation ranges) run through tp_conv_s8_arm_x16 (Cortex-M7 and M4 in
  QEMU) and through the portable tp_conv_s8_x16_ref, each bit-exact with tp_conv_s8_ref on the int8
  filter;
- code generation: the int16 arrays are what flash accounting counts, the portable build is
  bit-exact with TFLite Micro, and the options that cannot work are refused with a clear error.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tinyprune.codegen.relayout import conv_filter_x16

from test_kernels_arm import (_act, _arr, _bias, _ctx_code, _out_size, _quant, build_kernel_test,
                              run_kernel_test)

HAVE_ARM = shutil.which("arm-none-eabi-gcc") is not None and shutil.which("qemu-system-arm") is not None
MLPERF = Path(__file__).resolve().parents[1].parent / "shared/models/mlperf-tiny"


def test_relayout_positions_and_padding():
    w = np.arange(-20, 2 * 2 * 1 * 5 - 20, dtype=np.int8).reshape(2, 2, 1, 5)     # K = 10 -> 3 groups
    x = conv_filter_x16(w)
    assert x.dtype == np.int16 and x.size == 2 * 12
    rows = w.reshape(2, 10)
    for oc in range(2):
        for j in range(10):
            assert x[oc * 12 + 4 * (j // 4) + (0, 2, 1, 3)[j % 4]] == rows[oc, j]
        assert x[oc * 12 + 8 + 1] == 0 and x[oc * 12 + 8 + 3] == 0        # elements 10, 11: padding


def _gen_x16_case(rng, i: int, variant: str) -> tuple[str, str]:
    for _ in range(100):
        n = int(rng.choice([1, 1, 2]))
        h, w = int(rng.integers(1, 11)), int(rng.integers(1, 11))
        cin = int(rng.choice([1, 2, 3, 4, 5, 8, 12, 16]))
        cout = int(rng.integers(1, 20))
        kh, kw = (1, 1) if rng.random() < 0.25 else (int(rng.integers(1, 6)), int(rng.integers(1, 6)))
        sh, sw = (1, 1) if rng.random() < 0.5 else (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        dh, dw = (1, 1) if rng.random() < 0.8 else (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        ph, pw = (0, 0) if rng.random() < 0.3 else (int(rng.integers(0, kh)), int(rng.integers(0, kw)))
        oh, ow = _out_size(h, kh, sh, dh, 2 * ph), _out_size(w, kw, sw, dw, 2 * pw)
        if oh >= 1 and ow >= 1 and n * oh * ow * cout <= 4096 and n * h * w * cin <= 8192:
            break
    k = kh * kw * cin
    x = rng.integers(-128, 128, size=n * h * w * cin)
    fil = rng.integers(-127, 128, size=(cout, kh, kw, cin)).astype(np.int8)
    per_channel = rng.random() < 0.8
    mult, shift = _quant(rng, cout, k, per_channel)
    bias = _bias(rng, cout)
    in_off, out_off = int(rng.integers(-127, 129)), int(rng.integers(-128, 128))
    amin, amax = _act(rng)
    p = f"c{i}_"
    data = (_arr("int8_t", p + "x", x) + _arr("int8_t", p + "f", fil) + _arr("int16_t", p + "f16", conv_filter_x16(fil)).replace("[] =", "[] __attribute__((aligned(4))) =")
            + _arr("int32_t", p + "m", mult) + _arr("int32_t", p + "s", shift)
            + (_arr("int32_t", p + "b", bias) if bias is not None else ""))
    bname = p + "b" if bias is not None else "NULL"
    nout = n * oh * ow * cout
    fn = "tp_conv_s8_x16_ref" if variant == "ref" else "tp_conv_s8_arm_x16"
    f16 = f"{p}f16"
    if variant == "mis":
        # a filter16 that is only 2-byte aligned: the DSP variant must not LDRD from it
        nf = conv_filter_x16(fil).size
        data += (f"static int16_t {p}mis[{nf + 2}] __attribute__((aligned(4)));\n"
                 f"static const int16_t *{p}mis_f16(void) {{ int i; for (i = 0; i < {nf}; ++i) "
                 f"{p}mis[i + 1] = {p}f16[i]; return {p}mis + 1; }}\n")
        f16 = f"{p}mis_f16()"
    body = (f"tp_conv_params prm = {{{in_off}, {out_off}, {{{sh}, {sw}}}, {{{ph}, {pw}}}, {{{dh}, {dw}}}, "
            f"{{{amin}, {amax}}}}};\n"
            f"tp_quant_params q = {{{p}m, {p}s, {int(per_channel)}}};\n"
            f"tp_dims id = {{{n}, {h}, {w}, {cin}}};\ntp_dims fd = {{{cout}, {kh}, {kw}, {cin}}};\n"
            f"tp_dims od = {{{n}, {oh}, {ow}, {cout}}};\n"
            + _ctx_code("exact", "tp_conv_s8_get_buffer_size(&id, &fd, &od)") +
            f"tp_test_prefill({nout});\nr->op = \"conv_x16_{variant}\"; r->n = {nout};\n"
            f"TP_TIME(r->ref_insns, r->st_ref = tp_conv_s8_ref(&ctx, &prm, &q, &id, {p}x, &fd, {p}f, {bname}, "
            f"&od, out_ref));\n"
            f"TP_TIME(r->arm_insns, r->st_arm = {fn}(&ctx, &prm, &q, &id, {p}x, &fd, {f16}, {bname}, &od, "
            f"out_arm));\n")
    return data, body


@pytest.mark.skipif(not HAVE_ARM, reason="needs arm-none-eabi-gcc and qemu-system-arm (make setup)")
@pytest.mark.parametrize("board", ["mps2-an500", "mps2-an386"])
def test_x16_kernels_bit_exact_with_the_int8_reference(tmp_path, board):
    rng = np.random.default_rng(20261122)
    parts, names, variants = [], [], []
    for i in range(70):
        variant = "ref" if i % 7 == 0 else "mis" if i % 7 == 1 else "arm"
        data, body = _gen_x16_case(rng, i, variant)
        parts.append(data + f"static void case_{i}(tp_case_result *r)\n{{\n" + body + "}\n")
        names.append(f"case_{i}")
        variants.append(variant)
    src = "".join(parts) + f"#define TP_NUM_CASES {len(names)}\n" + \
        "static void (*const tp_cases[])(tp_case_result *) = {" + ", ".join(names) + "};\n"
    rc, stdout, cases = run_kernel_test(build_kernel_test(board, tmp_path, src), board)
    assert f"TP_KERNEL_TEST cases={len(names)} failed=0" in stdout, stdout[-3000:]
    assert rc == 0 and len(cases) == len(names)
    assert not [c for c in cases if c[5] != "0"], "differing elements"
    ok = [c for c in cases if c[3] == "0" and int(c[2]) > 0]
    assert len(ok) >= 60 and {c[1] for c in ok} == {"conv_x16_arm", "conv_x16_ref", "conv_x16_mis"}
    # the DSP path really ran, not a silent fall-back to the reference (whose instruction count it
    # would then equal): far fewer instructions on the larger cases
    big = [c for c in ok if c[1] == "conv_x16_arm" and int(c[6]) > 200_000]
    assert big and all(int(c[7]) < int(c[6]) / 2 for c in big)


def _ic() -> Path:
    p = MLPERF / "ic_resnet8_int8.tflite"
    if not p.is_file():
        pytest.skip(f"MLPerf Tiny model {p} absent (../shared/models/mlperf-tiny is not beside this checkout)")
    return p


def test_codegen_fast_weights_accounting_and_host_bit_exact(tmp_path):
    from tinyprune.codegen.check import check, load_inputs
    from tinyprune.codegen.estimate import estimate
    from tinyprune.codegen.generate import generate
    from tinyprune.codegen.tflite_reader import read_model
    model = read_model(_ic())
    r = generate(_ic(), tmp_path / "fw", board="mps2-an500", fast_weights=True, tflm_arena=False)
    plain = generate(_ic(), tmp_path / "plain", board="mps2-an500", tflm_arena=False)
    rep = json.loads((tmp_path / "fw" / "codegen.json").read_text())
    assert rep["fast_weights"] is True and rep["emitted_weight_bytes"] == r.flash_bytes
    est = estimate(model.graph, "dsp", fast_weights=True)
    assert r.flash_bytes == est.flash_bytes
    convs = [op for op in model.graph.ops if op.kind == "CONV_2D"]
    extra = sum(-(-np.prod(model.graph.tensors[op.inputs[1]].shape[1:]) // 4) * 8 * model.graph.tensors[op.inputs[1]].shape[0]
                - model.graph.tensors[op.inputs[1]].nbytes for op in convs)
    assert r.flash_bytes - plain.flash_bytes == extra > 0
    src = (tmp_path / "fw" / "model.c").read_text()
    assert src.count("tp_conv_s8_x16(") == len(convs) and "tp_conv_s8(" not in src
    assert "const int16_t" in (tmp_path / "fw" / "model_weights.c").read_text()
    # the portable build of the same files (tp_conv_s8_x16_ref) is bit-exact with TFLite Micro
    res = check(tmp_path / "fw", _ic(), load_inputs(model, random=5, seed=3))
    assert res.mismatches == 0 and res.samples == 5


def test_fast_weights_refused_where_it_cannot_work(tmp_path):
    from tinyprune.codegen.generate import generate
    from tinyprune.errors import UserInputError
    with pytest.raises(UserInputError, match="DSP extension"):
        generate(_ic(), tmp_path / "a", board="rpi-pico", fast_weights=True)
    with pytest.raises(UserInputError, match="cmsis-nn"):
        generate(_ic(), tmp_path / "b", kernels="cmsis-nn", fast_weights=True)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    # without --board the plan reserves the DSP kernels' scratch (the only kernels fast weights help)
    r = generate(_ic(), tmp_path / "c", fast_weights=True, tflm_arena=False)
    assert r.report["plan_kernels"] == "dsp" and any(L["scratch_bytes"] for L in r.report["layers"])


@pytest.mark.skipif(not HAVE_ARM, reason="needs arm-none-eabi-gcc and qemu-system-arm (make setup)")
def test_bench_fast_weights_bit_exact_in_qemu():
    from tinyprune.bench import bench
    r = bench(_ic(), "mps2-an500", runs=1, fast_weights=True)
    assert r.bit_exact and r.fast_weights
    assert r.weight_bytes > 150_000           # IC ResNet-8's conv filters, int16
