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
                        "variant": (l.get("variant") or {}).get("name"),
                        "variant_reason": (l.get("variant") or {}).get("reason", "")} for l in layers],
            "warnings": list(cg.get("warnings") or []),
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


REDUCED = (("macs", "macs"), ("params", "params"), ("flash_bytes", "flash_bytes"), ("ram_bytes", "ram_bytes"))


def reduction(before: dict, after: dict) -> dict:
    """How far pruning went: before / after for MACs, parameters, model constants (flash) and arena (RAM),
    from the pruning stage's int8 estimates (the codegen planner on the int8 graph), rounded to 2 places."""
    return {key: round(before[key] / after[key], 2) if before.get(key) and after.get(key) else None
            for key, _ in REDUCED}


def pruning_vs_codegen(pruning: dict, codegen: dict) -> dict:
    """The pruned model's estimated figures beside the code generator's for the int8 model that runs:
    {figure: {"estimate", "codegen"}} and whether all three are identical (they are meant to be)."""
    est = pruning.get("estimate_after") or {}
    pairs = {"macs": (est.get("macs"), codegen.get("macs")),
             "ram_bytes": (est.get("ram_bytes"), codegen.get("arena_bytes")),
             "flash_bytes": (est.get("flash_bytes"), codegen.get("flash_bytes"))}
    return {"figures": {k: {"estimate": a, "codegen": b} for k, (a, b) in pairs.items()},
            "identical": all(a == b for a, b in pairs.values())}


def pruned_line(p: dict) -> str:
    """The prune stage's one-line result: what each figure went from and to, why, and the accuracy."""
    b, a, r = p.get("estimate_before") or {}, p.get("estimate_after") or {}, p.get("reduction") or {}

    def fig(name, key, unit=""):
        x = f" ({r[key]:g}x)" if r.get(key) else ""
        return f"{name} {b.get(key, 0):,} -> {a.get(key, 0):,}{unit}{x}"
    parts = [fig("MACs", "macs"), fig("params", "params"), fig("model constants", "flash_bytes", " B"),
             fig("arena", "ram_bytes", " B")]
    over = p.get("over_before") or {}
    if over:
        parts.append("over before: " + ", ".join(f"{k} {v['estimate']:,} > {v['limit']:,}" for k, v in over.items()))
    acc = p.get("accuracy") or {}
    if all(acc.get(k) is not None for k in ("before", "after_pruning", "after_finetuning")):
        parts.append(f"float accuracy {100 * acc['before']:.1f}% -> {100 * acc['after_pruning']:.1f}% pruned -> "
                     f"{100 * acc['after_finetuning']:.1f}% after {p.get('epochs', 0)} fine-tuning epoch(s)")
    else:
        parts.append("accuracy not measured (no labelled data: not fine-tuned)")
    kept = p.get("not_pruned")   # e.g. layers feeding a channel shuffle: said, never silent
    if kept:
        parts.append(f"not pruned: {', '.join(kept['layers'])} ({kept['reason']})")
    return "; ".join(parts)
