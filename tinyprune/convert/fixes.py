"""Public fixes for int8 accuracy that keep the converter's grid (per-channel int8 weights, per-tensor int8
activations, min/max calibration), applied to the PyTorch model before it is exported (docs/convert.md,
"Int8 accuracy"). Both return a changed copy that computes the same function in float (up to rounding).

- ``equalize``: cross-layer equalization (Nagel et al. 2019, "Data-Free Quantization Through Weight
  Equalization and Bias Correction", section 4.1). For a pair of layers A -> [BatchNorm] -> ReLU/identity -> B
  (conv, depthwise conv or linear), output channel i of A is divided by s_i = sqrt(r_A,i / r_B,i) and B's input
  channel i multiplied by it (r: the channel's largest absolute weight), which ReLU's positive homogeneity
  allows. BatchNorm is folded into A first. Channels whose ranges differ wildly then share the per-tensor
  int8 activation scale better. Pairs through ReLU6/hard-swish/other activations are left alone (not
  scale-equivariant) and listed.
- ``bias_correct``: empirical bias correction of the weight quantisation error (same paper, section 4.2):
  for each conv/linear layer the weights are quantised as TFLite's converter does (per output channel,
  symmetric, scale max|w| / 127, rounded half away from zero), and the mean per-channel output shift
  that rounding causes on the calibration samples, E[(W_q - W) x], is subtracted from the bias.

Per-channel activation ranges from percentiles are not offered: TFLite's converter takes one activation
range per tensor, from the min/max it sees in calibration, and has no option to set them.

May import torch, numpy, tinyprune._int8 and tinyprune.errors.
"""
from __future__ import annotations

import copy

import numpy as np

from tinyprune._int8 import round_half_away

CLE_ITERATIONS = 8
_EPS = 1e-12


def _weighted(m) -> bool:
    import torch.nn as nn
    return isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))


def _kind(m) -> str | None:
    """"dense" (groups 1 conv / linear), "depthwise", or None for other grouped convs."""
    import torch.nn as nn
    if isinstance(m, nn.Linear) or m.groups == 1:
        return "dense"
    if m.groups == m.in_channels == m.out_channels:
        return "depthwise"
    return None


def _is_relu(node, mods) -> bool:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    if node.op == "call_module":
        return isinstance(mods[node.target], nn.ReLU)
    if node.op in ("call_function", "call_method"):
        return node.target in (torch.relu, F.relu, torch.relu_, "relu", "relu_")
    return False


def _fold_bn(conv, bn) -> None:
    """BatchNorm folded into the conv before it; the BatchNorm left as an exact identity (so the model's
    structure, and its export, stay the same)."""
    import torch
    with torch.no_grad():
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        conv.weight.mul_(scale.reshape(-1, *([1] * (conv.weight.dim() - 1))))
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        new_bias = (bias - bn.running_mean) * scale + bn.bias
        if conv.bias is None:
            conv.bias = torch.nn.Parameter(new_bias)
        else:
            conv.bias.copy_(new_bias)
        bn.weight.fill_(1.0)
        bn.bias.zero_()
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0 - bn.eps)


def _pairs(gm) -> tuple[list[tuple[str, str]], list[str]]:
    """(A, B) module-name pairs that can be equalized, and the pairs left alone with why."""
    import torch.nn as nn
    mods = dict(gm.named_modules())
    pairs, skipped = [], []
    for node in gm.graph.nodes:
        if node.op != "call_module" or not _weighted(mods[node.target]):
            continue
        a = mods[node.target]
        chain, cur = [], node
        while True:
            users = list(cur.users)
            if len(users) != 1:
                break
            nxt = users[0]
            if nxt.op == "call_module" and isinstance(mods[nxt.target], (nn.BatchNorm1d, nn.BatchNorm2d)) and not chain:
                chain.append(("bn", nxt.target))
            elif _is_relu(nxt, mods) and not any(c[0] == "act" for c in chain):
                chain.append(("act", nxt))
            elif nxt.op == "call_module" and _weighted(mods[nxt.target]):
                b = mods[nxt.target]
                if _kind(a) is None or _kind(b) is None:
                    skipped.append(f"{node.target} -> {nxt.target}: grouped convolution")
                elif type(a.weight) is not type(b.weight) or (isinstance(a, nn.Linear) != isinstance(b, nn.Linear)):
                    skipped.append(f"{node.target} -> {nxt.target}: conv to linear")
                elif a.weight.shape[0] != (b.weight.shape[0] if _kind(b) == "depthwise" else b.weight.shape[1]):
                    skipped.append(f"{node.target} -> {nxt.target}: channel counts differ")
                else:
                    for kind, t in chain:
                        if kind == "bn":
                            _fold_bn(a, mods[t])
                    pairs.append((node.target, nxt.target))
                break
            else:
                if nxt.op == "call_module" and not isinstance(mods[nxt.target], nn.Identity):
                    what = type(mods[nxt.target]).__name__
                    if any(w in what for w in ("ReLU6", "Hardswish", "Hardsigmoid", "SiLU", "GELU", "Sigmoid")):
                        skipped.append(f"{node.target} -> ...: {what} is not scale-equivariant")
                break
            cur = nxt
    return pairs, skipped


def _out_range(m):
    import torch
    return m.weight.detach().abs().reshape(m.weight.shape[0], -1).amax(1).clamp_min(_EPS).to(torch.float64)


