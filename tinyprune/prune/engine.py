"""``prune()``: structured pruning of a PyTorch model to a budget, with a chosen criterion and timing,
followed by (re)training; and its result (model, channel configuration, report).

Timing: ``init`` prunes first then trains ``epochs``; ``trained`` prunes the given (trained) model
then fine-tunes ``epochs``; ``gradual`` trains ``epochs`` while pruning in ``gradual_steps`` steps
(geometric schedule towards the budget), finishing with the remaining epochs.
Iterative criteria (``steps`` > 1: snip-it, synflow, imp) prune in steps whose intermediate
budgets shrink geometrically from the model's figures to the final budget.

May import: torch, tinyprune.errors, tinyprune._fs, tinyprune.prune.*. Not other stages.
"""
from __future__ import annotations

import copy
import dataclasses
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from tinyprune import _fs
from tinyprune.errors import OverBudgetError, UserInputError
from tinyprune.prune import criteria as _criteria
from tinyprune.prune.budget import FINETUNE_EPOCHS, Budget
from tinyprune.prune.criteria.base import Context
from tinyprune.prune.irgraph import Figures, figures
from tinyprune.prune.search import over_budget_error, search, smallest_reachable
from tinyprune.prune.structure import PRUNABLE, Structure, channel_config
from tinyprune.prune.train import Trainer, accuracy, as_data

WHEN = ("trained", "init", "gradual")
GRANULARITY = ("channel", "weight")
WEIGHT_SPARSITY_NOTE = ("weight sparsity (--granularity weight) zeroes individual weights but does not shrink "
                        "MACs, RAM or flash on an MCU: the int8 kernels and the dense weight arrays stay the same size")


@dataclass
class PruneConfig:
    epochs: int = FINETUNE_EPOCHS   # training (init), fine-tuning (trained) or total (gradual) epochs
    granularity: str = "channel"
    round_to: int = 1
    min_channels: int = 1
    compute_aware: bool = True
    normalize: str = "group"        # score normalisation before the global ranking: "group" | "sum" | "global"
    cost_exponent: float = 0.0      # importance / cost**exponent (0: by importance only, 1: per unit removed)
    refine: bool = True             # after the bisection, restore channels the budget did not need
    distill: bool = False           # distil from the unpruned model during (fine-)tuning
    lr: float = 2e-3
    batch_size: int = 64
    optimizer: str = "adam"
    seed: int = 0
    threads: int = 1
    gradual_steps: int = 3
    sparsity: float = 0.5           # target for granularity="weight"
    kernels: str = "portable"
    fast_weights: bool = False      # flash counted with int16 conv filters (codegen --fast-weights)
    ignored_layers: list = field(default_factory=list)  # extra module names never pruned
    criterion_options: dict = field(default_factory=dict)  # e.g. {"steps": 10} for synflow


@dataclass
class PruneResult:
    model: nn.Module
    channels: dict
    report: dict

    def save(self, out_dir) -> None:
        """Write pruned_model.pt, pruned_state_dict.pt, channels.json and prune.json into out_dir."""
        out = Path(out_dir)
        torch.save(self.model, out / "pruned_model.pt")
        torch.save(self.model.state_dict(), out / "pruned_state_dict.pt")
        _fs.write_json(out / "channels.json", self.channels)
        _fs.write_json(out / "prune.json", self.report)


def _seed(seed: int):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _layers(model: nn.Module) -> dict:
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            out[name] = {"kind": "depthwise" if m.groups > 1 else "conv", "in": m.in_channels, "out": m.out_channels,
                         "params": sum(p.numel() for p in m.parameters())}
        elif isinstance(m, nn.Linear):
            out[name] = {"kind": "linear", "in": m.in_features, "out": m.out_features,
                         "params": sum(p.numel() for p in m.parameters())}
    return out


def _step_budget(budget: Budget, start: Figures, s: int, k: int) -> Budget:
    """Geometric interpolation from the start figures to the budget: step s of k (s == k: the budget)."""
    if s >= k:
        return budget
    d = start.as_dict()

    def interp(limit, key):
        if limit is None or d[key] <= limit:
            return limit
        return int(limit * (d[key] / limit) ** ((k - s) / k))
    return Budget(interp(budget.max_macs, "macs"), interp(budget.max_ram, "ram_bytes"),
                  interp(budget.max_flash, "flash_bytes"), budget.source)


