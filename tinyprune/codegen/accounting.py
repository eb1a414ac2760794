"""Flash accounting: the exact bytes of model data the code generator emits into flash.

Layout contract (the emitter in codegen must keep to it, or update this module in the same commit):
  * every constant tensor an op reads is one ``const`` array of its dtype (int8 weights 1 B per
    element, int32 biases 4 B per element, any other constant at its dtype size), emitted once even
    when several ops share it;
  * CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED additionally get two int32 arrays with one
    entry per output channel (requantisation multiplier and shift): 8 B per output channel;
  * constants that only parameterise an op (RESHAPE/SQUEEZE shapes, MEAN/SUM axes, TRANSPOSE perm,
    PAD paddings, RESIZE_NEAREST_NEIGHBOR size, STRIDED_SLICE begin/end/strides) are folded into the generated code and cost no array (``PARAMETER_INPUTS``);
  * each array is padded to a multiple of ``ARRAY_ALIGN`` (4) bytes;
  * with fast weights (``fast_weights=True``, the DSP kernels only) a CONV_2D filter is emitted as
    int16 rows of 4 * ceil(K / 4) elements (tinyprune/codegen/relayout.py): ``conv_x16_bytes``.

This module may import only tinyprune.errors and tinyprune.codegen.ir.
"""
from __future__ import annotations

from dataclasses import dataclass

from tinyprune.codegen import ir
from tinyprune.errors import UserInputError

ARRAY_ALIGN = 4
KERNEL_VARIANTS = ("portable", "dsp", "cmsis-nn")
PER_CHANNEL_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"})
# op kind -> input indices that are folded into code (no flash array)
PARAMETER_INPUTS = {"RESHAPE": frozenset({1}), "SQUEEZE": frozenset({1}), "MEAN": frozenset({1}),
                    "SUM": frozenset({1}), "TRANSPOSE": frozenset({1}), "PAD": frozenset({1}),
                    "PADV2": frozenset({1}), "RESIZE_NEAREST_NEIGHBOR": frozenset({1}),
                    "STRIDED_SLICE": frozenset({1, 2, 3})}


@dataclass
class FlashBreakdown:
    weights: int        # weight arrays of CONV/DEPTHWISE/FC (input 1), padded
    biases: int         # bias arrays (input 2 of CONV/DEPTHWISE/FC), padded
    quant_params: int   # per-output-channel multiplier + shift arrays, 8 B per channel
    total: int          # everything above plus ``other``
    other: int = 0      # any other emitted constant (e.g. a constant ADD operand), padded

    def to_json(self) -> dict:
        return {"weights": self.weights, "biases": self.biases, "quant_params": self.quant_params,
                "other": self.other, "total": self.total}


def padded(nbytes: int, align: int = ARRAY_ALIGN) -> int:
    return -(-nbytes // align) * align


def output_channels(op: ir.Op, graph: ir.Graph) -> int:
    """Output channels of a CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED (from its weights)."""
    w = graph.tensors[op.inputs[1]]
    if op.kind == "DEPTHWISE_CONV_2D":
        return int(w.shape[-1])
    return int(w.shape[0])


def check_kernels(kernels: str) -> None:
    if kernels not in KERNEL_VARIANTS:
        raise UserInputError(f"unknown kernel variant {kernels!r}",
                             hint=f"use one of: {', '.join(KERNEL_VARIANTS)}")


def conv_x16_bytes(shape) -> int:
    """Bytes of a CONV_2D filter [out_c, kh, kw, in_c] in the fast-weights int16 layout."""
    k = int(shape[1]) * int(shape[2]) * int(shape[3])
    return int(shape[0]) * 4 * (-(-k // 4)) * 2


def flash_bytes(graph: ir.Graph, kernels: str = "portable", *, fast_weights: bool = False) -> FlashBreakdown:
    """Exact flash bytes of the model data codegen emits for ``graph`` (code excluded)."""
    check_kernels(kernels)
    role: dict[str, str] = {}  # const tensor -> "weights" | "biases" | "other" (first role wins)
    x16: set[str] = set()      # CONV_2D filters emitted in the fast-weights layout
    quant = 0
    for i, op in enumerate(graph.ops):
        params = PARAMETER_INPUTS.get(op.kind, frozenset())
        for j, t in enumerate(op.inputs):
            if not t:
                continue
            if t not in graph.tensors:
                raise UserInputError(f"op {i} ({op.kind} {op.name!r}) reads unknown tensor {t!r}")
            if not graph.tensors[t].is_const or j in params:
                continue
            if op.kind in PER_CHANNEL_OPS and j == 1:
                role.setdefault(t, "weights")
                if fast_weights and op.kind == "CONV_2D":
                    x16.add(t)
            elif op.kind in PER_CHANNEL_OPS and j == 2:
                role.setdefault(t, "biases")
            else:
                role.setdefault(t, "other")
        if op.kind in PER_CHANNEL_OPS:
            if len(op.inputs) < 2 or not op.inputs[1] or op.inputs[1] not in graph.tensors:
                raise UserInputError(f"op {i} ({op.kind} {op.name!r}) has no weights tensor")
            quant += 8 * output_channels(op, graph)
    sums = {"weights": 0, "biases": 0, "other": 0}
    for t, r in role.items():
        sums[r] += padded(graph.tensors[t].nbytes)
        if t in x16:     # emitted as its int16 re-layout (as well, when another op reads it as int8)
            sums[r] += padded(conv_x16_bytes(graph.tensors[t].shape)) - \
                (0 if _int8_reader(graph, t) else padded(graph.tensors[t].nbytes))
    return FlashBreakdown(weights=sums["weights"], biases=sums["biases"], quant_params=quant,
                          total=sums["weights"] + sums["biases"] + quant + sums["other"], other=sums["other"])


def _int8_reader(graph: ir.Graph, t: str) -> bool:
    """Does any op other than a CONV_2D (as its filter) read constant t (so its int8 array stays)?"""
    return any(t in op.inputs and not (op.kind == "CONV_2D" and op.inputs.index(t) == 1) for op in graph.ops)
