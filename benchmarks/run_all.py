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
    rows, fw_rows, details = [], [], []
    for m in models:
        dsp = bench(m, args.board, runs=2, dsp=True)
        fw = bench(m, args.board, runs=2, dsp=True, fast_weights=True)
        ref = bench(m, args.board, runs=2, dsp=False)
        name, b_instr, b_arena, b_text = BASELINE.get(m.name, (m.name, None, None, None))

        def ratio(v, base):
            return f"{v / base:.3f}x" if base else "-"
        rows.append(f"| {name} | {dsp.macs:,} | {dsp.instructions:,} | {ratio(dsp.instructions, b_instr)} | "
                    f"{dsp.macs_per_instruction:.3f} | {ref.instructions:,} | {b_instr and f'{b_instr:,}' or '-'} | "
                    f"{dsp.arena_bytes:,} ({ratio(dsp.arena_bytes, b_arena)}) | {dsp.two_largest_bound:,} | "
                    f"{b_arena and f'{b_arena:,}' or '-'} | "
                    f"{dsp.text_bytes:,} ({ratio(dsp.text_bytes, b_text)}) | {b_text and f'{b_text:,}' or '-'} | "
                    f"{'yes' if dsp.bit_exact and ref.bit_exact else 'NO'} |")
        fw_rows.append(f"| {name} | {fw.instructions:,} ({ratio(fw.instructions, b_instr)}) | "
                       f"{fw.macs_per_instruction:.3f} | {fw.weight_bytes:,} (default {dsp.weight_bytes:,}) | "
                       f"{fw.text_bytes:,} ({ratio(fw.text_bytes, b_text)}) | {'yes' if fw.bit_exact else 'NO'} |")
        details.append(f"### {name} (DSP variants)\n\n```\n{dsp.render()}\n```\n\n"
                       f"### {name} (DSP variants, `--fast-weights`)\n\n```\n{fw.render()}\n```\n\n"
                       f"### {name} (reference C kernels, `--no-dsp`)\n\n```\n{ref.render()}\n```\n")
        print(f"{name}: DSP {dsp.instructions:,} / fast weights {fw.instructions:,} / reference "
              f"{ref.instructions:,} instructions", file=sys.stderr)
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

Default code generation (int8 weights in flash):

| model | MACs | instructions (DSP) | vs baseline | MACs/instr | instructions (reference) | baseline instructions | arena B | lower bound B (two largest live tensors) | baseline arena B | text B | baseline text B | bit-exact |
|---|---|---|---|---|---|---|---|---|---|---|---|---|
""" + "\n".join(rows) + """

With `--fast-weights` (`tinyprune codegen/bench --fast-weights`: convolution filters pre-expanded to
int16 at generation time, one LDRD per 4 weights in the inner loop instead of LDR + 2 SXTB16;
trades flash for speed; arena unchanged):

| model | instructions (vs baseline) | MACs/instr | model constants B | text B (vs baseline) | bit-exact |
|---|---|---|---|---|---|
""" + "\n".join(fw_rows) + "\n\n## Per-layer breakdown\n\n" + "\n".join(details)
    Path(args.out).write_text(text)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
