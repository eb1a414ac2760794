#!/usr/bin/env python3
"""Layer-shape sweep: single-layer int8 models at the shapes real networks use, each benchmarked in QEMU
(`tinyprune bench`: instructions under -icount, bit-exact with TFLite Micro) -> benchmarks/SHAPES.md.

    .venv/bin/python benchmarks/shapes.py [--board mps2-an500] [--fast] [--only NAME ...]
        [--models-dir DIR] [-o benchmarks/SHAPES.md]

With --models-dir, the models and each shape's measured row are kept there, and a row is measured
again only when its model or tinyprune's kernels / code generator changed.

Shapes: pointwise and 3x3 convolutions, depthwise 3x3/5x5 stride 1 and 2, fully connected, average
pool and add, at the channel counts and resolutions of MobileNetV1 (0.25 at 96x96, 0.5 at 128), V2
(0.35), V3-small, ResNet-8 (MLPerf Tiny IC) and a ResNet-18 stage, DS-CNN (MLPerf Tiny KWS) and the
MLPerf Tiny FC autoencoder, including channel counts that are not multiples of 4 and spatial sizes
below the convolution's 6-pixel register block. Models are made with the project's single-op helpers
(tests/codegen_opmodels.py: TensorFlow's converter, random representative data); --models-dir keeps
them (benchmarks/tflm_compare.py runs the same files under TFLite Micro + CMSIS-NN).

Each row: the layer's instructions (the per-layer count of `tinyprune bench`), MACs per instruction,
the kernel variant code generation chose (tinyprune/codegen/variants.py; the C runs it, checked by
tests/test_variants.py) and why when it is not the op's fastest one, and whether the output was
bit-exact. `FAST` is the subset tests/test_shapes.py checks in CI (no layer of a supported shape runs
the reference kernel on Cortex-M7). `UNSUPPORTED` names the shapes the DSP kernels do not take yet.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _s(name, family, op, **p):
    return {"name": name, "family": family, "op": op, **p}


SHAPES = [
    # MobileNetV1 0.25, 96x96 (MLPerf Tiny VWW / TFLM person_detect architecture)
    _s("mnv1-stem", "MobileNetV1-0.25", "conv", h=96, w=96, cin=3, cout=8, k=3, stride=2),
    _s("mnv1-pw-48-8-16", "MobileNetV1-0.25", "conv", h=48, w=48, cin=8, cout=16, k=1, stride=1),
    _s("mnv1-pw-24-32-32", "MobileNetV1-0.25", "conv", h=24, w=24, cin=32, cout=32, k=1, stride=1),
    _s("mnv1-pw-12-64-64", "MobileNetV1-0.25", "conv", h=12, w=12, cin=64, cout=64, k=1, stride=1),
    _s("mnv1-pw-6-128-128", "MobileNetV1-0.25", "conv", h=6, w=6, cin=128, cout=128, k=1, stride=1),
    _s("mnv1-pw-3-256-256", "MobileNetV1-0.25", "conv", h=3, w=3, cin=256, cout=256, k=1, stride=1),
    _s("mnv1-dw-48-8-s1", "MobileNetV1-0.25", "dw", h=48, w=48, c=8, k=3, stride=1),
    _s("mnv1-dw-48-16-s2", "MobileNetV1-0.25", "dw", h=48, w=48, c=16, k=3, stride=2),
    _s("mnv1-dw-24-32-s1", "MobileNetV1-0.25", "dw", h=24, w=24, c=32, k=3, stride=1),
    _s("mnv1-dw-12-64-s2", "MobileNetV1-0.25", "dw", h=12, w=12, c=64, k=3, stride=2),
    _s("mnv1-dw-6-128-s1", "MobileNetV1-0.25", "dw", h=6, w=6, c=128, k=3, stride=1),
    _s("mnv1-dw-3-256-s1", "MobileNetV1-0.25", "dw", h=3, w=3, c=256, k=3, stride=1),
    _s("mnv1-pool-3-256", "MobileNetV1-0.25", "avgpool", h=3, w=3, c=256, k=3, stride=3),
    # MobileNetV1 0.5, 128x128
    _s("mnv1h-pw-16-128-128", "MobileNetV1-0.5", "conv", h=16, w=16, cin=128, cout=128, k=1, stride=1),
    _s("mnv1h-dw-32-64-s2", "MobileNetV1-0.5", "dw", h=32, w=32, c=64, k=3, stride=2),
    # MobileNetV2 0.35, 96x96 (inverted residuals: expand / project, add)
    _s("mnv2-expand-24-8-48", "MobileNetV2-0.35", "conv", h=24, w=24, cin=8, cout=48, k=1, stride=1),
    _s("mnv2-project-12-96-16", "MobileNetV2-0.35", "conv", h=12, w=12, cin=96, cout=16, k=1, stride=1),
    _s("mnv2-dw-12-96-s1", "MobileNetV2-0.35", "dw", h=12, w=12, c=96, k=3, stride=1),
    _s("mnv2-add-12-16", "MobileNetV2-0.35", "add", h=12, w=12, c=16),
    # MobileNetV3-small (5x5 depthwise, channel counts 72/88/120/..., odd ones after pruning)
    _s("mnv3-dw5-12-72-s2", "MobileNetV3-small", "dw", h=12, w=12, c=72, k=5, stride=2),
    _s("mnv3-dw5-6-120-s1", "MobileNetV3-small", "dw", h=6, w=6, c=120, k=5, stride=1),
    _s("mnv3-pw-6-120-40", "MobileNetV3-small", "conv", h=6, w=6, cin=120, cout=40, k=1, stride=1),
    _s("mnv3-pw-12-30-58", "MobileNetV3-small (pruned)", "conv", h=12, w=12, cin=30, cout=58, k=1, stride=1),
    _s("mnv3-dw-12-30-s1", "MobileNetV3-small (pruned)", "dw", h=12, w=12, c=30, k=3, stride=1),
    # ResNet-8 (MLPerf Tiny IC) and a ResNet-18 stage
    _s("r8-conv-32-16-16", "ResNet-8", "conv", h=32, w=32, cin=16, cout=16, k=3, stride=1),
    _s("r8-conv-16-32-s2", "ResNet-8", "conv", h=32, w=32, cin=16, cout=32, k=3, stride=2),
    _s("r8-conv-8-64-64", "ResNet-8", "conv", h=8, w=8, cin=64, cout=64, k=3, stride=1),
    _s("r8-add-8-64", "ResNet-8", "add", h=8, w=8, c=64),
    _s("r8-pool-8-64", "ResNet-8", "avgpool", h=8, w=8, c=64, k=8, stride=8),
    _s("r18-conv-7-256-256", "ResNet-18", "conv", h=7, w=7, cin=256, cout=256, k=3, stride=1),
    _s("r18-conv-2-256-256", "ResNet-18 (below the block)", "conv", h=2, w=2, cin=256, cout=256, k=3, stride=1),
    # DS-CNN (MLPerf Tiny KWS)
    _s("dscnn-conv-49x10", "DS-CNN", "conv", h=49, w=10, cin=1, cout=64, kh=10, kw=4, stride=2),
    _s("dscnn-dw-25x5-64", "DS-CNN", "dw", h=25, w=5, c=64, k=3, stride=1),
    _s("dscnn-pw-25x5-64", "DS-CNN", "conv", h=25, w=5, cin=64, cout=64, k=1, stride=1),
    _s("dscnn-pool-25x5-64", "DS-CNN", "avgpool", h=25, w=5, c=64, kh=25, kw=5, stride=1),
    # FC autoencoder (MLPerf Tiny AD: 640-128-128-128-8-128-128-128-640)
    _s("ad-fc-640-128", "FC autoencoder", "fc", i=640, o=128),
    _s("ad-fc-128-128", "FC autoencoder", "fc", i=128, o=128),
    _s("ad-fc-128-8", "FC autoencoder", "fc", i=128, o=8),
    _s("ad-fc-8-128", "FC autoencoder", "fc", i=8, o=128),
    _s("ad-fc-128-640", "FC autoencoder", "fc", i=128, o=640),
    _s("fc-250-10", "classifier head (odd)", "fc", i=250, o=10),
    # odd channel counts / sizes below the block
    _s("odd-pw-1x1-256-128", "1x1 spatial (below the block)", "conv", h=1, w=1, cin=256, cout=128, k=1, stride=1),
    _s("odd-conv-10-6-10", "odd channels", "conv", h=10, w=10, cin=6, cout=10, k=3, stride=1),
    _s("odd-pool-6-30", "odd channels", "avgpool", h=6, w=6, c=30, k=2, stride=2),
    _s("odd-add-6-30", "odd channels", "add", h=6, w=6, c=30),
]
BY_NAME = {s["name"]: s for s in SHAPES}

# the subset tests/test_shapes.py converts and checks in CI
FAST = ["mnv1-pw-12-64-64", "mnv1-pw-6-128-128", "mnv1-pw-3-256-256", "mnv1-dw-12-64-s2", "mnv3-dw5-12-72-s2",
        "r18-conv-2-256-256", "ad-fc-640-128", "r8-add-8-64", "r8-pool-8-64", "odd-conv-10-6-10"]

# shapes the DSP kernels do not take yet: they run the reference on a DSP core (a warning), with the reason
UNSUPPORTED = {
    "mnv3-dw-12-30-s1": "depthwise with a channel count that is not a multiple of 4",
    "odd-pool-6-30": "average pool with a channel count that is not a multiple of 4",
}


def macs(s: dict) -> int:
    if s["op"] == "fc":
        return s["i"] * s["o"]
    kh, kw = s.get("kh", s.get("k", 1)), s.get("kw", s.get("k", 1))
    oh, ow = -(-s["h"] // s.get("stride", 1)), -(-s["w"] // s.get("stride", 1))
    if s["op"] == "conv":
        return oh * ow * s["cout"] * kh * kw * s["cin"]
    if s["op"] == "dw":
        return oh * ow * s["c"] * kh * kw
    return 0


def build_model(s: dict, seed: int = 0) -> bytes:
    """The int8 .tflite of one sweep shape (ReLU6 after conv/depthwise, ReLU after FC, as the networks do)."""
    sys.path.insert(0, str(ROOT / "tests"))
    import tensorflow as tf
    from codegen_opmodels import _w, convert
    rng = np.random.default_rng(seed)
    op = s["op"]
    if op == "fc":
        wt, b = _w(rng, (s["i"], s["o"])), _w(rng, (s["o"],), 0.3)

        @tf.function
        def f(x):
            return tf.nn.relu(tf.matmul(x, wt) + b)
        return convert(f, [(1, s["i"])], rng)
    kh, kw = s.get("kh", s.get("k", 1)), s.get("kw", s.get("k", 1))
    st = s.get("stride", 1)
    if op == "conv":
        wt, b = _w(rng, (kh, kw, s["cin"], s["cout"])), _w(rng, (s["cout"],), 0.3)

        @tf.function
        def f(x):
            return tf.nn.relu6(tf.nn.conv2d(x, wt, st, "SAME") + b)
        return convert(f, [(1, s["h"], s["w"], s["cin"])], rng)
    if op == "dw":
        wt, b = _w(rng, (kh, kw, s["c"], 1)), _w(rng, (s["c"],), 0.3)

        @tf.function
        def f(x):
            return tf.nn.relu6(tf.nn.depthwise_conv2d(x, wt, [1, st, st, 1], "SAME") + b)
        return convert(f, [(1, s["h"], s["w"], s["c"])], rng)
    if op == "avgpool":
        @tf.function
        def f(x):
            return tf.nn.avg_pool2d(x, (kh, kw), st, "VALID")
        return convert(f, [(1, s["h"], s["w"], s["c"])], rng)
    if op == "add":
        # one input (validation takes single-input models): x + relu(x), the ADD without broadcasting
        @tf.function
        def f(x):
            return x + tf.nn.relu(x)
        return convert(f, [(1, s["h"], s["w"], s["c"])], rng)
    raise ValueError(f"unknown sweep op {op!r}")


KIND = {"conv": "CONV_2D", "dw": "DEPTHWISE_CONV_2D", "fc": "FULLY_CONNECTED", "avgpool": "AVERAGE_POOL_2D",
        "add": "ADD"}


def measure(s: dict, model: Path, board: str) -> dict:
    from tinyprune.bench import bench
    r = bench(model, board, runs=1)
    layer = next(L for L in r.layers if L.kind == KIND[s["op"]])
    m = macs(s) or layer.macs
    return {"name": s["name"], "family": s["family"], "op": layer.kind, "shape": describe(s), "macs": layer.macs or m,
            "instructions": layer.instructions, "total": r.instructions,
            "mac_per_instr": (layer.macs / layer.instructions) if layer.macs else None,
            "variant": layer.variant, "reason": layer.variant_reason, "fallback": layer.fallback,
            "bit_exact": r.bit_exact}


def describe(s: dict) -> str:
    if s["op"] == "fc":
        return f"{s['i']} -> {s['o']}"
    kh, kw = s.get("kh", s.get("k", 1)), s.get("kw", s.get("k", 1))
    ch = f"{s['cin']} -> {s['cout']}" if s["op"] == "conv" else f"{s['c']}"
    win = "" if s["op"] == "add" else f", {kh}x{kw} s{s.get('stride', 1)}"
    return f"{s['h']}x{s['w']}x{ch}{win}"


def _kernels_hash() -> str:
    """Digest of the kernels and the code generator: cached rows are reused only while both are unchanged."""
    h = hashlib.sha256()
    for d in (ROOT / "firmware", ROOT / "tinyprune" / "codegen", ROOT / "tinyprune" / "bench"):
        for f in sorted(d.rglob("*")):
            if f.is_file() and f.suffix in (".c", ".h", ".py", ".tmpl"):
                h.update(str(f.relative_to(ROOT)).encode())
                h.update(f.read_bytes())
    return h.hexdigest()


def table(rows: list[dict], board: str, cmd: str) -> str:
    head = f"""# Layer-shape sweep

