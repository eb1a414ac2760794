"""Host bit-exactness check of generated code against the TensorFlow Lite Micro interpreter.

    check(out_dir, model_path, inputs, *, sanitize=True, cc=None) -> CheckResult

compiles OUT's C (the generated model, its kernels and a small file-based host runner) with the host
compiler, ``-std=c99 -Wall -Wextra -Werror -O2``, and once more with
``-fsanitize=address,undefined -fno-sanitize-recover``; runs both on ``inputs`` and compares every
output element with TFLite Micro (the ``tflite-micro`` package). On a mismatch it rebuilds with
NAME_DEBUG_DUMP, dumps every layer's output for the first failing sample, runs TFLM with
kPreserveAllTensors and names the first layer that differs (positions and values).
Data files are read and checked (an .npz of finite numbers, not empty) by tinyprune.data, the one
data loader (cheap to import: numpy only).

``inputs``: int8 array [N, *input0 shape] (the model's int8 input layout, NHWC), or a list with
one such array per model input. ``load_inputs(data, model)`` reads an .npz (key ``x``, or ``x0``,
``x1``, ... for several inputs: int8 in that layout, or float -- then quantized with the input's
scale/zero point; float NCHW from the convert stage is transposed to NHWC when the shape says so)
or makes N seeded random ones.

This module may import tinyprune.codegen (reader), tinyprune._fs, tinyprune._int8, tinyprune.tflm, tinyprune.data and
tinyprune.errors.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

import numpy as np

from tinyprune._int8 import quantize_int8
from tinyprune.tflm import interpreter
from tinyprune.codegen.tflite_reader import TfliteModel, read_model
from tinyprune.codegen.packaging import source_dir
from tinyprune.errors import ToolError, UnsupportedModelError, UserInputError, ValidationFailed

RUNNER_TEMPLATE = Path(__file__).resolve().parent / "templates" / "host_runner.c.tmpl"
WARN_FLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-O2"]
SAN_FLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-O1", "-g", "-fsanitize=address,undefined",
             "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]


@dataclass
class CheckResult:
    samples: int
    elements: int              # output elements compared per build
    mismatches: int            # differing elements (0 = bit-exact)
    builds: list[str]          # which builds ran ("O2", "sanitize")
    first_mismatch: str = ""   # description, including the first differing layer
    max_abs_diff: int = 0
    details: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.mismatches == 0


def _prefix_of(out_dir: Path) -> str:
    import json
    p = out_dir / "codegen.json"
    if not p.exists():
        raise UserInputError(f"{out_dir} has no codegen.json: not a `tinyprune codegen` output directory")
    return json.loads(p.read_text())["prefix"]


def load_inputs(model: TfliteModel, data: str | os.PathLike | None = None, random: int | None = None,
                seed: int = 0) -> list[np.ndarray]:
    g = model.graph
    shapes = [tuple(g.tensors[t].shape) for t in g.inputs]
    if data is None:
        n = int(random or 10)
        if n <= 0:
            raise UserInputError(f"--random must be positive, got {n}")
        rng = np.random.default_rng(seed)
        return [rng.integers(-128, 128, size=(n,) + s[1:] if s and s[0] == 1 else (n,) + s, dtype=np.int8)
                for s in shapes]
    from tinyprune.data import check_values, read_npz

    z = read_npz(data)
    if len(g.inputs) > 1:
        keys = [f"x{k}" for k in range(len(g.inputs))]
        if not all(k in z for k in keys):
            raise UserInputError(f"--data {data}: a model with {len(g.inputs)} inputs needs arrays "
                                 f"{', '.join(keys)} (one per input, same number of samples); it has "
                                 f"{', '.join(sorted(z)) or 'no arrays'}")
    else:
        keys = ([k for k in ("x", "x0", "inputs", "x_test") if k in z] or list(z))[:1]
        if not keys:
            raise UserInputError(f"--data {data} holds no arrays (expected key 'x')")
    for key in keys:
        check_values(z[key], key, Path(data))
    out = []
    for k, key in enumerate(keys):
        out.append(_prepare_input(np.asarray(z[key]), g.tensors[g.inputs[k]], data))
    if len({len(a) for a in out}) != 1:
        raise UserInputError(f"--data {data}: the input arrays hold different numbers of samples")
    return out


def _prepare_input(x: np.ndarray, t, data) -> np.ndarray:
    s = tuple(t.shape[1:]) if t.shape and t.shape[0] == 1 else tuple(t.shape)
    if x.shape[1:] != s and len(s) == 3 and x.ndim == 4 and x.shape[1:] == (s[2], s[0], s[1]):
        x = x.transpose(0, 2, 3, 1)  # float NCHW (convert's layout) -> NHWC
    if x.shape[1:] != s:
        raise UserInputError(f"--data {data}: samples have shape {x.shape[1:]}, the model input needs {s} "
                             "(NHWC int8, or float NCHW as given to `tinyprune convert`)")
    if x.dtype != np.int8:
        scale, zp = t.quant.scales[0], t.quant.zero_points[0]
        x = quantize_int8(x, scale, zp)
    return x


def tflm_outputs(model: TfliteModel, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Run TFLite Micro on every sample; int8 outputs [N, ...] per model output (float outputs of a
    DEQUANTIZE boundary are mapped back to int8, which is exact)."""
    try:
        interp = interpreter(model.data)
        return [np.stack(x) for x in zip(*(_tflm_run(interp, model, [a[i] for a in inputs])
                                            for i in range(len(inputs[0]))))]
    except RuntimeError as e:  # TFLM's Prepare refusing a field tinyprune accepts (e.g. requantising concat)
        raise UnsupportedModelError(
            f"TFLite Micro, the reference the generated code is checked against, refuses this model: {e} "
            "(its reason is printed above)",
            hint="the generated code was written, but cannot be validated; re-export the model with the TFLite "
                 "converter, which writes models TFLite Micro runs") from None


