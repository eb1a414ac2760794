"""``synflow``: Iterative Synaptic Flow Pruning (Tanaka et al. 2020, "Pruning neural networks without
any data by iteratively conserving synaptic flow"). Data-free: on a copy of the network with every
parameter and buffer replaced by its absolute value (double precision, eval mode), feed an all-ones
input, R = sum of the output, score = |θ| ⊙ ∂R/∂|θ|. Iterative (``steps``, 100 in the paper, fewer
here because every step physically removes channels): scores are recomputed on the pruned network
each step, which is what avoids layer collapse. A channel's score sums its coupled parameters' scores."""
import copy

import torch

from tinyprune.prune.criteria.base import Criterion, register


@register
class SynFlow(Criterion):
    name = "synflow"

    def __init__(self, **options):
        super().__init__(**options)
        self.steps = int(options.get("steps", 20))

    def _flow(self, ctx):
        model = ctx.model
        names = {id(p): n for n, p in model.named_parameters()}
        lin = copy.deepcopy(model).double().eval()
        with torch.no_grad():
            for t in list(lin.parameters()) + list(lin.buffers()):
                if t.is_floating_point():
                    t.abs_()
        x = torch.ones((1,) + tuple(ctx.example_input.shape[1:]), dtype=torch.float64)
        lin.zero_grad()
        r = lin(x).sum()
        r.backward()
        by_name = {n: (p.detach() * p.grad).float() if p.grad is not None else torch.zeros_like(p).float()
                   for n, p in lin.named_parameters()}
        return {p: by_name[names[id(p)]] for p in model.parameters()}

    def scores(self, ctx):
        s = self._flow(ctx)
        return self.per_group(ctx, lambda p: s.get(p))

    def weight_scores(self, ctx):
        return self._flow(ctx)
