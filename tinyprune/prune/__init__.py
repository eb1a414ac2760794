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
from tinyprune.prune.budget import FIRMWARE_FLASH_OVERHEAD, Budget
from tinyprune.prune.engine import PruneConfig, PruneResult, prune
from tinyprune.prune.irgraph import Figures, build_graph, figures
from tinyprune.prune.structure import channel_config, rebuild

__all__ = ["prune", "PruneConfig", "PruneResult", "Budget", "FIRMWARE_FLASH_OVERHEAD", "Figures", "figures",
           "build_graph", "rebuild", "channel_config"]
