#!/usr/bin/env python
"""Arena bytes of tinyprune's static memory plan vs TensorFlow Lite Micro's, side by side.

For each model (default: the MLPerf Tiny IC and KWS int8 models in ../shared/models/mlperf-tiny)
it prints TFLM's ``print_allocations()`` figures (total arena and its tensor "head") from the
``tflite-micro`` Python interpreter (host build, 64-bit pointers) next to our plan: without and
with output/input overlap of window ops (docs/memory-planning.md), the planner's lower bounds, and
the ratio to issue 7's measured on-device TFLM baseline (IC 54,996 B, KWS 22,820 B; target <= 0.7x).

    .venv/bin/python benchmarks/arena_vs_tflm.py [MODEL.tflite ...] [--kernels portable|dsp|cmsis-nn] [--json]

Exit status 0 when every model's smallest arena is no larger than TFLM's total, 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MLPERF = ROOT.parent / "shared" / "models" / "mlperf-tiny"
DEFAULT_MODELS = [MLPERF / "ic_resnet8_int8.tflite", MLPERF / "kws_dscnn_int8.tflite"]
# issue 7: TFLM (current main) + CMSIS-NN on mps2-an500, arm-none-eabi-gcc 12.2 -O2
ISSUE7_BASELINE = {"ic_resnet8_int8": 54996, "kws_dscnn_int8": 22820}

_TFLM_SNIPPET = """
import sys
from tflite_micro.python.tflite_micro import runtime
it = runtime.Interpreter.from_bytes(open(sys.argv[1], 'rb').read())
it.print_allocations()
"""


def tflm_allocations(model: Path) -> dict:
    """TFLM's arena figures for ``model``: {"total": .., "head": .., "tail": ..} in bytes.
    Run in a child process because TFLM prints from C++ straight to the process's file descriptors."""
    r = subprocess.run([sys.executable, "-c", _TFLM_SNIPPET, str(model)], capture_output=True, text=True,
                       timeout=300)
    text = r.stdout + r.stderr
    out = {}
    for key in ("total", "head", "tail"):
        m = re.search(rf"Arena allocation {key} (\d+) bytes", text)
        if m:
            out[key] = int(m.group(1))
    if r.returncode != 0 or "total" not in out:
        raise RuntimeError(f"TFLite Micro could not load {model}: {text.strip()[-500:]}")
    return out


def measure(model: Path, kernels: str = "portable", tflm: bool = True) -> dict:
    from tinyprune.codegen.estimate import OVERLAP_UNSAFE_KERNELS, estimate
    from tinyprune.codegen.tflite_reader import read_tflite

    graph = read_tflite(model)
    plain = estimate(graph, kernels, overlap=False)
    # CMSIS-NN breaks the overlap contract (estimate refuses it): no overlap figures then
    ov = estimate(graph, kernels, overlap=True) if kernels not in OVERLAP_UNSAFE_KERNELS else None
    for e in (plain, ov):
        if e is not None:
            e.plan.validate(graph)
    row = {
        "model": model.stem, "kernels": kernels,
        "arena": plain.arena_bytes, "arena_overlap": ov.arena_bytes if ov else None,
        "peak_lower_bound": plain.plan.peak_lower_bound,
        "peak_lower_bound_overlap": ov.plan.peak_lower_bound if ov else None,
        "two_largest_bound": plain.plan.two_largest_bound,
        "scratch_bytes": max(plain.plan.scratch.values(), default=0),
        "flash_bytes": plain.flash_bytes, "macs": plain.macs,
        "strategy": plain.plan.strategy, "strategy_overlap": ov.plan.strategy if ov else None,
    }
    if tflm:
        t = tflm_allocations(model)
        row["tflm_total"], row["tflm_head"] = t["total"], t.get("head")
    base = ISSUE7_BASELINE.get(model.stem)
    if base:
        row["issue7_baseline"] = base
    return row


def _n(x):
    return f"{x:,}" if isinstance(x, int) else "-"


def _ratio(a, b):
    return f"{a / b:.3f}x" if a is not None and b else "-"


def table(rows: list[dict]) -> str:
    head = ("| model | TFLM total (host) | TFLM tensor head | ours | ours, overlap | lower bound (overlap) "
            "| ours/TFLM | overlap/TFLM | overlap/issue-7 baseline |")
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        lines.append(
            f"| {r['model']} | {_n(r.get('tflm_total'))} | {_n(r.get('tflm_head'))} | {_n(r['arena'])} "
            f"| {_n(r['arena_overlap'])} | {_n(r['peak_lower_bound_overlap'])} | {_ratio(r['arena'], r.get('tflm_total'))} "
            f"| {_ratio(r['arena_overlap'], r.get('tflm_total'))} | {_ratio(r['arena_overlap'], r.get('issue7_baseline'))} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", type=Path)
    ap.add_argument("--kernels", default="portable", choices=["portable", "dsp", "cmsis-nn"])
    ap.add_argument("--json", action="store_true", help="print JSON rows instead of a Markdown table")
    ap.add_argument("--no-tflm", action="store_true", help="skip the TFLite Micro figures")
    args = ap.parse_args(argv)
    models = args.models or DEFAULT_MODELS
    missing = [m for m in models if not m.exists()]
    if missing:
        print(f"error: model not found: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    rows = [measure(m, args.kernels, tflm=not args.no_tflm) for m in models]
    print(json.dumps(rows, indent=2, sort_keys=True) if args.json else table(rows))
    ok = all(min(x for x in (r["arena"], r["arena_overlap"]) if x is not None) <= r.get("tflm_total", r["arena"])
             for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
