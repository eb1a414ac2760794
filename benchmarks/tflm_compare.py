#!/usr/bin/env python3
"""tinyprune vs TensorFlow Lite Micro + CMSIS-NN, side by side, measured in one run.

    TFLM_PATH=... CMSIS_NN_PATH=... FLATBUFFERS_PATH=... GEMMLOWP_PATH=... RUY_PATH=... \\
    .venv/bin/python benchmarks/tflm_compare.py MODEL.tflite ... [--sweep DIR] [--mlperf]
        [--board mps2-an500] [--work DIR] [-o benchmarks/TFLM_COMPARE.md] [--json]

Builds TensorFlow Lite Micro with its CMSIS-NN kernels (tensorflow/lite/micro/kernels/cmsis_nn/*.cc in
place of the same-named reference kernels) for the board's core with the same compiler and flags as
tinyprune's firmware (arm-none-eabi-gcc, the board's -mcpu/-mfpu flags, -O2, -ffunction-sections,
--gc-sections, newlib-nano), links each model into a bare-metal program on tinyprune's own BSP
(firmware/bsp: startup, UART, the -icount instruction counter) and runs it in the same QEMU machine with
`-icount`. Nothing of TFLite Micro, CMSIS-NN, flatbuffers or gemmlowp is copied into tinyprune: they are
read from the checkouts the environment names (fetch the public repositories; flatbuffers at the tag
TFLite Micro's flatbuffers_download.sh names, v25.9.23, to which this script applies TFLite Micro's own
flatbuffers.patch in its work folder) and compiled into --work (kept between runs: the library is built
once per checkout and flags). TFLite Micro is C++: the ARM toolchain's C++ library must be installed
(Debian: `apt-get install libstdc++-arm-none-eabi-newlib`; tinyprune itself does not need it).

Per model: both stacks' instructions for one inference on the same pseudo-random input (tinyprune: the
`tinyprune bench` count of one model_invoke; TFLite Micro: the counter around one Invoke()), arena
(tinyprune's static plan incl. kernel scratch; TFLite Micro's arena_used_bytes()), firmware text (ELF
sections that occupy flash, model constants included, as `tinyprune bench` counts them), and whether
the two outputs are identical. A benchmark, not a CI test.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MLPERF = ROOT.parent / "shared" / "models" / "mlperf-tiny"
BSP = ROOT / "firmware" / "bsp"
ICOUNT_SHIFT = 7

# TFLite builtin op name -> MicroMutableOpResolver method
RESOLVER = {
    "CONV_2D": "AddConv2D", "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D", "FULLY_CONNECTED": "AddFullyConnected",
    "ADD": "AddAdd", "MUL": "AddMul", "AVERAGE_POOL_2D": "AddAveragePool2D", "MAX_POOL_2D": "AddMaxPool2D",
    "MEAN": "AddMean", "PAD": "AddPad", "PADV2": "AddPadV2", "RESHAPE": "AddReshape", "SQUEEZE": "AddSqueeze",
    "CONCATENATION": "AddConcatenation", "SOFTMAX": "AddSoftmax", "LOGISTIC": "AddLogistic",
    "HARD_SWISH": "AddHardSwish", "RELU": "AddRelu", "RELU6": "AddRelu6", "QUANTIZE": "AddQuantize",
    "DEQUANTIZE": "AddDequantize", "TRANSPOSE": "AddTranspose", "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor",
    "TANH": "AddTanh", "STRIDED_SLICE": "AddStridedSlice", "SHAPE": "AddShape", "PACK": "AddPack",
}

# TFLite builtin op -> the TFLite Micro kernel sources (tensorflow/lite/micro/kernels/<stem>.cc, the
# cmsis_nn/ one where it exists) it needs: only these are compiled (with kernel_util and
# micro_tensor_utils), the library is built for the union of the compared models' ops
KERNEL_STEMS = {
    "CONV_2D": ("conv", "conv_common"), "DEPTHWISE_CONV_2D": ("depthwise_conv", "depthwise_conv_common"),
    "FULLY_CONNECTED": ("fully_connected", "fully_connected_common"), "ADD": ("add", "add_common"),
    "MUL": ("mul", "mul_common"), "AVERAGE_POOL_2D": ("pooling", "pooling_common"),
    "MAX_POOL_2D": ("pooling", "pooling_common"), "MEAN": ("reduce", "reduce_common"), "PAD": ("pad", "pad_common"),
    "PADV2": ("pad", "pad_common"), "RESHAPE": ("reshape", "reshape_common"), "SQUEEZE": ("squeeze",),
    "CONCATENATION": ("concatenation",), "SOFTMAX": ("softmax", "softmax_common"),
    "LOGISTIC": ("logistic", "logistic_common"), "HARD_SWISH": ("hard_swish", "hard_swish_common"),
    "RELU": ("activations", "activations_common"), "RELU6": ("activations", "activations_common"),
    "QUANTIZE": ("quantize", "quantize_common"), "DEQUANTIZE": ("dequantize", "dequantize_common"),
    "TRANSPOSE": ("transpose", "transpose_common"), "RESIZE_NEAREST_NEIGHBOR": ("resize_nearest_neighbor",),
    "TANH": ("tanh",), "STRIDED_SLICE": ("strided_slice", "strided_slice_common"), "SHAPE": ("shape",),
    "PACK": ("pack",),
}
ALWAYS_OPS = ("QUANTIZE", "DEQUANTIZE", "RESHAPE")


def model_ops(model: Path) -> list[str]:
    from tinyprune.codegen.tflite_reader import read_model
    return sorted({op.kind for op in read_model(model).graph.ops} | set(ALWAYS_OPS))


def _env(name: str) -> Path:
    v = os.environ.get(name)
    if not v or not Path(v).is_dir():
        sys.exit(f"error: {name} must name a checkout folder (got {v!r}); see the docstring")
    return Path(v)


def _run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd[:3]))} ... failed:\n{r.stderr[-3000:]}")
    return r


class Tflm:
    """A TFLite Micro + CMSIS-NN static library for one board, built into work/."""

    def __init__(self, board, work: Path):
        self.board = board
        self.tflm, self.cmsis = _env("TFLM_PATH"), _env("CMSIS_NN_PATH")
        self.fb_src, self.gemmlowp = _env("FLATBUFFERS_PATH"), _env("GEMMLOWP_PATH")
        self.ruy = _env("RUY_PATH")      # header-only: ruy/profiler/instrumentation.h
        self.cpu = list(board.gcc_flags)
        self.defines = ["-DTF_LITE_STATIC_MEMORY", "-DTF_LITE_DISABLE_X86_NEON", "-DCMSIS_NN",
                        "-DTF_LITE_MCU_DEBUG_LOG", "-DTF_LITE_USE_CTIME=0", "-DNDEBUG",
                        "-DARM_NN_ENABLE_F16=0", "-DARM_NN_ENABLE_F32=0"]  # as TFLM's cmsis_nn.inc
        self.includes = [f"-I{self.tflm}", "", f"-I{self.gemmlowp}",
                         f"-I{self.cmsis}", f"-I{self.cmsis / 'Include'}", f"-I{self.ruy}"]
        self.common = self.cpu + ["-O2", "-ffunction-sections", "-fdata-sections", "-fno-common"]
        key = hashlib.sha256(json.dumps([str(self.tflm), str(self.cmsis), self.common, self.defines]).encode())
        self.dir = work / f"tflm-{board.name}-{key.hexdigest()[:12]}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.fb = self.dir / "flatbuffers"
        self.includes[1] = f"-I{self.fb / 'include'}"

    def _flatbuffers(self):
        if (self.fb / "include" / "flatbuffers" / "base.h").is_file():
            return
        shutil.copytree(self.fb_src / "include", self.fb / "include")
        patch = self.tflm / "tensorflow/lite/micro/tools/make/flatbuffers.patch"
        _run(["patch", "-p1", "-i", str(patch)], cwd=self.fb)

    def _sources(self, ops) -> list[Path]:
        t = self.tflm / "tensorflow"
        srcs = [p for p in t.rglob("*.c*") if p.suffix in (".cc", ".c")
                and not any(x in p.parts for x in ("micro", "experimental"))
                and p.name != "array.cc" and "lite" in p.parts]
        micro = t / "lite" / "micro"
        for sub in ("", "arena_allocator", "memory_planner", "tflite_bridge"):
            srcs += [p for p in (micro / sub).glob("*.cc") if not p.name.endswith("_test.cc")
                     and "benchmark" not in p.name and p.name not in ("test_helpers.cc", "test_helper_custom_ops.cc",
                                                                      "fake_micro_context.cc", "mock_micro_graph.cc",
                                                                      "recording_micro_allocator.cc")]
        inc = (self.tflm / "tensorflow/lite/micro/tools/make/sources.inc").read_text()
        start = inc.index("MICROLITE_CC_KERNEL_SRCS := ")
        block = inc[start:inc.index("\n\n", start)]
        kernels = [self.tflm / m for m in re.findall(r"(tensorflow/lite/micro/kernels/[\w/]+\.cc)", block)]
        stems = {"kernel_util", "micro_tensor_utils"} | {x for k in ops for x in KERNEL_STEMS.get(k, ())}
        kernels = [k for k in kernels if k.stem in stems]
        opt = micro / "kernels" / "cmsis_nn"
        kernels = [opt / k.name if (opt / k.name).is_file() else k for k in kernels]
        srcs += kernels
        srcs += [p for p in (self.cmsis / "Source").rglob("*.c") if not p.stem.endswith(("_f16", "_f32"))]
        return sorted(set(srcs))

    def library(self, ops) -> Path:
        """The library with the kernels of ``ops`` (built once per op set)."""
        tag = hashlib.sha256(",".join(sorted(ops)).encode()).hexdigest()[:10]
        lib = self.dir / f"libtflm-{tag}.a"
        if lib.is_file():
            return lib
        self._flatbuffers()
        srcs = self._sources(ops)
        objdir = self.dir / "obj"
        objdir.mkdir(exist_ok=True)

        def one(src: Path) -> Path:
            obj = objdir / (hashlib.sha1(str(src).encode()).hexdigest()[:16] + ".o")
            if obj.is_file():
                return obj
            if src.suffix == ".c":
                cmd = ["arm-none-eabi-gcc", *self.common, "-std=c11", *self.defines, *self.includes]
            else:
                cmd = ["arm-none-eabi-g++", *self.common, "-std=c++17", "-fno-rtti", "-fno-exceptions",
                       "-fno-threadsafe-statics", "-fno-unwind-tables", "-Wno-psabi", *self.defines, *self.includes]
            _run(cmd + ["-c", str(src), "-o", str(obj)])
            return obj
        with cf.ThreadPoolExecutor(max(1, (os.cpu_count() or 2))) as ex:
            objs = list(ex.map(one, srcs))
        _run(["arm-none-eabi-ar", "rcs", str(lib), *map(str, objs)])
        return lib

    def program(self, model: Path, out: Path, arena_bytes: int, lib_ops) -> Path:
        """An ELF running ``model`` once under the counter (linked with the library for ``lib_ops``)."""
        from tinyprune.firmware.linker import render_linker_script
        lib = self.library(lib_ops)
        out.mkdir(parents=True, exist_ok=True)
        ops = model_ops(model)
        adds = "\n    ".join(f"r.{RESOLVER[k]}();" for k in ops if k in RESOLVER)
        data = model.read_bytes()
        (out / "model_data.cc").write_text(
            "#include <cstdint>\nalignas(16) extern const uint8_t g_model[] = {"
            + ",".join(str(b) for b in data) + f"}};\nextern const unsigned g_model_len = {len(data)};\n")
        (out / "main.cc").write_text(_MAIN.replace("@NOPS@", str(len(ops) + 2)).replace("@ADDS@", adds)
                                     .replace("@ARENA@", str(arena_bytes)))
        (out / "prog.ld").write_text(render_linker_script(self.board))
        from tinyprune.firmware.build import bsp_for_board
        spec = bsp_for_board(self.board)
        bsp = [BSP / "startup_cm.c", BSP / spec.source, *[BSP / e for e in spec.extra if e.endswith(".c")]]
        cflags = [*self.common, f'-DTP_BOARD_NAME="{self.board.name}"', f"-DTP_NUM_IRQS={spec.num_irqs}",
                  f"-DTP_BOARD_CLOCK_HZ={self.board.core.clock_hz}u", *spec.defines, f"-I{BSP}"]
        objs = []
        for src in bsp:
            o = out / (src.stem + ".o")
            _run(["arm-none-eabi-gcc", *cflags, "-std=gnu11", "-c", str(src), "-o", str(o)])
            objs.append(o)
        for src in ("main.cc", "model_data.cc"):
            o = out / (src[:-3] + ".o")
            _run(["arm-none-eabi-g++", *cflags, *self.defines, *self.includes, "-std=c++17", "-fno-rtti",
                  "-fno-exceptions", "-fno-threadsafe-statics", "-c", str(out / src), "-o", str(o)])
            objs.append(o)
        elf = out / "tflm.elf"
        _run(["arm-none-eabi-g++", *self.cpu, "-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs",
              "-Wl,--gc-sections", "-Wl,--no-warn-rwx-segments", f"-T{out / 'prog.ld'}", *map(str, objs),
              str(lib), "-lm", "-o", str(elf)])
        return elf


_MAIN = r"""
#include <cstdint>
#include <cstring>
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"
extern "C" {
#include "bsp.h"
}
extern const uint8_t g_model[];
extern const unsigned g_model_len;
alignas(16) static uint8_t arena[@ARENA@];
// static objects with destructors register them against __dso_handle (crtbegin, not linked: -nostartfiles)
extern "C" { void *__dso_handle = nullptr; }

