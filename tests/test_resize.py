"""Nearest-neighbour upsampling end to end (issue 11): ONNX Resize (nearest, as torch exports
nn.Upsample / F.interpolate) accepted by convert and other modes refused naming the node;
RESIZE_NEAREST_NEIGHBOR read, checked and run by tp_resize_nearest_s8 bit-exact with TFLite Micro
(randomised TF-built models, and hand-built ones for the option combination TF cannot emit; on the
host with sanitizers and in QEMU on Cortex-M7);
the prune stage's estimate graph; and a tiny segmentation model through `tinyprune build`."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from tinyprune.codegen.check import check, load_inputs
from tinyprune.codegen.generate import generate
from tinyprune.codegen.tflite_reader import read_model, read_model_bytes
from tinyprune.errors import UnsupportedModelError

sys.path.insert(0, str(Path(__file__).resolve().parent))
import codegen_opmodels as M  # noqa: E402
import reader_fuzz as RF  # noqa: E402

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs a host gcc")


def _check(path: Path, tmp_path: Path, samples: int = 20, seed: int = 0):
    model = read_model(path)
    generate(path, tmp_path / "cg", tflm_arena=False)
    return model, check(tmp_path / "cg", path, load_inputs(model, random=samples, seed=seed + 100), sanitize=True)


# ---- codegen: bit-exact with TFLite Micro -------------------------------------------------------

def _tf_case(seed: int, tmp_path: Path) -> Path:
    rng = np.random.default_rng(seed)
    fn, shapes = M.resize_cases(rng)
    p = tmp_path / f"resize-{seed}.tflite"
    p.write_bytes(M.convert(fn, shapes, rng))
    return p


@needs_gcc
@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.slow), pytest.param(2, marks=pytest.mark.slow)])
def test_resize_bit_exact_with_tflite_micro(seed, tmp_path):
    """Random shapes, factors 1-4 and arbitrary sizes (down too), every option combination TF emits,
    after a convolution and into a concatenation; host build -Werror and with ASan/UBSan."""
    model, r = _check(_tf_case(seed, tmp_path), tmp_path, seed=seed)
    resizes = [op for op in model.graph.ops if op.kind == "RESIZE_NEAREST_NEIGHBOR"]
    assert len(resizes) == 9
    assert {(op.options["align_corners"], op.options["half_pixel_centers"]) for op in resizes} == \
        {(False, False), (True, False), (False, True)}
    assert r.mismatches == 0 and r.samples == 20 and r.elements > 0
    assert "tp_resize_s8.c" in (tmp_path / "cg" / "Makefile").read_text()


def _resize_model(in_shape, size, *, align=False, half=False, out_scale=0.05, out_zp=3, size_type="int32",
                  size_const=True, out_hw=None) -> bytes:
    """input -> RESIZE_NEAREST_NEIGHBOR(size) built with the flatbuffer schema (no TensorFlow)."""
    n, _, _, c = in_shape
    oh, ow = out_hw or size
    size_t = dict(name="size", shape=[len(size)], type=size_type)
    if size_const:
        size_t["data"] = np.array(size, np.int32 if size_type == "int32" else np.int8)
    else:
        size_t.update(scale=1.0, zp=0)
    T = [dict(name="input", shape=list(in_shape), type="int8", scale=0.05, zp=3), size_t,
         dict(name="resized", shape=[n, oh, ow, c], type="int8", scale=out_scale, zp=out_zp)]
    opts = RF._opts("ResizeNearestNeighborOptionsT", alignCorners=align, halfPixelCenters=half)
    return RF.build(T, [("RESIZE_NEAREST_NEIGHBOR", [0, 1], [2], opts)], [0, 1] if not size_const else [0], [2])


@needs_gcc
@pytest.mark.parametrize("in_shape,size,align,half", [
    ((1, 5, 7, 3), (12, 9), True, True),     # both options: TFLite Micro computes it, TF never emits it
    ((1, 7, 5, 2), (3, 4), True, False),     # downscaling with align_corners
    ((2, 4, 4, 1), (1, 1), True, False),     # a 1-pixel output (align_corners' out_size == 1 branch), batch 2
    ((1, 3, 6, 5), (7, 13), False, True),    # odd factors with half-pixel centers
])
def test_resize_options_tf_cannot_emit_are_bit_exact(in_shape, size, align, half, tmp_path):
    p = tmp_path / "m.tflite"
    p.write_bytes(_resize_model(in_shape, size, align=align, half=half))
    model, r = _check(p, tmp_path, samples=10)
    assert [op.kind for op in model.graph.ops] == ["RESIZE_NEAREST_NEIGHBOR"]
    assert r.mismatches == 0 and r.samples == 10 and r.elements == 10 * in_shape[0] * size[0] * size[1] * in_shape[3]


def _resize_chain() -> bytes:
    """[1,8,8,1] resized five times: every option combination (both at once too), up and down."""
    sizes = [(13, 11), (5, 7), (16, 16), (20, 24), (7, 3)]
    flags = [(True, True), (True, False), (False, True), (False, False), (True, False)]
    T = [dict(name="input", shape=[1, 8, 8, 1], type="int8", scale=0.05, zp=3)]
    O = []
    for k, ((h, w), (a, hp)) in enumerate(zip(sizes, flags)):
        prev = len(T) - 1
        T.append(dict(name=f"size{k}", shape=[2], type="int32", data=np.array([h, w], np.int32)))
        T.append(dict(name=f"r{k}", shape=[1, h, w, 1], type="int8", scale=0.05, zp=3))
        O.append(("RESIZE_NEAREST_NEIGHBOR", [prev, len(T) - 2], [len(T) - 1],
                  RF._opts("ResizeNearestNeighborOptionsT", alignCorners=a, halfPixelCenters=hp)))
    return RF.build(T, O, [0], [len(T) - 1])


@pytest.mark.qemu
@pytest.mark.skipif(shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
                    reason="needs qemu-system-arm and arm-none-eabi-gcc")
def test_resize_bit_exact_in_qemu_cortex_m7(tmp_path):
    """The float32 source-index formula gives TFLite Micro's indices on a Cortex-M7 with its FPU too
    (nucleo-f746's QEMU twin), for every option combination."""
    p = tmp_path / "chain.tflite"
    p.write_bytes(_resize_chain())
    r = subprocess.run([sys.executable, "-m", "tinyprune.cli", "build", str(p), "--board", "nucleo-f746",
                        "--samples", "10", "--sim-samples", "10", "--json", "-o", str(tmp_path / "b")],
                       capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads(r.stdout)
    assert [layer["kind"] for layer in s["codegen"]["layers"]] == ["RESIZE_NEAREST_NEIGHBOR"] * 5
    for target in ("host", "sim"):
        v = s["validation"][target]
        assert v["passed"] and v["bit_exact"] and v["mismatched_samples"] == 0, v
    assert s["validation"]["sim"]["board"] == "mps2-an500"


# ---- codegen: refusals (exit 2, naming the operator and the field) -----------------------------

@pytest.mark.parametrize("kw,expect", [
    (dict(out_scale=0.1), "input and output quantization differ"),
    (dict(out_zp=0), "input and output quantization differ"),
    (dict(size_const=False), "the size must be a constant int32 tensor of 2 values"),
    (dict(out_hw=(8, 9)), "does not have the height and width [8, 8] of the size tensor"),
])
def test_bad_resize_is_refused_naming_the_operator(kw, expect):
    with pytest.raises(UnsupportedModelError) as e:
        read_model_bytes(_resize_model((1, 4, 4, 2), (8, 8), **kw), "m.tflite")
    msg = str(e.value)
    assert expect in msg and "operator 0 (RESIZE_NEAREST_NEIGHBOR, output 'resized')" in msg, msg
    assert e.value.exit_code == 2


def test_resize_size_of_three_values_is_refused():
    data = _resize_model((1, 4, 4, 2), (8, 8, 1), out_hw=(8, 8))
    with pytest.raises(UnsupportedModelError, match=r"size must be a constant int32 tensor of 2 values .* \[3\]"):
        read_model_bytes(data, "m.tflite")


# ---- convert: which ONNX Resize nodes are taken ------------------------------------------------

class _Up(nn.Module):
    input_shape = (1, 2, 6, 6)

    def __init__(self, **kw):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 1)
        self.up = nn.Upsample(**kw)

    def forward(self, x):
        return self.up(self.conv(x))


def _onnx_check(module, tmp_path):
    from tinyprune.convert import onnx_utils
    p = onnx_utils.export_onnx(module, torch.zeros(module.input_shape), tmp_path / "m.onnx")
    return onnx_utils.check_supported_ops(onnx_utils.simplify(onnx_utils.load_onnx(p)))


def test_convert_takes_torch_nearest_upsampling(tmp_path):
    assert "Resize" in _onnx_check(_Up(scale_factor=2, mode="nearest"), tmp_path)
    assert "Resize" in _onnx_check(_Up(scale_factor=(3, 1), mode="nearest"), tmp_path)
    assert "Resize" in _onnx_check(_Up(size=(9, 4), mode="nearest"), tmp_path)


@pytest.mark.parametrize("kw,expect", [
    (dict(scale_factor=2, mode="bilinear"), "mode 'linear' (bilinear interpolation); only nearest-neighbour"),
    (dict(scale_factor=2, mode="bicubic"), "mode 'cubic'"),
    (dict(scale_factor=2, mode="bilinear", align_corners=True), "mode 'linear'"),
    (dict(scale_factor=1.5, mode="nearest"), "scale factors [1.5, 1.5] on height and width; only whole-number"),
])
def test_convert_refuses_other_resizes_naming_the_node(kw, expect, tmp_path):
    with pytest.raises(UnsupportedModelError) as e:
        _onnx_check(_Up(**kw), tmp_path)
    msg = str(e.value)
    assert "operator Resize (node '/up/Resize'" in msg and expect in msg, msg


def test_convert_cli_bilinear_exit_2(tmp_path):
    src = tmp_path / "net.py"
    src.write_text("import torch.nn as nn\n\n\ndef net():\n    m = nn.Sequential(nn.Conv2d(1, 2, 1), "
                   "nn.Upsample(scale_factor=2, mode='bilinear'))\n    m.input_shape = (1, 1, 8, 8)\n    return m\n")
    r = subprocess.run([sys.executable, "-m", "tinyprune.cli", "convert", f"{src}:net", "-o", str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "Resize (node" in r.stderr and "only nearest-neighbour resizing is supported" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "out").exists()


# ---- prune: the estimate graph ------------------------------------------------------------------

@pytest.mark.parametrize("interpolate", [False, True])
def test_estimate_graph_has_the_resize(interpolate):
    from tinyprune.prune.irgraph import build_graph
    from tinyprune.prune.zoo import tiny_seg_net
    g, _ = build_graph(tiny_seg_net(interpolate=interpolate), torch.zeros(1, 1, 16, 16))
    kinds = [op.kind for op in g.ops]
    assert kinds == ["CONV_2D", "PAD", "CONV_2D", "CONV_2D", "RESIZE_NEAREST_NEIGHBOR", "CONCATENATION", "CONV_2D"]
    op = g.ops[4]
    assert g.tensors[op.inputs[0]].shape == (1, 8, 8, 16) and g.tensors[op.outputs[0]].shape == (1, 16, 16, 16)
    assert g.tensors[op.inputs[1]].is_const and g.tensors[op.inputs[1]].shape == (2,)
    assert op.options == {"align_corners": False, "half_pixel_centers": False}


def test_estimate_refuses_bilinear_naming_the_layer():
    from tinyprune.prune.irgraph import build_graph
    with pytest.raises(UnsupportedModelError, match="layer 'up': 'bilinear' upsampling .* only nearest-neighbour"):
        build_graph(_Up(scale_factor=2, mode="bilinear"), torch.zeros(1, 2, 6, 6))


# ---- end to end ---------------------------------------------------------------------------------

@pytest.mark.slow
@needs_gcc
def test_tiny_segmentation_model_builds_pruned_and_bit_exact(tmp_path):
    """conv, downsample, conv, F.interpolate nearest to the skip's size, concat, conv head: pruned to a
    MAC limit, converted, generated, compiled for nucleo-f746 and bit-exact with TFLite Micro on the
    host; the prune stage's arena/flash estimate is what codegen reports for the converted model."""
    r = subprocess.run([sys.executable, "-m", "tinyprune.cli", "build", "tinyprune.prune.zoo:tiny_seg_net_interpolate",
                        "--board", "nucleo-f746", "--no-sim", "--max-macs", "120000", "--epochs", "0",
                        "--samples", "20", "--json", "-o", str(tmp_path / "b"),
                        "--min-agreement", "0"],   # an untrained, unseeded model: its int8 agreement is noise
                       capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads(r.stdout)
    assert s["status"] == "ok" and s["pruning"]["applied"] is True
    host = s["validation"]["host"]
    assert host["passed"] and host["bit_exact"] and host["mismatched_samples"] == 0
    kinds = [layer["kind"] for layer in s["codegen"]["layers"]]
    assert "RESIZE_NEAREST_NEIGHBOR" in kinds and "CONCATENATION" in kinds
    assert s["codegen"]["macs"] <= 120000
    after = s["pruning"]["estimate_after"]
    assert after["macs"] == s["codegen"]["macs"] < s["pruning"]["estimate_before"]["macs"]
    assert (after["ram_bytes"], after["flash_bytes"]) == (s["codegen"]["arena_bytes"], s["codegen"]["flash_bytes"])


def test_segmentation_model_prunes_without_fine_tuning_and_refuses_fine_tuning():
    """Per-pixel outputs: accuracy is measured as convert measures agreement (argmax of the flattened
    output), pruning without fine-tuning works, fine-tuning (a classifier loss) is refused (exit 2)."""
    from tinyprune.errors import UserInputError
    from tinyprune.prune import Budget, PruneConfig, figures, prune
    from tinyprune.prune.zoo import tiny_seg_net
    torch.manual_seed(0)
    m, x = tiny_seg_net().eval(), torch.zeros(1, 1, 16, 16)
    budget = Budget(max_macs=int(figures(m, x).macs * 0.7))
    res = prune(m, x, budget, criterion="l1", data="digits", config=PruneConfig(epochs=0))
    assert res.report["after"]["macs"] <= budget.max_macs
    assert 0.0 <= res.report["accuracy"]["before"] <= 1.0
    with pytest.raises(UserInputError, match=r"fine-tuning trains a classifier .* shape \(4, 16, 16\) per sample") as e:
        prune(m, x, budget, criterion="l1", data="digits", config=PruneConfig(epochs=1))
    assert e.value.exit_code == 2 and "--epochs 0" in e.value.hint


@needs_gcc
def test_kernel_argument_errors(tmp_path):
    """tp_resize_nearest_s8 returns TP_ERR_ARG for NULL pointers, non-positive dimensions and an output
    that changes the batch or channels; TP_OK (and the right bytes) otherwise."""
    from tinyprune._paths import KERNELS_DIR
    src = tmp_path / "t.c"
    src.write_text(r'''
#include <stdio.h>
#include "tp_nn.h"
int main(void) {
    const tp_resize_params p = { 0, 0 };
    const tp_dims in = { 1, 2, 2, 1 }, out = { 1, 4, 4, 1 }, bad_c = { 1, 4, 4, 2 }, bad_n = { 2, 4, 4, 1 },
                  zero = { 1, 0, 4, 1 };
    const int8_t x[4] = { 1, 2, 3, 4 };
    int8_t y[32];
    printf("%d %d %d %d %d %d %d\n", (int)tp_resize_nearest_s8(0, &in, x, &out, y),
           (int)tp_resize_nearest_s8(&p, &in, 0, &out, y), (int)tp_resize_nearest_s8(&p, &in, x, &out, 0),
           (int)tp_resize_nearest_s8(&p, &in, x, &bad_c, y), (int)tp_resize_nearest_s8(&p, &in, x, &bad_n, y),
           (int)tp_resize_nearest_s8(&p, &in, x, &zero, y), (int)tp_resize_nearest_s8(&p, &in, x, &out, y));
    for (int i = 0; i < 16; ++i) printf("%d ", y[i]);
    return 0;
}
''')
    exe = tmp_path / "t"
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-fsanitize=address,undefined", "-I",
                    str(KERNELS_DIR), str(src), str(KERNELS_DIR / "tp_resize_s8.c"), "-o", str(exe)], check=True)
    lines = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.splitlines()
    assert lines[0] == "1 1 1 1 1 1 0"
    assert [int(v) for v in lines[1].split()] == [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]


def test_dense_output_agreement_is_per_position_and_accuracy_not_measured():
    """A per-pixel output (N, C, H, W) in float vs (N, H, W, C) in int8: top-1 is compared position by
    position along the class axis (flattening both gave ~0 % for a perfect model, which failed `build`'s
    --min-agreement check), and per-sample labels cannot score it."""
    import numpy as np

    from tinyprune.convert.tflite_int8 import top1, top1_agreement
    rng = np.random.default_rng(0)
    f = rng.standard_normal((5, 4, 6, 7)).astype(np.float32)
    q = np.ascontiguousarray(f.transpose(0, 2, 3, 1))
    assert top1(f, 1).shape == (5, 6, 7) and top1_agreement(f, q) == 1.0
    q2 = q.copy()
    q2[:, 0, 0, :] = 0
    for n in range(5):                                          # another class at one position of 42
        q2[n, 0, 0, (int(f[n, :, 0, 0].argmax()) + 1) % 4] = 9
    assert top1_agreement(f, q2) == 1 - 1 / 42
    v = rng.standard_normal((5, 10)).astype(np.float32)        # a classifier: one top-1 per sample
    assert top1(v).shape == (5,) and top1_agreement(v, v) == 1.0
    assert top1(v.reshape(5, 1, 1, 10), -1).shape == (5,)      # (N, 1, 1, K) is still a class vector
