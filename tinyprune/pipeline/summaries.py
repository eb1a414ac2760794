"""The summary.json records ``tinyprune build`` makes of each stage's own report (schema in docs/build.md).

May import tinyprune.codegen (the memory plan for the arena plot); no other stage.
"""
from __future__ import annotations

import json
from pathlib import Path


def get(d: dict, *keys):
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def prune_layers(rep: dict) -> list[dict]:
    out = []
    for l in rep.get("layers") or []:
        out.append({"name": l.get("name"), "kind": l.get("kind"), "channels_before": l.get("out_before"),
                    "channels_after": l.get("out_after"), "macs_before": l.get("macs_before"),
                    "macs_after": l.get("macs_after"), "params_before": l.get("params_before"),
                    "params_after": l.get("params_after")})
    return out


def codegen_summary(path: Path, tflite: Path) -> dict:
    from tinyprune.codegen.tflite_reader import read_model
    cg = json.loads(Path(path).read_text())
    layers = cg.get("layers") or []
    model = read_model(tflite)
    g = model.graph

    def const_bytes(op_index) -> int | None:   # the layer's weights and biases (int8/int32 in flash)
        if op_index is None or not 0 <= op_index < len(g.ops):
            return None
        return sum(g.tensors[t].nbytes for t in g.ops[op_index].inputs if t and g.tensors[t].is_const)
    return {"arena_bytes": cg["arena_bytes"], "flash_bytes": cg["flash_bytes"], "weight_bytes": cg["weight_bytes"],
            "macs": cg["macs"], "peak_bytes": cg.get("peak_bytes"), "tflm_arena_bytes": cg.get("tflm_arena_bytes"),
            "fast_weights": bool(cg.get("fast_weights")), "notes": cg.get("notes", []),
            "layers": [{"name": l.get("name"), "kind": l.get("kind"), "macs": l.get("macs"),
                        "weight_bytes": const_bytes(l.get("op")), "input_bytes": l.get("input_bytes"),
                        "output_bytes": l.get("output_bytes"), "scratch_bytes": l.get("scratch_bytes"),
                        **({"variant": l["variant"]} if "variant" in l else {})} for l in layers],
            **_arena_timeline(model, cg)}


def _arena_timeline(model, cg: dict) -> dict:
    """Tensors of the memory plan (offset, size, live steps) for the report's arena plot: the same
    planner call that codegen made (same model, same kernel scratch, same options)."""
    from tinyprune.codegen.generate import plan_for
    plan = plan_for(model, cg["plan_kernels"], overlap=cg["plan"]["overlap"]).plan
    assert plan.arena_bytes == cg["arena_bytes"], "memory plan differs from codegen's"
    tensors = [{"name": n, "offset": plan.offsets[n], "size": model.graph.tensors[n].nbytes,
                "first": first, "last": last}
               for n, (first, last) in sorted(plan.lifetimes.items()) if n in plan.offsets]
    for op, size in sorted(plan.scratch.items()):
        if size and op in plan.scratch_offsets:
            step = plan.order.index(op)
            tensors.append({"name": f"scratch of op {op}", "offset": plan.scratch_offsets[op], "size": size,
                            "first": step, "last": step})
    return {"tensors": tensors, "steps": len(plan.order)}


def validation_summary(rep, target: str) -> dict:
    d = rep.to_dict()
    counters = d.get("counters") or {}
    confusion = d.get("confusion_matrix")
    return {"target": target, "samples": d.get("samples"), "accuracy": d.get("accuracy"),
            "passed": d.get("passed"), "failures": d.get("failures") or [],
            "bit_exact": d.get("bit_exact"), "mismatched_samples": len(d.get("mismatched_samples") or []),
            "confusion": confusion, "classes": list(range(len(confusion))) if confusion else None,
            "counter_per_inference": counters.get("median"), "counter_unit": counters.get("unit"),
            "layers": [{"index": l.get("index"), "name": l.get("name"), "mean": l.get("mean")}
                       for l in d.get("layers") or []],
            "device": d.get("device")}