def _tflm_run(interp, model: TfliteModel, sample: list[np.ndarray]) -> list[np.ndarray]:
    g = model.graph
    for k, name in enumerate(g.inputs):
        x = sample[k].reshape(g.tensors[name].shape)
        b = model.input_boundary.get(name)
        if b is not None:
            x = ((x.astype(np.float32) - np.float32(b.zero_point)) * np.float32(b.scale)).astype(np.float32)
        interp.set_input(x, k)
    interp.invoke()
    outs = []
    for k, name in enumerate(g.outputs):
        y = np.asarray(interp.get_output(k))
        b = model.output_boundary.get(name)
        if b is not None:
            y = quantize_int8(y, b.scale, b.zero_point)
        outs.append(y.astype(np.int8).reshape(g.tensors[name].shape))
    return outs


def _cc(cc: str | None) -> str:
    cc = cc or os.environ.get("CC") or "gcc"
    if shutil.which(cc) is None:
        raise ToolError(f"host C compiler {cc!r} not found", hint="install gcc (apt-get install gcc) or set CC")
    return cc


def compile_runner(out_dir: Path, prefix: str, build_dir: Path, flags: list[str], *, debug_dump: bool = False,
                   cc: str | None = None, name: str = "runner", kernels_lib: Path | None = None) -> Path:
    """Build the host runner of OUT's generated code. ``kernels_lib``: a static archive of the portable
    kernels already compiled with ``flags`` (``compile_kernels``), linked instead of recompiling them
    (for callers that build many models, e.g. the reader's fuzz test)."""
    import json
    build_dir.mkdir(parents=True, exist_ok=True)
    runner_c = build_dir / f"{name}.c"
    rep = json.loads((out_dir / "codegen.json").read_text())
    runner_c.write_text(Template(RUNNER_TEMPLATE.read_text()).substitute(
        p=prefix, P=prefix.upper(), IN_BYTES_LIST=", ".join(str(x["bytes"]) for x in rep["inputs"]),
        OUT_BYTES_LIST=", ".join(str(x["bytes"]) for x in rep["outputs"])))
    src_dir = source_dir(out_dir)   # OUT, or OUT/src for --layout arduino
    srcs = [src_dir / f"{prefix}.c", src_dir / f"{prefix}_weights.c"]
    if kernels_lib is None:
        srcs += sorted((src_dir / "kernels").rglob("*.c"))
    exe = build_dir / name
    cmd = [_cc(cc), *flags, f"-I{src_dir}", f"-I{src_dir / 'kernels'}"]
    objs: list[str] = []
    if rep.get("cmsis_nn"):
        objs = _cmsis_objects(Path(rep["cmsis_nn"]["path"]), build_dir / "cmsis-nn", flags, cc)
        cmd.append(f"-I{Path(rep['cmsis_nn']['path']) / 'Include'}")
    if debug_dump:
        cmd.append(f"-D{prefix.upper()}_DEBUG_DUMP")
    cmd += [str(s) for s in srcs] + [str(runner_c)] + objs + ([str(kernels_lib)] if kernels_lib else [])
    r = subprocess.run(cmd + ["-o", str(exe)], capture_output=True, text=True)
    if r.returncode != 0:
        raise ToolError(f"host build of the generated code failed ({' '.join(flags)}):\n{r.stderr[-4000:]}")
    return exe


