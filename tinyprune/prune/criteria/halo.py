"""``halo``: Hierarchical Adaptive Lasso (Seto, Wells & Zhang 2021, "HALO: Learning to Prune Neural
Networks with Shrinkage"), applied to channel groups. During a training phase the loss gets the
penalty  λ Σ_c ||θ_c||_1 / |ξ_c|  +  μ Σ_c |ξ_c|  where θ_c are all parameters coupled to channel c
and ξ_c is a learned per-channel shrinkage parameter (trained jointly with the weights). Minimising
over ξ gives ξ_c ∝ sqrt(||θ_c||_1): small groups get a large adaptive-lasso weight 1/ξ_c and are driven
to zero, large ones are barely shrunk. After the phase, channels are ranked by ||θ_c||_1 (those the
penalty drove to zero go first). Options: lam, mu, epochs (penalty-training epochs)."""
import torch

from tinyprune.errors import UserInputError
from tinyprune.prune.criteria.base import Criterion, register


@register
class HALO(Criterion):
    name = "halo"
    needs_training = True

    def prepare(self, ctx):
        if ctx.train is None or not ctx.state.get("builtin_trainer", False):
            raise UserInputError("criterion 'halo' trains with its own penalty and needs data for the built-in "
                                 "trainer (a custom train_fn cannot add the penalty)",
                                 hint="pass --data digits or --data file.npz")
        st = ctx.structure
        lam = float(self.options.get("lam", 2e-3))
        mu = float(self.options.get("mu", 2e-3))
        xi = {root: torch.nn.Parameter(torch.ones(g.channels)) for root, g in st.groups.items()}

        def penalty():
            total = 0.0
            for root, x in xi.items():
                a = st.aggregate(torch.abs, root)
                total = total + lam * (a / x.abs().clamp_min(1e-4)).sum() + mu * x.abs().sum()
            return total

        ctx.train(ctx.model, int(self.options.get("epochs", 2)), penalty=penalty, extra_params=list(xi.values()))
        ctx.state["halo_xi"] = {k: v.detach().clone() for k, v in xi.items()}

    def scores(self, ctx):
        return self.per_group(ctx, torch.abs)