static void put(const char *s) { bsp_uart_write((const uint8_t *)s, strlen(s)); }
static void put_u(uint32_t v) {
  char b[12]; int i = 11; b[i] = 0;
  do { b[--i] = (char)('0' + v % 10u); v /= 10u; } while (v);
  put(&b[i]);
}
static void put_hex(const int8_t *p, size_t n) {
  static const char h[] = "0123456789abcdef";
  char b[3]; b[2] = 0;
  for (size_t i = 0; i < n; ++i) { b[0] = h[((uint8_t)p[i]) >> 4]; b[1] = h[((uint8_t)p[i]) & 15]; put(b); }
}

int main(void) {
  bsp_init();
  static tflite::MicroMutableOpResolver<@NOPS@> r;
  @ADDS@
  const tflite::Model *model = tflite::GetModel(g_model);
  static tflite::MicroInterpreter it(model, r, arena, sizeof(arena));
  if (it.AllocateTensors() != kTfLiteOk) { put("TFLM_ERROR allocate\n"); bsp_exit(2); }
  uint32_t x = 0x2545F491u;
  for (size_t k = 0; k < it.inputs_size(); ++k) {
    TfLiteTensor *t = it.input(k);
    for (size_t i = 0; i < t->bytes; ++i) {
      x ^= x << 13; x ^= x >> 17; x ^= x << 5;
      t->data.int8[i] = (int8_t)(x >> 24);
    }
  }
  uint32_t t0 = bsp_counter_read();
  TfLiteStatus st = it.Invoke();
  uint32_t t1 = bsp_counter_read();
  if (st != kTfLiteOk) { put("TFLM_ERROR invoke\n"); bsp_exit(3); }
  put("TFLM instructions="); put_u(t1 - t0);
  put(" arena="); put_u((uint32_t)it.arena_used_bytes());
  put(" output=");
  TfLiteTensor *o = it.output(0);
  put_hex(o->data.int8, o->bytes);
  put("\n");
  bsp_exit(0);
}
"""


def input_bytes(n: int) -> np.ndarray:
    """The pseudo-random input of _MAIN (xorshift32), for the tinyprune side."""
    x, out = 0x2545F491, np.empty(n, np.int8)
    for i in range(n):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        out[i] = np.int8(np.uint8(x >> 24))
    return out


def run_tflm(elf: Path, board) -> dict:
    r = subprocess.run(["qemu-system-arm", "-M", board.qemu.machine, "-display", "none", "-serial", "stdio",
                        "-monitor", "none", "-icount", f"shift={ICOUNT_SHIFT}", "-semihosting-config",
                        "enable=on,target=native", "-kernel", str(elf)], capture_output=True, text=True, timeout=600)
    m = re.search(r"TFLM instructions=(\d+) arena=(\d+) output=([0-9a-f]*)", r.stdout)
    if not m:
        raise RuntimeError(f"TFLite Micro program failed: {r.stdout[-500:]} {r.stderr[-500:]}")
    return {"instructions": int(m.group(1)), "arena": int(m.group(2)),
            "output": np.frombuffer(bytes.fromhex(m.group(3)), np.int8)}


def text_bytes(elf: Path, board) -> int:
    from tinyprune.firmware.build import measure
    _, _, sections, _ = measure(elf, board, relaxed=True)
    from tinyprune.bench import _section_sizes
    return _section_sizes(sections)[0]


def compare(model: Path, board, tflm: Tflm, work: Path, lib_ops) -> dict:
    from tinyprune.bench import bench
    tp = bench(model, board.name, runs=1)
    arena = max(64 * 1024, 4 * (tp.tflm_arena_bytes or tp.arena_bytes))
    elf = tflm.program(model, work / "prog" / model.stem, arena, lib_ops)
    t = run_tflm(elf, board)
    # the same input through TFLite Micro's Python interpreter: the embedded TFLM output must equal it,
    # and so must tinyprune's (bench checks its own output against the interpreter on its input)
    from tinyprune.validate.reference import Reference
    ref = Reference(model)
    want = ref.run(input_bytes(ref.input.nbytes)).ravel()
    n = min(len(want), len(t["output"]))
    return {"model": model.name, "macs": tp.macs,
            "tinyprune": {"instructions": tp.instructions, "arena": tp.arena_bytes, "text": tp.text_bytes,
                          "bit_exact": tp.bit_exact},
            "tflm": {"instructions": t["instructions"], "arena": t["arena"], "text": text_bytes(elf, board),
                     "output_equals_interpreter": bool(n and np.array_equal(want[:n], t["output"][:n]))}}


def render(rows: list[dict], board: str, cmd: str) -> str:
    out = [f"""# tinyprune vs TensorFlow Lite Micro + CMSIS-NN

