"""PyTorch module -> ``codegen.ir.Graph`` of the int8 model the convert stage would produce, and
the resource figures (MACs, params, arena, flash) the budget search compares against limits.

The graph mirrors what the int8 TFLite file contains after onnx2tf + the TF converter:
  * Conv2d (+ folded BatchNorm) -> CONV_2D [O,kh,kw,I] or DEPTHWISE_CONV_2D [1,kh,kw,O], int32 bias;
  * a following ReLU / ReLU6 (module or functional) is fused into ``fused_activation``;
  * a conv whose symmetric PyTorch padding differs from TF's SAME split (stride 2, even input) ->
    PAD (int32 [4,2] paddings) + VALID conv; 1x1 convs are SAME;
  * Linear -> FULLY_CONNECTED [out,in] + int32 bias; a flatten of a 1x1 map vanishes (FC takes the
    (1,1,1,C) tensor); other flatten/view/reshape -> RESHAPE (preceded by TRANSPOSE to NCHW order
    when the spatial size is > 1);
  * Hardswish -> HARD_SWISH, sigmoid -> LOGISTIC (module or functional), hard-sigmoid -> fused RELU6 (or
    ADD + RELU6) and a MUL by a scalar, tensor * tensor -> MUL
    (broadcasting, as in squeeze-and-excitation gates);
  * add -> ADD, cat -> CONCATENATION (axis in NHWC), MaxPool2d / AvgPool2d -> MAX_POOL_2D /
    AVERAGE_POOL_2D, AdaptiveAvgPool2d(1) / F.adaptive_avg_pool2d(x, 1) / mean over H,W -> MEAN (int32 axes const), softmax -> SOFTMAX;
  * nn.Upsample / F.interpolate with mode "nearest" -> RESIZE_NEAREST_NEIGHBOR (int32 [2] output size,
    align_corners and half_pixel_centers off, as onnx2tf converts torch's Resize); a size taken from
    another tensor's shape (``size=skip.shape[-2:]``) is static and folds away;
  * Tanh -> TANH, LeakyReLU -> LEAKY_RELU, PReLU -> PRELU, chunk/split pieces and ``x[...]`` slices ->
    STRIDED_SLICE (``irops``);
  * Dropout / Identity / eval BatchNorm vanish (folded);
  * shape access (``x.shape``, ``x.size()``, integer arithmetic on them) adds nothing, and a channel
    shuffle (view to (N, g, C/g, H, W), transpose/permute of the channel groups, view back) becomes
    TRANSPOSE to NCHW, RESHAPE to 5-D, TRANSPOSE (0, 2, 1, 3, 4), RESHAPE to 4-D, TRANSPOSE to NHWC,
    as the convert stage emits it (see ``irshape``).
Shapes come from torch.fx symbolic tracing plus shape propagation on the example input.

Figures come from ``tinyprune.codegen.estimate.estimate`` (the code-generation stage's planner and
flash accounting) when it is importable; until then a documented fallback (``fallback_estimate``)
is used: flash = constant bytes + 8 bytes of requantisation parameters per output channel,
arena = greedy first-fit offset plan over tensor lifetimes + the largest kernel scratch buffer.

May import: torch, tinyprune.errors, tinyprune.prune.irshape, tinyprune.prune.irops, tinyprune.codegen (ir,
scratch, estimate).
Not other stages.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field
from math import prod

import torch
import torch.nn as nn
import torch.nn.functional as F

from tinyprune.codegen import ir
from tinyprune.errors import UnsupportedModelError
from tinyprune.prune import ir1d, irops, irshape

_POOL_FUNCS = {F.max_pool2d: "MAX_POOL_2D", F.avg_pool2d: "AVERAGE_POOL_2D", torch.max_pool2d: "MAX_POOL_2D"}
_POOL_ARGS = {f: (("kernel_size", "stride", "padding", "dilation", "ceil_mode") if k == "MAX_POOL_2D"
                  else ("kernel_size", "stride", "padding", "ceil_mode")) for f, k in _POOL_FUNCS.items()}
_RELU_FUNCS = {torch.relu, torch.nn.functional.relu, torch.relu_}
# element-wise activations the converter emits as one TFLite operator of the same shape
_UNARY_MODULES = {nn.Hardswish: "HARD_SWISH", nn.Sigmoid: "LOGISTIC", nn.Tanh: "TANH"}
_UNARY_FUNCS = {F.hardswish: "HARD_SWISH", torch.sigmoid: "LOGISTIC", F.sigmoid: "LOGISTIC",
                "sigmoid": "LOGISTIC", **{f: "TANH" for f in irops.TANH_FUNCS}}
_IDENTITY_MODULES = (nn.Dropout, nn.Dropout2d, nn.Identity, nn.BatchNorm1d, nn.BatchNorm2d)


@dataclass
class Figures:
    """Resource figures of one candidate model (int8)."""
    macs: int
    params: int
    ram_bytes: int
    flash_bytes: int
    weight_bytes: int
    per_layer: dict = field(default_factory=dict)
    source: str = "fallback"  # "codegen" when codegen.estimate did the accounting

    def as_dict(self) -> dict:
        return {"macs": self.macs, "params": self.params, "ram_bytes": self.ram_bytes,
                "flash_bytes": self.flash_bytes, "weight_bytes": self.weight_bytes,
                "estimator": self.source}


def _nhwc(shape):
    shape = tuple(int(s) for s in shape)
    if len(shape) == 4:
        n, c, h, w = shape
        return (n, h, w, c)
    return shape


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _trace(model: nn.Module, example_input: torch.Tensor):
    from torch.fx import symbolic_trace
    from torch.fx.passes.shape_prop import ShapeProp
    try:
        gm = symbolic_trace(model)
    except Exception as e:  # noqa: BLE001 - any tracing failure means the same to the user
        raise UnsupportedModelError(
            f"cannot trace the model to estimate its int8 size ({type(e).__name__}: {str(e).splitlines()[0][:200]})",
            hint="the model's forward must be traceable by torch.fx: no data-dependent Python control flow "
                 "(if/for on tensor values); move such logic out of forward()") from None
    was_training = model.training
    gm.eval()
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(example_input)
    finally:
        gm.train(was_training)
    return gm


class _Builder:
    def __init__(self):
        self.tensors: dict[str, ir.Tensor] = {}
        self.ops: list[ir.Op] = []
        self.alias: dict[str, str] = {}     # fx node name -> ir tensor name (for vanished ops)
        self.layer_macs: dict[str, int] = {}
        self.one_d = False                  # 1-D model: (N, C, L) tensors are (N, L, C) (ir1d)
        self.maps1d: set[str] = set()       # ir tensors in the (1, 1, L, C) layout of 1-D convs/pools

    def act(self, name, shape):
        if self.one_d and len(shape) == 3:
            return ir1d.act3(self, name, shape)
        self.tensors[name] = ir.Tensor(name, _nhwc(shape), "int8", ir.Quant([1.0], [0]))
        return name

    def const(self, name, shape, dtype):
        self.tensors[name] = ir.Tensor(name, tuple(int(s) for s in shape), dtype, None, None, True)
        return name

    def raw(self, node) -> str:
        return self.alias.get(node.name, node.name)

    def src(self, node) -> str:
        """The tensor an op reads for fx ``node`` (a 1-D conv/pool map reshaped back to (1, L, C))."""
        x = self.raw(node)
        return ir1d.to3(self, x) if x in self.maps1d else x


def build_graph(model: nn.Module, example_input: torch.Tensor, name: str = "model") -> tuple[ir.Graph, dict]:
    """Return (graph, per-layer MACs keyed by module name) for ``model`` run on ``example_input``."""
    gm = _trace(model, example_input)
    modules = dict(gm.named_modules())
    b = _Builder()
    graph_inputs, graph_outputs = [], []
    users = {n.name: list(n.users) for n in gm.graph.nodes}

    def meta_shape(node):
        tm = node.meta.get("tensor_meta")
        if tm is None or not hasattr(tm, "shape"):
            raise UnsupportedModelError(f"node {node.name!r} does not produce a single tensor; "
                                        "tinyprune supports single-input single-output feed-forward models")
        return tuple(tm.shape)

    def fuse_relu(node, op):
        """If the only user of node is a ReLU/ReLU6, fuse it and alias the relu to this op's output."""
        us = users[node.name]
        if len(us) != 1:
            return
        u = us[0]
        kind = None
        if u.op == "call_module" and isinstance(modules[u.target], nn.ReLU):
            kind = "RELU"
        elif u.op == "call_module" and isinstance(modules[u.target], nn.ReLU6):
            kind = "RELU6"
        elif u.op in ("call_function", "call_method") and (u.target in _RELU_FUNCS or u.target in ("relu", "relu_")):
            kind = "RELU"
        if kind and op.options.get("fused_activation", "NONE") == "NONE":
            op.options["fused_activation"] = kind
            b.alias[u.name] = op.outputs[0]
            fused.add(u.name)

    def bn_passthrough(node):
        """A BatchNorm directly after a conv is folded: alias it and look through for a ReLU."""
        us = users[node.name]
        if len(us) == 1 and us[0].op == "call_module" and isinstance(modules[us[0].target], (nn.BatchNorm2d, nn.BatchNorm1d)):
            return us[0]
        return node

    fused: set[str] = _static_size_nodes(gm)
    values: set[str] = set()   # fx nodes holding Python values computed from shapes (irshape)
    split_shapes: dict[str, tuple] = {}   # chunk/split node -> shape of the tensor it splits
    for node in gm.graph.nodes:
        if node.name in fused:
            continue
        if irshape.is_shape_value(node, values):
            values.add(node.name)
            continue
        if node.op == "placeholder":
            b.one_d = len(meta_shape(node)) == 3
            graph_inputs.append(b.act(node.name, meta_shape(node)))
            continue
        if node.op == "output":
            out = node.args[0]
            if isinstance(out, (tuple, list)):
                if len(out) != 1:
                    raise UnsupportedModelError("the model returns several outputs; tinyprune supports one output")
                out = out[0]
            graph_outputs.append(b.src(out))
            continue
        if node.op == "get_attr":
            raise UnsupportedModelError(f"the model reads a raw parameter/buffer {node.target!r} in forward(); "
                                        "wrap it in a standard layer (Conv2d, Linear, ...)")
        if irops.is_split(node):    # its pieces (getitem) become STRIDED_SLICEs of the split tensor
            b.alias[node.name] = b.src(node.args[0])
            split_shapes[node.name] = meta_shape(node.args[0])
            continue
        oshape = meta_shape(node)
        args = [a for a in node.args if isinstance(a, torch.fx.Node) and a.name not in values]
        if node.target is operator.getitem and args:
            ishape = split_shapes.get(args[0].name) or meta_shape(args[0])
            if irops.getitem(b, node, b.src(args[0]), ishape, oshape):
                continue
        if node.op == "call_module":
            m = modules[node.target]
            if isinstance(m, nn.Conv2d):
                x = b.src(args[0])
                in_c, out_c = m.in_channels, m.out_channels
                kh, kw = _pair(m.kernel_size)
                sh, sw = _pair(m.stride)
                dh, dw = _pair(m.dilation)
                ishape = meta_shape(args[0])
                ih, iw = ishape[2], ishape[3]
                oh, ow = oshape[2], oshape[3]
                padding, pads = _padding_kind(m, ih, iw, oh, ow)
                if pads is not None:  # PyTorch's symmetric padding differs from TF SAME: explicit PAD + VALID
                    pt = f"{node.target}_pad"
                    pc = b.const(f"{node.target}.paddings", (4, 2), "int32")
                    b.tensors[pt] = ir.Tensor(pt, (1, ih + 2 * pads[0], iw + 2 * pads[1], in_c), "int8",
                                              ir.Quant([1.0], [0]))
                    b.ops.append(ir.Op("PAD", [x, pc], [pt], {"paddings": [[0, 0], [pads[0], pads[0]],
                                                                         [pads[1], pads[1]], [0, 0]]}, node.target))
                    x = pt
                depthwise = m.groups == in_c and m.groups > 1
                # groups < in_channels: TFLite's grouped CONV_2D, filter [out_c, kh, kw, in_c / groups]
                wname = b.const(f"{node.target}.weight", (1, kh, kw, out_c) if depthwise
                                else (out_c, kh, kw, in_c // m.groups), "int8")
                bname = b.const(f"{node.target}.bias", (out_c,), "int32")
                end = bn_passthrough(node)
                out_name = b.act(end.name, oshape)
                opts = {"stride_h": sh, "stride_w": sw, "dilation_h": dh, "dilation_w": dw, "padding": padding,
                        "fused_activation": "NONE"}
                if depthwise:
                    opts["depth_multiplier"] = out_c // in_c
                op = ir.Op("DEPTHWISE_CONV_2D" if depthwise else "CONV_2D", [x, wname, bname], [out_name], opts, node.target)
                b.ops.append(op)
                macs = oh * ow * out_c * kh * kw * (1 if depthwise else in_c // m.groups)
                b.layer_macs[node.target] = macs
                if end is not node:
                    fused.add(end.name)
                    b.alias[end.name] = out_name
                fuse_relu(end, op)
                b.alias.setdefault(node.name, out_name)
                continue
            if isinstance(m, nn.Conv1d):
                end = bn_passthrough(node)
                op, b.layer_macs[node.target] = ir1d.conv(b, node, m, b.raw(args[0]), meta_shape(args[0]), oshape,
                                                          end.name)
                if end is not node:
                    fused.add(end.name)
                    b.alias[end.name] = end.name
                fuse_relu(end, op)
                b.alias.setdefault(node.name, end.name)
                continue
            if ir1d.module_pool(m):
                op = ir1d.pool(b, node, b.raw(args[0]), oshape, *ir1d.module_pool(m), node.target)
                fuse_relu(node, op)
                continue
            if isinstance(m, nn.Linear):
                x = b.src(args[0])
                if len(meta_shape(args[0])) != 2:
                    raise UnsupportedModelError(f"layer {node.target!r}: Linear on a {len(meta_shape(args[0]))}-D "
                                                "tensor; flatten to (N, features) first")
                wname = b.const(f"{node.target}.weight", (m.out_features, m.in_features), "int8")
                bname = b.const(f"{node.target}.bias", (m.out_features,), "int32")
                end = bn_passthrough(node)
                out_name = b.act(end.name, oshape)
                op = ir.Op("FULLY_CONNECTED", [x, wname, bname], [out_name],
                           {"fused_activation": "NONE", "keep_num_dims": False}, node.target)
                b.ops.append(op)
                b.layer_macs[node.target] = m.in_features * m.out_features
                if end is not node:
                    fused.add(end.name)
                    b.alias[end.name] = out_name
                fuse_relu(end, op)
                continue
            if isinstance(m, _IDENTITY_MODULES):
                b.alias[node.name] = b.raw(args[0])
                continue
            if isinstance(m, (nn.ReLU, nn.ReLU6)):  # not fusable (e.g. after an ADD with several users)
                kind = "RELU" if isinstance(m, nn.ReLU) else "RELU6"
                b.ops.append(ir.Op(kind, [b.src(args[0])], [b.act(node.name, oshape)], {}, node.target))
                continue
            if isinstance(m, nn.Hardsigmoid):
                _hard_sigmoid(b, node, args[0], oshape, users)
                continue
            if isinstance(m, tuple(_UNARY_MODULES)):
                kind = next(k for t, k in _UNARY_MODULES.items() if isinstance(m, t))
                b.ops.append(ir.Op(kind, [b.src(args[0])], [b.act(node.name, oshape)], {}, node.target))
                continue
            if isinstance(m, nn.LeakyReLU):
                irops.leaky_relu(b, node, b.src(args[0]), oshape, m)
                continue
            if isinstance(m, nn.PReLU):
                irops.prelu(b, node, b.src(args[0]), oshape, m)
                continue
            if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
                _pool(b, node, args[0], oshape, "MAX_POOL_2D" if isinstance(m, nn.MaxPool2d) else "AVERAGE_POOL_2D",
                      m.kernel_size, m.stride, m.padding, m.ceil_mode, getattr(m, "dilation", 1), modules, fuse_relu,
                      node.target, meta_shape(args[0]))
                continue
            if isinstance(m, nn.AdaptiveAvgPool2d):
                if _pair(m.output_size) != (1, 1):
                    raise UnsupportedModelError(f"layer {node.target!r}: AdaptiveAvgPool2d only with output size 1")
                _mean(b, node, args[0], oshape)
                continue
            if isinstance(m, nn.Flatten) and b.one_d and len(meta_shape(args[0])) == 3:
                ir1d.flatten(b, node, b.src(args[0]), meta_shape(args[0]), oshape)
                continue
            if isinstance(m, nn.Flatten):
                _reshape(b, node, args[0], oshape, meta_shape(args[0]))
                continue
            if isinstance(m, nn.Upsample):
                _resize(b, node, args[0], oshape, m.mode, m.align_corners, node.target)
                continue
            if isinstance(m, nn.Softmax):
                b.ops.append(ir.Op("SOFTMAX", [b.src(args[0])], [b.act(node.name, oshape)], {"beta": 1.0}, node.target))
                continue
            raise UnsupportedModelError(f"layer {node.target!r} ({type(m).__name__}) has no int8 TFLite equivalent "
                                        "that tinyprune supports", hint=irops.SUPPORTED_HINT)
        # call_function / call_method
        tgt = node.target
        if tgt in (operator.add, torch.add, "add") or tgt == operator.iadd:
            if len(args) != 2:
                raise UnsupportedModelError(f"{node.name}: add with a constant is not supported; add two tensors")
            op = ir.Op("ADD", [b.src(args[0]), b.src(args[1])], [b.act(node.name, oshape)],
                       {"fused_activation": "NONE"}, node.name)
            b.ops.append(op)
            fuse_relu(node, op)
            continue
        if tgt in (operator.mul, torch.mul, "mul") or tgt == operator.imul:
            if len(args) != 2:
                raise UnsupportedModelError(f"{node.name}: multiplication by a constant is not supported; "
                                            "multiply two tensors (e.g. squeeze-and-excitation gates)")
            op = ir.Op("MUL", [b.src(args[0]), b.src(args[1])], [b.act(node.name, oshape)],
                       {"fused_activation": "NONE"}, node.name)
            b.ops.append(op)
            fuse_relu(node, op)
            continue
        if tgt is F.hardsigmoid:
            _hard_sigmoid(b, node, args[0], oshape, users)
            continue
        if tgt in _UNARY_FUNCS:
            b.ops.append(ir.Op(_UNARY_FUNCS[tgt], [b.src(args[0])], [b.act(node.name, oshape)], {}, node.name))
            continue
        if tgt in irops.LEAKY_FUNCS:
            irops.leaky_relu(b, node, b.src(args[0]), oshape)
            continue
        if tgt in _POOL_FUNCS:   # F.max_pool2d / F.avg_pool2d(x, kernel_size, stride=None, padding=0, ...)
            kw_ = dict(zip(_POOL_ARGS[tgt], node.args[1:]), **node.kwargs)
            ishape = meta_shape(args[0])
            if any(isinstance(v, torch.fx.Node) for v in kw_.values()):
                # a window read from the input's shape, F.avg_pool2d(x, x.shape[-2:]) (DS-CNN ports): the
                # converter sees the traced numbers; a 1x1 output means the whole map is the window
                if tuple(oshape[2:]) != (1, 1) or any(isinstance(kw_.get(k), torch.fx.Node)
                                                       for k in ("padding", "ceil_mode", "dilation")):
                    raise UnsupportedModelError(f"{node.name}: a pooling window computed in forward() is "
                                                "supported for a global pool (1x1 output) only",
                                                hint="pass the window as numbers, e.g. F.avg_pool2d(x, (5, 3))")
                kw_["kernel_size"], kw_["stride"] = tuple(ishape[2:]), None
            _pool(b, node, args[0], oshape, _POOL_FUNCS[tgt], kw_["kernel_size"], kw_.get("stride"),
                  kw_.get("padding", 0), kw_.get("ceil_mode", False), kw_.get("dilation", 1), modules, fuse_relu,
                  node.name, meta_shape(args[0]))
            continue
        if tgt in ir1d.POOL1D_FUNCS:
            kw_ = dict(zip(ir1d.POOL1D_ARGS, node.args[1:]), **node.kwargs)
            op = ir1d.pool(b, node, b.raw(args[0]), oshape, ir1d.POOL1D_FUNCS[tgt], kw_["kernel_size"],
                           kw_.get("stride"), kw_.get("padding", 0), kw_.get("ceil_mode", False), node.name)
            fuse_relu(node, op)
            continue
        if tgt is F.adaptive_avg_pool2d:
            size = node.args[1] if len(node.args) > 1 else node.kwargs.get("output_size")
            if _pair(size) != (1, 1):
                raise UnsupportedModelError(f"{node.name}: adaptive_avg_pool2d only with output size 1")
            _mean(b, node, args[0], oshape)
            continue
        if tgt is F.interpolate:
            mode = node.kwargs.get("mode", node.args[3] if len(node.args) > 3 else "nearest")
            corners = node.kwargs.get("align_corners", node.args[4] if len(node.args) > 4 else None)
            _resize(b, node, args[0], oshape, mode, corners, node.name)
            continue
        if tgt in (torch.cat, torch.concat):
            tensors = node.args[0]
            dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
            rank = len(oshape)
            dim = dim % rank
            axis = {0: 0, 1: 3, 2: 1, 3: 2}[dim] if rank == 4 else dim
            b.ops.append(ir.Op("CONCATENATION", [b.src(t) for t in tensors], [b.act(node.name, oshape)],
                               {"axis": axis, "fused_activation": "NONE"}, node.name))
            continue
        if tgt in _RELU_FUNCS or tgt in ("relu", "relu_"):
            b.ops.append(ir.Op("RELU", [b.src(args[0])], [b.act(node.name, oshape)], {}, node.name))
            continue
        if b.one_d and len(meta_shape(args[0])) == 3 and tgt in (torch.flatten, "flatten", "view", "reshape",
                                                                   torch.reshape):
            ir1d.flatten(b, node, b.src(args[0]), meta_shape(args[0]), oshape)
            continue
        if tgt in (torch.flatten, "flatten", "view", "reshape", torch.reshape):
            _reshape(b, node, args[0], oshape, meta_shape(args[0]))
            continue
        if tgt in irshape.TRANSPOSE_TARGETS:
            irshape.transpose(b, node, b.src(args[0]), meta_shape(args[0]), oshape)
            continue
        if tgt in irshape.CONTIGUOUS_TARGETS:
            b.alias[node.name] = b.raw(args[0])
            continue
        if tgt in (torch.mean, "mean") and b.one_d and len(meta_shape(args[0])) == 3:
            dims = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else None)
            keep = node.kwargs.get("keepdim", node.args[2] if len(node.args) > 2 else False)
            ir1d.mean(b, node, b.src(args[0]), meta_shape(args[0]), oshape, dims, keep)
            continue
        if tgt in (torch.mean, "mean"):
            _mean(b, node, args[0], oshape)
            continue
        if tgt in (torch.softmax, torch.nn.functional.softmax, "softmax"):
            b.ops.append(ir.Op("SOFTMAX", [b.src(args[0])], [b.act(node.name, oshape)], {"beta": 1.0}, node.name))
            continue
        if tgt is getattr:
            raise UnsupportedModelError(f"{node.name}: reading the tensor attribute {node.args[1]!r} in forward() is "
                                        "not supported (shape access x.shape / x.size() is)")
        raise UnsupportedModelError(f"operation {getattr(tgt, '__name__', tgt)!r} ({node.name}) has no int8 TFLite "
                                    "equivalent that tinyprune supports", hint=irops.SUPPORTED_HINT)
    g = ir.Graph(b.tensors, b.ops, graph_inputs, graph_outputs, name)
    return g, b.layer_macs


def _padding_kind(m: nn.Conv2d, ih, iw, oh, ow):
    """("SAME" | "VALID", explicit (pad_h, pad_w) or None), as onnx2tf emits it: a 1x1 or unpadded
    stride-1 conv is SAME/VALID, a padding that equals TF's SAME split is SAME, any other symmetric
    padding becomes a PAD op before a VALID conv."""
    if isinstance(m.padding, str):
        return ("VALID", None) if m.padding == "valid" else ("SAME", None)
    ph, pw = _pair(m.padding)
    kh, kw = _pair(m.kernel_size)
    sh, sw = _pair(m.stride)
    dh, dw = _pair(m.dilation)
    if kh == kw == 1 and ph == pw == 0 and sh == sw == 1:
        return "SAME", None
    if ph == pw == 0:
        return "VALID", None

    def same_split(i, k, s, d):
        total = max((-(-i // s) - 1) * s + (k - 1) * d + 1 - i, 0)
        return total // 2, total - total // 2
    if (oh == -(-ih // sh) and ow == -(-iw // sw) and same_split(ih, kh, sh, dh) == (ph, ph)
            and same_split(iw, kw, sw, dw) == (pw, pw)):
        return "SAME", None
    return "VALID", (ph, pw)


def _non_negative(node, modules, depth: int = 0) -> bool:
    """The fx node's value can never be negative (a ReLU, ReLU6, sigmoid or hard-sigmoid output, or a
    max-pool or torch.cat of such values): padding it with 0 for a max-pool is exact. The same rule as
    convert.onnx_utils._non_negative, which decides the padding the int8 model gets."""
    for _ in range(64):
        if node.op == "call_function" and node.target is torch.cat:
            parts = node.args[0] if node.args else node.kwargs.get("tensors", ())
            return depth < 16 and bool(parts) and all(isinstance(p, torch.fx.Node) and
                                                      _non_negative(p, modules, depth + 1) for p in parts)
        if node.op == "call_module":
            m = modules[node.target]
            if isinstance(m, (nn.ReLU, nn.ReLU6, nn.Sigmoid, nn.Hardsigmoid)):
                return True
            if not isinstance(m, nn.MaxPool2d):
                return False
        elif node.op in ("call_function", "call_method"):
            if not (node.target in _RELU_FUNCS or node.target in ("relu", "relu_", "sigmoid")
                    or node.target in (torch.sigmoid, F.sigmoid, F.relu6, F.hardsigmoid)):
                return False
            return True
        else:
            return False
        node = node.args[0]
    return False


def _pool(b, node, src, oshape, kind, kernel, stride, padding, ceil_mode, dilation, modules, fuse_relu, name,
          ishape):
    """MAX_POOL_2D / AVERAGE_POOL_2D of nn.MaxPool2d/AvgPool2d or F.max_pool2d/avg_pool2d (VALID; a padded or
    ceil-mode max-pool after a ReLU gets the explicit PAD the convert stage gives it)."""
    kh, kw = _pair(kernel)
    st = _pair(stride if stride else kernel)
    x = b.src(src)
    if any(_pair(padding)) or ceil_mode:
        if kind != "MAX_POOL_2D" or _pair(dilation) != (1, 1) or not _non_negative(src, modules):
            raise UnsupportedModelError(
                f"layer {name!r}: padded or ceil-mode pooling is supported for max-pool after a "
                "ReLU (or sigmoid) only", hint="put the ReLU before the pool, or use padding=0")
        x = _explicit_pool_pad(b, node, x, ishape, oshape, (kh, kw), st, _pair(padding))
    op = ir.Op(kind, [x], [b.act(node.name, oshape)],
               {"stride_h": st[0], "stride_w": st[1], "filter_h": kh, "filter_w": kw,
                "padding": "VALID", "fused_activation": "NONE"}, name)
    b.ops.append(op)
    fuse_relu(node, op)


def _explicit_pool_pad(b: _Builder, node, x, ishape, oshape, k, st, pads) -> str:
    """PAD (with 0) in front of a VALID max-pool, as the convert stage rewrites a padded or ceil-mode
    max-pool (convert/onnx_utils.explicit_max_pool_padding): the end pads grow to what the output
    size needs."""
    ih, iw = ishape[2], ishape[3]
    end = [max((oshape[2 + a] - 1) * st[a] + k[a] - ((ih, iw)[a] + pads[a]), pads[a]) for a in (0, 1)]
    pt = f"{node.target}_pad"
    pc = b.const(f"{node.target}.paddings", (4, 2), "int32")
    b.tensors[pt] = ir.Tensor(pt, (1, ih + pads[0] + end[0], iw + pads[1] + end[1], ishape[1]), "int8",
                              ir.Quant([1.0], [0]))
    b.ops.append(ir.Op("PAD", [x, pc], [pt], {"paddings": [[0, 0], [pads[0], end[0]], [pads[1], end[1]], [0, 0]]},
                       node.target))
    return pt


def _hard_sigmoid(b: _Builder, node, arg, oshape, users):
    """hard-sigmoid(x) = relu6(x + 3) * (1/6), as the convert stage rewrites it (onnx_utils.hardsigmoid_as_relu6):
    the + 3 folds into the bias of a conv / linear right before it, which then gets a fused RELU6 (else an
    ADD of a scalar with a fused RELU6), and a MUL by a scalar follows."""
    x = b.src(arg)
    prod = next((op for op in b.ops if x in op.outputs), None)
    if (prod is not None and prod.kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
            and prod.options.get("fused_activation", "NONE") == "NONE" and len(users[arg.name]) == 1):
        prod.options["fused_activation"] = "RELU6"
    else:
        shifted = f"{node.name}_relu6"
        b.tensors[shifted] = ir.Tensor(shifted, _nhwc(oshape), "int8", ir.Quant([1.0], [0]))
        b.ops.append(ir.Op("ADD", [x, b.const(f"{node.name}.shift", (), "int8")], [shifted],
                           {"fused_activation": "RELU6"}, node.name))
        x = shifted
    b.ops.append(ir.Op("MUL", [x, b.const(f"{node.name}.scale", (), "int8")], [b.act(node.name, oshape)],
                       {"fused_activation": "NONE"}, node.name))

def _static_size_nodes(gm) -> set[str]:
    """Nodes that only compute a static output size for F.interpolate (``x.shape``, ``x.size()`` and
    indexing of them): shapes are fixed at export, so they fold into the RESIZE's size constant."""
    sizes: set[str] = set()
    for node in reversed(list(gm.graph.nodes)):  # users before producers
        is_shape = (node.op == "call_function" and node.target is getattr and node.args[1:] == ("shape",)) or \
            (node.op == "call_method" and node.target == "size") or \
            (node.op == "call_function" and node.target is operator.getitem)
        if is_shape and node.users and all(
                u.name in sizes or (u.op == "call_function" and u.target is F.interpolate and u.args[0] is not node)
                for u in node.users):
            sizes.add(node.name)
    return sizes


def _resize(b: _Builder, node, arg, oshape, mode, align_corners, name: str):
    """RESIZE_NEAREST_NEIGHBOR to ``oshape``'s height and width (the convert stage's Resize check
    takes nearest mode only)."""
    if mode != "nearest" or align_corners:
        raise UnsupportedModelError(
            f"layer {name!r}: {mode!r} upsampling{' with align_corners' if align_corners else ''} has no int8 TFLite "
            "kernel that tinyprune supports; only nearest-neighbour resizing",
            hint="use nn.Upsample(scale_factor=2, mode='nearest') or F.interpolate(x, ..., mode='nearest')")
    if len(oshape) != 4:
        raise UnsupportedModelError(f"layer {name!r}: resizing a {len(oshape)}-D tensor; only (N, C, H, W) images are "
                                    "supported")
    size = b.const(f"{node.name}.size", (2,), "int32")
    b.ops.append(ir.Op("RESIZE_NEAREST_NEIGHBOR", [b.src(arg), size], [b.act(node.name, oshape)],
                       {"align_corners": False, "half_pixel_centers": False}, name))


def _mean(b: _Builder, node, arg, oshape):
    axes = b.const(f"{node.name}.axes", (2,), "int32")
    b.ops.append(ir.Op("MEAN", [b.src(arg), axes], [b.act(node.name, oshape)],
                       {"axes": [1, 2], "keep_dims": len(oshape) == 4}, node.name))


def _reshape(b: _Builder, node, arg, oshape, ishape):
    x = b.src(arg)
    if irshape.reshape_to_map(b, node, x, ishape, oshape):  # e.g. the end of a channel shuffle
        return
    if len(ishape) == 4 and ishape[2] * ishape[3] == 1 and len(oshape) == 2:
        b.alias[node.name] = x  # onnx2tf feeds the (1,1,1,C) tensor straight into FULLY_CONNECTED
        return
    if len(ishape) == 4 and ishape[2] * ishape[3] > 1:  # NHWC -> NCHW before flattening in PyTorch order
        t = f"{node.name}_nchw"
        b.tensors[t] = ir.Tensor(t, tuple(int(s) for s in ishape), "int8", ir.Quant([1.0], [0]))
        perm = b.const(f"{node.name}.perm", (4,), "int32")
        b.ops.append(ir.Op("TRANSPOSE", [x, perm], [t], {"perm": [0, 3, 1, 2]}, node.name))
        x = t
    shape = b.const(f"{node.name}.shape", (len(oshape),), "int32")
    b.ops.append(ir.Op("RESHAPE", [x, shape], [b.act(node.name, oshape)], {}, node.name))


# --------------------------------------------------------------------------------------------
# figures

def fallback_estimate(graph: ir.Graph, kernels: str = "portable") -> tuple[int, int, int]:
    """(arena_bytes, flash_bytes, weight_bytes) without the codegen stage: see the module docstring."""
    try:
        from tinyprune.codegen.scratch import scratch_bytes
    except ImportError:  # pragma: no cover
        def scratch_bytes(op, graph, kernels="portable"):
            return 0
    weight_bytes = sum(t.nbytes for t in graph.tensors.values() if t.is_const)
    requant = sum(8 * graph.tensors[op.outputs[0]].shape[-1] for op in graph.ops
                  if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"))
    # lifetimes of activations (RESHAPE is a copy in the fallback: conservative)
    first, last = {}, {}
    for name in graph.inputs:
        first[name] = 0
    for i, op in enumerate(graph.ops):
        for t in op.outputs:
            first.setdefault(t, i)
        for t in op.inputs:
            if t and not graph.tensors[t].is_const:
                last[t] = i
    for name in graph.outputs:
        last[name] = len(graph.ops)
    acts = [(graph.tensors[t].nbytes, t) for t in first]
    acts.sort(key=lambda x: (-x[0], x[1]))
    placed: list[tuple[int, int, int, int]] = []  # offset, size, first, last
    peak = 0
    for size, t in acts:
        a, z = first[t], last.get(t, first[t])
        conflicts = sorted((o, s) for o, s, f, l in placed if not (l < a or z < f))
        off = 0
        for o, s in conflicts:
            if off + _align(size) <= o:
                break
            off = max(off, o + _align(s))
        placed.append((off, size, a, z))
        peak = max(peak, off + _align(size))
    scratch = max([scratch_bytes(op, graph, kernels) for op in graph.ops] or [0])
    return peak + _align(scratch), weight_bytes + requant, weight_bytes


def _align(n: int, a: int = 16) -> int:
    return (n + a - 1) // a * a


def figures(model: nn.Module, example_input: torch.Tensor, kernels: str = "portable", *,
            fast_weights: bool = False) -> Figures:
    """Int8 MACs / params / arena / flash of ``model`` on ``example_input``'s shape, as code
    generation will emit it for ``kernels`` (and ``fast_weights``: int16 conv filters)."""
    graph, layer_macs = build_graph(model, example_input)
    params = sum(p.numel() for p in model.parameters())
    try:
        from tinyprune.codegen.estimate import estimate  # the codegen stage's own accounting
    except ImportError:
        estimate = None
    macs = sum(layer_macs.values())
    if estimate is not None:
        est = estimate(graph, kernels=kernels, fast_weights=fast_weights)
        return Figures(macs=int(getattr(est, "macs", macs) or macs), params=params, ram_bytes=int(est.arena_bytes),
                       flash_bytes=int(est.flash_bytes), weight_bytes=int(est.weight_bytes),
                       per_layer=dict(layer_macs), source="codegen")
    arena, flash, wbytes = fallback_estimate(graph, kernels)
    return Figures(macs=macs, params=params, ram_bytes=arena, flash_bytes=flash, weight_bytes=wbytes,
                   per_layer=dict(layer_macs), source="fallback")


def total_elems(shape) -> int:
    return prod(int(s) for s in shape)
