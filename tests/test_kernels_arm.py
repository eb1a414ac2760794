"""Bit-exactness of the Cortex-M DSP kernels (firmware/kernels/arm) against the reference kernels.

Random cases (shapes, strides, paddings, dilations, depth multipliers, quantisation parameters,
activation ranges, scratch given or not) are generated here with a fixed seed, compiled into a
bare-metal program (firmware/kernels/arm/test/kernel_test_main.c + the mps2 BSP) that runs
``tp_<op>_s8_ref`` and ``tp_<op>_s8_arm`` on the same data in QEMU, Cortex-M7 (mps2-an500) and
Cortex-M4 (mps2-an386); every output element must be identical (0 differing elements). A
Cortex-M0+ build (no DSP) must compile and call only the reference kernels.

Needs arm-none-eabi-gcc and qemu-system-arm (skipped with a reason otherwise). No timing is asserted.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
KERNELS = ROOT / "firmware" / "kernels"
ARM = KERNELS / "arm"
BSP = ROOT / "firmware" / "bsp"

pytestmark = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
    reason="needs arm-none-eabi-gcc and qemu-system-arm (make setup)")


# ----------------------------------------------------------------------------- case generation

def _arr(ctype: str, name: str, values) -> str:
    vals = ",".join(str(int(v)) for v in np.asarray(values).ravel())
    return f"static const {ctype} {name}[] = {{{vals}}};\n"


def _quant(rng, n: int, k: int, per_channel: bool):
    """Multipliers/shifts that keep outputs mostly in range; sometimes shift > 0 (left shift)."""
    count = n if per_channel else 1
    mult = rng.integers(1 << 30, (1 << 31) - 1, size=count)
    base = -int(np.floor(np.log2(4000.0 * np.sqrt(max(k, 1)) / 100.0)))
    shift = base + rng.integers(-2, 3, size=count)
    if rng.random() < 0.1:
        shift[0] = 1
    return mult, shift


def _act(rng):
    r = rng.random()
    if r < 0.5:
        return -128, 127
    if r < 0.75:
        return int(rng.integers(-128, 0)), 127            # RELU-like
    lo = int(rng.integers(-128, 0))
    return lo, int(rng.integers(lo, 128))


def _bias(rng, n: int):
    if rng.random() < 0.1:
        return None
    scale = 1 << 30 if rng.random() < 0.1 else 20000     # some biases defeat the fast requantisation
    return rng.integers(-scale, scale, size=n)


def _scratch_mode(rng) -> str:
    r = rng.random()
    return "none" if r < 0.08 else "small" if r < 0.12 else "exact"


def _ctx_code(mode: str, size_expr: str) -> str:
    if mode == "none":
        return "tp_context ctx = tp_test_ctx(0);\n"
    if mode == "small":
        return f"tp_context ctx = tp_test_ctx(({size_expr}) > 8 ? ({size_expr}) - 1 : 0);\n"
    return f"tp_context ctx = tp_test_ctx({size_expr});\n"


def _out_size(n_in, k, stride, dil, pad_total):
    eff = dil * (k - 1) + 1
    return (n_in + pad_total - eff) // stride + 1


def gen_conv(rng, i: int, depthwise: bool = False) -> tuple[str, str]:
    for _ in range(100):
        n = int(rng.choice([1, 1, 1, 2]))
        h, w = int(rng.integers(1, 11)), int(rng.integers(1, 11))
        cin = int(rng.choice([1, 2, 3, 4, 5, 8, 12, 16, 20])) if not depthwise else int(
            rng.choice([4, 8, 12, 16, 32, 3, 6]))
        ch_mult = 1 if not depthwise else int(rng.choice([1, 1, 1, 1, 2, 3]))
        cout = int(rng.integers(1, 20)) if not depthwise else cin * ch_mult
        kh, kw = int(rng.integers(1, 6)), int(rng.integers(1, 6))
        if rng.random() < 0.3:
            kh, kw = (1, 1) if rng.random() < 0.5 else (3, 3)
        sh, sw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        if rng.random() < 0.4:
            sh = sw = 1
        dh, dw = (1, 1) if rng.random() < 0.7 else (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        ph, pw = int(rng.integers(0, kh)), int(rng.integers(0, kw))
        if rng.random() < 0.3:
            ph = pw = 0
        oh = _out_size(h, kh, sh, dh, 2 * ph)
        ow = _out_size(w, kw, sw, dw, 2 * pw)
        if oh >= 1 and ow >= 1 and n * oh * ow * cout <= 4096 and n * h * w * cin <= 8192:
            break
    k = kh * kw * (1 if depthwise else cin)
    x = rng.integers(-128, 128, size=n * h * w * cin)
    fil = rng.integers(-127, 128, size=(kh * kw * cout) if depthwise else (cout * k))
    per_channel = rng.random() < 0.8
    mult, shift = _quant(rng, cout, k, per_channel)
    bias = _bias(rng, cout)
    in_off = int(rng.integers(-127, 129))
    out_off = int(rng.integers(-128, 128))
    amin, amax = _act(rng)
    mode = _scratch_mode(rng)
    p = f"c{i}_"
    data = _arr("int8_t", p + "x", x) + _arr("int8_t", p + "f", fil) + _arr("int32_t", p + "m", mult) + \
        _arr("int32_t", p + "s", shift) + (_arr("int32_t", p + "b", bias) if bias is not None else "")
    bname = p + "b" if bias is not None else "NULL"
    nout = n * oh * ow * cout
    op = "depthwise_conv" if depthwise else "conv"
    if depthwise:
        params = (f"tp_dw_conv_params prm = {{{in_off}, {out_off}, {ch_mult}, {{{sh}, {sw}}}, {{{ph}, {pw}}}, "
                  f"{{{dh}, {dw}}}, {{{amin}, {amax}}}}};\n")
        fd = f"tp_dims fd = {{1, {kh}, {kw}, {cout}}};\n"
    else:
        params = (f"tp_conv_params prm = {{{in_off}, {out_off}, {{{sh}, {sw}}}, {{{ph}, {pw}}}, "
                  f"{{{dh}, {dw}}}, {{{amin}, {amax}}}}};\n")
        fd = f"tp_dims fd = {{{cout}, {kh}, {kw}, {cin}}};\n"
    args = f"&prm, &q, &id, {p}x, &fd, {p}f, {bname}, &od, "
    body = (params + f"tp_quant_params q = {{{p}m, {p}s, {int(per_channel)}}};\n"
            f"tp_dims id = {{{n}, {h}, {w}, {cin}}};\n" + fd +
            f"tp_dims od = {{{n}, {oh}, {ow}, {cout}}};\n" +
            _ctx_code(mode, f"tp_{op}_s8_get_buffer_size(&id, &fd, &od)") +
            f"tp_test_prefill({nout});\n"
            f"r->op = \"{op}\"; r->n = {nout};\n"
            f"TP_TIME(r->ref_insns, r->st_ref = tp_{op}_s8_ref(&ctx, {args}out_ref));\n"
            f"TP_TIME(r->arm_insns, r->st_arm = tp_{op}_s8_arm(&ctx, {args}out_arm));\n")
    return data, body


def gen_fc(rng, i: int) -> tuple[str, str]:
    batches = int(rng.choice([1, 1, 2, 3]))
    depth = int(rng.choice([1, 3, 4, 7, 16, 33, 64, 100, 256]))
    out = int(rng.integers(1, 40))
    x = rng.integers(-128, 128, size=batches * depth)
    fil = rng.integers(-127, 128, size=out * depth)
    per_channel = rng.random() < 0.5
    mult, shift = _quant(rng, out, depth, per_channel)
    bias = _bias(rng, out)
    in_off = int(rng.integers(-127, 129))
    f_off = 0 if rng.random() < 0.9 else int(rng.integers(-3, 4))
    out_off = int(rng.integers(-128, 128))
    amin, amax = _act(rng)
    mode = _scratch_mode(rng)
    p = f"c{i}_"
    data = _arr("int8_t", p + "x", x) + _arr("int8_t", p + "f", fil) + _arr("int32_t", p + "m", mult) + \
        _arr("int32_t", p + "s", shift) + (_arr("int32_t", p + "b", bias) if bias is not None else "")
    bname = p + "b" if bias is not None else "NULL"
    nout = batches * out
    args = f"&prm, &q, {batches}, {depth}, {out}, {p}x, {p}f, {bname}, "
    body = (f"tp_fc_params prm = {{{in_off}, {f_off}, {out_off}, {{{amin}, {amax}}}}};\n"
            f"tp_quant_params q = {{{p}m, {p}s, {int(per_channel)}}};\n" +
            _ctx_code(mode, f"tp_fully_connected_s8_get_buffer_size({depth}, {out})") +
            f"tp_test_prefill({nout});\n"
            f"r->op = \"fully_connected\"; r->n = {nout};\n"
            f"TP_TIME(r->ref_insns, r->st_ref = tp_fully_connected_s8_ref(&ctx, {args}out_ref));\n"
            f"TP_TIME(r->arm_insns, r->st_arm = tp_fully_connected_s8_arm(&ctx, {args}out_arm));\n")
    return data, body


def _qm_lt1(rng):
    return int(rng.integers(1 << 30, (1 << 31) - 1)), -int(rng.integers(0, 12))


def gen_add(rng, i: int) -> tuple[str, str]:
    size = int(rng.integers(1, 3000))
    a = rng.integers(-128, 128, size=size)
    b = rng.integers(-128, 128, size=size)
    m1, s1 = _qm_lt1(rng)
    m2, s2 = _qm_lt1(rng)
    mo, so = int(rng.integers(1 << 30, (1 << 31) - 1)), -int(rng.integers(14, 22))
    amin, amax = _act(rng)
    p = f"c{i}_"
    inplace = rng.random() < 0.3
    data = _arr("int8_t", p + "a", a) + _arr("int8_t", p + "b", b)
    prm = (f"tp_add_params prm = {{{int(rng.integers(-127, 129))}, {int(rng.integers(-127, 129))}, "
           f"{int(rng.integers(-128, 128))}, {m1}, {s1}, {m2}, {s2}, {mo}, {so}, 20, {{{amin}, {amax}}}}};\n")
    if inplace:   # output aliases input 1: run on copies in the output buffers
        body = (prm + "int32_t k;\n"
                f"for (k = 0; k < {size}; ++k) {{ out_ref[k] = {p}a[k]; out_arm[k] = {p}a[k]; }}\n"
                f"r->op = \"add_inplace\"; r->n = {size};\n"
                f"TP_TIME(r->ref_insns, r->st_ref = tp_add_s8_ref(&prm, NULL, {size}, out_ref, {p}b, out_ref));\n"
                f"TP_TIME(r->arm_insns, r->st_arm = tp_add_s8_arm(&prm, NULL, {size}, out_arm, {p}b, out_arm));\n")
    else:
        body = (prm + f"tp_test_prefill({size});\n"
                f"r->op = \"add\"; r->n = {size};\n"
                f"TP_TIME(r->ref_insns, r->st_ref = tp_add_s8_ref(&prm, NULL, {size}, {p}a, {p}b, out_ref));\n"
                f"TP_TIME(r->arm_insns, r->st_arm = tp_add_s8_arm(&prm, NULL, {size}, {p}a, {p}b, out_arm));\n")
    return data, body


def gen_avgpool(rng, i: int) -> tuple[str, str]:
    for _ in range(100):
        n = int(rng.choice([1, 1, 2]))
        h, w = int(rng.integers(1, 17)), int(rng.integers(1, 17))
        c = int(rng.choice([4, 8, 16, 64, 3, 5]))
        if rng.random() < 0.3:        # global pooling, as in IC/KWS
            fh, fw, sh, sw, ph, pw = h, w, 1, 1, 0, 0
        else:
            fh, fw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
            sh, sw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
            ph, pw = int(rng.integers(0, fh)), int(rng.integers(0, fw))
        oh = (h + 2 * ph - fh) // sh + 1
        ow = (w + 2 * pw - fw) // sw + 1
        if oh >= 1 and ow >= 1 and n * oh * ow * c <= 4096 and n * h * w * c <= 8192:
            break
    x = rng.integers(-128, 128, size=n * h * w * c)
    amin, amax = _act(rng)
    p = f"c{i}_"
    nout = n * oh * ow * c
    data = _arr("int8_t", p + "x", x)
    args = f"&prm, &id, {p}x, &od, "
    body = (f"tp_pool_params prm = {{{{{sh}, {sw}}}, {{{ph}, {pw}}}, {{{fh}, {fw}}}, {{{amin}, {amax}}}}};\n"
            f"tp_dims id = {{{n}, {h}, {w}, {c}}};\n"
            f"tp_dims od = {{{n}, {oh}, {ow}, {c}}};\n"
            f"tp_test_prefill({nout});\n"
            f"r->op = \"avgpool\"; r->n = {nout};\n"
            f"TP_TIME(r->ref_insns, r->st_ref = tp_avgpool_s8_ref({args}out_ref));\n"
            f"TP_TIME(r->arm_insns, r->st_arm = tp_avgpool_s8_arm({args}out_arm));\n")
    return data, body


GENERATORS = {
    "conv": (lambda rng, i: gen_conv(rng, i, False), 60),
    "depthwise_conv": (lambda rng, i: gen_conv(rng, i, True), 50),
    "fully_connected": (gen_fc, 30),
    "add": (gen_add, 20),
    "avgpool": (gen_avgpool, 25),
}


def generate_cases(seed: int) -> tuple[str, list[str]]:
    """C source of kernel_cases.inc and the op name of every case, in order."""
    rng = np.random.default_rng(seed)
    parts, names, ops = [], [], []
    i = 0
    for op, (gen, count) in GENERATORS.items():
        for _ in range(count):
            data, body = gen(rng, i)
            parts.append(data + f"static void case_{i}(tp_case_result *r)\n{{\n" + body + "}\n")
            names.append(f"case_{i}")
            ops.append(op)
            i += 1
    table = "static void (*const tp_cases[])(tp_case_result *) = {" + ", ".join(names) + "};\n"
    return "".join(parts) + f"#define TP_NUM_CASES {i}\n" + table, ops


# ----------------------------------------------------------------------------- build and run

def _board(name):
    from tinyprune.boards import load_board
    return load_board(name)


def build_kernel_test(board_name: str, out: Path, cases_src: str, opt: str = "-O2") -> Path:
    from tinyprune.firmware.linker import render_linker_script
    board = _board(board_name)
    out.mkdir(parents=True, exist_ok=True)
    (out / "kernel_cases.inc").write_text(cases_src)
    (out / "test.ld").write_text(render_linker_script(board))
    srcs = [BSP / "startup_cm.c", BSP / "bsp_mps2.c", BSP / "bsp_qemu_cmsdk.c", ARM / "test" / "kernel_test_main.c",
            *sorted(KERNELS.glob("*.c")), *sorted(ARM.glob("*.c"))]
    cmd = ["arm-none-eabi-gcc", *board.gcc_flags, opt, "-std=gnu11", "-Wall", "-Wextra", "-Werror",
           "-Wno-unused-parameter", "-ffunction-sections", "-fdata-sections",
           "-DTP_USE_ARM_DSP=1", "-DTP_KERNEL_TEST_MAIN=1", f'-DTP_BOARD_NAME="{board.name}"',
           f"-DTP_UART_BASE={board.serial.base_address:#x}u", "-DTP_NUM_IRQS=32",
           f"-I{KERNELS}", f"-I{BSP}", f"-I{out}",
           "-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs", "-Wl,--gc-sections",
           "-Wl,--no-warn-rwx-segments", f"-T{out / 'test.ld'}",
           *map(str, srcs), "-o", str(out / "kernel_test.elf")]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, f"kernel test build failed:\n{r.stderr[-4000:]}"
    return out / "kernel_test.elf"


CASE_RE = re.compile(r"^CASE (\d+) (\S+) n=(\d+) st=(-?\d+)/(-?\d+) diff=(\d+) "
                     r"ref_insns=(-?\d+) arm_insns=(-?\d+)(?: first=(\S+))?$")


def run_kernel_test(elf: Path, machine: str, timeout: float = 120.0):
    cmd = ["qemu-system-arm", "-M", machine, "-display", "none", "-serial", "stdio", "-monitor", "none",
           "-icount", "shift=7", "-semihosting-config", "enable=on,target=native", "-kernel", str(elf)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    cases = [m.groups() for m in map(CASE_RE.match, r.stdout.splitlines()) if m]
    return r.returncode, r.stdout, cases


# ----------------------------------------------------------------------------- tests

SEED = 20261122


@pytest.fixture(scope="session")
def kernel_cases():
    src, ops = generate_cases(SEED)
    return src, ops


@pytest.mark.parametrize("board,machine", [("mps2-an500", "mps2-an500"), ("mps2-an386", "mps2-an386")])
def test_dsp_kernels_bit_exact_in_qemu(tmp_path, kernel_cases, board, machine):
    src, ops = kernel_cases
    elf = build_kernel_test(board, tmp_path, src)
    rc, stdout, cases = run_kernel_test(elf, machine)
    assert f"TP_KERNEL_TEST cases={len(ops)} failed=0" in stdout, stdout[-3000:]
    assert rc == 0
    assert len(cases) == len(ops)
    bad = [c for c in cases if c[5] != "0"]
    assert not bad, f"differing elements: {bad[:5]}"
    # every op really ran on both paths: most cases succeed and produce outputs
    for op in GENERATORS:
        ok = [c for c in cases if c[1].startswith(op) and c[3] == "0"]
        assert len(ok) >= GENERATORS[op][1] // 2, f"too few successful {op} cases"
        assert all(int(c[2]) > 0 for c in ok)


def test_dsp_kernels_detect_a_wrong_kernel(tmp_path):
    """The harness can fail: an ARM kernel fed a different input than the reference is caught."""
    rng = np.random.default_rng(1)
    data, body = gen_fc(rng, 0)
    body = body.replace("tp_fully_connected_s8_arm(&ctx, &prm, &q, ",
                        "tp_fully_connected_s8_arm(&ctx, &prm2, &q, ")
    body = body.replace("tp_quant_params q =", "tp_fc_params prm2 = prm; prm2.output_offset ^= 1;\n"
                        "tp_quant_params q =")
    src = data + "static void case_0(tp_case_result *r)\n{\n" + body + "}\n" + \
        "#define TP_NUM_CASES 1\nstatic void (*const tp_cases[])(tp_case_result *) = {case_0};\n"
    elf = build_kernel_test("mps2-an500", tmp_path, src)
    rc, stdout, cases = run_kernel_test(elf, "mps2-an500")
    assert "TP_KERNEL_TEST cases=1 failed=1" in stdout
    assert rc == 1
    assert int(cases[0][5]) > 0


def test_counts_are_deterministic(tmp_path):
    """Two QEMU runs of the same program report identical instruction counts for every case."""
    rng = np.random.default_rng(7)
    parts, names = [], []
    for i in range(4):
        data, body = gen_conv(rng, i)
        parts.append(data + f"static void case_{i}(tp_case_result *r)\n{{\n" + body + "}\n")
        names.append(f"case_{i}")
    src = "".join(parts) + f"#define TP_NUM_CASES 4\nstatic void (*const tp_cases[])(tp_case_result *) = " \
        f"{{{', '.join(names)}}};\n"
    elf = build_kernel_test("mps2-an500", tmp_path, src)
    runs = [run_kernel_test(elf, "mps2-an500")[2] for _ in range(2)]
    assert runs[0] == runs[1]
    assert all(int(c[6]) > 0 and int(c[7]) > 0 for c in runs[0])


def test_cortex_m0plus_builds_with_reference_kernels(tmp_path):
    """Without the DSP extension the same sources (even with TP_USE_ARM_DSP) compile, the DSP files
    are empty and the public entries call the references."""
    objs = []
    for src in [*sorted(KERNELS.glob("*.c")), *sorted(ARM.glob("*.c"))]:
        obj = tmp_path / (src.stem + ".o")
        r = subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m0plus", "-mthumb", "-mfloat-abi=soft", "-O2",
                            "-std=c99", "-Wall", "-Wextra", "-Werror", "-DTP_USE_ARM_DSP=1", f"-I{KERNELS}",
                            "-c", str(src), "-o", str(obj)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        objs.append(obj)
    nm = subprocess.run(["arm-none-eabi-nm", *map(str, objs)], capture_output=True, text=True, check=True).stdout
    assert not re.search(r"^\s*\S*\s+[A-Za-z] \w+_arm(_get_buffer_size)?$", nm, re.M), \
        "DSP symbols in a Cortex-M0+ build"
    assert re.search(r" T tp_conv_s8_ref\b", nm) and re.search(r" T tp_conv_s8\b", nm)
    # and on Cortex-M7 the DSP variants are there and used by the public entries
    obj = tmp_path / "conv_m7.o"
    subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m7", "-mthumb", "-O2", "-std=c99", "-DTP_USE_ARM_DSP=1",
                    f"-I{KERNELS}", "-c", str(KERNELS / "tp_conv_s8.c"), "-o", str(obj)], check=True)
    nm7 = subprocess.run(["arm-none-eabi-nm", str(obj)], capture_output=True, text=True, check=True).stdout
    assert re.search(r" U tp_conv_s8_arm\b", nm7)


def test_dsp_kernels_bit_exact_without_optimisation(tmp_path, kernel_cases):
    """-O0 builds (r7 is the frame pointer, so the conv block's 14-register asm cannot be used)
    take the C twin of the block and stay bit-exact."""
    src, ops = kernel_cases
    elf = build_kernel_test("mps2-an500", tmp_path, src, opt="-O0")
    rc, stdout, cases = run_kernel_test(elf, "mps2-an500")
    assert f"TP_KERNEL_TEST cases={len(ops)} failed=0" in stdout, stdout[-3000:]
    assert rc == 0 and len(cases) == len(ops)


# ----------------------------------------------------------------------------- overlap (issue 7)
# The planner may place a window op's output D bytes below its dying input (overlap=True), D from
# tinyprune.codegen.planner.overlap_distance. Each DSP kernel runs here with input and output in ONE
# buffer at that distance (the reference on separate buffers); outputs must be identical. The
# kernels' documented pixels in flight (tp_nn_arm.h) are 0 (conv) and 1 (depthwise, pools), so they
# are checked at the distance for pixels_in_flight=1 (the tightest the contract defines) and at the
# planner's default.

def _same_pad(n_in, n_out, stride, k, dil):
    return max((n_out - 1) * stride + (k - 1) * dil + 1 - n_in, 0) // 2


def gen_overlap(rng, i: int, kind: str, flight: int) -> tuple[str, str, int]:
    from tinyprune.codegen import ir
    from tinyprune.codegen.planner import overlap_distance
    n = int(rng.choice([1, 1, 2]))
    h, w = int(rng.integers(2, 12)), int(rng.integers(2, 12))
    if kind == "conv":
        cin, cout = int(rng.choice([1, 3, 4, 8, 16, 5])), int(rng.integers(1, 24))
    else:
        cin = int(rng.choice([4, 8, 16, 32, 64]))
        cout = cin
    kh, kw = [(3, 3), (1, 1), (3, 3), (2, 2), (3, 2), (5, 5)][int(rng.integers(0, 6))]
    stride = int(rng.choice([1, 1, 2]))
    dil = 1 if kind == "avgpool" or rng.random() < 0.8 else 2
    padding = "SAME" if rng.random() < 0.6 else "VALID"
    eh, ew = (kh - 1) * dil + 1, (kw - 1) * dil + 1
    if padding == "VALID" and (h < eh or w < ew):
        padding = "SAME"
    if padding == "SAME":
        oh, ow = -(-h // stride), -(-w // stride)
        ph, pw = _same_pad(h, oh, stride, kh, dil), _same_pad(w, ow, stride, kw, dil)
    else:
        oh, ow, ph, pw = (h - eh) // stride + 1, (w - ew) // stride + 1, 0, 0
    opts = dict(stride_h=stride, stride_w=stride, dilation_h=dil, dilation_w=dil, padding=padding)
    t = {"x": ir.Tensor("x", (n, h, w, cin)), "y": ir.Tensor("y", (n, oh, ow, cout))}
    if kind == "avgpool":
        op = ir.Op("AVERAGE_POOL_2D", ["x"], ["y"], dict(opts, filter_h=kh, filter_w=kw))
    else:
        fshape = (cout, kh, kw, cin) if kind == "conv" else (1, kh, kw, cout)
        t["w"] = ir.Tensor("w", fshape, is_const=True)
        op = ir.Op("CONV_2D" if kind == "conv" else "DEPTHWISE_CONV_2D", ["x", "w"], ["y"],
                   dict(opts, depth_multiplier=1) if kind == "depthwise_conv" else opts)
    g = ir.Graph(t, [op], ["x"], ["y"])
    d = overlap_distance(op, g, pixels_in_flight=flight)
    assert d is not None
    nin, nout = n * h * w * cin, n * oh * ow * cout
    p = f"c{i}_"
    x = rng.integers(-128, 128, size=nin)
    amin, amax = _act(rng)
    data = _arr("int8_t", p + "x", x)
    share = f"int8_t *xs = tp_test_share({p}x, {nin}, {d});\nif (!xs) {{ r->n = 0; return; }}\n"
    if kind == "avgpool":
        body = (f"tp_pool_params prm = {{{{{stride}, {stride}}}, {{{ph}, {pw}}}, {{{kh}, {kw}}}, "
                f"{{{amin}, {amax}}}}};\n"
                f"tp_dims id = {{{n}, {h}, {w}, {cin}}};\ntp_dims od = {{{n}, {oh}, {ow}, {cout}}};\n"
                f"tp_test_prefill({nout});\nr->op = \"overlap_avgpool\"; r->n = {nout};\n"
                f"TP_TIME(r->ref_insns, r->st_ref = tp_avgpool_s8_ref(&prm, &id, {p}x, &od, out_ref));\n"
                + share +
                "TP_TIME(r->arm_insns, r->st_arm = tp_avgpool_s8_arm(&prm, &id, xs, &od, (int8_t *)shared_buf));\n"
                f"tp_test_unshare({nout});\n")
        return data, body, d
    k = kh * kw * (cin if kind == "conv" else 1)
    fil = rng.integers(-127, 128, size=(cout * k) if kind == "conv" else kh * kw * cout)
    mult, shift = _quant(rng, cout, k, True)
    bias = rng.integers(-20000, 20000, size=cout)
    in_off, out_off = int(rng.integers(-127, 129)), int(rng.integers(-128, 128))
    data += _arr("int8_t", p + "f", fil) + _arr("int32_t", p + "m", mult) + _arr("int32_t", p + "s", shift) + \
        _arr("int32_t", p + "b", bias)
    if kind == "conv":
        params = (f"tp_conv_params prm = {{{in_off}, {out_off}, {{{stride}, {stride}}}, {{{ph}, {pw}}}, "
                  f"{{{dil}, {dil}}}, {{{amin}, {amax}}}}};\n")
        fd = f"tp_dims fd = {{{cout}, {kh}, {kw}, {cin}}};\n"
    else:
        params = (f"tp_dw_conv_params prm = {{{in_off}, {out_off}, 1, {{{stride}, {stride}}}, {{{ph}, {pw}}}, "
                  f"{{{dil}, {dil}}}, {{{amin}, {amax}}}}};\n")
        fd = f"tp_dims fd = {{1, {kh}, {kw}, {cout}}};\n"
    body = (params + f"tp_quant_params q = {{{p}m, {p}s, 1}};\n"
            f"tp_dims id = {{{n}, {h}, {w}, {cin}}};\n" + fd + f"tp_dims od = {{{n}, {oh}, {ow}, {cout}}};\n"
            + _ctx_code("exact", f"tp_{kind}_s8_get_buffer_size(&id, &fd, &od)") +
            f"tp_test_prefill({nout});\nr->op = \"overlap_{kind}\"; r->n = {nout};\n"
            f"TP_TIME(r->ref_insns, r->st_ref = tp_{kind}_s8_ref(&ctx, &prm, &q, &id, {p}x, &fd, {p}f, {p}b, "
            f"&od, out_ref));\n" + share +
            f"TP_TIME(r->arm_insns, r->st_arm = tp_{kind}_s8_arm(&ctx, &prm, &q, &id, xs, &fd, {p}f, {p}b, "
            f"&od, (int8_t *)shared_buf));\n"
            f"tp_test_unshare({nout});\n")
    return data, body, d


def generate_overlap_cases(seed: int, per_kind: int = 12, shift_by: int = 0) -> tuple[str, list[str]]:
    rng = np.random.default_rng(seed)
    parts, names, ops = [], [], []
    i = 0
    for kind in ("conv", "depthwise_conv", "avgpool"):
        for j in range(per_kind):
            data, body, d = gen_overlap(rng, i, kind, flight=1 if j % 2 == 0 else 2)
            parts.append(data + f"static void case_{i}(tp_case_result *r)\n{{\n" + body + "}\n")
            names.append(f"case_{i}")
            ops.append(kind)
            i += 1
    table = "static void (*const tp_cases[])(tp_case_result *) = {" + ", ".join(names) + "};\n"
    return "".join(parts) + f"#define TP_NUM_CASES {i}\n" + table, ops


@pytest.mark.parametrize("board,machine", [("mps2-an500", "mps2-an500"), ("mps2-an386", "mps2-an386")])
def test_dsp_kernels_bit_exact_with_output_overlapping_input(tmp_path, board, machine):
    src, ops = generate_overlap_cases(SEED + 7)
    elf = build_kernel_test(board, tmp_path, src)
    rc, stdout, cases = run_kernel_test(elf, machine)
    assert f"TP_KERNEL_TEST cases={len(ops)} failed=0" in stdout, stdout[-3000:]
    assert rc == 0 and len(cases) == len(ops)
    assert all(c[3] == "0" and c[4] == "0" and int(c[2]) > 0 for c in cases), cases
    for kind in ("conv", "depthwise_conv", "avgpool"):
        assert sum(c[1] == f"overlap_{kind}" for c in cases) == 12


def test_overlap_test_detects_a_too_close_output(tmp_path):
    """The overlap harness can fail: a conv whose planner distance is large (>= 64 bytes), run in
    place (distance 0), corrupts its own input."""
    rng = np.random.default_rng(3)
    data, body, d = gen_overlap(rng, 0, "conv", flight=1)
    while d < 64:
        data, body, d = gen_overlap(rng, 0, "conv", flight=1)
    body = body.replace(f", {d});\nif (!xs)", ", 0);\nif (!xs)")
    src = data + "static void case_0(tp_case_result *r)\n{\n" + body + "}\n" + \
        "#define TP_NUM_CASES 1\nstatic void (*const tp_cases[])(tp_case_result *) = {case_0};\n"
    elf = build_kernel_test("mps2-an500", tmp_path, src)
    rc, stdout, cases = run_kernel_test(elf, "mps2-an500")
    assert "TP_KERNEL_TEST cases=1 failed=1" in stdout, stdout[-2000:]
    assert int(cases[0][5]) > 0


def test_depthwise_3x3_borders_bit_exact(tmp_path):
    """3x3 depthwise (the border pixels take the gathered-window path with -input_offset padding):
    SAME padding, strides 1 and 2, input offsets at the int8 extremes, full and clamped ranges."""
    rng = np.random.default_rng(11)
    parts, names = [], []
    i = 0
    for in_off in (128, -127, 0, 37):
        for stride, (h, w, c) in ((1, (5, 4, 8)), (2, (7, 6, 64)), (1, (25, 5, 16))):
            oh, ow = -(-h // stride), -(-w // stride)
            ph, pw = _same_pad(h, oh, stride, 3, 1), _same_pad(w, ow, stride, 3, 1)
            p = f"c{i}_"
            x = rng.integers(-128, 128, size=h * w * c)
            fil = rng.integers(-127, 128, size=9 * c)
            mult, shift = _quant(rng, c, 9, True)
            shift = np.minimum(shift, -1)
            bias = rng.integers(-20000, 20000, size=c)
            amin, amax = (-128, 127) if i % 2 == 0 else (-20, 100)
            data = _arr("int8_t", p + "x", x) + _arr("int8_t", p + "f", fil) + _arr("int32_t", p + "m", mult) + \
                _arr("int32_t", p + "s", shift) + _arr("int32_t", p + "b", bias)
            args = f"&prm, &q, &id, {p}x, &fd, {p}f, {p}b, &od, "
            body = (f"tp_dw_conv_params prm = {{{in_off}, {int(rng.integers(-128, 128))}, 1, {{{stride}, {stride}}}, "
                    f"{{{ph}, {pw}}}, {{1, 1}}, {{{amin}, {amax}}}}};\n"
                    f"tp_quant_params q = {{{p}m, {p}s, 1}};\ntp_dims id = {{1, {h}, {w}, {c}}};\n"
                    f"tp_dims fd = {{1, 3, 3, {c}}};\ntp_dims od = {{1, {oh}, {ow}, {c}}};\n"
                    + _ctx_code("exact", "tp_depthwise_conv_s8_get_buffer_size(&id, &fd, &od)") +
                    f"tp_test_prefill({oh * ow * c});\nr->op = \"dw3x3\"; r->n = {oh * ow * c};\n"
                    f"TP_TIME(r->ref_insns, r->st_ref = tp_depthwise_conv_s8_ref(&ctx, {args}out_ref));\n"
                    f"TP_TIME(r->arm_insns, r->st_arm = tp_depthwise_conv_s8_arm(&ctx, {args}out_arm));\n")
            parts.append(data + f"static void case_{i}(tp_case_result *r)\n{{\n" + body + "}\n")
            names.append(f"case_{i}")
            i += 1
    src = "".join(parts) + f"#define TP_NUM_CASES {i}\nstatic void (*const tp_cases[])(tp_case_result *) = " \
        f"{{{', '.join(names)}}};\n"
    elf = build_kernel_test("mps2-an500", tmp_path, src)
    rc, stdout, cases = run_kernel_test(elf, "mps2-an500")
    assert f"TP_KERNEL_TEST cases={i} failed=0" in stdout, stdout[-3000:]
    assert rc == 0 and all(c[3] == "0" and c[4] == "0" for c in cases)
    # the DSP path ran (much fewer instructions than the reference on the large cases)
    assert all(int(c[7]) < int(c[6]) for c in cases if int(c[2]) >= 1000)


# ----------------------------------------------------------------------------- 3x3 depthwise assembly paths
# tp_depthwise_conv_s8_arm's 3x3 path (full int8 range, every shift < 0, -input_offset an int8) runs
# interior runs of a row (tp_dw3x3_run), border windows keeping 6 or 4 taps (one function per window
# shape), and any other window -- inputs smaller than the filter, padding of 2 -- through the
# 9-pointer function with the padding row. These cases reach each of them, with strides 1 and 2,
# asymmetric (SAME, stride 2) and large padding, 4 to 132 channels, batches, per-tensor and
# per-channel quantisation with right shifts 1..22 and a zero multiplier, bias magnitudes up to the
# doubled accumulators' limit, and activation ranges narrower than int8 (clamped after the assembly).

def _dw3_case(rng, i, n, h, w, c, stride, ph, pw, oh, ow, in_off, per_channel=True, shifts=None,
              bias_scale=20000, amin=-128, amax=127):
    p = f"c{i}_"
    x = rng.integers(-128, 128, size=n * h * w * c)
    fil = rng.integers(-127, 128, size=9 * c)
    count = c if per_channel else 1
    mult = rng.integers(1 << 30, (1 << 31) - 1, size=count)
    if shifts is None:
        shifts = rng.integers(-9, -5, size=count)
    shifts = np.resize(np.asarray(shifts), count)
    if per_channel and c > 2:
        mult[1] = 0                                       # a channel with a zero multiplier
    bias = rng.integers(-bias_scale, bias_scale, size=c)
    out_off = int(rng.integers(-128, 128))
    data = _arr("int8_t", p + "x", x) + _arr("int8_t", p + "f", fil) + _arr("int32_t", p + "m", mult) + \
        _arr("int32_t", p + "s", shifts) + _arr("int32_t", p + "b", bias)
    args = f"&prm, &q, &id, {p}x, &fd, {p}f, {p}b, &od, "
    nout = n * oh * ow * c
    body = (f"tp_dw_conv_params prm = {{{in_off}, {out_off}, 1, {{{stride}, {stride}}}, {{{ph}, {pw}}}, "
            f"{{1, 1}}, {{{amin}, {amax}}}}};\n"
            f"tp_quant_params q = {{{p}m, {p}s, {int(per_channel)}}};\n"
            f"tp_dims id = {{{n}, {h}, {w}, {c}}};\ntp_dims fd = {{1, 3, 3, {c}}};\n"
            f"tp_dims od = {{{n}, {oh}, {ow}, {c}}};\n"
            + _ctx_code("exact", "tp_depthwise_conv_s8_get_buffer_size(&id, &fd, &od)") +
            f"tp_test_prefill({nout});\nr->op = \"dw3x3\"; r->n = {nout};\n"
            f"TP_TIME(r->ref_insns, r->st_ref = tp_depthwise_conv_s8_ref(&ctx, {args}out_ref));\n"
            f"TP_TIME(r->arm_insns, r->st_arm = tp_depthwise_conv_s8_arm(&ctx, {args}out_arm));\n")
    return data + f"static void case_{i}(tp_case_result *r)\n{{\n" + body + "}\n"


def generate_dw3_cases(seed: int) -> tuple[str, int]:
    rng = np.random.default_rng(seed)
    specs = []
    # SAME padding, stride 1 and 2 (stride 2 on even sizes pads only the bottom / right)
    for (h, w) in ((1, 1), (1, 4), (4, 1), (2, 2), (3, 3), (2, 5), (5, 3), (7, 6), (6, 7), (9, 5)):
        for stride in (1, 2):
            oh, ow = -(-h // stride), -(-w // stride)
            specs.append(dict(h=h, w=w, stride=stride, ph=_same_pad(h, oh, stride, 3, 1),
                              pw=_same_pad(w, ow, stride, 3, 1), oh=oh, ow=ow))
    # VALID (interior runs only), and padding 2 (windows with a single inside row / column)
    specs.append(dict(h=6, w=7, stride=1, ph=0, pw=0, oh=4, ow=5))
    specs.append(dict(h=7, w=9, stride=2, ph=0, pw=0, oh=3, ow=4))
    specs.append(dict(h=5, w=4, stride=1, ph=2, pw=2, oh=7, ow=6))
    specs.append(dict(h=4, w=6, stride=2, ph=2, pw=1, oh=3, ow=3))
    parts = []
    for i, sp in enumerate(specs):
        c = [4, 8, 16, 12, 64, 132][i % 6]
        n = 2 if i % 5 == 0 else 1
        if n * sp["h"] * sp["w"] * c > 8192:
            c = 8
        in_off = [-127, 128, 0, 37, -5][i % 5]
        shifts = None
        if i % 4 == 1:
            shifts = [-1, -22, -7, -3]                   # the table's extremes
        elif i % 4 == 3:
            shifts = rng.integers(-22, 0, size=c)
        amin, amax = [(-128, 127), (-128, 127), (-100, 127), (-128, 20), (-7, 90)][i % 5]
        parts.append(_dw3_case(rng, i, n, sp["h"], sp["w"], c, sp["stride"], sp["ph"], sp["pw"], sp["oh"],
                               sp["ow"], in_off, per_channel=i % 7 != 2, shifts=shifts,
                               bias_scale=(1 << 29) if i % 6 == 4 else 20000, amin=amin, amax=amax))
    i = len(specs)
    # the KWS DS-CNN shape (25 x 5, 64 channels), offset extremes (-128: the C path) and a clamped range
    for in_off, act in ((-127, (-128, 127)), (128, (-128, 127)), (-128, (-128, 127)), (3, (-128, 0))):
        parts.append(_dw3_case(rng, i, 1, 25, 5, 64, 1, 1, 1, 25, 5, in_off, amin=act[0], amax=act[1]))
        i += 1
    names = ", ".join(f"case_{k}" for k in range(i))
    src = "".join(parts) + f"#define TP_NUM_CASES {i}\nstatic void (*const tp_cases[])(tp_case_result *) = " \
        f"{{{names}}};\n"
    return src, i


@pytest.mark.parametrize("board,machine", [("mps2-an500", "mps2-an500"), ("mps2-an386", "mps2-an386")])
def test_depthwise_3x3_assembly_paths_bit_exact(tmp_path, board, machine):
    src, count = generate_dw3_cases(SEED + 3)
    elf = build_kernel_test(board, tmp_path, src)
    rc, stdout, cases = run_kernel_test(elf, machine)
    assert f"TP_KERNEL_TEST cases={count} failed=0" in stdout, stdout[-3000:]
    assert rc == 0 and len(cases) == count
    assert all(c[3] == "0" and c[4] == "0" and c[5] == "0" and int(c[2]) > 0 for c in cases), cases
    # the DSP path ran (fewer instructions than the reference) on every case of 1000+ outputs
    assert all(int(c[7]) < int(c[6]) for c in cases if int(c[2]) >= 1000)


def test_depthwise_3x3_overlapping_output_bit_exact(tmp_path):
    """The 3x3 assembly paths in one shared buffer at the planner's distance for 1 pixel in flight
    (the tightest tp_nn_arm.h allows for depthwise) and at its default."""
    rng = np.random.default_rng(SEED + 5)
    parts, i, tries = [], 0, 0
    while i < 10 and tries < 2000:
        tries += 1
        data, body, d = gen_overlap(rng, i, "depthwise_conv", flight=1 if i % 2 == 0 else 2)
        if "{1, 3, 3," not in body or "{1, 1}, {-128, 127}}" not in body:
            continue                                      # only 3x3, dilation 1, full range
        parts.append(data + f"static void case_{i}(tp_case_result *r)\n{{\n" + body + "}\n")
        i += 1
    assert i == 10
    names = ", ".join(f"case_{k}" for k in range(i))
    src = "".join(parts) + f"#define TP_NUM_CASES {i}\nstatic void (*const tp_cases[])(tp_case_result *) = " \
        f"{{{names}}};\n"
    elf = build_kernel_test("mps2-an500", tmp_path, src)
    rc, stdout, cases = run_kernel_test(elf, "mps2-an500")
    assert f"TP_KERNEL_TEST cases={i} failed=0" in stdout, stdout[-3000:]
    assert rc == 0 and all(c[3] == "0" and c[4] == "0" and int(c[2]) > 0 for c in cases), cases


def test_depthwise_3x3_small_variant_bit_exact(tmp_path):
    """-DTP_ARM_DW_SMALL (no border-shape functions: every border pixel through the 9-pointer
    function with the padding row) stays bit-exact on the same cases. build_kernel_test takes one
    extra compiler argument, so this build is unoptimised (the assembly is the same)."""
    src, count = generate_dw3_cases(SEED + 3)
    elf = build_kernel_test("mps2-an500", tmp_path, src, opt="-DTP_ARM_DW_SMALL=1")
    rc, stdout, cases = run_kernel_test(elf, "mps2-an500")
    assert f"TP_KERNEL_TEST cases={count} failed=0" in stdout, stdout[-3000:]
    assert rc == 0 and len(cases) == count
    assert all(c[3] == "0" and c[4] == "0" and c[5] == "0" for c in cases), cases
