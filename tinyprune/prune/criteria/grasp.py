"""``grasp``: Gradient Signal Preservation (Wang et al. 2020, "Picking Winning Tickets Before
Training by Preserving Gradient Flow"). GraSP scores S(-θ) = -θ ⊙ Hg and removes the highest
scores; so importance (higher = keep) is θ ⊙ Hg, summed (signed) over a channel's coupled
parameters. Hg is a Hessian-gradient product by double backprop: g = ∇L (detached), then
Hg = ∇(∇L · g). Logits are divided by a temperature T (200 in the paper's code)."""
import torch
import torch.nn as nn

from tinyprune.prune.criteria.base import Criterion, register


@register
class GraSP(Criterion):
    name = "grasp"
    needs_data = True
    signed = True

    def _hg(self, ctx):
        batches = self.require_batches(ctx, self.name, self.options.get("batches", 2))
        temp = float(self.options.get("temperature", 200.0))
        model = ctx.model
        model.eval()
        params = [p for p in model.parameters() if p.requires_grad]
        g_fixed = [torch.zeros_like(p) for p in params]
        for x, y in batches:
            loss = nn.functional.cross_entropy(model(x) / temp, y)
            gs = torch.autograd.grad(loss, params, allow_unused=True)
            g_fixed = [a + (b if b is not None else 0) for a, b in zip(g_fixed, gs)]
        hg = [torch.zeros_like(p) for p in params]
        for x, y in batches:
            loss = nn.functional.cross_entropy(model(x) / temp, y)
            gs = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
            z = sum((g * gf).sum() for g, gf in zip(gs, g_fixed) if g is not None)
            h = torch.autograd.grad(z, params, allow_unused=True)
            hg = [a + (b if b is not None else 0) for a, b in zip(hg, h)]
        return {p: (p.detach() * h.detach()) for p, h in zip(params, hg)}

    def scores(self, ctx):
        s = self._hg(ctx)
        return self.per_group(ctx, lambda p: s.get(p))

    def weight_scores(self, ctx):
        return self._hg(ctx)
