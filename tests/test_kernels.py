"""Unit tests of the reference kernels in firmware/kernels (C, compiled with -Werror and sanitizers):
the fixed-point primitives against the Python model in codegen.quant, in-place execution of the
elementwise kernels, argument errors, dilated depthwise/conv against a NumPy reference, and the
quantisation math against known TFLite values."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tinyprune._paths import KERNELS_DIR
from tinyprune.codegen import quant

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs a host gcc")

HARNESS = r'''
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tp_nn.h"
#include "tp_nn_support.h"

static int8_t buf_a[4096], buf_b[4096], out1[4096], inpl[4096];

static int cmp(const char *what, const int8_t *x, const int8_t *y, int n) {
    if (memcmp(x, y, (size_t)n) != 0) { printf("FAIL in-place %s\n", what); return 1; }
    return 0;
}

int main(int argc, char **argv) {
    FILE *f;
    long n, i;
    int fails = 0;
    if (argc < 3) return 2;
    /* 1. primitives: lines "x m s" -> "srdhm rdbpot mbqm" */
    f = fopen(argv[1], "r");
    if (!f || fscanf(f, "%ld", &n) != 1) return 3;
    for (i = 0; i < n; ++i) {
        long x, m, s;
        if (fscanf(f, "%ld %ld %ld", &x, &m, &s) != 3) return 4;
        printf("%ld %ld %ld\n", (long)tp_srdhm((int32_t)x, (int32_t)m),
               (long)tp_rdbpot((int32_t)x, (int)(s < 0 ? -s : s) % 32), (long)tp_mbqm((int32_t)x, (int32_t)m, (int32_t)s));
    }
    fclose(f);
    /* 2. in place: out == input gives the same bytes as a separate output */
    srand((unsigned)atoi(argv[2]));
    for (i = 0; i < 4096; ++i) { buf_a[i] = (int8_t)(rand() % 256 - 128); buf_b[i] = (int8_t)(rand() % 256 - 128); }
    {
        tp_add_params ap = { 7, -3, -5, 1623797325, -1, 1798039290, -2, 1431655765, -19, 20, { -128, 127 } };
        tp_mul_params mp = { 11, -2, 3, 1246611456, -9, { -100, 120 } };
        tp_requant_params rp = { 4, -9, 1395864371, 0, { -128, 127 } };
        tp_logistic_params lp = { -3, 280, 1717986918, -1 + 24, };
        tp_hard_swish_params hp = { 5, -10, 21845, 1, 26214, -3 };
        memcpy(inpl, buf_a, 4096);
        if (tp_add_s8(&ap, 0, 4096, buf_a, buf_b, out1) || tp_add_s8(&ap, 0, 4096, inpl, buf_b, inpl)) return 5;
        fails += cmp("add", out1, inpl, 4096);
        memcpy(inpl, buf_a, 4096);
        if (tp_mul_s8(&mp, 0, 4096, buf_a, buf_b, out1) || tp_mul_s8(&mp, 0, 4096, inpl, buf_b, inpl)) return 5;
        fails += cmp("mul", out1, inpl, 4096);
        memcpy(inpl, buf_a, 4096);
        if (tp_requantize_s8(&rp, 4096, buf_a, out1) || tp_requantize_s8(&rp, 4096, inpl, inpl)) return 5;
        fails += cmp("requantize", out1, inpl, 4096);
        memcpy(inpl, buf_a, 4096);
        if (tp_logistic_s8(&lp, 4096, buf_a, out1) || tp_logistic_s8(&lp, 4096, inpl, inpl)) return 5;
        fails += cmp("logistic", out1, inpl, 4096);
        memcpy(inpl, buf_a, 4096);
        if (tp_hard_swish_s8(&hp, 4096, buf_a, out1) || tp_hard_swish_s8(&hp, 4096, inpl, inpl)) return 5;
        fails += cmp("hard_swish", out1, inpl, 4096);
        {   /* TANH, LEAKY_RELU (negative alpha), PRELU (a slope per channel of a [4][16][16][4] map) */
            tp_leaky_relu_params lr = { -3, 5, 1395864371, 0, 1717986918, -2, 1 };
            tp_prelu_params pp = { 6, 2, -7, 1395864371, 0, 1246611456, -7, { 1, 1, 1, 4 } };
            const int32_t dims[4] = { 4, 16, 16, 4 };
            const int8_t slope[4] = { -50, 3, 90, 127 };
            memcpy(inpl, buf_a, 4096);
            if (tp_tanh_s8(&lp, 4096, buf_a, out1) || tp_tanh_s8(&lp, 4096, inpl, inpl)) return 5;
            fails += cmp("tanh", out1, inpl, 4096);
            memcpy(inpl, buf_a, 4096);
            if (tp_leaky_relu_s8(&lr, 4096, buf_a, out1) || tp_leaky_relu_s8(&lr, 4096, inpl, inpl)) return 5;
            fails += cmp("leaky_relu", out1, inpl, 4096);
            memcpy(inpl, buf_a, 4096);
            if (tp_prelu_s8(&pp, dims, buf_a, slope, out1) || tp_prelu_s8(&pp, dims, inpl, slope, inpl)) return 5;
            fails += cmp("prelu", out1, inpl, 4096);
        }
        /* a broadcast add in place over the full-shape input */
        {
            tp_broadcast bc = { 2, { 64, 64 }, { 64, 1 }, { 0, 1 } };
            memcpy(inpl, buf_a, 4096);
            if (tp_add_s8(&ap, &bc, 0, buf_a, buf_b, out1) || tp_add_s8(&ap, &bc, 0, inpl, buf_b, inpl)) return 5;
            fails += cmp("add broadcast", out1, inpl, 4096);
            for (i = 0; i < 4096; ++i) {   /* and it equals the flat add with in2 repeated per row */
                int8_t rep[1];
                int8_t o;
                rep[0] = buf_b[i % 64];
                tp_add_s8(&ap, 0, 1, &buf_a[i], rep, &o);
                if (o != out1[i]) { printf("FAIL broadcast value at %ld\n", i); fails++; break; }
            }
        }
    }
    /* 3. argument errors */
    {
        tp_conv_params cp = { 0, 0, { 1, 1 }, { 0, 0 }, { 1, 1 }, { -128, 127 } };
        int32_t m = 1 << 30, s = 0;
        tp_quant_params q = { &m, &s, 0 };
        tp_dims in = { 1, 4, 4, 3 }, fd = { 2, 1, 1, 4 }, od = { 1, 4, 4, 2 };
        tp_context ctx = { 0, 0 };
        printf("conv_bad_channels %d\n", (int)tp_conv_s8(&ctx, &cp, &q, &in, buf_a, &fd, buf_b, 0, &od, out1));
        fd.c = 3;
        printf("conv_ok %d\n", (int)tp_conv_s8(&ctx, &cp, &q, &in, buf_a, &fd, buf_b, 0, &od, out1));
        printf("conv_null %d\n", (int)tp_conv_s8(&ctx, &cp, &q, &in, 0, &fd, buf_b, 0, &od, out1));
        printf("fc_null %d\n", (int)tp_fully_connected_s8(&ctx, 0, &q, 1, 4, 4, buf_a, buf_b, 0, out1));
        printf("softmax_bad %d\n", (int)tp_softmax_s8(0, 1, 4, buf_a, out1));
        printf("add_null %d\n", (int)tp_add_s8(0, 0, 4, buf_a, buf_b, out1));
        {
            tp_slice_params sp = { { 1, 4, 4, 3 }, { 0, 3, 0, 0 }, { 1, 1, 1, 1 }, { 1, 2, 4, 3 } };
            printf("slice_out_of_range %d\n", (int)tp_strided_slice_s8(&sp, buf_a, out1));
            sp.begin[1] = 2;
            printf("slice_ok %d\n", (int)tp_strided_slice_s8(&sp, buf_a, out1));
            sp.stride[3] = 0;
            printf("slice_zero_stride %d\n", (int)tp_strided_slice_s8(&sp, buf_a, out1));
            printf("prelu_null %d\n", (int)tp_prelu_s8(0, 0, buf_a, buf_b, out1));
        }
        printf("fc_too_deep %d\n", (int)tp_fully_connected_s8(&ctx, (const tp_fc_params *)&cp, &q, 1, 70000, 1, buf_a, buf_b, 0, out1));
    }
    printf("fails %d\n", fails);
    return 0;
}
'''


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    d = tmp_path_factory.mktemp("kernels")
    (d / "h.c").write_text(HARNESS)
    srcs = sorted(str(p) for p in KERNELS_DIR.glob("tp_*.c"))
    exes = {}
    for name, flags in (("O2", ["-O2"]), ("san", ["-O1", "-g", "-fsanitize=address,undefined",
                                                  "-fno-sanitize-recover=all"])):
        exe = d / f"h_{name}"
        r = subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", *flags, f"-I{KERNELS_DIR}",
                            str(d / "h.c"), *srcs, "-o", str(exe)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        exes[name] = exe
    return d, exes


def _cases(seed: int, n: int = 3000):
    rng = np.random.default_rng(seed)
    xs = np.concatenate([rng.integers(-(1 << 31), 1 << 31, n // 2, dtype=np.int64),
                         rng.integers(-70000, 70000, n // 2, dtype=np.int64),
                         [-(1 << 31), (1 << 31) - 1, 0, -1, 1]])
    out = []
    for x in xs:
        m = int(rng.integers(1 << 30, 1 << 31)) if rng.random() < 0.9 else int(rng.integers(0, 1 << 31))
        s = int(rng.integers(-31, 1))
        if rng.random() < 0.2 and -(1 << 20) < x < (1 << 20):  # left shifts only where TFLite allows them
            s = int(rng.integers(0, 8))
        if x == -(1 << 31) and rng.random() < 0.5:
            m = -(1 << 31)   # the one saturating SRDHM case (m only used by srdhm there)
        out.append((int(x), m, s))
    return out


@pytest.mark.parametrize("build", ["O2", "san"])
def test_primitives_inplace_and_errors(harness, build):
    d, exes = harness
    cases = _cases(1)
    (d / "cases.txt").write_text(f"{len(cases)}\n" + "\n".join(f"{x} {m} {s}" for x, m, s in cases) + "\n")
    r = subprocess.run([str(exes[build]), str(d / "cases.txt"), "7"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    lines = r.stdout.splitlines()
    for (x, m, s), line in zip(cases, lines):
        got = tuple(int(v) for v in line.split())
        want_mbqm = quant.mbqm(x, m, s) if m >= 0 else got[2]
        assert got == (quant.srdhm(x, m), quant.rdbpot(x, abs(s) % 32), want_mbqm), (x, m, s)
    tail = dict(ln.split() for ln in lines[len(cases):])
    assert tail == {"conv_bad_channels": "1", "conv_ok": "0", "conv_null": "1", "fc_null": "1",
                    "softmax_bad": "1", "add_null": "1", "fc_too_deep": "1", "fails": "0",
                    "slice_out_of_range": "1", "slice_ok": "0", "slice_zero_stride": "1", "prelu_null": "1"}


def _np_depthwise(x, w, bias, mult, shifts, mults, stride, dil, pad, in_off, out_off, act, ch_mult):
    n, h, wd, c = x.shape
    kh, kw = w.shape[1], w.shape[2]
    oh = (h + 2 * pad[0] - ((kh - 1) * dil + 1)) // stride + 1
    ow = (wd + 2 * pad[1] - ((kw - 1) * dil + 1)) // stride + 1
    out = np.zeros((n, oh, ow, c * ch_mult), np.int8)
    for oy in range(oh):
        for ox in range(ow):
            for oc in range(c * ch_mult):
                ic = oc // ch_mult
                acc = 0
                for ky in range(kh):
                    for kx in range(kw):
                        iy, ix = oy * stride - pad[0] + dil * ky, ox * stride - pad[1] + dil * kx
                        if 0 <= iy < h and 0 <= ix < wd:
                            acc += int(w[0, ky, kx, oc]) * (int(x[0, iy, ix, ic]) + in_off)
                acc += int(bias[oc])
                v = quant.mbqm(acc, mults[oc], shifts[oc]) + out_off
                out[0, oy, ox, oc] = min(max(v, act[0]), act[1])
    return out


def test_dilated_depthwise_and_conv_against_numpy(tmp_path):
    """TF's converter never emits a dilated DEPTHWISE_CONV_2D (it uses SPACE_TO_BATCH_ND), so the
    dilation path of the kernel is checked here against a direct NumPy evaluation."""
    rng = np.random.default_rng(3)
    cases = []
    for _ in range(4):
        c, mult = int(rng.integers(1, 4)), int(rng.integers(1, 3))
        h, wd = int(rng.integers(8, 12)), int(rng.integers(8, 12))
        kh, kw, dil, stride = int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(2, 4)), 1
        pad = (int(rng.integers(0, 3)), int(rng.integers(0, 3)))
        x = rng.integers(-128, 128, (1, h, wd, c), dtype=np.int8)
        w = rng.integers(-127, 128, (1, kh, kw, c * mult), dtype=np.int8)
        b = rng.integers(-5000, 5000, c * mult, dtype=np.int32)
        mults = [int(v) for v in rng.integers(1 << 30, 1 << 31, c * mult)]
        shifts = [int(v) for v in rng.integers(-12, -6, c * mult)]
        in_off, out_off, act = int(rng.integers(-127, 129)), int(rng.integers(-20, 20)), (-128, 100)
        ref = _np_depthwise(x, w, b, mult, shifts, mults, stride, dil, pad, in_off, out_off, act, mult)
        cases.append((x, w, b, mults, shifts, dil, pad, in_off, out_off, act, mult, ref))
    src = ['#include <stdio.h>\n#include "tp_nn.h"\nint main(void) {\n    int bad = 0;\n']
    for k, (x, w, b, mults, shifts, dil, pad, in_off, out_off, act, mult, ref) in enumerate(cases):
        arr = lambda t, a: "{" + ", ".join(str(int(v)) for v in np.ravel(a)) + "}"  # noqa: E731
        src.append(f"""    {{
        static const int8_t x[] = {arr('i8', x)}; static const int8_t w[] = {arr('i8', w)};
        static const int32_t b[] = {arr('i32', b)}; static const int32_t m[] = {arr('i32', mults)};
        static const int32_t s[] = {arr('i32', shifts)}; static const int8_t ref[] = {arr('i8', ref)};
        static int8_t out[{ref.size}];
        tp_dw_conv_params p = {{ {in_off}, {out_off}, {mult}, {{1, 1}}, {{{pad[0]}, {pad[1]}}}, {{{dil}, {dil}}}, {{{act[0]}, {act[1]}}} }};
        tp_quant_params q = {{ m, s, 1 }};
        tp_dims in = {{ 1, {x.shape[1]}, {x.shape[2]}, {x.shape[3]} }}, f = {{ 1, {w.shape[1]}, {w.shape[2]}, {w.shape[3]} }};
        tp_dims o = {{ 1, {ref.shape[1]}, {ref.shape[2]}, {ref.shape[3]} }};
        tp_context ctx = {{ 0, 0 }};
        int i;
        if (tp_depthwise_conv_s8_ref(&ctx, &p, &q, &in, x, &f, w, b, &o, out) != TP_OK) bad += 1000;
        for (i = 0; i < {ref.size}; ++i) if (out[i] != ref[i]) {{ bad++; }}
    }}
