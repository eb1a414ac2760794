"""``random``: the baseline every criterion must beat; uniform random scores from the run's seed."""
import torch

from tinyprune.prune.criteria.base import Criterion, register


@register
class Random(Criterion):
    name = "random"

    def scores(self, ctx):
        gen = torch.Generator().manual_seed(ctx.seed + 7919 * ctx.state.get("step", 0))
        return {root: torch.rand(g.channels, generator=gen, dtype=torch.float64)
                for root, g in ctx.structure.groups.items()}

    def weight_scores(self, ctx):
        gen = torch.Generator().manual_seed(ctx.seed)
        return {p: torch.rand(p.shape, generator=gen) for p in ctx.model.parameters()}
