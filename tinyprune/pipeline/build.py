"""``tinyprune build``: every stage in order, with caching, progress and a report.

    load -> prune (when needed or asked; includes fine-tuning) -> convert (ONNX, int8 TFLite)
         -> codegen -> firmware (board) -> validate on the host
         -> firmware + validate on the board's QEMU twin (unless --no-sim)
         -> summary.json, report.html, summary.md

Artifacts go to ``OUT/BOARD/`` (layout in docs/build.md), which only a build that succeeded replaces:
the stages work in a copy beside it, and a failed attempt is kept as ``OUT/BOARD.failed/``
(pipeline/workdir.py). Each stage's key hashes its inputs,
options and upstream keys (pipeline/cache.py), so a re-run with nothing changed skips every
stage, and changing one option re-runs only the stages after it.

This module orchestrates; it calls only the stages' public APIs.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from tinyprune import __version__, _paths
from tinyprune._fs import write_json
from tinyprune.errors import OverBudgetError, TinypruneError, UserInputError, ValidationFailed
from tinyprune.pipeline import latency, workdir
from tinyprune.pipeline.accuracy import DEFAULT_MIN_AGREEMENT, NOT_MEASURED, check_int8, data_plan, int8_summary
from tinyprune.pipeline.cache import StageCache, hash_path, stage_key
from tinyprune.pipeline.progress import Progress
from tinyprune.pipeline.summaries import codegen_summary, get, prune_layers, validation_summary
from tinyprune.prune.budget import FINETUNE_EPOCHS

PRUNE_MODES = ("auto", "always", "never")
TF_KINDS = ("keras", "savedmodel", "tflite-float")   # converted by TensorFlow's converter (convert/tf_source.py)
MAX_BUDGET_RETRIES = 2


@dataclass
class BuildConfig:
    model: str = "example"                # or, from the Python API, an nn.Module (pipeline/inputs.py)
    board: str = "nucleo-f746"
    out: str = "build"
    data: str | None = None               # digits | .npz | in memory; default: pipeline/accuracy.py
    weights: str | None = None            # a state_dict file, or the state_dict itself
    input_shape: str | None = None
    boards_dir: str | None = None
    # pruning
    prune: str = "auto"                   # auto: only when over budget | always | never
    criterion: str = "l1"
    when: str = "trained"
    max_macs: int | None = None
    max_ram: int | None = None
    max_flash: int | None = None
    epochs: int = FINETUNE_EPOCHS
    round_to: int = 1
    # conversion / codegen
    calib_samples: int = 200
    max_int8_drop: float = 1.0            # points int8 may lose before its layers are diagnosed (docs/convert.md)
    equalize: bool = False                # cross-layer equalization before export
    bias_correction: bool = False         # bias correction of int8 weight rounding before export
    kernels: str = "portable"
    cmsis_nn: str | None = None
    fast_weights: bool = False            # int16 conv filters (codegen --fast-weights): faster, more flash
    # validation
    samples: int = 100                    # host validation samples
    min_agreement: float = DEFAULT_MIN_AGREEMENT   # int8 vs float top-1 agreement below it: exit 4
    sim: bool = True
    sim_samples: int = 20
    force: bool = False
    seed: int = 0
    debug: bool = False                   # show converter logs (tinyprune --debug build ...)


@dataclass
class BuildResult:
    status: str                           # ok | over_budget | validation_failed
    exit_code: int
    build_dir: Path
    summary: dict
    report_html: Path | None = None
    summary_md: Path | None = None
    stages: dict = field(default_factory=dict)

    @property
    def fits(self) -> bool:
        fw = self.summary.get("firmware") or {}
        return bool(fw) and fw.get("flash_used", 1) <= fw.get("flash_limit", 0) and \
            fw.get("ram_used", 1) <= fw.get("ram_limit", 0)


def _code(*stage_pkgs: str) -> list[Path]:
    """Sources whose change must invalidate a stage (its Python package and C sources)."""
    return [_paths.PACKAGE_DIR / p for p in stage_pkgs]


def _model_kind(spec: str) -> str:
    """pytorch (a factory, the example, an nn.Module) | onnx | tflite (int8, used as it is) | keras |
    savedmodel | tflite-float (converted to int8 like onnx; convert/loader.py model_format)."""
    from tinyprune.convert.loader import model_format
    kind = model_format(spec)
    return "pytorch" if kind == "example" else kind


def _model_inputs(cfg: BuildConfig, mem=None) -> dict:
    """Files that define the model, for the cache key (in-memory inputs: their hashes, as options)."""
    inputs = {}
    spec = cfg.model
    if spec == "example":
        inputs["example"] = _paths.PACKAGE_DIR / "example"
    elif ":" in spec and Path(spec.rsplit(":", 1)[0]).exists():
        inputs["model"] = Path(spec.rsplit(":", 1)[0])
    elif Path(spec).exists():
        inputs["model"] = Path(spec)
    if cfg.weights and not (mem and mem.weights is not None):
        inputs["weights"] = Path(cfg.weights)
    if cfg.data and not (mem and mem.data is not None) and Path(cfg.data).exists():
        inputs["data"] = Path(cfg.data)
    return inputs


class _Pipeline:
    def __init__(self, cfg: BuildConfig, progress: Progress, mem=None):
        from tinyprune.pipeline.inputs import InMemory
        self.cfg = cfg
        self.progress = progress
        self.mem = mem or InMemory()
        if not 0.0 <= cfg.min_agreement <= 1.0:
            raise UserInputError(f"--min-agreement {cfg.min_agreement}: expected a fraction from 0 to 1 (e.g. 0.9)")
        self.plan = data_plan(cfg.model, self.mem.data_or(cfg.data),
                              in_memory_model=self.mem.module is not None)
        from tinyprune.boards import load_board
        self.board = load_board(cfg.board, cfg.boards_dir)
        if cfg.prune not in PRUNE_MODES:
            raise UserInputError(f"--prune {cfg.prune!r}: expected one of {', '.join(PRUNE_MODES)}")
        self.out_dir = Path(cfg.out) / self.board.name     # the last good build, replaced on success only
        self.dir = self.out_dir                               # where the stages write: the work folder in run
        self.cache = StageCache(self.dir)
        self.kind = _model_kind(cfg.model)
        if self.kind != "pytorch" and (cfg.equalize or cfg.bias_correction):
            raise UserInputError(f"--{'equalize' if cfg.equalize else 'bias-correction'} changes the PyTorch model "
                                 f"before conversion; a {self.kind} model has none",
                                 hint="build the PyTorch model (file.py:factory), or drop the option")
        self.summary: dict = {
            "tinyprune_version": __version__,
            "model": {"name": cfg.model, "kind": self.kind},
            "board": {"name": self.board.name, "mcu": self.board.mcu, "core": self.board.core.cpu,
                      "flash_bytes": self.board.memory.flash_bytes, "ram_bytes": self.board.memory.ram_bytes,
                      "model_ram_budget": self.board.model_ram_budget, "sim_twin": self.board.sim_twin or None},
            "options": {k: v for k, v in asdict(cfg).items() if k not in ("force", "debug")},
            "status": "running",
            "accuracy": {"measured": self.plan["labelled"], "data": self.plan["source"],
                         "reason": self.plan["reason"]},
        }
        if self.mem.no_cache:
            self.summary["cache"] = {"disabled": self.mem.no_cache}
        self.keys: dict[str, str] = {}
        self.cached_seconds: dict[str, float] = {}   # stage -> how long it ran when its cached result was made
        # the kernels the memory plan is made for: codegen reserves the DSP variants' scratch on a DSP
        # core, so the pruning estimates must too (else estimate and firmware disagree)
        self.plan_kernels = "dsp" if cfg.kernels == "portable" and self.board.core.dsp else cfg.kernels
        if cfg.fast_weights and self.plan_kernels != "dsp":
            raise UserInputError(
                f"--fast-weights needs tinyprune's DSP kernels on a core with the DSP extension; "
                + (f"{self.board.name} ({self.board.core.cpu}) has none" if cfg.kernels == "portable"
                   else f"--kernels {cfg.kernels} has no such layout"),
                hint="drop --fast-weights")

    # ------------------------------------------------------------------ helpers
    def _cached(self, name: str, key: str, handle) -> dict | None:
        self.keys[name] = key
        if self.cfg.force or self.mem.no_cache:
            return None
        hit = self.cache.lookup(name, key)
        if hit is not None:
            handle.set_status("cached")
            if hit.get("seconds") is not None:
                self.cached_seconds[name] = hit["seconds"]
            return hit.get("result") or {}
        return None

    # ------------------------------------------------------------------ stages
    def stage_prune(self) -> Path | None:
        """Returns the pruned model file, or None when the model is used as it is. When the stage fails,
        the summary says what failed (never just "pruning off")."""
        try:
            return self._prune()
        except Exception as e:  # noqa: BLE001 - recorded, then re-raised
            what = e.message if isinstance(e, TinypruneError) else f"internal error: {type(e).__name__}: {e}"
            self.summary["pruning"] = {**(self.summary.get("pruning") or {}), "applied": False, "failed": True,
                                       "reason": f"the prune stage failed: {what}"}
            raise

    def _prune(self) -> Path | None:
        cfg = self.cfg
        out = self.dir / "prune"
        explicit = any(v is not None for v in (cfg.max_macs, cfg.max_ram, cfg.max_flash))
        with self.progress.stage("prune", "fit the model to the board's budget") as h:
            if self.kind != "pytorch":
                if cfg.prune == "always":
                    from tinyprune.pipeline.budget_check import SHRINK
                    raise UserInputError(f"--prune always: {self.kind} models are not pruned by tinyprune",
                                         hint=SHRINK[self.kind] + ", or drop --prune always" if self.kind in SHRINK
                                         else "prune the PyTorch source (`tinyprune build model.py:factory`), "
                                              "or drop --prune always")
                h.set_status("skipped", f"{self.kind} models are not pruned")
                self.summary["pruning"] = {"applied": False, "reason": f"{self.kind} model"}
                return None
            key = stage_key("prune", inputs=_model_inputs(cfg, self.mem),
                            options={k: getattr(cfg, k) for k in ("model", "prune", "criterion", "when", "max_macs",
                                                                  "max_ram", "max_flash", "epochs", "round_to",
                                                                  "seed", "data", "input_shape", "kernels",
                                                                  "fast_weights")}
                            | {"board": self.board.to_dict(), "tighten": getattr(self, "_tighten", None),
                               "in_memory": self.mem.keys},
                            code=_code("prune"))
            hit = self._cached("prune", key, h)
            if hit is not None:
                self.summary["pruning"] = hit["pruning"]
                return out / "pruned_model.pt" if hit["pruning"].get("applied") else None

            import torch

            from tinyprune.convert.loader import torch_input_shape
            from tinyprune.prune import Budget, PruneConfig, figures, prune
            net = self.mem.torch_model(cfg)
            shape = torch_input_shape(net, cfg.model, cfg.input_shape, self.mem.data_or(cfg.data))
            example = torch.zeros(shape)
            budget = Budget.from_board(self.board, max_macs=cfg.max_macs, max_ram=cfg.max_ram,
                                       max_flash=cfg.max_flash)
            if getattr(self, "_tighten", None):
                budget = budget.scaled(**self._tighten)
            fig = figures(net, example, self.plan_kernels, fast_weights=cfg.fast_weights)
            over = budget.violations(fig)
            base = {"budget": budget.as_dict(), "estimate_before": fig.as_dict(),
                    "macs_before": fig.macs, "params_before": fig.params}
            if cfg.prune == "never" or (cfg.prune == "auto" and not over and not explicit):
                if over:
                    from tinyprune.pipeline.budget_check import over_message
                    raise OverBudgetError(over_message(over, self.board.name) +
                                          " and pruning is disabled (--prune never)",
                                          hint="allow pruning (--prune auto) or pick a larger board", figures=over)
                pruning = base | {"applied": False, "reason": "fits the budget without pruning",
                                  "macs_after": fig.macs, "params_after": fig.params}
                self.summary["pruning"] = pruning
                self.cache.store("prune", key, [], {"pruning": pruning})
                h.set_status("not needed", f"{fig.macs:,} MACs, est. arena {fig.ram_bytes:,} B fits")
                return None
            from tinyprune._fs import atomic_output_dir
            with atomic_output_dir(out, "prune.json") as tmp:
                res = prune(net, example, budget, criterion=cfg.criterion, when=cfg.when,
                            data=self.plan["data"],
                            config=PruneConfig(epochs=cfg.epochs, round_to=cfg.round_to, seed=cfg.seed,
                                               kernels=self.plan_kernels, fast_weights=cfg.fast_weights))
                res.save(tmp)
            rep = res.report
            pruning = base | {"applied": True, "criterion": cfg.criterion, "when": cfg.when,
                              "macs_after": get(rep, "after", "macs"), "params_after": get(rep, "after", "params"),
                              "estimate_after": rep.get("after"), "accuracy": rep.get("accuracy"),
                              "layers": prune_layers(rep), "not_pruned": rep.get("not_pruned")}
            self.summary["pruning"] = pruning
            self.cache.store("prune", key, [out], {"pruning": pruning})
            kept = rep.get("not_pruned")   # e.g. layers feeding a channel shuffle: said, never silent
            h.set_status("done", f"MACs {fig.macs:,} -> {pruning['macs_after']:,}" +
                         (f"; not pruned: {', '.join(kept['layers'])} ({kept['reason']})" if kept else ""))
            return out / "pruned_model.pt"

    def stage_convert(self, pruned: Path | None) -> Path:
        cfg = self.cfg
        out = self.dir / "convert"
        what = "int8 TFLite (TensorFlow's converter), calibration" if self.kind in TF_KINDS \
            else "ONNX export, int8 TFLite, calibration"
        with self.progress.stage("convert", what) as h:
            if self.kind == "tflite":
                h.set_status("skipped", "model is already int8 TFLite")
                dst = self.dir / "model_int8.tflite"
                if not Path(cfg.model).is_file():
                    raise UserInputError(f"model file not found: {cfg.model}" if not Path(cfg.model).exists()
                                         else f"model {cfg.model} is a directory, not an int8 .tflite file")
                shutil.copyfile(cfg.model, dst)
                self.summary["conversion"] = {"skipped": True}
                self.keys["convert"] = hash_path(dst)
                self._check_tflite(dst)
                return dst
            key = stage_key("convert", inputs=_model_inputs(cfg, self.mem) | ({"pruned": pruned} if pruned else {}),
                            options={"calib": cfg.calib_samples, "data": cfg.data, "input_shape": cfg.input_shape,
                                     "max_int8_drop": cfg.max_int8_drop, "equalize": cfg.equalize,
                                     "bias_correction": cfg.bias_correction,
                                     "calibration": str(self.plan["calibration"]), "in_memory": self.mem.keys},
                            upstream=[self.keys.get("prune", "")], code=_code("convert"))
            hit = self._cached("convert", key, h)
            if hit is None:
                from tinyprune.convert import convert as _convert

                def convert(*a, **k):
                    return _convert(*a, max_int8_drop=cfg.max_int8_drop, equalize=cfg.equalize,
                                    bias_correction=cfg.bias_correction, **k)
                if pruned is not None:
                    import torch
                    module = torch.load(pruned, weights_only=False)
                    from tinyprune.convert.loader import torch_input_shape
                    shape = torch_input_shape(module, cfg.model, cfg.input_shape, self.mem.data_or(cfg.data))
                    res = convert(module, out, data=self.plan["calibration"], input_shape=shape,
                                  calib_samples=cfg.calib_samples, debug=cfg.debug)
                elif self.mem.module is not None:
                    res = convert(self.mem.torch_model(cfg), out, data=self.plan["calibration"],
                                  input_shape=cfg.input_shape, calib_samples=cfg.calib_samples, debug=cfg.debug)
                else:
                    res = convert(cfg.model, out, data=self.plan["calibration"], weights=cfg.weights,
                                  input_shape=cfg.input_shape, calib_samples=cfg.calib_samples, debug=cfg.debug)
                ev = res.report["evaluation"]
                hit = {"conversion": {"float_accuracy": ev["float_accuracy"], "int8_accuracy": ev["int8_accuracy"],
                                      "agreement": ev["top1_agreement"], "samples": ev["samples"],
                                      "operators": res.report["tflite"]["operators"],
                                      "input": res.report["input"], "output": res.report["output"]}
                       | int8_summary(res.report)}
                self.cache.store("convert", key, [out], hit)
                measured = self.plan["labelled"] and ev["int8_accuracy"] is not None
                worst = (hit["conversion"].get("diagnostics") or {}).get("worst") or []
                h.set_status("done", (f"int8 accuracy {100 * ev['int8_accuracy']:.2f}%, " if measured
                                      else "") + f"agreement {100 * ev['top1_agreement']:.2f}%" +
                             (f"; int8 loses {ev['int8_drop_points']:.2f} points, most in layer {worst[0]['layer']!r}"
                              if worst else ""))
            conv = dict(hit["conversion"])
            if not self.plan["labelled"] or conv["int8_accuracy"] is None:   # digits' labels are not this model's
                conv.update(float_accuracy=None, int8_accuracy=None, calibration="digits (resized; no --data)")
            self.summary["conversion"] = conv
            dst = self.dir / "model_int8.tflite"
            shutil.copyfile(out / "model_int8.tflite", dst)
            self._check_tflite(dst)
            return dst

    def _check_tflite(self, tflite: Path) -> None:
        """What the int8 model tells before anything is generated from it: one input and one output, data
        that fits it (an int8 .tflite with --data), and not collapsed or disagreeing with the float model."""
        from tinyprune.pipeline.accuracy import check_data_fits, check_model_io
        name = self.cfg.model if self.kind == "tflite" else "the converted model"
        out_shape = check_model_io(tflite, name)
        if self.kind == "tflite" and self.mem.data_or(self.cfg.data) is not None:
            check_data_fits(self.mem.data_or(self.cfg.data), tflite, int(np.prod(out_shape)))
        check_int8(self.summary, tflite, self.cfg.min_agreement)

    def stage_codegen(self, tflite: Path) -> Path:
        cfg = self.cfg
        out = self.dir / "codegen"
        with self.progress.stage("codegen", "C code, memory plan, kernels") as h:
            key = stage_key("codegen", inputs={"tflite": tflite},
                            options={"kernels": cfg.kernels, "cmsis_nn": cfg.cmsis_nn, "board": self.board.name,
                                     "fast_weights": cfg.fast_weights},
                            code=_code("codegen") + [_paths.KERNELS_DIR])
            hit = self._cached("codegen", key, h)
            if hit is None:
                from tinyprune.codegen.generate import generate
                generate(tflite, out, board=str(self.board.source_path), kernels=cfg.kernels, cmsis_nn=cfg.cmsis_nn,
                         fast_weights=cfg.fast_weights)
                hit = {"codegen": codegen_summary(out / "codegen.json", tflite)}
                self.cache.store("codegen", key, [out], hit)
                h.set_status("done", f"arena {hit['codegen'].get('arena_bytes', 0):,} B, "
                                     f"{hit['codegen'].get('macs', 0):,} MACs" +
                             "".join(f"; {n}" for n in hit["codegen"].get("notes", [])))
            self.summary["codegen"] = hit["codegen"]
            return out

    def stage_firmware(self, codegen_dir: Path, board, name: str, out: Path) -> dict:
        with self.progress.stage(name, f"cross-compile for {board.name}") as h:
            key = stage_key(name, inputs={"codegen": codegen_dir},
                            options={"board": board.to_dict()},
                            code=_code("firmware") + [_paths.BSP_DIR, _paths.HARNESS_DIR])
            hit = self._cached(name, key, h)
            if hit is None:
                from tinyprune.firmware.build import build_firmware
                fw = build_firmware(codegen_dir, board, out)
                hit = {"firmware": {"board": board.name, "flash_used": fw.flash_used, "flash_limit": fw.flash_limit,
                                    "ram_used": fw.ram_used, "ram_limit": fw.ram_limit,
                                    "stack_bytes": fw.stack_bytes, "arena_bytes": fw.arena_bytes,
                                    "elf": fw.elf.relative_to(self.dir).as_posix(), "runnable": fw.runnable,
                                    "bsp": fw.bsp}}
                self.cache.store(name, key, [out], hit)
                h.set_status("done", f"flash {fw.flash_used:,}/{fw.flash_limit:,} B, "
                                     f"RAM {fw.ram_used:,}/{fw.ram_limit:,} B" +
                             ("" if fw.runnable else f" (size check only: no board support package for "
                                                     f"{board.name} yet, the image is not runnable)"))
            return hit["firmware"]

    def stage_validate(self, target: str, build_dir: Path, samples: int) -> dict:
        cfg = self.cfg
        with self.progress.stage(f"validate-{target}", f"bit-exact vs TFLite Micro, accuracy ({target})") as h:
            key = stage_key(f"validate-{target}", inputs={"firmware": (build_dir / "firmware-sim") if (build_dir / "firmware-sim").exists()
                                               else build_dir / "firmware"} if target == "sim"
                            else {"codegen": build_dir / "codegen"},
                            options={"samples": samples, "data": cfg.data, "labelled": self.plan["labelled"],
                                     "in_memory": self.mem.keys.get("data")},
                            upstream=[self.keys.get("codegen", "")], code=_code("validate"))
            hit = self._cached(f"validate-{target}", key, h)
            if hit is None:
                from tinyprune.validate import validate
                report_path = self.dir / f"validate-{target}.json"
                data = self.plan["data"]
                rep = validate(build_dir, target, data=data, random=None if data is not None else samples,
                               samples=samples, out=report_path, report_build_dir=str(self.out_dir))
                hit = {"validation": validation_summary(rep, target)}
                v = hit["validation"]
                if v["passed"]:
                    self.cache.store(f"validate-{target}", key, [report_path], hit)
                acc = NOT_MEASURED if v.get("accuracy") is None else f"{100 * v['accuracy']:.2f}%"
                h.set_status("done" if v["passed"] else "FAILED", f"accuracy {acc}, "
                             f"{v['samples'] - v['mismatched_samples']}/{v['samples']} samples bit-exact")
            return hit["validation"]

    # ------------------------------------------------------------------ run
    def run(self) -> dict:
        from tinyprune.pipeline.budget_check import BudgetCheck
        self.checks = BudgetCheck(self.board, self.cfg, self.kind)
        self.summary["budget"] = self.checks.record
        try:
            codegen_dir = self._fit()
        except OverBudgetError as e:
            if self.checks.record["fits"] is not False:  # raised by a stage, not by the checks themselves
                self.checks.note(e, next(reversed(self.progress.status), "?"))
            raise
        return self._validate(codegen_dir)

    def _fit(self) -> Path:
        """prune -> convert -> codegen -> (budget check) -> firmware -> (budget check), pruning again with a
        tightened budget when a PyTorch model's real figures disagree with the estimate."""
        attempts = 0
        while True:
            pruned = self.stage_prune()
            tflite = self.stage_convert(pruned)
            codegen_dir = self.stage_codegen(tflite)
            try:
                self.checks.check_model(self.summary["codegen"])   # before anything is cross-compiled
                fw_dir = self.dir / "firmware"
                self.summary["firmware"] = self.stage_firmware(codegen_dir, self.board, "firmware", fw_dir)
                self.checks.check_firmware(self.summary["firmware"], fw_dir / "firmware.elf", codegen_dir)
                return codegen_dir
            except OverBudgetError as e:
                attempts += 1
                if self.kind != "pytorch" or self.cfg.prune == "never" or attempts > MAX_BUDGET_RETRIES:
                    raise
                # the real build disagrees with the estimate: tighten the budget and prune again
                est = (self.summary.get("pruning") or {}).get("estimate_after") or \
                      (self.summary.get("pruning") or {}).get("estimate_before") or {}
                measured = e.figures
                factor = 0.85 ** attempts
                over = " ".join(e.figures) if e.figures else str(e).lower()
                self._tighten = {"factor": 1.0, "ram": factor if "ram" in over else None,
                                 "flash": factor if "flash" in over else None,
                                 "macs": factor if "macs" in over else None}
                self.checks.record["fits"] = None
                self.progress.log(f"over budget ({e.message}); tightening the pruning budget "
                                  f"(attempt {attempts}/{MAX_BUDGET_RETRIES}; estimate was {est}, measured {measured})")
                if self.cfg.prune == "auto":
                    self.cfg.prune = "always"

    def _validate(self, codegen_dir: Path) -> dict:
        validation = {}
        sim_board = self.board
        validation["host"] = self.stage_validate("host", self.dir, self.cfg.samples)
        twin = self.board.sim_twin if not self.board.simulation else None
        if self.cfg.sim and (twin or self.board.simulation):
            if twin:
                from tinyprune.boards import load_board
                sim_board = load_board(twin, self.cfg.boards_dir)
                self.summary["sim_firmware"] = self.stage_firmware(codegen_dir, sim_board, "firmware-sim",
                                                                   self.dir / "firmware-sim")
            validation["sim"] = self.stage_validate("sim", self.dir, self.cfg.sim_samples)
            validation["sim"]["board"] = sim_board.name
        elif self.cfg.sim:
            self.progress.log(f"no simulation twin for {self.board.name}: simulation validation skipped")
        self.summary["validation"] = validation
        from tinyprune.boards import list_boards
        self.summary["latency"] = latency.summarise(self.board, sim_board, validation.get("sim"),
                                                    self.summary.get("firmware"), list_boards(self.cfg.boards_dir))
        self.progress.log(latency.line(self.summary["latency"], self.board.name))
        bad = {t: v for t, v in validation.items() if not v.get("passed")}
        if bad:
            raise ValidationFailed("validation failed: " + "; ".join(
                f"{t}: " + "; ".join(v.get("failures") or ["failed"]) for t, v in bad.items()),
                hint=f"see {workdir.failed_dir(self.out_dir)}/validate-*.json")
        return self.summary