def prune(model: nn.Module, example_input: torch.Tensor, budget: Budget, *, criterion: str = "l1",
          when: str = "trained", train_fn=None, data=None, config: PruneConfig | None = None,
          weights=None) -> PruneResult:
    """Prune ``model`` (not modified; a pruned copy is returned) until its int8 figures meet ``budget``.

    ``data``: "digits", an .npz path (docs/data.md), an (x_train, y_train, x_test, y_test) tuple or an
    object with those attributes (float32 NCHW), (x, y) arrays, a torch Dataset/DataLoader of (x, y), all
    checked by tinyprune.data; ``weights``: a state_dict (or a file holding one) loaded into the copy first;
    used for data-driven criteria, the built-in trainer and the accuracies in the report.
    ``train_fn(model, epochs) -> None``: your own training loop, used instead of the built-in trainer.
    """
    cfg = config or PruneConfig()
    crit = _criteria.get(criterion, **cfg.criterion_options)
    if when not in WHEN:
        raise UserInputError(f"unknown --when {when!r}", hint="valid: " + ", ".join(WHEN))
    if cfg.granularity not in GRANULARITY:
        raise UserInputError(f"unknown granularity {cfg.granularity!r}", hint="valid: channel, weight")
    if cfg.round_to not in (1, 2, 4, 8, 16):
        raise UserInputError(f"--round-to {cfg.round_to} is not supported", hint="use 1, 4 or 8")
    if cfg.min_channels < 1:
        raise UserInputError("--min-channels must be at least 1 (a layer never loses its last channel)")
    if not isinstance(model, nn.Module):
        raise UserInputError(f"cannot prune a {type(model).__name__}: pass a torch nn.Module",
                             hint="load a model spec first: tinyprune.convert.load_torch_model('file.py:factory')")
    if not isinstance(example_input, torch.Tensor):
        raise UserInputError("example_input must be a torch.Tensor of the model's input shape (N, C, H, W)")
    _seed(cfg.seed)
    torch.set_num_threads(max(1, cfg.threads))
    model = copy.deepcopy(model).float().eval()
    if weights is not None:
        from tinyprune.convert.loader import load_weights
        load_weights(model, weights)
    example_input = example_input[:1].float()
    data = as_data(data, tuple(example_input.shape))
    if (crit.needs_data and data is None) or (crit.needs_training and data is None and train_fn is None):
        raise UserInputError(f"criterion {criterion!r} needs data" + (" or a train_fn" if crit.needs_training else ""),
                             hint="pass --data digits or --data file.npz (arrays x, y; see docs/data.md)")
    warnings = []
    if cfg.epochs > 0 and data is None and train_fn is None:
        warnings.append(f"no data and no train_fn: the pruned model is NOT fine-tuned ({cfg.epochs} epochs asked "
                        "for, 0 run) and its accuracy is not measured; pass --data (docs/data.md) or a train_fn")
        cfg = dataclasses.replace(cfg, epochs=0)

    def acc(m):
        return accuracy(m, data.x_test, data.y_test) if data is not None else None

    unpruned = copy.deepcopy(model)
    trainer = Trainer(data, lr=cfg.lr, batch_size=cfg.batch_size, optimizer=cfg.optimizer, seed=cfg.seed,
                      teacher=unpruned if (cfg.distill and when != "init") else None,
                      threads=cfg.threads) if data is not None else None

    def train(m, epochs, penalty=None, extra_params=None):
        if epochs <= 0:
            return
        if train_fn is not None and penalty is None:
            m.train()
            train_fn(m, epochs)
            m.eval()
        elif trainer is not None:
            trainer(m, epochs, penalty=penalty, extra_params=extra_params)

    ignored = None
    if cfg.ignored_layers:
        from tinyprune.prune.structure import output_layer
        ignored = [output_layer(model, example_input)] + list(cfg.ignored_layers)
    st = Structure(model, example_input, ignored)
    before_fig = figures(model, example_input, **_acct(cfg))
    before_all_macs = _all_layer_macs(model, example_input)
    before_layers = _layers(model)
    acc_before = acc(model)
    ctx = Context(model=model, structure=st, example_input=example_input,
                  batches=trainer.batches if trainer is not None else None,
                  train=train if (trainer is not None or train_fn is not None) else None,
                  seed=cfg.seed, when=when, options=dict(cfg.criterion_options))
    ctx.state["builtin_trainer"] = trainer is not None and train_fn is None
    stats = {"probes": 0}
    report = {"criterion": criterion, "when": when, "granularity": cfg.granularity, "budget": budget.as_dict(),
              "config": {k: v for k, v in cfg.__dict__.items() if k != "criterion_options"},
              "criterion_options": dict(cfg.criterion_options),
              "training": {"epochs": cfg.epochs,
                           "by": "train_fn" if train_fn is not None else ("built-in" if trainer is not None else
                                                                           "none (no data, no train_fn)")}}
    if warnings:
        report["warnings"] = warnings
    if st.excluded:  # kept whole, never a wrong model: said in the report and by the CLI
        report["not_pruned"] = {"layers": sorted(st.excluded),
                                "reason": "; ".join(sorted(set(st.excluded.values()))),   # each distinct one
                                "by_layer": dict(sorted(st.excluded.items()))}
    units = {r: g.unit for r, g in st.groups.items() if g.unit > 1}
    if units:  # groups reaching grouped convolutions lose whole per-group patterns (structure.py)
        report["grouped_units"] = {"layers": units, "note": "channels removed in whole per-group patterns (one at "
                                   "the same place in each convolution group) so that every group keeps the "
                                   "same count; --min-channels and --round-to count these patterns"}

    if cfg.granularity == "weight":
        from tinyprune.prune.unstructured import prune_weights
        if not budget.fits(before_fig):
            bad = ", ".join(f"{k} {v:,} > {lim:,}" for k, (v, lim) in budget.violations(before_fig).items())
            raise OverBudgetError(f"the model is over budget ({bad}) and {WEIGHT_SPARSITY_NOTE}",
                                  hint="use --granularity channel to meet a MAC/RAM/flash budget")
        sparsity = prune_weights(crit, ctx, cfg, train, acc)
        after_fig = figures(model, example_input, **_acct(cfg))
        report.update(sparsity)
        report["note"] = WEIGHT_SPARSITY_NOTE
        res = _finish(model, report, before_fig, after_fig, before_layers, acc_before, sparsity.pop("_acc_pruned"),
                      acc(model), stats, set())
        return _with_all_layer_macs(res, before_all_macs, example_input)

    # feasibility first (before any expensive training)
    if not budget.fits(before_fig):
        min_fig, _ = smallest_reachable(st, cfg.min_channels, cfg.round_to, _acct(cfg))
        if not budget.fits(min_fig):
            raise over_budget_error(min_fig, budget, cfg.min_channels)

    steps = max(1, int(getattr(crit, "steps", 1)))
    clamped: set = set()
    if when == "gradual":
        steps = max(steps, cfg.gradual_steps)
        per = cfg.epochs // (steps + 1)
        crit.prepare(ctx)
        start = figures(model, example_input, **_acct(cfg))
        for s in range(1, steps + 1):
            train(model, per)
            clamped = _prune_step(crit, ctx, st, _step_budget(budget, start, s, steps), s, steps, cfg, stats)
        acc_pruned = acc(model)
        train(model, cfg.epochs - per * steps)
    else:
        crit.prepare(ctx)
        start = figures(model, example_input, **_acct(cfg))
        for s in range(1, steps + 1):
            clamped = _prune_step(crit, ctx, st, _step_budget(budget, start, s, steps), s, steps, cfg, stats)
        acc_pruned = acc(model)
        train(model, cfg.epochs)
    after_fig = figures(model, example_input, **_acct(cfg))
    if not budget.fits(after_fig):  # cannot happen: every step checks the pruned copy's figures
        raise RuntimeError(f"pruned model misses the budget: {budget.violations(after_fig)}")
    res = _finish(model, report, before_fig, after_fig, before_layers, acc_before, acc_pruned, acc(model),
                  stats, clamped)
    return _with_all_layer_macs(res, before_all_macs, example_input)


