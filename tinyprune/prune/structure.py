"""Channel structure of a model via torch-pruning's DependencyGraph: the prunable channel groups
(coupled layers: residual adds, concatenations, depthwise convs, batch norms, the linear after a
flatten), per-channel aggregation of parameter scores over a group, physical removal of channels,
the channel configuration (``channels.json``) and ``rebuild`` from it.

Grouped convolutions (1 < groups, not depthwise): torch-pruning's dependency graph couples their
in- and out-channels to the rest of a group but leaves the per-group consistency to the caller
(its ``prune_in_channels`` keeps the first group's pattern for every group). A channel group that
reaches grouped convolutions with groups g1, g2, ... is therefore pruned in *units*: with
L = lcm(g1, g2, ...) and P = channels / L, unit j is the channels {j, j + P, ..., j + (L-1) P} (one
at the same place in every conv group), so every conv group keeps the same count and the same
pattern. ``ChannelGroup.channels`` counts units (scores, plans and widths are per unit); ``unit`` is
L and ``width`` the real channel count (a group whose conv groups have one channel each is one
unit: never pruned). A group that reaches a grouped conv through a concatenation or split (an offset
channel mapping) is kept whole (``excluded``, with the reason).

May import: torch, torch_pruning, tinyprune.errors. Not other tinyprune stages.
"""
from __future__ import annotations

import copy
import importlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch_pruning as tp

from tinyprune.errors import UnsupportedModelError, UserInputError

PRUNABLE = (nn.Conv2d, nn.Linear)


CHANNEL_REORDER_REASON = ("their channels pass through a transpose/permute of the channel axis (e.g. a channel "
                          "shuffle), whose channel order torch-pruning does not follow; pruning them would remove "
                          "the wrong channels downstream or break the group split")


GROUPED_CONV_REASON = ("they feed or come from a grouped convolution through a concatenation/split, which "
                       "torch-pruning maps without the convolution's groups; pruning them could leave its groups "
                       "unequal")


def _grouped_unit(dg, group, channels: int) -> int | None:
    """L = lcm of the groups of the grouped (non-depthwise) convolutions in ``group`` (1 when none),
    or None when one of them does not see the group's channels one to one (concat/split offsets)."""
    unit = 1
    for item in group:
        layer = item.dep.target.module
        if not isinstance(layer, nn.Conv2d) or layer.groups == 1 or \
                layer.groups == layer.in_channels == layer.out_channels:
            continue
        n = layer.out_channels if dg.is_out_channel_pruning_fn(item.dep.handler) else layer.in_channels
        if n != channels or [int(i) for i in item.idxs] != [int(i) for i in item.root_idxs] or \
                sorted(int(i) for i in item.idxs) != list(range(channels)):
            return None
        unit = unit * layer.groups // math.gcd(unit, layer.groups)
    return unit

CHANNEL_SPLIT_REASON = ("their channels are split by torch.chunk / torch.split / x[:, a:b] with sizes fixed in "
                        "forward(); removing channels would move the split points (the pieces would get other "
                        "channels or other sizes), so the channels before a split are kept whole")


CHANNEL_MAPPING_REASON = ("torch-pruning fails to map their channels through the model's chunk/split/slice "
                          "operations ({}), so they are kept whole")


def _splits_channels(group) -> bool:
    """The group's channels reach a split/chunk or a slice of the channel axis (dimension 1)."""
    for dep, _ in group:
        for node in (dep.source, dep.target):
            if node.type == tp.ops.OPTYPE.SPLIT or getattr(node.module, "split_sizes", None) is not None:
                return True
            if node.type == tp.ops.OPTYPE.SLICE and getattr(node.module, "dim", 1) == 1:
                return True
    return False


def _reorders_channels(group) -> bool:
    """The group's channels pass through a transpose/permute (a channel shuffle): torch-pruning maps
    channel indices through it as if it were the identity, which is wrong."""
    for dep, _ in group:
        fn = type(getattr(dep.target, "grad_fn", None)).__name__
        if fn.startswith(("TransposeBackward", "PermuteBackward")):
            return True
    return False


