"""Hostile and impossible models: the reader refuses them with exit 2 naming the operator/tensor and the
field, and nothing it accepts breaks the generated C.

* ``test_reported_case``: each case reported in issue 13 (shape 0/-1/2^31-1, strides/dilations/filters 0
  or huge, bad scales and zero points, index -1, ...) built as a schema-level mutation of a small
  hand-built model, run through ``tinyprune codegen``: exit 2, the message's key parts, no output.
* ``test_fuzz_ci``: 240 seeded schema-level mutants (tests/reader_fuzz.py) of two small hand-built
  models and MLPerf Tiny KWS/IC (when present): zero internal errors, zero hangs (per-mutant time limit
  in a child process), every refusal exit 2; the first 12 accepted mutants (deterministic) are built
  with ASan/UBSan and compared with TFLite Micro (bit-exact, or TFLite Micro refuses it too).
* ``test_fuzz_full`` (``-m fuzz``, skipped otherwise): 3,000 mutants over those, the bundled example
  (the ``converted`` fixture, 40 s of conversion, hence not in CI) and six single-op-family models
  (tests/codegen_opmodels.py), every accepted one built with sanitizers and compared.
"""
from __future__ import annotations

import collections
import shutil
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import reader_fuzz as F  # noqa: E402

from tinyprune._paths import KERNELS_DIR  # noqa: E402
from tinyprune.codegen.check import SAN_FLAGS  # noqa: E402

MLPERF = Path(__file__).resolve().parents[1].parent / "shared/models/mlperf-tiny"
HAVE_GCC = shutil.which("gcc") is not None


def _edit(data: bytes, fn) -> bytes:
    m = F.unpack(data)
    fn(m)
    return F.pack(m)


def _t(m, i):
    return m.subgraphs[0].tensors[i]


def _op(m, k):
    return m.subgraphs[0].operators[k]


def _set(obj, **kw):
    for k, v in kw.items():
        setattr(obj, k, v)


def _shape(i, shape):
    return lambda m: _set(_t(m, i), shape=np.array(shape, np.int32))


def _opt(k, **kw):
    return lambda m: _set(_op(m, k).builtinOptions, **kw)


def _scale(i, v):
    return lambda m: _set(_t(m, i).quantization, scale=np.array([v] * len(_t(m, i).quantization.scale), np.float32))


def _io(k, which, idx):
    return lambda m: _set(_op(m, k), **{which: np.array(idx, np.int32)})


def _bias(m):
    b = m.buffers[_t(m, 2).buffer]
    b.data = np.array([(1 << 31) - 1, 0, 0, 0], np.int32).view(np.uint8)


def _swap(m):
    ops = m.subgraphs[0].operators
    ops[0], ops[1] = ops[1], ops[0]


def _layout_size(n):
    """tiny_layout_model on an n x n input, every shape consistent."""
    def edit(m):
        for i, c in ((0, 3), (3, 3), (4, 3), (5, 6), (7, 6), (9, 6)):
            _t(m, i).shape = np.array([1, n, n, c], np.int32)
        _t(m, 2).shape = np.array([1, n + 2, n + 2, 3], np.int32)
    return edit