def compile_kernels(kernels_dir: Path, build_dir: Path, flags: list[str], cc: str | None = None) -> Path:
    """Compile every portable kernel (``kernels_dir/*.c``) with ``flags`` into ``build_dir/libtpkernels.a``."""
    build_dir.mkdir(parents=True, exist_ok=True)
    srcs = sorted(Path(kernels_dir).glob("*.c"))
    r = subprocess.run([_cc(cc), *flags, "-c", f"-I{kernels_dir}", *map(str, srcs)], cwd=build_dir,
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise ToolError(f"host build of the kernels failed ({' '.join(flags)}):\n{r.stderr[-4000:]}")
    lib = build_dir / "libtpkernels.a"
    r = subprocess.run(["ar", "rcs", str(lib), *(str(build_dir / (p.stem + ".o")) for p in srcs)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise ToolError(f"ar failed on the kernel objects: {r.stderr[-2000:]}")
    return lib


_CMSIS_CACHE: dict[tuple, str] = {}


def _cmsis_objects(root: Path, obj_dir: Path, flags: list[str], cc: str | None) -> list[str]:
    """Compile the CMSIS-NN sources (third-party: without -Werror/-std) with the build's optimisation
    and sanitizer flags into a static archive, cached per process (checkout, flags, compiler)."""
    from tinyprune.codegen.cmsis import find_cmsis_nn, sources
    root = find_cmsis_nn(root)
    key = (str(root), tuple(flags), _cc(cc), max((p.stat().st_mtime_ns for p in sources(root)), default=0))
    if key in _CMSIS_CACHE and Path(_CMSIS_CACHE[key]).exists():
        return [_CMSIS_CACHE[key]]
    obj_dir = Path(tempfile.mkdtemp(prefix="tp-cmsis-nn-"))
    # CMSIS-NN itself shifts negative values left (UB that UBSan reports): only ASan for its objects
    keep = [("-fsanitize=address" if f.startswith("-fsanitize=") else f) for f in flags
            if f.startswith(("-O", "-g", "-fsanitize=", "-fno-omit"))]
    srcs = sources(root)
    r = subprocess.run([_cc(cc), *keep, "-c", f"-I{root / 'Include'}", *map(str, srcs)], cwd=obj_dir,
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise ToolError(f"building CMSIS-NN from {root} failed:\n{r.stderr[-3000:]}")
    lib = obj_dir / "libcmsis-nn.a"
    r = subprocess.run(["ar", "rcs", str(lib), *sorted(str(p) for p in obj_dir.glob("*.o"))], capture_output=True,
                       text=True)
    if r.returncode != 0:
        raise ToolError(f"ar failed on the CMSIS-NN objects: {r.stderr[-2000:]}")
    _CMSIS_CACHE[key] = str(lib)
    return [str(lib)]


def run_runner(exe: Path, inputs: list[np.ndarray], out_bytes: list[int], work: Path, dump_dir: Path | None = None,
               timeout: int = 600) -> list[np.ndarray]:
    n = len(inputs[0])
    in_path, out_path = work / "in.bin", work / "out.bin"
    with open(in_path, "wb") as f:
        for i in range(n):
            for a in inputs:
                f.write(np.ascontiguousarray(a[i], dtype=np.int8).tobytes())
    cmd = [str(exe), str(in_path), str(out_path), str(n)]
    if dump_dir is not None:
        dump_dir.mkdir(parents=True, exist_ok=True)
        cmd.append(str(dump_dir))
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0", UBSAN_OPTIONS="print_stacktrace=1")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if r.returncode != 0:
        raise ValidationFailed(f"generated code failed on the host (exit {r.returncode}):\n"
                               f"{(r.stdout + r.stderr)[-3000:]}")
    raw = np.frombuffer(out_path.read_bytes(), dtype=np.int8)
    per = sum(out_bytes)
    if raw.size != n * per:
        raise ValidationFailed(f"host runner wrote {raw.size} bytes, expected {n * per}")
    raw = raw.reshape(n, per)
    outs, o = [], 0
    for b in out_bytes:
        outs.append(raw[:, o:o + b].copy())
        o += b
    return outs


def _describe(diff_idx: np.ndarray, ours: np.ndarray, ref: np.ndarray, limit: int = 8) -> str:
    parts = []
    for flat in diff_idx[:limit]:
        pos = np.unravel_index(int(flat), ref.shape)
        parts.append(f"{tuple(int(p) for p in pos)}: C {int(ours.ravel()[flat])} vs TFLM {int(ref.ravel()[flat])}")
    return "; ".join(parts)


def first_bad_layer(out_dir: Path, model: TfliteModel, prefix: str, sample: list[np.ndarray], work: Path,
                    cc: str | None = None) -> str:
    """Dump every layer of one sample from the C side and compare with TFLM's preserved tensors."""
    import json

    exe = compile_runner(out_dir, prefix, work / "dbg", WARN_FLAGS, debug_dump=True, cc=cc, name="runner_dbg")
    g = model.graph
    dump = work / "dump"
    run_runner(exe, [s[None] for s in sample], [g.tensors[t].nbytes for t in g.outputs], work / "dbg", dump)
    interp = interpreter(model.data, preserve_all_tensors=True)
    _tflm_run(interp, model, sample)
    layers = json.loads((out_dir / "codegen.json").read_text())["layers"]
    for L in layers:
        op = g.ops[L["op"]]
        t = op.outputs[0]
        idx = model.tensor_index[t]
        f = dump / f"L{L['layer']}_T{idx}.bin"
        if not f.exists():
            return f"layer {L['layer']} ({L['kind']}) produced no dump"
        ours = np.frombuffer(f.read_bytes(), dtype=np.int8)
        got = interp.GetTensor(idx, 0)
        ref = np.asarray(got["tensor_data"] if isinstance(got, dict) else got).astype(np.int8).ravel()
        if ours.size != ref.size or np.any(ours != ref):
            if ours.size != ref.size:
                return f"layer {L['layer']} ({L['kind']} {L['name']!r}): size {ours.size} vs TFLM {ref.size}"
            bad = np.flatnonzero(ours != ref)
            shape = g.tensors[t].shape
            return (f"first differing layer {L['layer']} ({L['kind']}, TFLite node {L['tflite_node']}, "
                    f"{L['name']!r}): {bad.size} of {ref.size} elements differ; "
                    + _describe(bad, ours.reshape(shape), ref.reshape(shape)))
    return "every layer output matches TFLM (the difference is in the output copy)"


def check(out_dir: str | os.PathLike, model_path: str | os.PathLike, inputs, *, sanitize: bool = True,
          cc: str | None = None, raise_on_mismatch: bool = True) -> CheckResult:
    out_dir = Path(out_dir).resolve()
    prefix = _prefix_of(out_dir)
    model = read_model(model_path)
    import json
    if json.loads((out_dir / "codegen.json").read_text())["model_sha256"] != model.sha256:
        raise UserInputError(f"{out_dir} was generated from another model than {model_path}",
                             hint="re-run `tinyprune codegen` on this model")
    if isinstance(inputs, np.ndarray):
        inputs = [inputs]
    g = model.graph
    if len(inputs) != len(g.inputs):
        raise UserInputError(f"the model has {len(g.inputs)} inputs, got {len(inputs)} input arrays")
    inputs = [np.asarray(a, dtype=np.int8).reshape((len(a),) + tuple(g.tensors[t].shape[1:] if g.tensors[t].shape
                                                                       and g.tensors[t].shape[0] == 1
                                                                       else g.tensors[t].shape))
              for a, t in zip(inputs, g.inputs)]
    ref = tflm_outputs(model, inputs)
    out_bytes = [g.tensors[t].nbytes for t in g.outputs]
    builds = [("O2", WARN_FLAGS)] + ([("sanitize", SAN_FLAGS)] if sanitize else [])
    total_bad, elements, first, maxdiff = 0, 0, "", 0
    with tempfile.TemporaryDirectory(prefix="tp-check-") as tmpd:
        work = Path(tmpd)
        for bname, flags in builds:
            exe = compile_runner(out_dir, prefix, work / bname, flags, cc=cc)
            ours = run_runner(exe, inputs, out_bytes, work / bname)
            for k, (o, r) in enumerate(zip(ours, ref)):
                r2 = r.reshape(len(r), -1)
                elements += r2.size
                bad = np.flatnonzero(o != r2)
                total_bad += bad.size
                if bad.size:
                    maxdiff = max(maxdiff, int(np.abs(o.astype(int) - r2.astype(int)).max()))
                if bad.size and not first:
                    sample = int(bad[0] // r2.shape[1])
                    first = (f"{bname} build, output {k}: {bad.size} of {r2.size} elements differ; first at sample "
                             f"{sample}: " + _describe(bad, o, r2))
                    first += "\n  " + first_bad_layer(out_dir, model, prefix, [a[sample] for a in inputs],
                                                      work / "layers", cc=cc)
    result = CheckResult(samples=len(inputs[0]), elements=elements // max(len(builds), 1), mismatches=total_bad,
                         builds=[b for b, _ in builds], first_mismatch=first, max_abs_diff=maxdiff)
    if total_bad and raise_on_mismatch:
        raise ValidationFailed(f"generated code differs from TFLite Micro: {first}")
    return result
