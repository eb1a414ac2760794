"""``imp``: iterative magnitude pruning with weight rewinding, the lottery-ticket procedure (Frankle &
Carbin 2019; rewinding: Frankle et al. 2020, "Linear Mode Connectivity and the Lottery Ticket
Hypothesis"). Rounds (``steps``): train, remove the lowest-L1 channels, rewind the surviving weights to
their values at the rewind point, train again. With ``when="init"`` the rewind point is after
``rewind_epochs`` of training from initialisation; with ``when="trained"`` the given trained weights
are the rewind point. The engine's final training/fine-tuning is the last round's training."""
import copy

import torch

from tinyprune.errors import UserInputError
from tinyprune.prune.criteria.base import Criterion, register


@register
class IMP(Criterion):
    name = "imp"
    needs_training = True

    def __init__(self, **options):
        super().__init__(**options)
        self.steps = int(options.get("steps", 3))

    def prepare(self, ctx):
        if ctx.train is None:
            raise UserInputError("criterion 'imp' (lottery ticket) trains between pruning rounds and needs data "
                                 "or a train_fn", hint="pass --data digits or --data file.npz")
        round_epochs = int(self.options.get("round_epochs", 1))
        if ctx.when == "init":
            ctx.train(ctx.model, int(self.options.get("rewind_epochs", 1)))
        ctx.state["imp_rewind"] = copy.deepcopy(ctx.model)
        ctx.train(ctx.model, round_epochs)

    def scores(self, ctx):
        return self.per_group(ctx, torch.abs)

    def after_step(self, ctx, plan):
        from tinyprune.prune.structure import Structure
        snap = ctx.state["imp_rewind"]
        st = Structure(snap, ctx.example_input, ctx.structure.ignored)
        st.remove(plan)
        ctx.model.load_state_dict(snap.state_dict())  # rewind the survivors
        if ctx.state.get("step", 0) < ctx.state.get("steps", self.steps):
            ctx.train(ctx.model, int(self.options.get("round_epochs", 1)))

    def weight_scores(self, ctx):
        return {p: p.detach().abs() for p in ctx.model.parameters()}
