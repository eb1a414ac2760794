"""``tinyprune bench``: instructions per inference of generated code, measured in QEMU.

    bench(model, board="mps2-an500", kernels="portable", *, runs=2, dsp=True, seed=0,
          work_dir=None) -> BenchResult

Pipeline (each step is the owning stage's API, nothing re-implemented here):
codegen (``tinyprune.codegen.generate``) -> firmware with the serial harness
(``tinyprune.firmware.build.build_firmware``; ``dsp=False`` adds -DTP_NO_ARM_DSP so a DSP core runs
the reference kernels) -> QEMU with ``-icount`` (``tinyprune.validate.qemu.qemu_session``): one
inference for the total count (no per-layer hook, so no hook overhead) and one with the per-layer
hook, repeated ``runs`` times in fresh QEMU processes. Under -icount the counts are exact
instruction counts, so every run must report identical figures (else ValidationFailed); the
output must equal TensorFlow Lite Micro's for the same input (else ValidationFailed).

Reports instructions per inference (total, per layer), MACs per instruction, arena and scratch
bytes (codegen.json) and the firmware's text/data/bss (ELF section headers).
May import tinyprune stages' public APIs (codegen, firmware, validate, boards), never their internals.
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from tinyprune.errors import UserInputError, ValidationFailed

KERNEL_CHOICES = ("portable", "cmsis-nn")


@dataclass
class LayerCount:
    layer: int
    name: str
    kind: str
    macs: int
    instructions: int
    variant: str = ""               # the kernel variant codegen chose (codegen.json layers[].variant)
    variant_reason: str = ""        # why not the op's fastest variant ("" when it is)
    fallback: bool = False          # the reference runs an op that has a DSP variant

    @property
    def macs_per_instruction(self) -> float:
        return self.macs / self.instructions if self.instructions else 0.0


@dataclass
class BenchResult:
    model: str
    model_sha256: str
    board: str
    kernels: str
    dsp: bool
    instructions: int               # per inference, harness hook off
    macs: int
    arena_bytes: int
    scratch_bytes: int              # sum of the per-layer scratch reserved in the arena
    tflm_arena_bytes: int | None
    text_bytes: int
    data_bytes: int
    bss_bytes: int
    flash_bytes: int
    runs: int
    deterministic: bool
    bit_exact: bool
    layers: list[LayerCount] = field(default_factory=list)
    run_totals: list[int] = field(default_factory=list)
    fast_weights: bool = False      # CONV_2D filters pre-expanded to int16 (codegen --fast-weights)
    two_largest_bound: int = 0      # lower bound of any arena: the two largest tensors live together
    peak_lower_bound: int = 0       # the planner's bound for its op order: bytes live at the fullest step
    weight_bytes: int = 0           # model constants emitted into flash (codegen.json emitted_weight_bytes)
    warnings: list[str] = field(default_factory=list)   # layers falling back to the reference on a DSP core

    @property
    def macs_per_instruction(self) -> float:
        return self.macs / self.instructions if self.instructions else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["macs_per_instruction"] = round(self.macs_per_instruction, 4)
        for x, L in zip(d["layers"], self.layers):
            x["macs_per_instruction"] = round(L.macs_per_instruction, 4)
        return d

    def render(self) -> str:
        lines = [f"model {self.model} (sha256 {self.model_sha256[:12]}) on {self.board}, kernels {self.kernels}"
                 f"{' + DSP variants' if self.dsp else ' (reference C only)'}"
                 f"{', fast weights (int16 conv filters)' if self.fast_weights else ''}",
                 f"instructions per inference: {self.instructions:,}  ({self.runs} runs, "
                 f"{'identical' if self.deterministic else 'DIFFERENT'}; output "
                 f"{'bit-exact with TFLite Micro' if self.bit_exact else 'DIFFERS from TFLite Micro'})",
                 f"MACs: {self.macs:,}  MACs/instruction: {self.macs_per_instruction:.3f}",
                 f"arena: {self.arena_bytes:,} B (scratch {self.scratch_bytes:,} B)"
                 + (f"; TFLite Micro arena {self.tflm_arena_bytes:,} B" if self.tflm_arena_bytes else ""),
                 f"arena lower bounds: two largest live tensors {self.two_largest_bound:,} B, fullest step of the "
                 f"plan's op order {self.peak_lower_bound:,} B",
                 f"firmware: text {self.text_bytes:,} B, data {self.data_bytes:,} B, bss {self.bss_bytes:,} B "
                 f"(flash {self.flash_bytes:,} B, of which model constants {self.weight_bytes:,} B)",
                 "",
                 f"{'layer':>5}  {'kind':<20} {'MACs':>11} {'instructions':>13} {'MAC/instr':>9} {'share':>6}  variant"]
        total_layers = sum(L.instructions for L in self.layers) or 1
        for L in self.layers:
            note = f" ({L.variant_reason})" if L.variant_reason else ""
            lines.append(f"{L.layer:>5}  {L.kind:<20} {L.macs:>11,} {L.instructions:>13,} "
                         f"{L.macs_per_instruction:>9.3f} {100.0 * L.instructions / total_layers:>5.1f}%  "
                         f"{L.variant}{note}")
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def _section_sizes(sections: dict) -> tuple[int, int, int]:
    text = data = bss = 0
    for name, s in sections.items():
        if s.nobits:
            if name.startswith(".stack"):
                continue
            bss += s.size
        elif name.startswith(".data"):
            data += s.size
        else:
            text += s.size
    return text, data, bss


def bench(model, board: str = "mps2-an500", kernels: str = "portable", *, runs: int = 2, dsp: bool = True,
          seed: int = 0, work_dir=None, fast_weights: bool = False) -> BenchResult:
    from tinyprune.boards import load_board
    from tinyprune.codegen.generate import generate
    from tinyprune.firmware.build import build_firmware
    from tinyprune.validate.core import icount_shift
    from tinyprune.validate.qemu import qemu_session
    from tinyprune.validate.reference import Reference

    model = Path(model)
    if not model.is_file():
        raise UserInputError(f"model not found: {model}", hint="pass an int8 .tflite file")
    if kernels not in KERNEL_CHOICES:
        raise UserInputError(f"--kernels must be one of {', '.join(KERNEL_CHOICES)}, got {kernels!r}")
    if runs < 1:
        raise UserInputError(f"--runs must be at least 1, got {runs}")
    b = load_board(board)
    if not b.qemu_board or not getattr(b, "qemu", None):
        raise UserInputError(f"board {b.name} cannot run in QEMU", hint="use a simulation board: mps2-an500, "
                             "mps2-an386 or mps3-an547")
    ref = Reference(model)
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, size=ref.input.nbytes, dtype=np.int16).astype(np.int8)
    want = ref.run(x).ravel()

    tmp = None
    if work_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="tinyprune-bench-")
        work_dir = tmp.name
    work = Path(work_dir)
    try:
        if fast_weights and not dsp:
            raise UserInputError("--fast-weights needs the DSP kernels", hint="drop --no-dsp or --fast-weights")
        cg = generate(model, work / "codegen", kernels=kernels, board=b.name, fast_weights=fast_weights)
        report = cg.report
        defines = None if dsp else {"TP_NO_ARM_DSP": 1}
        fw = build_firmware(work / "codegen", b, work / "firmware", defines=defines)
        totals, per_layer_runs = [], []
        exact = True
        shift = icount_shift(fw.elf)
        for _ in range(runs):
            with qemu_session(fw.elf, b.qemu.machine, getattr(b.qemu, "cpu", None), icount_shift=shift) as link:
                r = link.run(x)
                rl = link.run(x, layers=True)
                got = np.frombuffer(r.output, dtype=np.int8)
                exact = exact and np.array_equal(got, want) and np.array_equal(
                    np.frombuffer(rl.output, dtype=np.int8), want)
                totals.append(int(r.counter))
                per_layer_runs.append(list(rl.layer_counts or []))
    finally:
        if tmp is not None:
            tmp.cleanup()
    deterministic = len(set(totals)) == 1 and all(p == per_layer_runs[0] for p in per_layer_runs)
    layers_meta = report.get("layers", [])
    layers = []
    for m, c in zip(layers_meta, per_layer_runs[0]):
        v = dict(m.get("variant") or {})
        if not dsp or not b.core.dsp:      # -DTP_NO_ARM_DSP (or no DSP core): every op runs the reference C
            v = {"name": "portable", "reason": "" if b.core.dsp is False else "--no-dsp", "fallback": False}
        layers.append(LayerCount(m["layer"], m.get("name", ""), m["kind"], int(m.get("macs", 0)), int(c),
                                 variant=v.get("name", ""), variant_reason=v.get("reason", ""),
                                 fallback=bool(v.get("fallback"))))
    text, data, bss = _section_sizes(fw.sections)
    res = BenchResult(model=model.name, model_sha256=report.get("model_sha256", ""), board=b.name, kernels=kernels,
                      dsp=bool(dsp and b.core.dsp), instructions=totals[0], macs=int(report.get("macs", 0)),
                      arena_bytes=int(report.get("arena_bytes", 0)),
                      scratch_bytes=sum(int(m.get("scratch_bytes", 0)) for m in layers_meta),
                      tflm_arena_bytes=report.get("tflm_arena_bytes"), text_bytes=text, data_bytes=data,
                      bss_bytes=bss, flash_bytes=fw.flash_used, runs=runs, deterministic=deterministic,
                      bit_exact=exact, layers=layers, run_totals=totals, fast_weights=fast_weights,
                      weight_bytes=int(report.get("emitted_weight_bytes", 0)),
                      two_largest_bound=int(report.get("lower_bound_two_largest") or 0),
                      peak_lower_bound=int(report.get("peak_bytes") or 0),
                      warnings=list(report.get("warnings", [])) if dsp else [])
    if not deterministic:
        raise ValidationFailed(f"instruction counts differ between runs: totals {totals}",
                               hint="QEMU must run with -icount shift=N (not auto); report this as a bug")
    if not exact:
        raise ValidationFailed("the generated code's output differs from TensorFlow Lite Micro's on the bench input",
                               hint="run `tinyprune codegen MODEL --check` to find the first differing layer")
    return res


def to_json(res: BenchResult) -> str:
    return json.dumps(res.to_dict(), indent=2, sort_keys=True)
