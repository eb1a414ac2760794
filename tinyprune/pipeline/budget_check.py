"""Budget checks of ``tinyprune build`` for every input form (PyTorch, ONNX, int8 TFLite, Keras,
SavedModel, float TFLite).

The limits are the board's (model RAM budget, flash) combined with ``--max-macs/--max-ram/
--max-flash`` (the tighter wins). They are checked as early as each figure is known:

* right after codegen, before anything is cross-compiled: the int8 model's MACs, its memory
  plan's arena and its constants (the code generator's own figures, the ones the pruning
  estimate uses);
* after the firmware is linked: the arena and the weight arrays as they are in the ELF against the
  same limits (the board's flash/RAM for the whole image are checked by the firmware stage,
  whose OverBudgetError carries its figures).

Everything measured, every limit and every excess go to ``summary.json``'s ``budget`` (layout in
docs/build.md). The flash limit here is the board's whole flash (the model constants alone cannot
be larger); the pruning stage aims lower (``FIRMWARE_FLASH_OVERHEAD`` left for code), and the
linker decides the rest.

May import tinyprune.errors, tinyprune.prune.budget and tinyprune.firmware.elf; the pipeline
calls it, nothing else does.
"""
from __future__ import annotations

import re
from pathlib import Path

from tinyprune.errors import OverBudgetError, UserInputError
from tinyprune.prune.budget import Budget

# figure -> (what it is, unit, the option that limits it)
FIGURES = {
    "macs": ("MACs per inference", "", "--max-macs"),
    "ram_bytes": ("arena (int8 activations + scratch)", " B", "--max-ram"),
    "flash_bytes": ("model constants (weights + requantisation)", " B", "--max-flash"),
    "firmware_flash_bytes": ("firmware flash", " B", None),
    "firmware_ram_bytes": ("firmware RAM (with the stack)", " B", None),
}

NOT_PRUNED = {
    "tflite": ("an int8 .tflite model is used as it is: tinyprune does not prune it (its weights are "
               "already quantised, so channels cannot be removed and fine-tuned)"),
    "onnx": ("ONNX models are not pruned by tinyprune: structured pruning removes channels from a "
             "PyTorch module and fine-tunes it, and turning an ONNX graph back into one needs onnx2torch, "
             "which requires torchvision (not a tinyprune dependency: it would replace the pinned CPU torch)"),
    "keras": ("Keras models are not pruned by tinyprune: its structured pruning removes channels from a PyTorch "
              "module and fine-tunes it; a Keras model is quantized as it is"),
    "savedmodel": ("TensorFlow SavedModels are not pruned by tinyprune: its structured pruning removes channels from "
                   "a PyTorch module and fine-tunes it; a SavedModel is quantized as it is"),
    "tflite-float": ("a float .tflite is quantized as it is, not pruned: tinyprune's structured pruning removes "
                     "channels from a PyTorch module and fine-tunes it, and a flatbuffer cannot be trained"),
}

# how to shrink a model tinyprune does not prune, by input form
SHRINK = {
    "keras": ("shrink the Keras model where it is defined (fewer filters per layer, a smaller width multiplier "
              "`alpha`, a lower input resolution) and retrain it, or write it in PyTorch: `tinyprune build "
              "model.py:factory --weights w.pt` prunes that to these limits (tensorflow-model-optimization's "
              "prune_low_magnitude only zeroes weights, which leaves the int8 model's flash, RAM and MACs as they are)"),
}
SHRINK["savedmodel"] = SHRINK["tflite-float"] = SHRINK["keras"].replace("the Keras model", "the model")

_WEIGHT_DECL = re.compile(r"^extern\s+const\s+\w+\s+(\w+)\s*\[", re.MULTILINE)


