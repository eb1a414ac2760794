"""The importance-criterion interface and its registry.

A criterion scores every channel of every prunable group (``Structure.groups``); higher means keep.
Channel importance is aggregated over the group's coupled parameters (``Structure.aggregate``).
Adding a criterion is one file in this package: subclass ``Criterion``, set ``name`` and decorate
it with ``@register``; ``criteria/__init__.py`` imports every module of the package.

Hooks (all optional except ``scores``):
  prepare(ctx)        before the first pruning step (HALO trains with its penalty, IMP trains + saves its rewind point)
  scores(ctx)         {group root: tensor[channels]} on the current (possibly already pruned) model
  after_step(ctx, plan) after each pruning step (IMP rewinds survivors and retrains)
  weight_scores(ctx)  {param: tensor like param} for ``granularity="weight"``; None if undefined
``steps`` > 1 makes the engine prune iteratively (rescoring on the pruned network each step).

May import: torch, tinyprune.errors, tinyprune.prune.structure / train. Not other stages.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

from tinyprune.errors import UserInputError

REGISTRY: dict[str, type["Criterion"]] = {}


def register(cls):
    REGISTRY[cls.name] = cls
    return cls


@dataclass
class Context:
    """What a criterion may look at. ``batches`` yields (x, y) training batches (None if no data);
    ``train(model, epochs, penalty=None)`` trains in place (None if no data and no train_fn)."""
    model: nn.Module
    structure: object
    example_input: torch.Tensor
    batches: object = None
    train: object = None
    seed: int = 0
    when: str = "trained"
    options: dict = field(default_factory=dict)
    state: dict = field(default_factory=dict)

    def batch_list(self, n: int):
        if self.batches is None:
            return None
        return self.batches(n)


class Criterion:
    name = ""
    needs_data = False      # needs labelled batches (gradient-based)
    needs_training = False  # needs the trainer (IMP, HALO)
    steps = 1               # >1: iterative pruning, rescoring after each step
    signed = False          # scores may be negative (normalisation uses the mean absolute value)

    def __init__(self, **options):
        self.options = options

    def prepare(self, ctx: Context) -> None:
        pass

    def scores(self, ctx: Context) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def after_step(self, ctx: Context, plan: dict) -> None:
        pass

    def weight_scores(self, ctx: Context):
        return None

    # helpers -----------------------------------------------------------------------------------
    @staticmethod
    def per_group(ctx: Context, elem) -> dict[str, torch.Tensor]:
        st = ctx.structure
        with torch.no_grad():
            return {root: st.aggregate(elem, root).detach().double() for root in st.groups}

    @staticmethod
    def require_batches(ctx: Context, name: str, n: int):
        b = ctx.batch_list(n)
        if not b:
            raise UserInputError(f"criterion {name!r} needs labelled data to compute gradients",
                                 hint="pass --data digits or --data file.npz (arrays x, y), or pick "
                                      "a data-free criterion: l1, l2, random, synflow")
        return b


def get(name: str, **options) -> Criterion:
    from tinyprune.prune import criteria as _pkg  # noqa: F401 - registers all criteria
    if name not in REGISTRY:
        raise UserInputError(f"unknown pruning criterion {name!r}",
                             hint="valid criteria: " + ", ".join(sorted(REGISTRY)))
    return REGISTRY[name](**options)


def names() -> list[str]:
    from tinyprune.prune import criteria as _pkg  # noqa: F401
    return sorted(REGISTRY)


def loss_grads(model: nn.Module, batches, params=None, create_graph=False):
    """Sum over batches of dL/dθ (cross entropy), as {param: grad}."""
    params = list(params if params is not None else [p for p in model.parameters() if p.requires_grad])
    total = {p: torch.zeros_like(p) for p in params}
    for x, y in batches:
        loss = nn.functional.cross_entropy(model(x), y)
        gs = torch.autograd.grad(loss, params, create_graph=create_graph, allow_unused=True)
        for p, g in zip(params, gs):
            if g is not None:
                total[p] = total[p] + g
    return total