Produced by

```
{cmd}
```

on {board} (QEMU `-icount`), arm-none-eabi-gcc 12.2 `-O2` for both stacks; TFLite Micro with its
CMSIS-NN kernels, built from the checkouts in TFLM_PATH / CMSIS_NN_PATH by `benchmarks/tflm_compare.py`.
Instructions of one inference on the same input; arena: tinyprune's static plan (scratch included) /
TFLite Micro's `arena_used_bytes()`; text: ELF sections in flash, model constants included.

| model | MACs | tinyprune instructions | TFLM instructions | ratio | tinyprune arena | TFLM arena | ratio | tinyprune text | TFLM text | ratio | bit-exact (tinyprune / TFLM) |
|---|---|---|---|---|---|---|---|---|---|---|---|
"""]
    for r in rows:
        a, b = r["tinyprune"], r["tflm"]
        out.append(f"| {r['model']} | {r['macs']:,} | {a['instructions']:,} | {b['instructions']:,} | "
                   f"{a['instructions'] / b['instructions']:.3f}x | {a['arena']:,} | {b['arena']:,} | "
                   f"{a['arena'] / b['arena']:.3f}x | {a['text']:,} | {b['text']:,} | {a['text'] / b['text']:.3f}x | "
                   f"{'yes' if a['bit_exact'] else 'NO'} / {'yes' if b['output_equals_interpreter'] else 'NO'} |\n")
    return "".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*")
    ap.add_argument("--sweep", default=None, help="a folder of .tflite (benchmarks/shapes.py --models-dir)")
    ap.add_argument("--mlperf", action="store_true", help="add the MLPerf Tiny models in ../shared/models")
    ap.add_argument("--board", default="mps2-an500")
    ap.add_argument("--work", default=str(Path.home() / ".cache" / "tinyprune-tflm"))
    ap.add_argument("-o", "--out", default=None, help="write the Markdown table here")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    from tinyprune.boards import load_board
    board = load_board(args.board)
    models = [Path(m) for m in args.models]
    if args.mlperf:
        models += sorted(MLPERF.glob("*.tflite"))
    if args.sweep:
        models += sorted(Path(args.sweep).glob("*.tflite"))
    if not models:
        ap.error("no models: give .tflite files, --sweep DIR or --mlperf")
    work = Path(args.work)
    tflm = Tflm(board, work)
    lib_ops = sorted({k for m in models for k in model_ops(m)})
    rows = []
    for m in models:
        try:
            rows.append(compare(m, board, tflm, work, lib_ops))
            a, b = rows[-1]["tinyprune"], rows[-1]["tflm"]
            print(f"{m.name}: tinyprune {a['instructions']:,} / TFLM {b['instructions']:,} instructions "
                  f"({a['instructions'] / b['instructions']:.3f}x)", file=sys.stderr)
        except Exception as e:  # noqa: BLE001 - a benchmark: say which model failed and go on
            print(f"{m.name}: FAILED: {e}", file=sys.stderr)
    cmd = "  .venv/bin/python benchmarks/tflm_compare.py " + " ".join(
        (["--mlperf"] if args.mlperf else []) + ([f"--sweep {args.sweep}"] if args.sweep else []) + args.models)
    text = render(rows, board.name, cmd)
    if args.out:
        Path(args.out).write_text(text)
    print(json.dumps(rows, indent=2) if args.json else text)
    return 0 if len(rows) == len(models) else 1


if __name__ == "__main__":
    sys.exit(main())