@dataclass
class ChannelGroup:
    """One prunable unit: the out-channels of ``root`` and everything coupled to them."""
    root: str              # module name of the root layer (out-channel pruning)
    channels: int          # current number of prunable units (= channels unless unit > 1)
    layers: list           # names of the coupled modules (for reports)
    group: object          # the torch_pruning Group (full indices)
    unit: int = 1          # channels per unit: lcm of the groups of grouped convs in the group
    width: int = 0         # current number of channels (channels * unit)

    def unit_channels(self, j: int) -> list[int]:
        """The channels of unit j: one at the same place in each of the ``unit`` conv groups."""
        return [j + k * self.channels for k in range(self.unit)]


def output_layer(model: nn.Module, example_input: torch.Tensor) -> str:
    """Name of the last Conv2d/Linear executed in forward: the classifier, never pruned."""
    return executed_layers(model, example_input)[-1]


def executed_layers(model: nn.Module, example_input: torch.Tensor) -> list[str]:
    """Names of the Conv2d/Linear layers in the order forward() runs them."""
    order: list[str] = []
    names = {m: n for n, m in model.named_modules()}
    hooks = [m.register_forward_hook(lambda mod, i, o: order.append(names[mod]))
             for m in model.modules() if isinstance(m, PRUNABLE)]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()
            model(example_input)
    except Exception as e:  # noqa: BLE001 - the user's forward failed on the example input
        raise UnsupportedModelError(f"the model fails on an input of shape {tuple(example_input.shape)}: "
                                    f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}",
                                    hint="check --input-shape (1,C,H,W) against the model") from None
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    if not order:
        raise UnsupportedModelError("the model has no Conv2d or Linear layer: nothing to prune")
    return order


