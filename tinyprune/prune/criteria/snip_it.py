"""``snip-it``: SNIP applied iteratively (Verdenius et al. 2020, "Pruning via Iterative Ranking of
Sensitivity Statistics"): prune in k steps towards the target, recomputing the sensitivity on the
already-pruned network each step. Structured variant: each channel has one gate c multiplying all
its coupled parameters, and its sensitivity is |∂L/∂c| at c=1 = |Σ_group θ·∂L/∂θ| (signed sum inside
the absolute value, unlike SNIP's sum of absolute values). Per weight: |θ·g| recomputed every step."""
from tinyprune.prune.criteria.base import Criterion, loss_grads, register


@register
class SNIPIt(Criterion):
    name = "snip-it"
    needs_data = True

    def __init__(self, **options):
        super().__init__(**options)
        self.steps = int(options.get("steps", 5))

    def _grads(self, ctx):
        batches = self.require_batches(ctx, self.name, self.options.get("batches", 1))
        ctx.model.eval()
        return loss_grads(ctx.model, batches)

    def scores(self, ctx):
        grads = self._grads(ctx)
        signed = self.per_group(ctx, lambda p: p * grads[p] if p in grads else None)
        return {k: v.abs() for k, v in signed.items()}

    def weight_scores(self, ctx):
        grads = self._grads(ctx)
        return {p: (p.detach() * g).abs() for p, g in grads.items()}