""")
    src.append('    printf("%d\\n", bad);\n    return 0;\n}\n')
    (tmp_path / "dw.c").write_text("".join(src))
    exe = tmp_path / "dw"
    r = subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-O1", "-fsanitize=address,undefined",
                        "-fno-sanitize-recover=all", f"-I{KERNELS_DIR}", str(tmp_path / "dw.c"),
                        str(KERNELS_DIR / "tp_depthwise_conv_s8.c"), "-o", str(exe)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip() == "0", run.stdout + run.stderr


def test_quantize_multiplier_matches_tflite_values():
    # values TFLite's QuantizeMultiplier gives (frexp, round half away from zero)
    assert quant.quantize_multiplier(0.5) == (1 << 30, 0)
    assert quant.quantize_multiplier(1.0) == (1 << 30, 1)
    assert quant.quantize_multiplier(0.0) == (0, 0)
    assert quant.quantize_multiplier(1e-12) == (0, 0)               # shift < -31 flushes to zero
    assert quant.quantize_multiplier(0.75) == (1610612736, 0)
    assert quant.quantize_multiplier(1 - 2 ** -40) == (1 << 30, 1)  # rounds up to 2^31 -> halved, shift+1
    # softmax int8: beta 1, input scale 1/16 -> real 2^-4 * 2^26 = 0.5 * 2^23 (PreprocessSoftmaxScaling);
    # diff_min = -floor(31 * 2^26 / 2^23)
    p = quant.softmax_params(1.0, 0.0625)
    assert p["input_left_shift"] == 23 and p["input_multiplier"] == 1 << 30
    assert p["diff_min"] == -248
    # MEAN folds the count into the multiplier: 49 elements, same scale
    mp = quant.mean_params(0.1, 3, 0.1, 3, 49)
    assert mp["shift"] == 1 - 5 and mp["multiplier"] == ((1 << 30) << 5) // 49
    # RELU6 in TFLM is a clamp to [zero point, quantize(6)]
    r6 = quant.relu_params(0.05, -10, 0.05, -10, six=True)
    assert (r6["act_min"], r6["act_max"], r6["multiplier"], r6["shift"]) == (-10, 110, 1 << 30, 1)


def test_pad_against_numpy(tmp_path):
    """tp_pad_s8 (row-wise copy/fill) on random 4-D paddings, every dimension padded in some case,
    against np.pad; built with sanitizers (an out-of-bounds copy would abort)."""
    rng = np.random.default_rng(11)
    src = ['#include <stdio.h>\n#include "tp_nn.h"\nint main(void) {\n    int bad = 0;\n']
    for k in range(12):
        dims = [int(rng.integers(1, 3)), int(rng.integers(1, 6)), int(rng.integers(1, 6)), int(rng.integers(1, 9))]
        before = [int(v) for v in rng.integers(0, 3, 4)]
        after = [int(v) for v in rng.integers(0, 3, 4)]
        if k % 4 == 0:
            before[k // 4] = after[k // 4] = 0
        x = rng.integers(-128, 128, dims, dtype=np.int8)
        pv = int(rng.integers(-128, 128))
        ref = np.pad(x, list(zip(before, after)), constant_values=pv)
        arr = lambda a: "{" + ", ".join(str(int(v)) for v in np.ravel(a)) + "}"  # noqa: E731
        src.append(f"""    {{
        static const int8_t x[] = {arr(x)}; static const int8_t ref[] = {arr(ref)};
        static int8_t out[{ref.size}];
        const int32_t d[4] = {arr(dims)}, b[4] = {arr(before)}, a[4] = {arr(after)};
        int i;
        if (tp_pad_s8(d, b, a, {pv}, x, out) != TP_OK) bad += 1000;
        for (i = 0; i < {ref.size}; ++i) if (out[i] != ref[i]) bad++;
    }}
""")
    src.append('    printf("%d\\n", bad);\n    return 0;\n}\n')
    (tmp_path / "pad.c").write_text("".join(src))
    exe = tmp_path / "pad"
    r = subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-O1", "-fsanitize=address,undefined",
                        "-fno-sanitize-recover=all", f"-I{KERNELS_DIR}", str(tmp_path / "pad.c"),
                        str(KERNELS_DIR / "tp_layout_s8.c"), str(KERNELS_DIR / "tp_requantize_s8.c"), "-o", str(exe)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip() == "0", run.stdout + run.stderr