def _prune_step(crit, ctx, st, step_budget, s, steps, cfg, stats) -> set:
    ctx.state["step"], ctx.state["steps"] = s, steps
    fig = figures(st.model, st.example_input, **_acct(cfg))
    if step_budget.fits(fig):
        crit.after_step(ctx, {})
        return set()
    scores = crit.scores(ctx)
    plan, _, ranking = search(st, scores, step_budget, min_channels=cfg.min_channels, round_to=cfg.round_to,
                              compute_aware=cfg.compute_aware, normalize=cfg.normalize,
                              cost_exponent=cfg.cost_exponent, refine=cfg.refine, fig=fig, stats=stats,
                              accounting=_acct(cfg))
    st.remove(plan)
    crit.after_step(ctx, plan)
    return set(ranking.clamped) if ranking is not None else set()


MACS_DEFINITION = ("macs: multiply-accumulates of the convolutions and fully-connected layers of the int8 graph "
                   "(BatchNorm folded; activations, pooling, adds, resizes not counted); macs_all_layers: "
                   "torch-pruning's count_ops_and_params of the float model, every layer included")


def _acct(cfg) -> dict:
    """The figures() options of this run: the kernels and weight layout codegen will use."""
    return {"kernels": cfg.kernels, "fast_weights": cfg.fast_weights}


