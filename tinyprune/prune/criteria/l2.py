"""``l2``: magnitude pruning with the L2 norm: sqrt of the sum of θ² over the channel's coupled
parameters (per weight: θ²)."""
import torch

from tinyprune.prune.criteria.base import Criterion, register


@register
class L2(Criterion):
    name = "l2"

    def scores(self, ctx):
        return {k: v.sqrt() for k, v in self.per_group(ctx, torch.square).items()}

    def weight_scores(self, ctx):
        return {p: p.detach().square() for p in ctx.model.parameters()}
