"""``generate()``: int8 .tflite -> OUT/ with NAME.h, NAME.c, NAME_weights.{c,h}, kernels/, the build files
of the layout (packaging.py: Makefile, CMake, PlatformIO, Zephyr; or an Arduino library), codegen.json.

The stage's Python API (the CLI and the pipeline call this):

    generate(model_path, out_dir, *, prefix="model", kernels="portable", cmsis_nn=None, board=None,
             overlap=None, tflm_arena=True, layout="standard", verify=None) -> CodegenResult

Memory plan and figures come from ``codegen.estimate.estimate`` (the same function the pruning stage
calls), so codegen.json's arena/flash equal the pruning stage's estimates for the same graph.
Everything is written atomically: OUT is replaced as a whole only when everything succeeded
(``verify(folder)``, e.g. the --check build, runs on the new files before that); on any error OUT is
left as it was.
"""
from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from tinyprune import __version__
from tinyprune._fs import atomic_output_dir, write_json
from tinyprune._paths import KERNELS_DIR, require
from tinyprune.codegen import emit, packaging
from tinyprune.codegen.tflite_reader import TfliteModel, read_model
from tinyprune.errors import OverBudgetError, UserInputError

KERNEL_CHOICES = ("portable", "cmsis-nn")


@dataclass
class CodegenResult:
    out_dir: Path
    prefix: str
    kernels: str
    arena_bytes: int
    flash_bytes: int
    weight_bytes: int
    macs: int
    tflm_arena_bytes: int | None
    files: list[str] = field(default_factory=list)
    report: dict = field(default_factory=dict)


_TFLM_CHILD = """
import sys
import numpy as np
from tinyprune.tflm import interpreter
data = open(sys.argv[1], "rb").read()
interp = interpreter(data)
for i in range(int(sys.argv[2])):
    d = interp.get_input_details(i)
    interp.set_input(np.zeros(d["shape"], dtype=d["dtype"]), i)
interp.invoke()
interp.print_allocations()
"""


def tflm_arena_bytes(model_bytes: bytes, n_inputs: int = 1, timeout: int = 120) -> dict | None:
    """Run TFLite Micro once on zeros and parse its print_allocations() (printed by C++ code, so it is
    captured at the file-descriptor level: here, from a child process, which also keeps a native
    crash of the interpreter on a strange model away from this process). None when it fails."""
    import subprocess
    import sys
    import tempfile
    with tempfile.TemporaryDirectory(prefix="tp-tflm-") as d:
        path = Path(d) / "model.tflite"
        path.write_bytes(model_bytes)
        try:
            r = subprocess.run([sys.executable, "-c", _TFLM_CHILD, str(path), str(n_inputs)], capture_output=True,
                               text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired):
            return None
    text = r.stdout + r.stderr
    out = {}
    for key in ("total", "head", "tail"):
        m = re.search(rf"Arena allocation {key} (\d+) bytes", text)
        if m:
            out[key] = int(m.group(1))
    return out or None


def plan_for(model: TfliteModel, kernels: str, overlap: bool | None = None, fast_weights: bool = False):
    from tinyprune.codegen.estimate import estimate
    return estimate(model.graph, kernels, overlap=overlap, fast_weights=fast_weights)