class BudgetCheck:
    """The build's limits and what was measured against them (``record`` is summary["budget"])."""

    def __init__(self, board, cfg, kind: str):
        self.board, self.cfg, self.kind = board, cfg, kind
        for opt, v in (("--max-macs", cfg.max_macs), ("--max-ram", cfg.max_ram), ("--max-flash", cfg.max_flash)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v <= 0):
                raise UserInputError(f"{opt} {v!r}: expected a positive whole number"
                                     + (" of bytes" if opt != "--max-macs" else ""))
        self.budget = Budget.from_board(board, max_macs=cfg.max_macs, max_ram=cfg.max_ram,
                                        max_flash=cfg.max_flash, firmware_overhead=0)
        user = {"macs": cfg.max_macs, "ram_bytes": cfg.max_ram, "flash_bytes": cfg.max_flash}
        limits = {"macs": self.budget.max_macs, "ram_bytes": self.budget.max_ram,
                  "flash_bytes": self.budget.max_flash,
                  "firmware_flash_bytes": board.memory.flash_bytes, "firmware_ram_bytes": board.memory.ram_bytes}
        self.record: dict = {
            "limits": limits,
            "limit_source": {k: self._source(k, user.get(k), v) for k, v in limits.items()},
            "user": {"max_macs": cfg.max_macs, "max_ram": cfg.max_ram, "max_flash": cfg.max_flash},
            "board": {"name": board.name, "flash_bytes": board.memory.flash_bytes,
                      "ram_bytes": board.memory.ram_bytes, "model_ram_budget": board.model_ram_budget},
            "model": None,       # codegen's figures of the int8 model, checked before cross-compiling
            "firmware": None,    # measured in the linked image
            "over": {},
            "fits": None,
            "checked_at": None,
        }

    def _source(self, key: str, user, limit) -> str | None:
        if limit is None:
            return None
        if user is not None and user == limit:
            return FIGURES[key][2]
        return {"ram_bytes": f"{self.board.name}'s model RAM budget",
                "flash_bytes": f"{self.board.name}'s flash", "firmware_flash_bytes": f"{self.board.name}'s flash",
                "firmware_ram_bytes": f"{self.board.name}'s RAM"}.get(key)

    # ------------------------------------------------------------------ checks
    def check_model(self, codegen: dict) -> None:
        """The int8 model's figures (summary["codegen"]) against the limits; OverBudgetError when over."""
        model = {"macs": codegen["macs"], "ram_bytes": codegen["arena_bytes"], "flash_bytes": codegen["flash_bytes"]}
        self.record["model"] = model
        self._check(model, "codegen")

    def check_firmware(self, firmware: dict, elf: Path, codegen_dir: Path) -> None:
        """The linked image: its arena and weight arrays against the limits, its flash/RAM against the
        board's (already enforced by the firmware stage; repeated so summary.json has them all)."""
        arena, weights = linked_model_bytes(elf, codegen_dir)
        fw = {"flash_used": firmware["flash_used"], "ram_used": firmware["ram_used"],
              "arena_bytes": arena, "weight_bytes": weights}
        self.record["firmware"] = fw
        self._check({"ram_bytes": arena, "flash_bytes": weights, "firmware_flash_bytes": fw["flash_used"],
                     "firmware_ram_bytes": fw["ram_used"]}, "firmware")

    def note(self, error: OverBudgetError, stage: str) -> None:
        """Record the figures of an OverBudgetError raised elsewhere (the prune or firmware stage), and make
        its hint fit the input form (the firmware stage's "prune the model further" is no use for a .tflite)."""
        figs = getattr(error, "figures", None) or {}
        self.record["over"].update({k: self._over_entry(k, v, lim) for k, (v, lim) in figs.items()})
        self.record["fits"] = False
        self.record["checked_at"] = stage
        error.message += self._not_pruned()
        if self.kind in NOT_PRUNED or self.cfg.prune == "never":
            error.hint = self.hint(figs)

    def _check(self, measured: dict, stage: str) -> None:
        limits = self.record["limits"]
        over = {k: (v, limits[k]) for k, v in measured.items()
                if v is not None and limits.get(k) is not None and v > limits[k]}
        self.record["checked_at"] = stage
        self.record["over"] = {k: self._over_entry(k, v, lim) for k, (v, lim) in over.items()}
        self.record["fits"] = not over
        if over:
            raise OverBudgetError(self.message(over, stage), hint=self.hint(over), figures=over)

    def _over_entry(self, key: str, value: int, limit: int) -> dict:
        return {"measured": value, "limit": limit, "over_by": value - limit,
                "limit_source": self.record["limit_source"].get(key)}

    # ------------------------------------------------------------------ messages
    def message(self, over: dict, stage: str) -> str:
        where = ("the int8 model (before cross-compiling)" if stage == "codegen"
                 else "the linked firmware")
        parts = []
        for k, (v, lim) in over.items():
            what, unit, _ = FIGURES[k]
            parts.append(f"{what} {v:,}{unit} > {lim:,}{unit} ({self.record['limit_source'].get(k)}; "
                         f"over by {v - lim:,}{unit})")
        return f"{where} does not fit {self.board.name}: " + "; ".join(parts) + self._not_pruned()

    def _not_pruned(self) -> str:
        """Why this input form is not pruned ('' for PyTorch models)."""
        why = NOT_PRUNED.get(self.kind)
        return f". {why[0].upper()}{why[1:]}" if why else ""

    def hint(self, over: dict) -> str:
        user_bound = [FIGURES[k][2] for k in over if self.record["limit_source"].get(k) == FIGURES[k][2]]
        also = [f"raise {' / '.join(user_bound)}"] if user_bound else []
        also.append("pick a board with more memory (`tinyprune boards`)")
        if self.kind in SHRINK:
            return SHRINK[self.kind] + "; or " + ", or ".join(also)
        if self.kind in NOT_PRUNED:
            return ("prune the PyTorch source instead: `tinyprune build model.py:factory --weights w.pt "
                    f"--board {self.board.name}` prunes it to these limits (or `tinyprune prune` it, then "
                    "`tinyprune convert`); or " + ", or ".join(also))
        if self.cfg.prune == "never":
            return "allow pruning (--prune auto), or " + ", or ".join(also)
        return "prune harder (`tinyprune prune` with lower --max-* limits), or " + ", or ".join(also)


def over_message(over: dict, board: str) -> str:
    """The pruning stage's estimate over its budget: {figure: (value, limit)} -> one line."""
    parts = [f"{k.replace('_bytes', '')}: {v:,} > {lim:,} (over by {v - lim:,})" for k, (v, lim) in over.items()]
    return f"the model does not fit {board}: " + "; ".join(parts)


def linked_model_bytes(elf: Path, codegen_dir: Path, prefix: str = "model") -> tuple[int | None, int | None]:
    """(arena, weights) in bytes as linked: the size of ``<prefix>_static_arena`` and the summed sizes of
    the weight arrays the generated ``<prefix>_weights.h`` declares (None when not in the image)."""
    from tinyprune.firmware.elf import Elf
    syms = Elf(elf).symbols
    arena = syms.get(f"{prefix}_static_arena")
    header = Path(codegen_dir) / f"{prefix}_weights.h"
    names = _WEIGHT_DECL.findall(header.read_text()) if header.is_file() else []
    sizes = [syms[n].size for n in names if n in syms]
    return (arena.size if arena else None), (sum(sizes) if sizes else None)