def _guard_width(config: dict) -> int:
    m, r = max(1, config.get("min_channels", 1)), config.get("round_to", 1)
    return -(-m // r) * r if r > 1 else m


def _all_layer_macs(model, example_input) -> int | None:
    """Torch-Pruning's count (``tp.utils.count_ops_and_params``): every layer it knows, BatchNorm, activations,
    pooling and adds included, so 10-20 % above ``macs`` (conv + fully-connected of the int8 graph, what
    the kernels multiply and what budgets limit). Reported beside it for comparison with other tools."""
    import torch_pruning as tp
    try:
        with torch.no_grad():
            return int(tp.utils.count_ops_and_params(copy.deepcopy(model).eval(), example_input)[0])
    except Exception:  # noqa: BLE001 - an informative second count only; None = "could not be counted"
        return None


def _with_all_layer_macs(res, before: int | None, example_input):
    res.report["before"]["macs_all_layers"] = before
    res.report["after"]["macs_all_layers"] = _all_layer_macs(res.model, example_input)
    res.report["macs_definition"] = MACS_DEFINITION
    return res


def _finish(model, report, before_fig, after_fig, before_layers, acc_before, acc_pruned, acc_after, stats, clamped):
    model.eval()
    after_layers = _layers(model)
    layers = []
    for name, b in before_layers.items():
        a = after_layers.get(name, {})
        layers.append({"name": name, "kind": b["kind"], "in_before": b["in"], "out_before": b["out"],
                       "in_after": a.get("in"), "out_after": a.get("out"),
                       "params_before": b["params"], "params_after": a.get("params"),
                       "macs_before": before_fig.per_layer.get(name), "macs_after": after_fig.per_layer.get(name)})
    report.update({
        "layers": layers,
        "before": before_fig.as_dict(),
        "after": after_fig.as_dict(),
        "mac_reduction": round(before_fig.macs / max(after_fig.macs, 1), 4),
        "accuracy": {"before": acc_before, "after_pruning": acc_pruned, "after_finetuning": acc_after},
        "search": {"probes": stats.get("probes", 0),
                   "collapse_guard_hits": sorted(clamped),
                   "min_channels_after": min((l["out_after"] for l in layers if l["out_after"]), default=None),
                   # layers the criterion drove down to the collapse guard's minimum width
                   "layers_at_minimum": [l["name"] for l in layers if l["out_after"] is not None
                                         and l["out_after"] < l["out_before"]
                                         and l["out_after"] <= _guard_width(report["config"])]},
    })
    return PruneResult(model, channel_config(model), report)
