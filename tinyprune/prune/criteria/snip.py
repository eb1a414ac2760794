"""``snip``: connection sensitivity (Lee et al. 2019, "SNIP: Single-shot Network Pruning based on
Connection Sensitivity"): |∂L/∂c_j| = |θ_j ∂L/∂θ_j| for a mask c on each connection, on one data
batch; a channel's score sums the sensitivity of all its coupled connections."""
from tinyprune.prune.criteria.base import Criterion, loss_grads, register


@register
class SNIP(Criterion):
    name = "snip"
    needs_data = True

    def _sens(self, ctx):
        batches = self.require_batches(ctx, self.name, self.options.get("batches", 1))
        ctx.model.eval()
        grads = loss_grads(ctx.model, batches)
        return {p: (p.detach() * g).abs() for p, g in grads.items()}

    def scores(self, ctx):
        sens = self._sens(ctx)
        return self.per_group(ctx, lambda p: sens.get(p))

    def weight_scores(self, ctx):
        return self._sens(ctx)
