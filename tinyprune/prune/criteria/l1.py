"""``l1``: magnitude pruning (Li et al. 2017, "Pruning Filters for Efficient ConvNets"): a channel's
importance is the sum of |θ| over all parameters coupled to it in its group."""
import torch

from tinyprune.prune.criteria.base import Criterion, register


@register
class L1(Criterion):
    name = "l1"

    def scores(self, ctx):
        return self.per_group(ctx, torch.abs)

    def weight_scores(self, ctx):
        return {p: p.detach().abs() for p in ctx.model.parameters()}
