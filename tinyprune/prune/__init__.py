"""tinyprune.prune: structured pruning of a PyTorch model to a microcontroller's budget.

Public API:
    prune(model, example_input, budget, *, criterion="l1", when="trained", train_fn=None, data=None,
          config=PruneConfig()) -> PruneResult(model, channels, report)
    Budget(max_macs=, max_ram=, max_flash=), Budget.from_board(board, ...), .scaled(), .tightened()
    figures(model, example_input) -> Figures(macs, params, ram_bytes, flash_bytes, weight_bytes)
    build_graph(model, example_input) -> (codegen.ir.Graph, per-layer MACs)
    rebuild(factory, channels, state_dict) -> the pruned model from its factory
    criteria.names(), criteria.get(name)
"""
from __future__ import annotations

import importlib

# name -> submodule; imported on first use, so that `from tinyprune.prune.budget import Budget` (and the
# pipeline's budget checks of ONNX/TFLite builds) does not import torch
_EXPORTS = {"Budget": "budget", "FIRMWARE_FLASH_OVERHEAD": "budget", "prune": "engine", "PruneConfig": "engine",
            "PruneResult": "engine", "Figures": "irgraph", "figures": "irgraph", "build_graph": "irgraph",
            "rebuild": "structure", "channel_config": "structure"}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)


from tinyprune._api import callable_package  # noqa: E402 - after the module's names exist

callable_package(__name__, "prune")   # tinyprune.prune(...) even once this subpackage is imported
