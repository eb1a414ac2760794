"""Resource estimate of an int8 graph: arena (memory plan incl. kernel scratch), flash (model
data), MACs, per-layer figures. The pruning stage calls ``estimate`` on graphs it builds from
PyTorch shapes; codegen reports the same figures for the converted model, so both agree.

This module may import only tinyprune.errors and tinyprune.codegen (ir, planner, accounting, scratch).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from math import prod

from tinyprune.codegen import ir
from tinyprune.codegen.accounting import (PARAMETER_INPUTS, FlashBreakdown, check_kernels,
                                          flash_bytes)
from tinyprune.codegen.planner import MemoryPlan, plan_memory
from tinyprune.errors import UserInputError

# Kernel libraries that break the planner's raster-order overlap contract (planner.PIXELS_IN_FLIGHT):
# CMSIS-NN's arm_nn_mat_mult_nt_t_s8 (DSP path) loops output-channel pairs outside the pixel loop.
OVERLAP_UNSAFE_KERNELS = frozenset({"cmsis-nn"})


def default_overlap(kernels: str) -> bool:
    """Overlap is on by default wherever the kernels keep the raster-order contract: the portable
    reference kernels and the Cortex-M DSP variants (firmware/kernels/arm/tp_nn_arm.h documents the
    pixels each keeps in flight, all within planner.PIXELS_IN_FLIGHT); off for CMSIS-NN."""
    return kernels not in OVERLAP_UNSAFE_KERNELS


@dataclass
class Estimate:
    arena_bytes: int                 # plan.arena_bytes
    flash_bytes: int                 # model data in flash (FlashBreakdown.total), code excluded
    weight_bytes: int                # constant tensor bytes (weights + biases + other), padded
    macs: int                        # multiply-accumulates of CONV/DEPTHWISE/FC
    per_layer: list[dict]            # op, kind, name, macs, params, output_bytes, scratch_bytes
    plan: MemoryPlan
    flash: FlashBreakdown | None = field(default=None)

    def to_json(self) -> dict:
        return {"arena_bytes": self.arena_bytes, "flash_bytes": self.flash_bytes,
                "weight_bytes": self.weight_bytes, "macs": self.macs,
                "peak_lower_bound": self.plan.peak_lower_bound,
                "two_largest_bound": self.plan.two_largest_bound,
                "flash": self.flash.to_json() if self.flash else None,
                "per_layer": [dict(x) for x in self.per_layer]}


def macs(op: ir.Op, graph: ir.Graph) -> int:
    """Multiply-accumulates of one op: CONV_2D out_elems*kh*kw*in_c_per_group, DEPTHWISE_CONV_2D
    out_elems*kh*kw, FULLY_CONNECTED out_elems*in_features; every other op 0."""
    if op.kind not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
        return 0
    if len(op.inputs) < 2 or not op.inputs[1] or op.inputs[1] not in graph.tensors or not op.outputs:
        raise UserInputError(f"{op.kind} {op.name!r} has no weights tensor")
    w = graph.tensors[op.inputs[1]].shape
    out = prod(graph.tensors[op.outputs[0]].shape)
    if op.kind == "CONV_2D":
        return out * w[1] * w[2] * w[3]
    if op.kind == "DEPTHWISE_CONV_2D":
        return out * w[1] * w[2]
    return out * w[-1]


def _params(op: ir.Op, graph: ir.Graph) -> int:
    skip = PARAMETER_INPUTS.get(op.kind, frozenset())
    return sum(prod(graph.tensors[t].shape) for j, t in enumerate(op.inputs)
               if t and j not in skip and graph.tensors[t].is_const)


def estimate(graph: ir.Graph, kernels: str = "portable", *, inplace: bool = True, reorder: bool = True,
             alignment: int = 16, overlap: bool | None = None, concat: bool = False,
             fast_weights: bool = False) -> Estimate:
    """Plan memory (scratch from codegen.scratch for ``kernels``) and count flash and MACs.
    Keyword options are passed to plan_memory; codegen and pruning must use the same ones.
    ``overlap=None`` means default_overlap(kernels). ``fast_weights``: CONV_2D filters counted in
    the int16 layout of the DSP kernels (codegen's --fast-weights)."""
    check_kernels(kernels)
    if overlap is None:
        overlap = default_overlap(kernels)
    if overlap and kernels in OVERLAP_UNSAFE_KERNELS:
        raise UserInputError(
            f"overlap cannot be used with the {kernels} kernels: their matrix kernels (1x1 convolution, "
            "fully connected) compute output channels across the whole image, so an output written "
            "over its own input would read bytes it already overwrote",
            hint="drop --overlap, or use the portable kernels (docs/memory-planning.md)")
    from tinyprune.codegen.scratch import scratch_bytes
    scratch = {i: int(scratch_bytes(op, graph, kernels)) for i, op in enumerate(graph.ops)}
    plan = plan_memory(graph, {i: s for i, s in scratch.items() if s}, inplace=inplace, reorder=reorder,
                       alignment=alignment, overlap=overlap, concat=concat)
    flash = flash_bytes(graph, kernels, fast_weights=fast_weights)
    per_layer = []
    for i, op in enumerate(graph.ops):
        per_layer.append({"op": i, "kind": op.kind, "name": op.name, "macs": macs(op, graph),
                          "params": _params(op, graph),
                          "output_bytes": sum(graph.tensors[t].nbytes for t in op.outputs),
                          "scratch_bytes": scratch[i]})
    return Estimate(arena_bytes=plan.arena_bytes, flash_bytes=flash.total,
                    weight_bytes=flash.weights + flash.biases + flash.other,
                    macs=sum(x["macs"] for x in per_layer), per_layer=per_layer, plan=plan, flash=flash)
