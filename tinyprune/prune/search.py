"""Budget search: the least structured pruning that meets every limit.

A channel's score (summed over all parameters coupled to it, as the criterion defines it) is
normalised by its group's mean |score| (``normalize="group"``, default: layers become comparable),
by the group's sum (``"sum"``) or by the global mean (``"global"``: the papers' raw global ranking).
Compute-awareness: the score is divided by cost**``cost_exponent``, cost being the measured share of
each violated limit's excess that one channel fewer in the group removes (``group_costs``), i.e.
importance per resource removed. On the digits models the cost-weighted ranking emptied the residual
trunk / stem first and lost accuracy (docs/pruning.md has the measurements), so the default exponent
is 0: the ranking is by importance alone and the bisection alone makes it budget-aware.
The first ``k`` channels of the ranking are removed (collapse guard: every group keeps at least
``min_channels``, rounded up to ``round_to``, and never its last channel; widths are rounded to
multiples of ``round_to``); the smallest ``k`` whose pruned copy meets the budget is found by
bisection, each probe measuring the pruned copy's int8 figures.

May import: torch, tinyprune.errors, tinyprune.prune.{structure, irgraph, budget}.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from tinyprune.errors import OverBudgetError
from tinyprune.prune.budget import Budget
from tinyprune.prune.irgraph import Figures, figures
from tinyprune.prune.structure import Structure, apply_plan


@dataclass
class Ranking:
    order: list                      # [(root, channel index)] least important first
    caps: dict                       # root -> max channels removable
    widths: dict                     # root -> current channels
    round_to: int = 1
    clamped: set = field(default_factory=set)

    @property
    def removable(self) -> int:
        return sum(self.caps.values())

    def plan(self, k: int) -> dict[str, list[int]]:
        removed = {r: [] for r in self.widths}
        count = 0
        self.clamped = set()
        for root, idx in self.order:
            if count >= k:
                break
            if len(removed[root]) < self.caps[root]:
                removed[root].append(idx)
                count += 1
            else:
                self.clamped.add(root)
        plan = {}
        for root, rem in removed.items():
            c = self.widths[root]
            keep = c - len(rem)
            if self.round_to > 1:
                keep = min(c, -(-keep // self.round_to) * self.round_to)
            n = c - keep
            if n > 0:
                plan[root] = sorted(rem[:n])
        return plan


def group_costs(structure: Structure, fig: Figures, budget: Budget, min_channels: int, round_to: int,
                accounting: dict | None = None) -> dict:
    """Cost of removing one channel of each group, measured: the figures of a copy with ``round_to``
    channels fewer in that group, per violated limit, weighted by how far over that limit the model is
    (a resource that is not over budget costs nothing), plus a small MAC term to order the rest."""
    cur = fig.as_dict()
    excess = {k: cur[k] - v for k, v in budget.limits().items() if cur[k] > v}
    step = max(1, round_to)
    costs = {}
    for root, g in structure.groups.items():
        if g.channels - step < min_keep(g.channels, min_channels, round_to):
            costs[root] = 1.0
            continue
        f = figures(apply_plan(structure.model, structure.example_input, {root: list(range(step))},
                               structure.ignored), structure.example_input, **(accounting or {})).as_dict()
        c = sum(max(cur[k] - f[k], 0) / e for k, e in excess.items()) / step
        c += 1e-3 * max(cur["macs"] - f["macs"], 0) / max(cur["macs"], 1) / step
        costs[root] = max(c, 1e-9)
    mean = sum(costs.values()) / max(len(costs), 1)
    return {r: c / mean for r, c in costs.items()}


def min_keep(channels: int, min_channels: int, round_to: int) -> int:
    m = max(1, min_channels)
    if round_to > 1:
        m = -(-m // round_to) * round_to
    return min(channels, m)


def rank(structure: Structure, scores: dict[str, torch.Tensor], fig: Figures, budget: Budget, *,
         min_channels: int = 1, round_to: int = 1, compute_aware: bool = True, normalize: str = "group",
         cost_exponent: float = 0.0, accounting: dict | None = None) -> Ranking:
    groups = structure.groups
    compute_aware = compute_aware and cost_exponent != 0
    costs = group_costs(structure, fig, budget, min_channels, round_to, accounting) if compute_aware else {}
    clean = {}
    for root, g in groups.items():
        s = scores[root].detach().double().flatten()
        if s.numel() != g.channels:
            raise RuntimeError(f"criterion returned {s.numel()} scores for {g.channels} channels of {root}")
        clean[root] = torch.nan_to_num(s, nan=0.0, posinf=1e30, neginf=-1e30)
    global_norm = torch.cat(list(clean.values())).abs().mean().item() or 1.0
    entries = []
    for root, g in groups.items():
        s = clean[root]
        if normalize == "group":
            norm = s.abs().mean().item() or 1.0
        elif normalize == "sum":
            norm = s.abs().sum().item() or 1.0
        else:
            norm = global_norm
        s = s / norm
        if compute_aware:
            s = s / costs[root] ** cost_exponent
        for i, v in enumerate(s.tolist()):
            entries.append((v, root, i))
    entries.sort(key=lambda e: (e[0], e[1], e[2]))
    caps = {r: g.channels - min_keep(g.channels, min_channels, round_to) for r, g in groups.items()}
    return Ranking([(r, i) for _, r, i in entries], caps, {r: g.channels for r, g in groups.items()}, round_to)


def smallest_reachable(structure: Structure, min_channels: int, round_to: int,
                       accounting: dict | None = None) -> tuple[Figures, dict]:
    """Figures with every group at its minimum width (independent of the criterion)."""
    plan = {}
    for root, g in structure.groups.items():
        n = g.channels - min_keep(g.channels, min_channels, round_to)
        if n > 0:
            plan[root] = list(range(n))
    m = apply_plan(structure.model, structure.example_input, plan, structure.ignored)
    return figures(m, structure.example_input, **(accounting or {})), plan


def over_budget_error(fig: Figures, budget: Budget, min_channels: int,
                      example_input: torch.Tensor | None = None) -> OverBudgetError:
    parts = [f"{k} {fig.as_dict()[k]:,} (limit {v:,})" for k, v in budget.limits().items()]
    bad = budget.violations(fig)
    why = ""
    if "ram_bytes" in bad and example_input is not None:
        # the input tensor (and the first layers' outputs at its resolution) is in the arena whatever
        # the widths: only a lower resolution or an earlier stride shrinks it
        n = int(example_input[:1].numel())
        why = (f"; the int8 input alone is {n:,} B ({'x'.join(str(d) for d in example_input.shape)}), and no "
               f"channel pruning shrinks it or the first layers' {'x'.join(str(d) for d in example_input.shape[2:])} maps: "
               f"a lower input resolution or an earlier stride does")
    return OverBudgetError(
        "the budget cannot be met even with every layer pruned to its minimum width "
        f"({max(1, min_channels)} channel(s)); smallest figures reachable: " + ", ".join(parts)
        + f"; over: {', '.join(bad)}" + why,
        hint="raise the limits (--max-macs/--max-ram/--max-flash), lower --min-channels, pick a bigger board, "
             "or start from a smaller architecture", figures=bad)


def search(structure: Structure, scores: dict, budget: Budget, *, min_channels=1, round_to=1,
           compute_aware=True, normalize="group", cost_exponent=0.0, refine=True, fig: Figures | None = None,
           stats: dict | None = None, accounting: dict | None = None):
    """Return (plan, figures of the pruned model, ranking) for the least pruning meeting ``budget``.
    ``accounting``: keyword arguments of ``figures`` (kernels, fast_weights) -- the same as the
    caller's, so that the plan found fits by the caller's measure."""
    model, x = structure.model, structure.example_input
    acct = accounting or {}
    fig = fig or figures(model, x, **acct)
    stats = stats if stats is not None else {}
    if budget.fits(fig):
        return {}, fig, None
    r = rank(structure, scores, fig, budget, min_channels=min_channels, round_to=round_to,
             compute_aware=compute_aware, normalize=normalize, cost_exponent=cost_exponent, accounting=acct)
    cache = {}

    def probe_plan(plan):
        key = tuple(sorted((a, tuple(b)) for a, b in plan.items()))
        if key not in cache:
            stats["probes"] = stats.get("probes", 0) + 1
            cache[key] = figures(apply_plan(model, x, plan, structure.ignored), x, **acct)
        return cache[key]

    def probe(k):
        plan = r.plan(k)
        return plan, probe_plan(plan)

    hi = r.removable
    plan_hi, fig_hi = probe(hi)
    if not budget.fits(fig_hi):
        raise over_budget_error(fig_hi, budget, min_channels, x)
    lo = 0  # does not fit
    best = (hi, plan_hi, fig_hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        plan, f = probe(mid)
        if budget.fits(f):
            hi, best = mid, (mid, plan, f)
        else:
            lo = mid
    k, plan, f = best
    r.plan(k)  # leaves r.clamped for this k
    if refine:
        plan, f = _give_back(r, plan, f, budget, lambda p: probe_plan(p))
    return plan, f, r


def _give_back(r: Ranking, plan: dict, fig: Figures, budget: Budget, probe):
    """The bisection stops at the first prefix of the ranking that fits; channels removed on the way
    that the binding limit did not need (e.g. groups that do not touch the RAM peak) are restored,
    most important first, group by group, as long as the budget still holds (binary search per
    group on how many to restore, keeping widths multiples of round_to)."""
    pos = {rc: i for i, rc in enumerate(r.order)}
    roots = sorted(plan, key=lambda g: -max(pos[(g, i)] for i in plan[g]))
    for root in roots:
        rem = sorted(plan[root], key=lambda i: pos[(root, i)])   # least important first
        c = r.widths[root]

        def valid(t):
            keep = c - (len(rem) - t)
            return keep == c or r.round_to <= 1 or keep % r.round_to == 0
        options = [t for t in range(1, len(rem) + 1) if valid(t)]
        lo, hi, best = 0, len(options) - 1, None
        while lo <= hi:  # largest restorable count that still fits
            mid = (lo + hi) // 2
            t = options[mid]
            trial = dict(plan)
            left = rem[:len(rem) - t]
            if left:
                trial[root] = sorted(left)
            else:
                trial.pop(root)
            f = probe(trial)
            if budget.fits(f):
                best, lo = (trial, f), mid + 1
            else:
                hi = mid - 1
        if best is not None:
            plan, fig = best
    return plan, fig