class Structure:
    """The DependencyGraph of ``model`` (modified in place by ``remove``)."""

    def __init__(self, model: nn.Module, example_input: torch.Tensor, ignored: list[str] | None = None):
        self.model = model
        self.example_input = example_input
        self.names = {m: n for n, m in model.named_modules()}
        self.ignored = list(ignored) if ignored is not None else [output_layer(model, example_input)]
        was_training = model.training
        model.eval()
        try:
            with torch.enable_grad():
                # the output layer is excluded from the groups (get_all_groups), not from tracing:
                # its in-channels must still follow the layers feeding it
                self.dg = tp.DependencyGraph().build_dependency(model, example_inputs=example_input, verbose=False)
        except UnsupportedModelError:
            raise
        except Exception as e:  # noqa: BLE001 - any failure of the tracer is the same problem for users
            raise UnsupportedModelError(
                f"torch-pruning cannot trace this model ({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''})",
                hint="the forward pass must be differentiable with standard layers (no torch.no_grad(), detach() "
                     "or in-place tricks inside forward(), single tensor input)") from None
        finally:
            model.train(was_training)
        mods = dict(model.named_modules())
        lost = [n for n in dict.fromkeys(executed_layers(model, example_input)) if mods[n] not in self.dg.module2node]
        if lost:
            raise UnsupportedModelError(
                f"torch-pruning cannot trace layer(s) {', '.join(lost)}: they run in forward() but are not part "
                "of the autograd graph",
                hint="remove torch.no_grad() / detach() / .data from forward(); the tracer follows gradients")
        self.refresh()

    def refresh(self):
        mods = dict(self.model.named_modules())
        ignored = [mods[n] for n in self.ignored if n in mods]
        self.groups: dict[str, ChannelGroup] = {}
        self.excluded: dict[str, str] = {}    # root layer -> why its channels are never pruned
        for root_mod, g in self._groups(ignored):
            root = self.names[root_mod]
            why = None
            if isinstance(g, Exception):
                why = CHANNEL_MAPPING_REASON.format(f"{type(g).__name__}: {g}"[:120])
            elif _splits_channels(g):
                why = CHANNEL_SPLIT_REASON
            if why:   # the root and every layer whose out-channels are coupled to it stay whole
                coupled = [] if isinstance(g, Exception) else [
                    dep.target.module for dep, _ in g if self.dg.is_out_channel_pruning_fn(dep.handler)
                    and isinstance(dep.target.module, PRUNABLE) and dep.target.module in self.names]
                for m in [root_mod] + coupled:
                    self.excluded.setdefault(self.names[m], why)
                continue
            layers = sorted({self.names[dep.target.module] for dep, _ in g
                             if isinstance(dep.target.module, nn.Module) and dep.target.module in self.names})
            if _reorders_channels(g):
                self.excluded[root] = CHANNEL_REORDER_REASON
                continue
            width = len(g[0].idxs)
            unit = _grouped_unit(self.dg, g, width)
            if unit is None:
                self.excluded[root] = GROUPED_CONV_REASON
                continue
            self.groups[root] = ChannelGroup(root, width // unit, layers, g, unit, width)
        if not self.groups:
            why = (f" (layer(s) {', '.join(self.excluded)} are kept whole: "
                   f"{'; '.join(sorted(set(self.excluded.values())))})" if self.excluded else " (only the output layer?)")
            raise UnsupportedModelError(f"torch-pruning found no prunable channel group in the model{why}; "
                                        "nothing to prune")

    def _groups(self, ignored):
        """(root module, group) per prunable root, as DependencyGraph.get_all_groups makes them; the group
        is the exception when torch-pruning fails to map the root's channels (it does through some
        chunk/split/slice patterns), so that root is excluded rather than the whole prune failing."""
        visited, ignored = set(), list(ignored) + list(self.dg.IGNORED_LAYERS_IN_TRACING)
        for m in list(self.dg.module2node):
            if m in ignored or not isinstance(m, PRUNABLE) or m in visited:
                continue
            pruner = self.dg.get_pruner_of_module(m)
            if pruner is None or pruner.get_out_channels(m) is None:
                continue
            try:
                g = self.dg.get_pruning_group(m, pruner.prune_out_channels, list(range(pruner.get_out_channels(m))))
            except (IndexError, KeyError, ValueError, RuntimeError) as e:
                yield m, e
                continue
            outs = [dep.target.module for dep, _ in g if self.dg.is_out_channel_pruning_fn(dep.handler)]
            visited.update(outs)
            if not any(o in ignored for o in outs):
                yield m, g

    # ---- scores -------------------------------------------------------------------------------
    def aggregate(self, elem, root: str, signed: bool = True) -> torch.Tensor:
        """Per-channel sum of ``elem(param) -> tensor like param (or None)`` over the group's coupled
        parameters (out-channel slices of convs/linears/BN, in-channel slices of consumers), and over
        each unit's channels (``ChannelGroup.unit``): one value per unit. Differentiable if elem is."""
        cg = self.groups[root]
        n = cg.width
        out = None
        seen = set()
        for item in cg.group:
            dep, idxs = item.dep, item.idxs
            root_idxs = item.root_idxs
            layer = dep.target.module
            if not isinstance(layer, nn.Module) or not idxs:
                continue
            is_out = self.dg.is_out_channel_pruning_fn(dep.handler)
            contrib = None
            if isinstance(layer, nn.Conv2d):
                depthwise = layer.groups > 1 and layer.groups == layer.in_channels == layer.out_channels
                key = (id(layer), "dw" if depthwise else ("out" if is_out else "in"))
                if key in seen:
                    continue
                seen.add(key)
                s = elem(layer.weight)
                if s is None:
                    continue
                if depthwise or is_out:
                    contrib = s.flatten(1).sum(1)[idxs]
                    if layer.bias is not None:
                        sb = elem(layer.bias)
                        if sb is not None:
                            contrib = contrib + sb[idxs]
                elif layer.groups > 1:   # in-channel c of a grouped conv is weight[:, c % (in / groups)] of its group
                    per = layer.in_channels // layer.groups
                    rows = s.flatten(2).sum(2).reshape(layer.groups, layer.out_channels // layer.groups, per)
                    contrib = rows.sum(1).reshape(-1)[idxs]
                else:
                    contrib = s.transpose(0, 1).flatten(1).sum(1)[idxs]
            elif isinstance(layer, nn.Linear):
                key = (id(layer), "out" if is_out else "in")
                if key in seen:
                    continue
                seen.add(key)
                s = elem(layer.weight)
                if s is None:
                    continue
                if is_out:
                    contrib = s.sum(1)[idxs]
                    if layer.bias is not None:
                        sb = elem(layer.bias)
                        if sb is not None:
                            contrib = contrib + sb[idxs]
                else:
                    contrib = s.sum(0)[idxs]
            elif isinstance(layer, (nn.BatchNorm2d, nn.BatchNorm1d)) and layer.affine:
                key = (id(layer), "bn")
                if key in seen:
                    continue
                seen.add(key)
                sw, sb = elem(layer.weight), elem(layer.bias)
                parts = [t[idxs] for t in (sw, sb) if t is not None]
                if parts:
                    contrib = sum(parts)
            if contrib is None:
                continue
            ri = torch.as_tensor(root_idxs, dtype=torch.long)
            if out is None:
                out = torch.zeros(n, dtype=contrib.dtype, device=contrib.device)
            out = out.index_add(0, ri, contrib)
        if out is None:
            out = torch.zeros(n)
        if cg.unit > 1:
            out = out.reshape(cg.unit, cg.channels).sum(0)
        return out

    # ---- pruning --------------------------------------------------------------------------------
    def remove(self, plan: dict[str, list[int]]):
        """Remove channels: {root module name: indices to remove (current numbering; units of a
        group with ``unit > 1``)}."""
        mods = dict(self.model.named_modules())
        for root, idxs in plan.items():
            idxs = sorted(int(i) for i in idxs)
            if not idxs:
                continue
            cg = self.groups[root]
            if len(idxs) >= cg.channels:
                raise ValueError(f"refusing to remove all {cg.channels} channels of {root}")
            if cg.unit > 1:
                idxs = sorted(c for j in idxs for c in cg.unit_channels(j))
            layer = mods[root]
            pruner = self.dg.get_pruner_of_module(layer)
            g = self.dg.get_pruning_group(layer, pruner.prune_out_channels, idxs)
            g.prune()
        self.refresh()

    def widths(self) -> dict[str, int]:
        return {r: g.channels for r, g in self.groups.items()}


def apply_plan(model: nn.Module, example_input: torch.Tensor, plan: dict[str, list[int]],
               ignored: list[str] | None = None) -> nn.Module:
    """A pruned deep copy of ``model``."""
    m = copy.deepcopy(model)
    st = Structure(m, example_input, ignored)
    st.remove(plan)
    return m


# ---- channel configuration ---------------------------------------------------------------------

def channel_config(model: nn.Module) -> dict:
    """Widths of every Conv2d / Linear / BatchNorm / PReLU: enough to rebuild the pruned model from its factory."""
    cfg = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            cfg[name] = {"type": "Conv2d", "in_channels": m.in_channels, "out_channels": m.out_channels,
                         "groups": m.groups}
        elif isinstance(m, nn.Linear):
            cfg[name] = {"type": "Linear", "in_features": m.in_features, "out_features": m.out_features}
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            cfg[name] = {"type": type(m).__name__, "num_features": m.num_features}
        elif isinstance(m, nn.PReLU):    # one slope per channel follows its channels
            cfg[name] = {"type": "PReLU", "num_parameters": m.num_parameters}
    return {"format": "tinyprune-channels/1", "layers": cfg}


def _set_module(root: nn.Module, name: str, new: nn.Module):
    parts = name.split(".")
    parent = root
    for p in parts[:-1]:
        parent = getattr(parent, p)
    setattr(parent, parts[-1], new)


def rebuild(factory, channels, state_dict=None) -> nn.Module:
    """Rebuild a pruned model: ``factory()`` builds the unpruned architecture, ``channels`` (dict, or a
    path to channels.json) resizes its layers, ``state_dict`` (dict or path to pruned_state_dict.pt)
    fills in the weights. ``factory`` may be a callable or a ``"module:function"`` string."""
    if isinstance(factory, str):
        mod, _, fn = factory.partition(":")
        factory = getattr(importlib.import_module(mod), fn)
    if isinstance(channels, (str, Path)):
        channels = json.loads(Path(channels).read_text())
    layers = channels.get("layers", channels)
    model = factory()
    mods = dict(model.named_modules())
    for name, c in layers.items():
        if name not in mods:
            raise UserInputError(f"channels.json names layer {name!r} that the factory's model does not have",
                                 hint="rebuild with the same factory that was pruned")
        m = mods[name]
        if c["type"] == "Conv2d":
            new = nn.Conv2d(c["in_channels"], c["out_channels"], m.kernel_size, m.stride, m.padding, m.dilation,
                            c["groups"], m.bias is not None, m.padding_mode)
        elif c["type"] == "Linear":
            new = nn.Linear(c["in_features"], c["out_features"], m.bias is not None)
        elif c["type"] == "PReLU":
            new = nn.PReLU(c["num_parameters"])
        else:
            cls = getattr(nn, c["type"])
            new = cls(c["num_features"], m.eps, m.momentum, m.affine, m.track_running_stats)
        _set_module(model, name, new)
    if state_dict is not None:
        if isinstance(state_dict, (str, Path)):
            state_dict = torch.load(state_dict, map_location="cpu", weights_only=True)
        model.load_state_dict(state_dict)
    return model
