"""``tinyprune prune``: parse options, call ``tinyprune.prune.prune``, write OUT/ atomically.

May import: click, tinyprune.errors, tinyprune._fs, tinyprune.prune, tinyprune.convert.loader (model
loading), tinyprune.boards (via Budget.from_board).
"""
from __future__ import annotations

import click

from tinyprune._cli import json_option, print_json, say

from tinyprune.errors import UserInputError
from tinyprune.prune.budget import FINETUNE_EPOCHS

_CRITERIA_HELP = "l1, l2, taylor, random, snip, snip-it, grasp, synflow, imp, halo"


def _load_model(spec: str, weights, input_shape, data=None):
    import torch
    try:
        from tinyprune.convert.loader import load_torch_model, torch_input_shape
    except ImportError:  # the convert stage is not installed: example and pkg.mod:factory only
        load_torch_model = torch_input_shape = None
    if load_torch_model is None:
        raise UserInputError("model loading needs the convert stage (tinyprune.convert.loader)")
    if spec.lower().endswith((".onnx", ".tflite")):
        raise UserInputError(f"{spec}: pruning needs the PyTorch model (file.py:factory, pkg.mod:factory or example)",
                             hint="ONNX / TFLite models cannot be pruned structurally; convert them directly")
    model = load_torch_model(spec, weights)
    shape = torch_input_shape(model, spec, input_shape, data)
    return model, torch.zeros(shape)


@click.command(name="prune", help="Structured pruning until the model fits a board's budget.")
@click.argument("model")
@click.option("--board", default=None, help="board name (boards/NAME.toml): flash and RAM limits")
@click.option("--max-macs", type=int, default=None, help="limit on multiply-accumulates per inference: convolutions and fully-connected layers of the "
                   "int8 graph (BatchNorm folded; activations, pooling, adds not counted; docs/pruning.md#macs)")
@click.option("--max-ram", type=int, default=None, help="limit on the int8 tensor arena, bytes")
@click.option("--max-flash", type=int, default=None, help="limit on model constants in flash, bytes")
@click.option("--criterion", default="l1", show_default=True, help=f"importance criterion: {_CRITERIA_HELP}")
@click.option("--when", "when", default="trained", show_default=True,
              type=click.Choice(["trained", "init", "gradual"]),
              help="prune the trained model then fine-tune | prune at init then train | prune while training")
@click.option("--granularity", default="channel", show_default=True, type=click.Choice(["channel", "weight"]),
              help="channel: structured (shrinks MACs/RAM/flash); weight: unstructured sparsity (does not)")
@click.option("--sparsity", type=float, default=0.5, show_default=True, help="target for --granularity weight")
@click.option("--data", default=None, help="digits or a .npz with x, y[, x_test, y_test] (docs/data.md) "
                                           "(default: digits for the example)")
@click.option("--epochs", type=int, default=FINETUNE_EPOCHS, show_default=True, help="(fine-)tuning epochs")
@click.option("--round-to", type=click.Choice(["1", "4", "8"]), default="1", show_default=True,
              help="round channel counts to multiples of this (SIMD-friendly kernels)")
@click.option("--min-channels", type=int, default=1, show_default=True, help="minimum channels per layer")
@click.option("--distill/--no-distill", default=False, help="distil from the unpruned model while fine-tuning")
@click.option("--weights", default=None, help="state_dict .pt for a file.py:factory model")
@click.option("--input-shape", default=None, help="1,C,H,W when the model does not declare it")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("-o", "--out", "out", required=True, help="output directory")
@json_option
def command(model, board, max_macs, max_ram, max_flash, criterion, when, granularity, sparsity, data, epochs,
            round_to, min_channels, distill, weights, input_shape, seed, out, as_json):
    from tinyprune._fs import atomic_output_dir
    from tinyprune.prune import Budget, PruneConfig, prune
    from tinyprune.prune import criteria

    criteria.get(criterion)  # fail fast on a bad name, before loading anything heavy
    if board is None and max_macs is None and max_ram is None and max_flash is None:
        raise UserInputError("no budget: pass --board and/or --max-macs / --max-ram / --max-flash")
    for name, v in (("--max-macs", max_macs), ("--max-ram", max_ram), ("--max-flash", max_flash)):
        if v is not None and v <= 0:
            raise UserInputError(f"{name} must be positive (got {v})")
    if board is not None:
        budget = Budget.from_board(board, max_macs=max_macs, max_ram=max_ram, max_flash=max_flash)
    else:
        budget = Budget(max_macs, max_ram, max_flash)
    net, example_input = _load_model(model, weights, input_shape, data)
    if data is None and model == "example":
        data = "digits"
    cfg = PruneConfig(epochs=epochs, granularity=granularity, round_to=int(round_to), min_channels=min_channels,
                      distill=distill, seed=seed, sparsity=sparsity)
    with atomic_output_dir(out, "prune.json") as tmp:
        result = prune(net, example_input, budget, criterion=criterion, when=when, data=data, config=cfg)
        result.report["model"] = model
        result.report["board"] = board
        result.report["input_shape"] = list(example_input.shape)
        result.save(tmp)
    r = result.report
    b, a = r["before"], r["after"]
    say(as_json, f"pruned {model} with {criterion} ({when}): MACs {b['macs']:,} -> {a['macs']:,}, "
               f"RAM {b['ram_bytes']:,} -> {a['ram_bytes']:,} B, flash {b['flash_bytes']:,} -> {a['flash_bytes']:,} B")
    if b.get("macs_all_layers") and a.get("macs_all_layers"):
        say(as_json, f"MACs counted over every layer (torch-pruning's count, BN/activations/pooling included): "
                     f"{b['macs_all_layers']:,} -> {a['macs_all_layers']:,}")
    for w in r.get("warnings", []):
        click.echo(f"warning: {w}", err=True)
    acc = r["accuracy"]
    if acc["before"] is not None:
        say(as_json, f"accuracy: {acc['before']:.4f} before, {acc['after_pruning']:.4f} after pruning, "
                   f"{acc['after_finetuning']:.4f} after fine-tuning")
    else:
        say(as_json, "accuracy: not measured (no labelled data)")
    if "not_pruned" in r:
        say(as_json, f"note: not pruned: {', '.join(r['not_pruned']['layers'])}: {r['not_pruned']['reason']}")
    if "grouped_units" in r:
        units = ", ".join(f"{k} ({v} channels per pattern)" for k, v in sorted(r["grouped_units"]["layers"].items()))
        say(as_json, f"note: grouped convolutions: {units}: {r['grouped_units']['note']}")
    if "note" in r:
        say(as_json, f"note: {r['note']}; achieved sparsity {r['weight_sparsity']['achieved']:.2%}")
    say(as_json, f"wrote {out}/pruned_model.pt, pruned_state_dict.pt, channels.json, prune.json")
    if as_json:
        print_json(r)