def _in_range(m):
    w = m.weight.detach().abs()
    if _kind(m) == "depthwise":
        return w.reshape(w.shape[0], -1).amax(1).clamp_min(_EPS).double()
    return w.transpose(0, 1).reshape(w.shape[1], -1).amax(1).clamp_min(_EPS).double()


def equalize(module, example, iterations: int = CLE_ITERATIONS):
    """Cross-layer equalization on a copy of ``module`` (eval mode). Returns (model, report dict)."""
    import torch
    import torch.fx

    from tinyprune.errors import UserInputError

    model = copy.deepcopy(module).eval()
    try:
        gm = torch.fx.symbolic_trace(model)
    except Exception as e:  # noqa: BLE001 - user code fx cannot follow
        raise UserInputError(f"--equalize could not trace the model's forward with torch.fx "
                             f"({type(e).__name__}: {str(e)[:200]})",
                             hint="drop --equalize, or write forward without data-dependent Python control flow") from e
    pairs, skipped = _pairs(gm)
    mods = dict(gm.named_modules())       # the same module objects as ``model``'s
    spread_before = _spread(mods, pairs)
    with torch.no_grad():
        for _ in range(iterations):
            for a_name, b_name in pairs:
                a, b = mods[a_name], mods[b_name]
                s = torch.sqrt(_out_range(a) / _in_range(b))
                s = torch.where(torch.isfinite(s) & (s > 0), s, torch.ones_like(s)).float()
                a.weight.div_(s.reshape(-1, *([1] * (a.weight.dim() - 1))))
                if a.bias is not None:
                    a.bias.div_(s)
                if _kind(b) == "depthwise":
                    b.weight.mul_(s.reshape(-1, *([1] * (b.weight.dim() - 1))))
                else:
                    b.weight.mul_(s.reshape(1, -1, *([1] * (b.weight.dim() - 2))))
    with torch.no_grad():
        err = float((model(example) - module.eval()(example)).abs().max())
    return model, {"applied": bool(pairs), "pairs": [f"{a} -> {b}" for a, b in pairs], "skipped": skipped,
                   "weight_range_spread_before": spread_before, "weight_range_spread_after": _spread(mods, pairs),
                   "float_max_abs_change": err}


def _spread(mods, pairs) -> float | None:
    """The largest ratio between the biggest and smallest per-output-channel weight range over the pairs'
    first layers (how unequal the channels are; 1 is equal)."""
    if not pairs:
        return None
    return round(max(float(_out_range(mods[a]).max() / _out_range(mods[a]).min()) for a, _ in pairs), 2)


def tflite_weight_quantization(w):
    """Weights as TFLite's converter stores them, dequantised: per output channel (dim 0), symmetric,
    scale max|w| / 127, int8 in [-127, 127]."""
    import torch
    wn = w.detach().cpu().numpy().astype(np.float32)
    flat = wn.reshape(wn.shape[0], -1)
    scale = np.abs(flat).max(1) / 127.0
    scale[scale == 0] = 1.0
    q = np.clip(round_half_away(flat / scale[:, None]), -127, 127) * scale[:, None]
    return torch.from_numpy(q.reshape(wn.shape).astype(np.float32))


def bias_correct(module, x_calib: np.ndarray, batch: int = 64):
    """Empirical bias correction of weight quantisation on a copy of ``module``; ``x_calib`` float32 in the
    model's PyTorch layout. Returns (model, report dict)."""
    import torch
    import torch.nn.functional as F

    model = copy.deepcopy(module).eval()
    layers = [(n, m) for n, m in model.named_modules() if _weighted(m)]
    sums = {n: None for n, _ in layers}
    counts = {n: 0 for n, _ in layers}
    deltas = {n: (tflite_weight_quantization(m.weight) - m.weight.detach()) for n, m in layers}

    def hook(name, m):
        def fn(_, inputs, __):
            x = inputs[0].detach()
            dw = deltas[name]
            if isinstance(m, torch.nn.Linear):
                d = F.linear(x, dw)
                d = d.reshape(-1, d.shape[-1])
            else:
                conv = F.conv1d if isinstance(m, torch.nn.Conv1d) else F.conv2d
                if m.padding_mode != "zeros":
                    return
                d = conv(x, dw, None, m.stride, m.padding, m.dilation, m.groups)
                d = d.transpose(0, 1).reshape(d.shape[1], -1).T
            s = d.sum(0).double()
            sums[name] = s if sums[name] is None else sums[name] + s
            counts[name] += d.shape[0]
        return fn

    handles = [m.register_forward_hook(hook(n, m)) for n, m in layers]
    try:
        with torch.no_grad():
            for i in range(0, len(x_calib), batch):
                model(torch.from_numpy(np.ascontiguousarray(x_calib[i:i + batch], dtype=np.float32)))
    finally:
        for h in handles:
            h.remove()
    changed = {}
    with torch.no_grad():
        for n, m in layers:
            if sums[n] is None or counts[n] == 0:
                continue
            shift = (sums[n] / counts[n]).float()
            if m.bias is None:
                m.bias = torch.nn.Parameter(torch.zeros(shift.shape[0]))
            m.bias.sub_(shift)
            changed[n] = round(float(shift.abs().max()), 6)
    return model, {"applied": bool(changed), "layers": len(changed), "max_bias_shift": changed,
                   "samples": int(len(x_calib))}