def build(model: str = "example", board: str = "nucleo-f746", *, config: BuildConfig | None = None,
          progress: bool = True, **options) -> BuildResult:
    """Run the whole pipeline. Options are BuildConfig fields. Returns a BuildResult; raises
    TinypruneError subclasses for bad input (exit 2), over budget (3), validation failure (4),
    missing tools (5). OUT/BOARD/ changes only when the build succeeded; a failed attempt, with its
    summary.json and report, is kept in OUT/BOARD.failed/ (the error's ``build_dir``)."""
    from tinyprune.pipeline.inputs import take
    cfg, mem = take(config or BuildConfig(model=model, board=board, **options))
    prog = Progress(total_stages=7 if cfg.sim else 5, enabled=progress)
    start = time.monotonic()
    pipe = _Pipeline(cfg, prog, mem)
    if mem.no_cache:
        prog.log(mem.no_cache)
    folders = workdir.start(pipe.out_dir)
    pipe.dir, pipe.cache = folders.work, StageCache(folders.work)
    error: Exception | None = None
    try:
        try:
            summary = pipe.run()
            summary["status"] = "ok"
        except Exception as e:  # noqa: BLE001 - recorded in the failed attempt's summary, then re-raised
            error = e
            if isinstance(e, TinypruneError):  # paths in the work folder: it becomes OUT/BOARD.failed
                e.message, e.hint = (workdir.as_failed(folders, t) for t in (e.message, e.hint))
            summary = pipe.summary
            summary["status"] = {3: "over_budget", 4: "validation_failed", 2: "bad_input",
                                 5: "missing_tool"}.get(getattr(e, "exit_code", 1), "error")
            summary["message"] = e.message if isinstance(e, TinypruneError) else \
                f"internal error: {type(e).__name__}: {e}"
        summary["timings"] = {k: round(v, 2) for k, v in prog.timings.items()}
        for name, status in prog.status.items():   # a later cached run reports how long the stage really took
            if status != "cached" and name in pipe.keys:
                pipe.cache.annotate(name, seconds=round(prog.timings.get(name, 0.0), 2))
        summary["timings_when_run"] = {**{k: round(v, 2) for k, v in prog.timings.items()
                                          if prog.status.get(k) != "cached"}, **pipe.cached_seconds}
        summary["stage_status"] = dict(prog.status)
        summary["stage_order"] = list(prog.status)
        summary["total_seconds"] = round(time.monotonic() - start, 2)
        write_json(pipe.dir / "summary.json", summary)
        from tinyprune.report import write_reports
        write_reports(pipe.dir)
    except BaseException:
        workdir.discard(folders)   # interrupted, or the report itself failed: OUT/BOARD untouched
        raise
    if error is not None:
        failed = workdir.keep_failed(folders)
        if isinstance(error, TinypruneError):
            error.build_dir = failed  # the CLI prints this attempt's summary from there
            kept = f"{pipe.out_dir} is unchanged; " if pipe.out_dir.exists() else ""
            error.message += f"\n  {kept}this attempt's report: {failed}/report.html"
        raise error
    workdir.commit(folders)
    d = pipe.out_dir
    return BuildResult("ok", 0, d, summary, d / "report.html", d / "summary.md", dict(prog.status))
