"""``granularity="weight"``: unstructured pruning with a criterion's per-weight scores, global over
the Conv2d/Linear weights (the output layer excluded), to ``config.sparsity`` (iterative criteria in
geometric steps), then fine-tuning with the masks held fixed. Weight sparsity does NOT shrink MACs,
RAM or flash on an MCU: the report says so.

May import: torch, tinyprune.errors, tinyprune.prune.*.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.utils.prune as tprune

from tinyprune.errors import UserInputError
from tinyprune.prune.structure import PRUNABLE


def prune_weights(crit, ctx, cfg, train, acc) -> dict:
    if not 0.0 < cfg.sparsity < 1.0:
        raise UserInputError(f"sparsity {cfg.sparsity} must be between 0 and 1 (exclusive)")
    from tinyprune.prune.criteria.base import Criterion
    if type(crit).weight_scores is Criterion.weight_scores:
        raise UserInputError(f"criterion {crit.name!r} has no weight-level (unstructured) definition",
                             hint="use --granularity channel, or one of: l1, l2, taylor, random, snip, snip-it, "
                                  "grasp, synflow, imp")
    model = ctx.model
    skip = set(ctx.structure.ignored)
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, PRUNABLE) and n not in skip]
    crit.prepare(ctx)
    steps = max(1, int(getattr(crit, "steps", 1)))
    masks = {}
    for s in range(1, steps + 1):
        ctx.state["step"], ctx.state["steps"] = s, steps
        density = (1.0 - cfg.sparsity) ** (s / steps)
        ws = crit.weight_scores(ctx)
        if ws is None:
            raise UserInputError(f"criterion {crit.name!r} has no weight-level (unstructured) definition",
                                 hint="use --granularity channel, or one of: l1, l2, taylor, random, snip, snip-it, "
                                      "grasp, synflow, imp")
        flat = torch.cat([ws[m.weight].detach().double().flatten() for _, m in layers])
        n_prune = int(round(flat.numel() * (1.0 - density)))
        if n_prune <= 0:
            continue
        order = torch.argsort(flat, stable=True)
        keep = torch.ones(flat.numel(), dtype=torch.bool)
        keep[order[:n_prune]] = False
        off = 0
        with torch.no_grad():
            for name, m in layers:
                k = m.weight.numel()
                masks[name] = keep[off:off + k].view_as(m.weight).float()
                m.weight.mul_(masks[name])
                off += k
        crit.after_step(ctx, {})
    acc_pruned = acc(model)
    for name, m in layers:  # keep pruned weights at zero while fine-tuning
        if name in masks:
            tprune.custom_from_mask(m, "weight", masks[name])
    try:
        train(model, cfg.epochs)
    finally:
        for name, m in layers:
            if name in masks:
                tprune.remove(m, "weight")
    per_layer = {}
    zeros = total = 0
    for name, m in layers:
        z = int((m.weight == 0).sum())
        per_layer[name] = round(z / m.weight.numel(), 4)
        zeros, total = zeros + z, total + m.weight.numel()
    return {"weight_sparsity": {"target": cfg.sparsity, "achieved": round(zeros / max(total, 1), 4),
                                "per_layer": per_layer, "zero_weights": zeros, "weights": total},
            "_acc_pruned": acc_pruned}