Produced by

```
{cmd}
```

on {board} (QEMU `-icount`: executed instructions of the layer in one inference), arm-none-eabi-gcc
12.2 `-O2`, tinyprune's DSP kernels. Single-layer int8 models made with TensorFlow's converter
(`benchmarks/shapes.py`; ReLU6 after convolutions, ReLU after FC). "variant" is the kernel variant code
generation chose for the layer (`tinyprune/codegen/variants.py`; the C runs exactly it,
`tests/test_variants.py`), with the reason when it is not the op's fastest one; `reference/...` is a
fallback to the portable C kernel. bit-exact: the whole output equals TFLite Micro's on the bench input.
TFLite Micro + CMSIS-NN on the same shapes: `benchmarks/tflm_compare.py`.

| shape | network | op | layer | MACs | instructions | MAC/instr | variant | bit-exact |
|---|---|---|---|---|---|---|---|---|
"""
    lines = []
    for r in rows:
        mpi = f"{r['mac_per_instr']:.3f}" if r.get("mac_per_instr") else "-"
        if r.get("instructions") is None:
            lines.append(f"| {r['name']} | {r['family']} | {r['op']} | {r['shape']} | {r['macs']:,} | - | - | "
                         f"{r['variant']} | - |")
            continue
        var = r["variant"] + (f" ({r['reason']})" if r.get("reason") else "")
        if r.get("fallback"):
            var = f"**{var}**"
        lines.append(f"| {r['name']} | {r['family']} | {r['op']} | {r['shape']} | {r['macs']:,} | "
                     f"{r['instructions']:,} | {mpi} | {var} | {'yes' if r['bit_exact'] else 'NO'} |")
    fb = [r for r in rows if r.get("fallback")]
    tail = "\n\nReference fallbacks on this core: " + (", ".join(f"{r['name']} ({UNSUPPORTED.get(r['name'], r['reason'])})"
                                                           for r in fb) if fb else "none") + ".\n"
    return head + "\n".join(lines) + tail


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--board", default="mps2-an500")
    ap.add_argument("--fast", action="store_true", help="only the CI subset (FAST)")
    ap.add_argument("--only", nargs="*", default=None, help="only these shape names")
    ap.add_argument("--models-dir", default=None, help="keep the .tflite models here")
    ap.add_argument("-o", "--out", default=str(ROOT / "benchmarks" / "SHAPES.md"))
    args = ap.parse_args(argv)
    shapes = [BY_NAME[n] for n in (args.only or (FAST if args.fast else [s["name"] for s in SHAPES]))]
    tmp = tempfile.TemporaryDirectory(prefix="tp-shapes-")
    mdir = Path(args.models_dir or tmp.name)
    mdir.mkdir(parents=True, exist_ok=True)
    cmd = "  .venv/bin/python benchmarks/shapes.py" + (" --fast" if args.fast else "") + \
        (f" --board {args.board}" if args.board != "mps2-an500" else "") + \
        (f" --only {' '.join(args.only)}" if args.only else "")
    rows = []
    kernels = _kernels_hash()
    for s in shapes:
        path = mdir / f"{s['name']}.tflite"
        if not path.is_file():
            path.write_bytes(build_model(s))
        cache = mdir / f"{s['name']}.{args.board}.json"
        key = {"model": hashlib.sha256(path.read_bytes()).hexdigest(), "kernels": kernels}
        old = json.loads(cache.read_text()) if cache.is_file() else {}
        if old.get("key") == key:
            r = old["row"]          # same model, same kernels and code generation: the same counts
        else:
            try:
                r = measure(s, path, args.board)
            except Exception as e:  # noqa: BLE001 - a benchmark: the row says what failed, the sweep goes on
                r = {"name": s["name"], "family": s["family"], "op": KIND[s["op"]], "shape": describe(s),
                     "macs": macs(s), "instructions": 0, "mac_per_instr": None, "variant": f"FAILED: {e}"[:200],
                     "reason": "", "fallback": False, "bit_exact": False}
            else:
                cache.write_text(json.dumps({"key": key, "row": r}))
        rows.append(r)
        print(f"{s['name']}: {r['instructions']:,} instructions, "
              f"{(r['mac_per_instr'] or 0):.3f} MAC/instr, {r['variant']}", file=sys.stderr)
        # the table is rewritten after every shape: an interrupted sweep leaves the rows it measured,
        # the others marked as not measured
        pending = [{"name": x["name"], "family": x["family"], "op": KIND[x["op"]], "shape": describe(x),
                    "macs": macs(x), "instructions": None, "mac_per_instr": None,
                    "variant": "not measured (the sweep was interrupted before this shape)", "reason": "",
                    "fallback": False, "bit_exact": None} for x in shapes[len(rows):]]
        Path(args.out).write_text(table(rows + pending, args.board, cmd))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
