"""Budgets: the limits a pruned model must meet (MACs, int8 arena RAM, flash), from a board and/or
explicit numbers, with scaling hooks so a later stage can tighten them when a real build disagrees.

May import: tinyprune.errors, tinyprune.boards (lazily, in from_board). Not other stages.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from tinyprune.errors import UserInputError

# Flash kept free for everything but the model's constants: vector table, BSP, harness, kernels,
# newlib-nano, the op schedule. Measured sizes of a generated firmware minus its weights are
# well under this; a real build that still disagrees makes the pipeline re-call prune with a
# tightened budget (Budget.tightened).
FIRMWARE_FLASH_OVERHEAD = 48 * 1024
# Fine-tuning epochs after pruning, the one default of `tinyprune prune`, `tinyprune build` and the APIs
# (defined here because this module is cheap to import: no torch).
FINETUNE_EPOCHS = 5


@dataclass(frozen=True)
class Budget:
    max_macs: int | None = None
    max_ram: int | None = None      # bytes of the int8 tensor arena (planner peak incl. scratch)
    max_flash: int | None = None    # bytes of model constants + requantisation parameters
    source: str = "explicit"

    def limits(self) -> dict[str, int]:
        return {k: v for k, v in (("macs", self.max_macs), ("ram_bytes", self.max_ram),
                                  ("flash_bytes", self.max_flash)) if v is not None}

    def violations(self, figures) -> dict[str, tuple[int, int]]:
        """{figure: (value, limit)} for every limit exceeded."""
        d = figures if isinstance(figures, dict) else figures.as_dict()
        return {k: (d[k], v) for k, v in self.limits().items() if d[k] > v}

    def fits(self, figures) -> bool:
        return not self.violations(figures)

    def scaled(self, factor: float = 1.0, *, macs: float | None = None, ram: float | None = None,
               flash: float | None = None) -> "Budget":
        """Every limit times ``factor`` (or per-figure factors): the hook the pipeline uses to tighten."""
        def s(v, f):
            return None if v is None else int(v * (f if f is not None else factor))
        return replace(self, max_macs=s(self.max_macs, macs), max_ram=s(self.max_ram, ram),
                       max_flash=s(self.max_flash, flash))

    def tightened(self, estimated: dict, measured: dict) -> "Budget":
        """Scale each limit by estimated/measured for the figures a real build measured larger than
        estimated (e.g. {"ram_bytes": est}, {"ram_bytes": real}): the next prune then fits for real."""
        f = {}
        for key, arg in (("macs", "macs"), ("ram_bytes", "ram"), ("flash_bytes", "flash")):
            if key in estimated and key in measured and measured[key] > estimated[key] > 0:
                f[arg] = estimated[key] / measured[key]
        return self.scaled(1.0, **f) if f else self

    def as_dict(self) -> dict:
        return {"max_macs": self.max_macs, "max_ram": self.max_ram, "max_flash": self.max_flash, "source": self.source}

    @classmethod
    def from_board(cls, board, *, max_macs=None, max_ram=None, max_flash=None,
                   firmware_overhead: int = FIRMWARE_FLASH_OVERHEAD) -> "Budget":
        """Limits from a board (name or Board) combined with explicit ones (the tighter wins)."""
        if isinstance(board, str):
            from tinyprune.boards import load_board
            board = load_board(board)
        flash = int(board.memory.flash_bytes) - firmware_overhead
        ram = int(board.model_ram_budget)
        if flash <= 0:
            raise UserInputError(f"board {getattr(board, 'name', board)} has no flash left for a model after the "
                                 f"{firmware_overhead}-byte firmware allowance")
        return cls(max_macs=max_macs, max_ram=min(ram, max_ram) if max_ram else ram,
                   max_flash=min(flash, max_flash) if max_flash else flash,
                   source=f"board {getattr(board, 'name', '?')}")
