"""``taylor``: first-order Taylor importance (Molchanov et al. 2019, "Importance Estimation for
Neural Network Pruning"): the squared first-order change of the loss when a channel is removed,
I_c = (sum over the channel's coupled parameters of g_s * θ_s)^2, averaged over minibatches.
Per weight: (g * θ)^2."""
import torch

from tinyprune.prune.criteria.base import Criterion, loss_grads, register


@register
class Taylor(Criterion):
    name = "taylor"
    needs_data = True

    def scores(self, ctx):
        batches = self.require_batches(ctx, self.name, self.options.get("batches", 4))
        st, model = ctx.structure, ctx.model
        total = {root: torch.zeros(g.channels, dtype=torch.float64) for root, g in st.groups.items()}
        model.eval()
        for b in batches:
            grads = loss_grads(model, [b])
            with torch.no_grad():
                for root in st.groups:
                    total[root] += st.aggregate(lambda p: p * grads[p] if p in grads else None, root).double().square()
        return {k: v / len(batches) for k, v in total.items()}

    def weight_scores(self, ctx):
        batches = self.require_batches(ctx, self.name, self.options.get("batches", 4))
        ctx.model.eval()
        out = {}
        for b in batches:
            grads = loss_grads(ctx.model, [b])
            for p, g in grads.items():
                out[p] = out.get(p, 0) + (p.detach() * g).square()
        return out