def generate(model_path: str | os.PathLike, out_dir: str | os.PathLike, *, prefix: str = "model",
             kernels: str = "portable", cmsis_nn: str | os.PathLike | None = None, board: str | None = None,
             overlap: bool | None = None, tflm_arena: bool = True, fast_weights: bool = False,
             layout: str = "standard", verify=None) -> CodegenResult:
    if kernels not in KERNEL_CHOICES:
        raise UserInputError(f"--kernels must be one of {', '.join(KERNEL_CHOICES)}, got {kernels!r}")
    if fast_weights and kernels != "portable":
        raise UserInputError(f"--fast-weights is a layout of tinyprune's own DSP kernels, not of {kernels}",
                             hint="drop --fast-weights, or use --kernels portable")
    emit.check_identifier(prefix)
    packaging.check_layout(layout, prefix, kernels)
    cmsis_path = None
    if kernels == "cmsis-nn":
        from tinyprune.codegen import cmsis
        cmsis_path = cmsis.find_cmsis_nn(cmsis_nn)
    board_info = None
    if board:
        from tinyprune.boards import load_board  # board catalog stage
        board_info = load_board(board)
    model = read_model(model_path)
    # the generated C calls tp_*_s8, which a DSP core's firmware build maps to the arm variants:
    # reserve their scratch so they take the fast path (the references ignore it)
    plan_kernels = kernels
    if kernels == "portable" and board_info is not None and getattr(board_info.core, "dsp", False):
        plan_kernels = "dsp"
    if fast_weights and board_info is None:
        # int16 filters only pay off with the DSP kernels: reserve their scratch so that a DSP build
        # of this code takes the fast path (a build without DSP runs the references, correct)
        plan_kernels = "dsp"
    if fast_weights and board_info is not None and plan_kernels != "dsp":
        raise UserInputError(f"--fast-weights needs a core with the DSP extension; {board_info.name} "
                             f"({board_info.core.cpu}) has none, and its reference kernels would only be "
                             "slower and twice as large in flash",
                             hint="drop --fast-weights for this board")
    if overlap is None:  # on wherever the kernels keep the raster-order contract (not CMSIS-NN)
        from tinyprune.codegen.estimate import default_overlap
        overlap = default_overlap(plan_kernels)
    est = plan_for(model, plan_kernels, overlap=overlap, fast_weights=fast_weights)
    if board_info is not None and est.arena_bytes > board_info.model_ram_budget:
        raise OverBudgetError(f"{model_path}: the arena needs {est.arena_bytes} B, more than the "
                              f"{board_info.model_ram_budget} B of RAM {board_info.name} leaves for the model",
                              hint="prune the model (`tinyprune prune` / `tinyprune build` does it to the "
                                   "board's budget), or pick a board with more RAM")
    files, layers, arrays = emit.render(model, prefix, kernels, est.plan, cmsis_path=cmsis_path,
                                        fast_weights=fast_weights)
    tflm = tflm_arena_bytes(model.data, len(model.tflite_inputs)) if tflm_arena else None
    kfiles = emit.kernel_files(layers)
    # the C sources go where the layout wants them; its build files come from packaging.py
    files = {packaging.place(layout, n) if n.endswith((".c", ".h")) else n: t for n, t in files.items()
             if layout == "standard" or n != "Makefile"}
    files.update(packaging.render(prefix, layout, kfiles, model_sha256=model.sha256, cmsis_path=cmsis_path))
    report = {
        "tool": f"tinyprune {__version__}",
        "model_sha256": model.sha256,
        "prefix": prefix,
        "kernels": kernels,
        "layout": layout,
        "source_dir": packaging.SOURCE_DIR[layout],
        "plan_kernels": plan_kernels,
        "fast_weights": fast_weights,
        "board": board,
        "arena_bytes": est.arena_bytes,
        "peak_bytes": est.plan.peak_lower_bound,
        "lower_bound_two_largest": est.plan.two_largest_bound,
        "weight_bytes": est.weight_bytes,
        "flash_bytes": est.flash_bytes,
        "emitted_weight_bytes": arrays.nbytes(),
        "macs": est.macs,
        "tflm_arena_bytes": tflm.get("total") if tflm else None,
        "tflm_arena": tflm,
        "plan": {"strategy": est.plan.strategy, "order": est.plan.order, "overlap": overlap},
        "inputs": [_io(model, t) for t in model.graph.inputs],
        "outputs": [_io(model, t) for t in model.graph.outputs],
        "layers": _layers_json(model, est, layers),
        "kernel_files": kfiles,
        "notes": kernel_notes(model, layers, plan_kernels),
    }
    if kernels == "cmsis-nn":
        from tinyprune.codegen.cmsis import SOURCE_DIRS
        report["cmsis_nn"] = {"path": str(cmsis_path), "source_dirs": list(SOURCE_DIRS),
                              "layers": [L.index for L in layers if L.cmsis]}
    out_dir = Path(out_dir)
    with atomic_output_dir(out_dir, "codegen.json") as tmp:
        for name, text in sorted(files.items()):
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_text(text)
        kdir = tmp / packaging.place(layout, "kernels")
        kdir.mkdir()
        for f in kfiles:
            src = require(KERNELS_DIR / f)
            (kdir / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, kdir / f)
        write_json(tmp / "codegen.json", report)
        if verify is not None:
            verify(tmp)
    return CodegenResult(out_dir=out_dir, prefix=prefix, kernels=kernels, arena_bytes=est.arena_bytes,
                         flash_bytes=est.flash_bytes, weight_bytes=est.weight_bytes, macs=est.macs,
                         tflm_arena_bytes=report["tflm_arena_bytes"],
                         files=sorted(list(files) + [packaging.place(layout, f"kernels/{f}") for f in kfiles]
                                      + ["codegen.json"]),
                         report=report)


def _io(model: TfliteModel, name: str) -> dict:
    t = model.graph.tensors[name]
    d = {"name": name, "shape": list(t.shape), "dtype": t.dtype, "scale": t.quant.scales[0],
         "zero_point": t.quant.zero_points[0], "bytes": t.nbytes, "tflite_index": model.tensor_index[name]}
    b = model.input_boundary.get(name) or model.output_boundary.get(name)
    if b:
        d["float_boundary_tensor"] = b.float_tensor_index
    return d


def kernel_notes(model: TfliteModel, layers, plan_kernels: str) -> list[str]:
    """Layers that run a slower kernel than the variant asked for (said, never silent): a grouped
    CONV_2D runs the reference C kernel under the DSP variants and CMSIS-NN (both take groups=1)."""
    if plan_kernels == "portable":
        return []
    from tinyprune.codegen.ir import conv_groups
    g = model.graph
    grouped = [f"{L.index} (groups={conv_groups(g.ops[L.op], g)})" for L in layers
               if conv_groups(g.ops[L.op], g) > 1]
    if not grouped:
        return []
    who = "CMSIS-NN's convolution" if plan_kernels == "cmsis-nn" else "the DSP convolution"
    return [f"grouped convolution layer(s) {', '.join(grouped)} run the reference C kernel: {who} takes groups=1 only"]


def _layers_json(model: TfliteModel, est, layers) -> list[dict]:
    from tinyprune.codegen.ir import conv_groups
    by_op = {x["op"]: x for x in est.per_layer}
    out = []
    for L in layers:
        e = by_op[L.op]
        op = model.graph.ops[L.op]
        out.append({"layer": L.index, "op": L.op, "tflite_node": model.op_index[L.op], "kind": L.kind,
                    "name": L.name, "macs": e["macs"], "output_bytes": e["output_bytes"],
                    "input_bytes": sum(model.graph.tensors[t].nbytes for t in op.inputs
                                       if t and not model.graph.tensors[t].is_const),
                    "groups": conv_groups(op, model.graph),
                    "scratch_bytes": e["scratch_bytes"],
                    "output_offset": est.plan.offsets.get(L.out_tensor)})
    return out


