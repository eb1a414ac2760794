#!/usr/bin/env python3
"""Run `tinyprune bench` over the MLPerf Tiny IC and KWS models (../shared/models/mlperf-tiny) and,
when given, extra int8 models (e.g. the bundled example after `tinyprune convert`), with the DSP
kernel variants and with the reference C kernels, and write benchmarks/RESULTS.md: a Markdown table
next to the TFLite Micro + CMSIS-NN baseline of issue 7, plus per-layer breakdowns.

    .venv/bin/python benchmarks/run_all.py [--board mps2-an500] [--extra MODEL.tflite ...]
        [-o benchmarks/RESULTS.md]

Code generation reserves the DSP kernels' scratch itself (tinyprune/codegen/scratch.py, "dsp") for
boards whose core has the DSP extension.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT.parent / "shared" / "models" / "mlperf-tiny"
BASELINE = {  # issue 7: TFLite Micro + CMSIS-NN, gcc 12.2 -O2, QEMU mps2-an500 -icount
    "ic_resnet8_int8.tflite": ("IC ResNet-8", 30_026_192, 54_996, 206_068),
    "kws_dscnn_int8.tflite": ("KWS DS-CNN", 7_644_346, 22_820, 161_708),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--board", default="mps2-an500")
    ap.add_argument("--extra", nargs="*", default=[], help="more int8 .tflite models")
    ap.add_argument("-o", "--out", default=str(ROOT / "benchmarks" / "RESULTS.md"))
    args = ap.parse_args(argv)

    from tinyprune.bench import bench

    models = [MODELS / m for m in BASELINE if (MODELS / m).is_file()] + [Path(p) for p in args.extra]
    if not models:
        print(f"no models found in {MODELS}", file=sys.stderr)
        return 2
    rows, details = [], []
    for m in models:
        dsp = bench(m, args.board, runs=2, dsp=True)
        ref = bench(m, args.board, runs=2, dsp=False)
        name, b_instr, b_arena, b_text = BASELINE.get(m.name, (m.name, None, None, None))
        ratio = f"{dsp.instructions / b_instr:.4f}x" if b_instr else "-"
        rows.append(f"| {name} | {dsp.macs:,} | {dsp.instructions:,} | {ratio} | {dsp.macs_per_instruction:.3f} | "
                    f"{ref.instructions:,} | {b_instr and f'{b_instr:,}' or '-'} | {dsp.arena_bytes:,} "
                    f"({dsp.scratch_bytes:,} scratch) | {b_arena and f'{b_arena:,}' or '-'} | {dsp.text_bytes:,} | "
                    f"{b_text and f'{b_text:,}' or '-'} | {'yes' if dsp.bit_exact and ref.bit_exact else 'NO'} |")
        details.append(f"### {name} (DSP variants)\n\n```\n{dsp.render()}\n```\n\n"
                       f"### {name} (reference C kernels, `--no-dsp`)\n\n```\n{ref.render()}\n```\n")
        print(f"{name}: DSP {dsp.instructions:,} / reference {ref.instructions:,} instructions", file=sys.stderr)
    cmd = "  .venv/bin/python benchmarks/run_all.py" + \
        (f" --board {args.board}" if args.board != "mps2-an500" else "")
    text = f"""# tinyprune benchmark results

Produced by

```
{cmd}
```

on {args.board} (QEMU, `-icount`, counts are executed instructions of one `model_invoke`, identical
over 2 runs), arm-none-eabi-gcc 12.2 `-O2`. Baseline: TFLite Micro + CMSIS-NN from issue 7, same
machine and compiler family. "reference" = tinyprune's portable C kernels on the same core (`--no-dsp`).
Every output was bit-exact with the TFLite Micro interpreter on the bench input.

| model | MACs | instructions (DSP) | vs baseline | MACs/instr | instructions (reference) | baseline instructions | arena B | baseline arena B | text B | baseline text B | bit-exact |
|---|---|---|---|---|---|---|---|---|---|---|---|
""" + "\n".join(rows) + "\n\n## Per-layer breakdown\n\n" + "\n".join(details)
    Path(args.out).write_text(text)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