CONV = "conv"      # tiny_conv_model: 0 input, 1-2 conv w/b, 3 conv, 4-5 dw w/b, 6 dw, 7 pool, 9 flat, 12 fc, 13 softmax
LAYOUT = "layout"  # tiny_layout_model: 0 input, 1 pads, 2 pad, 3 avg, 4 add, 5 cat, 6 perm, 7 tr, 10 axes, 11 mean
CASES = [
    # id, base, edit, fragments every message must contain
    ("input-shape-0", CONV, _shape(0, [1, 0, 6, 2]), ["tensor 0 ('input')", "dimension 0"]),
    ("input-shape-minus-1", CONV, _shape(0, [1, -1, 6, 2]), ["tensor 0 ('input')", "dimension -1"]),
    ("dim-2^31-1", CONV, _shape(3, [1, 6, 2147483647, 4]), ["tensor 3 ('conv')", "dimension 2147483647"]),
    ("activation-over-8MiB", LAYOUT, _layout_size(1200), ["tensor 5 ('cat')", "8640000 bytes"]),
    ("stride-0", CONV, _opt(0, strideH=0), ["operator 0 (CONV_2D", "stride_h = 0"]),
    ("stride-huge", CONV, _opt(1, strideW=2147483647), ["operator 1 (DEPTHWISE_CONV_2D", "stride_w = 2147483647"]),
    ("dilation-0", CONV, _opt(0, dilationWFactor=0), ["operator 0 (CONV_2D", "dilation_w = 0"]),
    ("pool-filter-width-0", CONV, _opt(2, filterWidth=0), ["operator 2 (MAX_POOL_2D", "filter_w = 0"]),
    ("padding-enum", CONV, _opt(0, padding=5), ["operator 0 (CONV_2D", "padding 5"]),
    ("activation-enum", CONV, _opt(0, fusedActivationFunction=9), ["operator 0 (CONV_2D", "fused activation"]),
    ("conv-output-shape", CONV, _shape(3, [1, 6, 5, 4]), ["operator 0 (CONV_2D", "output width 5 != 6"]),
    ("depthwise-multiplier", CONV, _opt(1, depthMultiplier=3), ["operator 1 (DEPTHWISE_CONV_2D", "depth_multiplier"]),
    ("scale-0", CONV, _scale(3, 0.0), ["tensor 3 ('conv')", "scale 0 is not"]),
    ("scale-negative", CONV, _scale(0, -0.05), ["tensor 0 ('input')", "scale -0.05"]),
    ("scale-nan", CONV, _scale(6, float("nan")), ["tensor 6 ('dw')", "scale nan"]),
    ("scale-ratio-impossible", LAYOUT, _scale(11, 1e-30), ["operator 6 (MEAN", "left shift"]),
    ("bias-scale", CONV, _scale(2, 1.0), ["operator 0 (CONV_2D", "bias 'conv/b' scale"]),
    ("zero-point-128", CONV, lambda m: _set(_t(m, 0).quantization, zeroPoint=np.array([128])),
     ["tensor 0 ('input')", "zero point 128 out of range for int8"]),
    ("weight-zero-point", CONV, lambda m: _set(_t(m, 10).quantization, zeroPoint=np.array([3])),
     ["operator 4 (FULLY_CONNECTED", "zero point must be 0"]),
    ("per-channel-count", CONV,
     lambda m: _set(_t(m, 1).quantization, scale=np.array([.01, .02, .03], np.float32), zeroPoint=np.array([0, 0, 0])),
     ["tensor 1 ('conv/w')", "3 per-channel"]),
    ("quantized-dimension", CONV, lambda m: _set(_t(m, 4).quantization, quantizedDimension=1),
     ["tensor 4 ('dw/w')", "dimension 1"]),
    ("op-input-minus-1", CONV, _io(0, "inputs", [-1, 1, 2]), ["operator 0 (CONV_2D", "input 0 is missing"]),
    ("op-input-out-of-range", CONV, _io(3, "inputs", [7, 99]),
     ["operator 3 (RESHAPE)", "tensor index 99 out of range"]),
    ("pad-of-scalar", LAYOUT, _shape(0, []), ["operator 0 (PAD", "1-D to 4-D"]),
    ("op-output-is-constant", CONV, _io(5, "outputs", [8]), ["operator 5 (SOFTMAX", "is a constant"]),
    ("opcode-index", CONV, lambda m: _set(_op(m, 2), opcodeIndex=7), ["operator 2", "opcode index 7 out of range"]),
    ("buffer-index", CONV, lambda m: _set(_t(m, 1), buffer=99), ["tensor 1 ('conv/w')", "buffer index 99"]),
    ("buffer-short", CONV, lambda m: _set(m.buffers[_t(m, 1).buffer], data=np.zeros(5, np.uint8)),
     ["tensor 1 ('conv/w')", "has 5 bytes"]),
    ("options-missing", CONV, lambda m: _set(_op(m, 0), builtinOptions=None, builtinOptionsType=0),
     ["operator 0 (CONV_2D", "options missing"]),
    ("depthwise-without-bias", CONV, _io(1, "inputs", [3, 4, -1]), ["operator 1 (DEPTHWISE_CONV_2D", "without a bias"]),
    ("bias-overflow", CONV, _bias, ["operator 0 (CONV_2D", "int32 accumulator"]),
    ("execution-order", CONV, _swap, ["operator 0 (DEPTHWISE_CONV_2D)", "before any operator writes it"]),
    ("reshape-count", CONV, _shape(9, [1, 5]), ["operator 3 (RESHAPE", "element count"]),
    ("fc-output", CONV, _shape(12, [1, 4]), ["operator 4 (FULLY_CONNECTED", "output shape [1, 4]"]),
    ("softmax-beta", CONV, _opt(5, beta=float("nan")), ["operator 5 (SOFTMAX", "beta nan"]),
    ("pool-requantise", CONV, _scale(7, 0.3), ["operator 2 (MAX_POOL_2D", "quantization differ"]),
    ("concat-axis", LAYOUT, _opt(3, axis=7), ["operator 3 (CONCATENATION", "axis 7 out of range"]),
    ("mean-axes", LAYOUT, lambda m: _set(m.buffers[_t(m, 10).buffer], data=np.array([1, 9], np.int32).view(np.uint8)),
     ["operator 6 (MEAN", "axes [1, 9]"]),
    ("transpose-perm", LAYOUT, lambda m: _set(m.buffers[_t(m, 6).buffer],
                                              data=np.array([0, 2, 2, 3], np.int32).view(np.uint8)),
     ["operator 4 (TRANSPOSE", "not a permutation"]),
    ("pad-negative", LAYOUT, lambda m: _set(m.buffers[_t(m, 1).buffer],
                                            data=np.array([0, 0, -1, 1, 1, 1, 0, 0], np.int32).view(np.uint8)),
     ["operator 0 (PAD", "paddings"]),
    ("pool-output-shape", LAYOUT, _shape(3, [1, 4, 3, 3]), ["operator 1 (AVERAGE_POOL_2D", "output width 3 != 4"]),
    ("add-broadcast", LAYOUT, _shape(4, [1, 4, 4, 6]), ["operator 2 (ADD", "not the broadcast shape [1, 4, 4, 3]"]),
    ("graph-output-missing", LAYOUT, lambda m: _set(m.subgraphs[0], outputs=np.array([], np.int32)),
     ["needs at least one of each"]),
]
BASES = {CONV: F.tiny_conv_model, LAYOUT: F.tiny_layout_model}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_reported_case(case, tmp_path, capsys):
    from tinyprune.cli import main
    _, base, edit, fragments = case
    path = tmp_path / "model.tflite"
    path.write_bytes(_edit(BASES[base](), edit))
    with pytest.raises(SystemExit) as e:
        main(["codegen", str(path), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert e.value.code == 2, err
    for f in fragments:
        assert f in err, f"{f!r} not in {err!r}"
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_arena_over_board_ram_is_exit_3(tmp_path):
    from tinyprune.codegen.generate import generate
    from tinyprune.errors import OverBudgetError
    path = tmp_path / "model.tflite"
    path.write_bytes(_edit(F.tiny_layout_model(), _layout_size(100)))
    with pytest.raises(OverBudgetError, match=r"arena needs \d+ B, more than the 81920 B of RAM disco-l475-iot01a"):
        generate(path, tmp_path / "out", board="disco-l475-iot01a", tflm_arena=False)
    assert not (tmp_path / "out").exists()
    generate(path, tmp_path / "out", tflm_arena=False)  # the same model without a board: fine


# ---------------------------------------------------------------------------------------------------
# the fuzz run

def _fuzz(bases: dict[str, bytes], per_base: int, checks: int | None, tmp: Path) -> tuple[collections.Counter, list]:
    """Mutate each base ``per_base`` times; full-check the accepted mutants (all when ``checks`` is None,
    else the first ``checks`` accepted ones taken round-robin over the bases). Returns (counts, problems)."""
    counts, problems = collections.Counter(), []
    worker = F.Worker(tmp, KERNELS_DIR, SAN_FLAGS)
    checked = 0
    try:
        for name, data in bases.items():
            r = worker.run(data, full=True)
            if r.get("stage") != "accepted" or r.get("check") != "bit-exact":
                problems.append(f"base model {name}: {r}")
        rngs = {name: np.random.default_rng(zlib.crc32(name.encode())) for name in bases}
        for n in range(per_base):
            for name, data in bases.items():
                mutant, desc = F.mutate(data, rngs[name])
                r = worker.run(mutant, full=checks is None or checked < checks)
                stage = r["stage"]
                counts[stage] += 1
                if stage == "refused":
                    counts[f"exit {r['exit']}"] += 1
                if "check" in r:
                    counts["check " + r["check"]] += 1
                    checked += 1
                bad = (stage in ("internal", "hang", "crash") or (stage == "refused" and r["exit"] != 2)
                       or r.get("check") not in (None, "bit-exact", "tflm-refused"))
                if bad:
                    keep = tmp / f"failing-{name}-{n}.tflite"
                    keep.write_bytes(mutant)
                    problems.append(f"{name} mutant {n} ({desc}), saved as {keep}: "
                                    f"{stage} {r.get('check', '')} {r.get('exit', '')}\n"
                                    f"{r.get('traceback') or r.get('message', '')}")
            if (n + 1) % 50 == 0:
                print(f"  {(n + 1) * len(bases)} mutants: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
                      flush=True)
    finally:
        worker.close()
    return counts, problems


def _bases() -> dict[str, bytes]:
    bases = {"tiny-conv": F.tiny_conv_model(0), "tiny-layout": F.tiny_layout_model(0)}
    for n in ("kws_dscnn_int8", "ic_resnet8_int8"):
        if (MLPERF / f"{n}.tflite").exists():
            bases[n] = (MLPERF / f"{n}.tflite").read_bytes()
    return bases


def _report(label: str, counts, problems) -> None:
    print(f"\n{label}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    assert not problems, f"{len(problems)} failing mutants:\n" + "\n\n".join(problems[:20])


@pytest.mark.skipif(not HAVE_GCC, reason="needs a host gcc (sanitizer builds of the generated C)")
def test_fuzz_ci(tmp_path):
    bases = _bases()
    counts, problems = _fuzz(bases, per_base=240 // len(bases), checks=12, tmp=tmp_path)
    _report("reader fuzz (CI)", counts, problems)
    assert counts["refused"] > 0 and counts["accepted"] > 0 and counts["check bit-exact"] > 0


@pytest.mark.fuzz
@pytest.mark.skipif(not HAVE_GCC, reason="needs a host gcc (sanitizer builds of the generated C)")
def test_fuzz_full(converted, tmp_path):
    import codegen_opmodels as M
    bases = _bases()
    bases["example"] = (converted("example") / "model_int8.tflite").read_bytes()
    for family in ("conv_cases", "depthwise_cases", "dense_activation_cases", "elementwise_cases", "pool_cases",
                   "layout_cases"):
        rng = np.random.default_rng(zlib.crc32(family.encode()))
        fn, shapes = getattr(M, family)(rng)
        bases[family] = M.convert(fn, shapes, rng)
    counts, problems = _fuzz(bases, per_base=-(-3000 // len(bases)), checks=None, tmp=tmp_path)
    _report("reader fuzz (full)", counts, problems)


def test_check_on_a_model_tflite_micro_refuses_is_exit_2(tmp_path, capsys):
    """A requantising CONCATENATION is generated (TFLite does the same), but TFLite Micro refuses it:
    `codegen --check` says so with exit 2 (was a RuntimeError from the interpreter, exit 1)."""
    from tinyprune.cli import main
    path = tmp_path / "model.tflite"
    path.write_bytes(_edit(F.tiny_layout_model(), lambda m: _set(_t(m, 5).quantization, zeroPoint=np.array([3]))))
    with pytest.raises(SystemExit) as e:
        main(["codegen", str(path), "-o", str(tmp_path / "out"), "--check", "--random", "2"])
    err = capsys.readouterr().err
    assert e.value.code == 2, err
    assert "TFLite Micro, the reference the generated code is checked against, refuses this model" in err
