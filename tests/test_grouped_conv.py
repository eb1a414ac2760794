"""Grouped convolution (``nn.Conv2d(..., groups=g)``, 1 < g < in_channels) end to end.

onnx2tf + TensorFlow's converter emit it as one native grouped CONV_2D (filter [out_c, kh, kw,
in_c / g]; checked below on a converted model); TFLite Micro runs it with ConvPerChannel. Here:
the reference kernel with groups bit-exact against TFLite Micro on randomised TF-converted models
(groups, kernel, stride, channel counts not multiples of 4; int8 and fast-weights filters); the
refusal of a filter TFLite cannot run; the DSP plan and CMSIS-NN path (both run the reference for
groups > 1, said in codegen.json and by the CLI); pruning in whole per-group patterns; and (slow)
a pruned ShuffleNet-v1-style model whose estimated figures equal codegen's, and a build through
every stage in QEMU."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinyprune.codegen import ir
from tinyprune.errors import UnsupportedModelError

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
import codegen_opmodels as M  # noqa: E402

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs a host gcc")


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "tinyprune.cli", *map(str, args)], capture_output=True,
                          text=True, check=False, timeout=1200)


def _main(capsys, *args):
    """The CLI in this process (TensorFlow and torch already imported): (exit code, stdout, stderr)."""
    from tinyprune.cli import main
    capsys.readouterr()
    code = main([str(a) for a in args])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


@pytest.fixture(scope="module")
def grouped_tflite(tmp_path_factory):
    pytest.importorskip("tensorflow")
    cache = {}

    def get(seed):
        if seed not in cache:
            rng = np.random.default_rng(seed)
            fn, shapes = M.grouped_conv_cases(rng)
            p = tmp_path_factory.mktemp(f"gconv{seed}") / "model.tflite"
            p.write_bytes(M.convert(fn, shapes, rng))
            cache[seed] = p
        return cache[seed]
    return get


def _grouped_ops(path):
    from tinyprune.codegen.tflite_reader import read_model
    g = read_model(path).graph
    return g, [op for op in g.ops if op.kind == "CONV_2D" and ir.conv_groups(op, g) > 1]


# ------------------------------------------------------------------------------------------------
# kernel: bit-exact with TFLite Micro on the host

@needs_gcc
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grouped_conv_bit_exact_with_tflite_micro(grouped_tflite, seed, tmp_path):
    from tinyprune.codegen.check import check, load_inputs
    from tinyprune.codegen.generate import generate
    from tinyprune.codegen.tflite_reader import read_model
    path = grouped_tflite(seed)
    g, grouped = _grouped_ops(path)
    assert len(grouped) == 4 == len(g.ops)         # the converter kept every case a grouped CONV_2D
    shapes = {(g.tensors[op.inputs[1]].shape[1], g.tensors[op.outputs[0]].shape[1] < g.tensors[op.inputs[0]].shape[1])
              for op in grouped}
    assert (1, False) in shapes and (3, False) in shapes   # 1x1 and 3x3 at stride 1 (and stride 2 below)
    assert any(st for _, st in shapes)
    out = tmp_path / "cg"
    generate(path, out, tflm_arena=False)
    src = (out / "model.c").read_text()
    for op in grouped:   # the filter dims carry the filter's channel count, not the input's
        f = g.tensors[op.inputs[1]].shape
        assert f"{{ {f[0]}, {f[1]}, {f[2]}, {f[3]} }}" in src
    r = check(out, path, load_inputs(read_model(path), random=20, seed=seed + 7), sanitize=seed == 0)
    assert r.mismatches == 0 and r.samples == 20 and r.elements > 0


@needs_gcc
def test_grouped_conv_fast_weights_bit_exact(grouped_tflite, tmp_path):
    """The int16 fast-weights filter (tp_conv_s8_x16) with groups: rows of K = kh*kw*in_c/groups."""
    from tinyprune.codegen.check import check, load_inputs
    from tinyprune.codegen.generate import generate
    from tinyprune.codegen.tflite_reader import read_model
    path = grouped_tflite(1)
    out = tmp_path / "cg"
    generate(path, out, tflm_arena=False, fast_weights=True)
    assert (out / "model.c").read_text().count("tp_conv_s8_x16(") == 4
    r = check(out, path, load_inputs(read_model(path), random=10, seed=3), sanitize=False)
    assert r.mismatches == 0 and r.samples == 10


# ------------------------------------------------------------------------------------------------
# model checks: what TFLite cannot run is refused, naming the layer and the supported forms

def _conv_graph(in_c, filter_c, out_c):
    t = {"x": ir.Tensor("x", (1, 6, 6, in_c), quant=ir.Quant([0.1], [0])),
         "w": ir.Tensor("w", (out_c, 1, 1, filter_c), quant=ir.Quant([0.02] * out_c, [0] * out_c), is_const=True,
                        data=np.ones((out_c, 1, 1, filter_c), np.int8)),
         "y": ir.Tensor("y", (1, 6, 6, out_c), quant=ir.Quant([0.2], [0]))}
    return t


@pytest.mark.parametrize("in_c,filter_c,out_c,ok", [
    (12, 4, 6, True),      # 3 groups, 2 outputs each
    (12, 12, 5, True),     # ordinary
    (10, 4, 6, False),     # 4 does not divide 10
    (12, 4, 7, False),     # 7 outputs over 3 groups
    (12, 8, 4, False),     # 8 does not divide 12
])
def test_model_checks_accept_tflite_groups_and_refuse_the_rest(in_c, filter_c, out_c, ok):
    from tinyprune.codegen.model_checks import check_op
    t = _conv_graph(in_c, filter_c, out_c)
    opts = {"stride_h": 1, "stride_w": 1, "dilation_h": 1, "dilation_w": 1, "padding": "SAME",
            "fused_activation": "NONE"}
    if ok:
        check_op("m.tflite", "operator 3 (CONV_2D, output 'y')", "CONV_2D", ["x", "w"], ["y"], opts, t)
        return
    with pytest.raises(UnsupportedModelError) as e:
        check_op("m.tflite", "operator 3 (CONV_2D, output 'y')", "CONV_2D", ["x", "w"], ["y"], opts, t)
    msg = str(e.value) + (e.value.hint or "")
    assert "operator 3 (CONV_2D, output 'y')" in msg and f"reads {filter_c} input channels of {in_c}" in msg
    assert "supported forms" in msg and "groups=g" in msg and "DEPTHWISE_CONV_2D" in msg
    assert UnsupportedModelError.exit_code == 2


# ------------------------------------------------------------------------------------------------
# DSP plan and CMSIS-NN: grouped convs run the reference, scratch 0, and it is said

def test_dsp_plan_reserves_no_scratch_for_grouped_convs_and_says_they_run_the_reference(grouped_tflite, tmp_path,
                                                                                        capsys):
    path = grouped_tflite(0)
    code, out, err = _main(capsys, "codegen", path, "-o", tmp_path / "cg", "--board", "nucleo-f746")
    assert code == 0, err
    rep = json.loads((tmp_path / "cg" / "codegen.json").read_text())
    assert rep["plan_kernels"] == "dsp"
    assert [L["groups"] > 1 for L in rep["layers"]] == [True] * 4
    assert [L["scratch_bytes"] for L in rep["layers"]] == [0] * 4
    assert len(rep["notes"]) == 1 and "run the reference C kernel" in rep["notes"][0]
    assert "note: grouped convolution layer(s) 0 (groups=" in out
    # the portable plan has nothing to say
    code, out, _ = _main(capsys, "codegen", path, "-o", tmp_path / "cg2")
    assert code == 0 and "note:" not in out
    assert json.loads((tmp_path / "cg2" / "codegen.json").read_text())["notes"] == []


def test_cmsis_nn_lowers_grouped_convs_to_the_portable_kernel(tmp_path):
    """Not every CMSIS-NN v6 release takes a grouped filter: the generated code calls tinyprune's
    kernel for those layers and CMSIS-NN for the rest (a stand-in checkout: only the generated C is
    inspected; compiling against CMSIS-NN is tests/test_codegen_cmsis.py's, with CMSIS_NN_PATH)."""
    tf = pytest.importorskip("tensorflow")
    from tinyprune.codegen.generate import generate
    fake = tmp_path / "cmsis"
    (fake / "Include").mkdir(parents=True)
    (fake / "Source").mkdir()
    (fake / "Include" / "arm_nnfunctions.h").write_text("arm_convolve_wrapper_s8 cmsis_nn_context\n")
    rng = np.random.default_rng(4)
    k1, k2, k3 = M._w(rng, (3, 3, 1, 6)), M._w(rng, (1, 1, 2, 9)), M._w(rng, (3, 3, 9, 4))

    @tf.function
    def f(x):
        y = tf.nn.relu(tf.nn.conv2d(x, k1, 1, "SAME"))
        y = tf.nn.relu(tf.nn.conv2d(y, k2, 1, "SAME"))      # 3 groups of 2 input channels
        return tf.nn.conv2d(y, k3, 1, "SAME")
    path = tmp_path / "m.tflite"
    path.write_bytes(M.convert(f, [(1, 8, 8, 1)], rng))
    assert len(_grouped_ops(path)[1]) == 1
    res = generate(path, tmp_path / "g", kernels="cmsis-nn", cmsis_nn=fake, tflm_arena=False)
    src = (tmp_path / "g" / "model.c").read_text()
    assert src.count("arm_convolve_wrapper_s8(") == 2 and src.count("tp_conv_s8(") == 1
    g_layer = [L for L in res.report["layers"] if L["groups"] == 3]
    assert len(g_layer) == 1 and g_layer[0]["layer"] not in res.report["cmsis_nn"]["layers"]
    assert g_layer[0]["scratch_bytes"] == 0
    assert len(res.report["cmsis_nn"]["layers"]) == 2
    assert "CMSIS-NN's convolution takes groups=1 only" in res.report["notes"][0]


def test_report_says_which_layers_run_the_reference():
    from tinyprune.report import render_html, render_markdown
    note = "grouped convolution layer(s) 1 (groups=3) run the reference C kernel: the DSP convolution takes " \
           "groups=1 only"
    s = {"status": "ok", "model": {"name": "m"}, "board": {"name": "nucleo-f746"},
         "codegen": {"arena_bytes": 10, "macs": 5, "notes": [note],
                     "layers": [{"name": "a", "kind": "CONV_2D", "macs": 5, "output_bytes": 10}]}}
    assert f"<p class=\"note\">Note: {note}</p>" in render_html(s)
    assert f"Note: {note}" in render_markdown(s)
    s["codegen"]["notes"] = []
    assert "Note:" not in render_html(s) and "Note:" not in render_markdown(s)


# ------------------------------------------------------------------------------------------------
# pruning: whole per-group patterns

def _v1(seed=0):
    import torch

    from tinyprune.prune.zoo import shufflev1_net
    torch.manual_seed(seed)
    m = shufflev1_net().eval()
    for mod in m.modules():   # non-trivial batch norms, so that a wrong channel shows in the outputs
        if isinstance(mod, torch.nn.BatchNorm2d):
            with torch.no_grad():
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
                mod.bias.uniform_(-0.5, 0.5)
    return m


def test_torch_pruning_alone_breaks_a_grouped_conv_so_units_are_whole_patterns():
    """torch-pruning's dependency graph prunes the channels it is given: one channel of the residual
    trunk leaves 23 for convs of 3 (and 2) groups, a broken model (and its prune_in_channels of a
    grouped conv keeps the first group's weight columns for every group). tinyprune prunes unit
    j = {j, j + P, ..., j + (L-1) P}, one channel at the same place in every conv group."""
    import copy

    import torch
    import torch_pruning as tp

    from tinyprune.prune.structure import Structure
    model = _v1()
    x = torch.randn(3, 1, 8, 8)
    raw = copy.deepcopy(model)
    dg = tp.DependencyGraph().build_dependency(raw, example_inputs=x[:1])
    group = dg.get_pruning_group(raw.stem, tp.prune_conv_out_channels, [1])
    group.prune()
    with pytest.raises(RuntimeError):   # 23 channels cannot be split into 3 groups
        raw(x)

    st = Structure(model, x[:1])
    g = st.groups["unit2.expand"]
    assert (g.unit, g.width, g.channels) == (6, 24, 4)   # lcm(3 groups of the 1x1s, 2 of `down`)
    assert g.unit_channels(1) == [1, 5, 9, 13, 17, 21]
    assert st.groups["down"].unit == 2 and st.groups["down"].channels == 16
    assert st.groups["head"].unit == 1
    w_reduce = model.unit1.reduce.weight.detach().clone()   # [12, 8, 1, 1], 3 groups of 8 inputs
    w_down = model.down.weight.detach().clone()             # [32, 12, 3, 3], 2 groups of 12 inputs
    w_expand = model.unit1.expand.weight.detach().clone()   # [24, 4, 1, 1]
    ref = model(x).detach()
    st.remove({"unit2.expand": [1], "down": [0, 5]})
    # every grouped conv keeps equal groups; the kept weights are the right slices
    assert tuple(model.unit1.reduce.weight.shape) == (12, 6, 1, 1)
    keep_local = [0, 2, 3, 4, 6, 7]          # local input columns 1 and 5 (channels 1, 5, 9, ...) removed
    assert torch.equal(model.unit1.reduce.weight, w_reduce[:, keep_local])
    keep_res = [c for c in range(24) if c % 4 != 1]
    assert torch.equal(model.unit1.expand.weight, w_expand[keep_res])
    keep_down_in = [c for c in range(12) if c % 4 != 1]
    keep_down_out = [c for c in range(32) if c not in (0, 16, 5, 21)]
    assert torch.equal(model.down.weight, w_down[keep_down_out][:, keep_down_in])
    assert model.down.groups == 2 and model.down.out_channels == 28
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            assert m.in_channels % m.groups == 0 and m.out_channels % m.groups == 0
    out = model(x)
    assert out.shape == (3, 10) and not torch.allclose(out, ref)   # still runs, really pruned
    # criteria see one score per unit
    assert st.aggregate(torch.abs, "unit2.expand").shape == (3,)


def test_aggregate_of_a_grouped_conv_sums_each_units_channels():
    import torch

    from tinyprune.prune.structure import Structure
    model = _v1()
    st = Structure(model, torch.zeros(1, 1, 8, 8))
    g = st.groups["down"]
    got = st.aggregate(lambda p: torch.ones_like(p) if p is model.down.weight else None, "down")
    # every out channel of `down` (24 inputs, 2 groups) has 12 input channels x 9 taps; a unit is 2 channels
    assert torch.equal(got, torch.full((g.channels,), 2.0 * 12 * 9))
    got = st.aggregate(lambda p: torch.ones_like(p) if p is model.unit1.reduce.weight else None, "unit2.expand")
    # in-channel c of unit1.reduce (3 groups: 4 outputs x 8 inputs) has 4 weights; a unit is 6 channels
    assert torch.equal(got, torch.full((4,), 6.0 * 4))


def test_prune_cli_says_the_per_group_patterns(tmp_path, capsys):
    import torch

    from tinyprune.prune import figures
    out = tmp_path / "p"
    code, stdout, err = _main(capsys, "prune", "tinyprune.prune.zoo:shufflev1_net", "--input-shape", "1,1,8,8",
                              "--max-macs", 80000, "--epochs", 0, "-o", out)
    assert code == 0, err
    assert "note: grouped convolutions: down (2 channels per pattern), unit2.expand (6 channels per pattern)" \
        in stdout
    rep = json.loads((out / "prune.json").read_text())
    assert rep["grouped_units"]["layers"] == {"down": 2, "unit2.expand": 6}
    model = torch.load(out / "pruned_model.pt", weights_only=False).eval()
    f = figures(model, torch.zeros(1, 1, 8, 8))
    assert f.macs <= 80000 and rep["after"]["macs"] == f.macs
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d) and m.groups > 1:
            assert m.in_channels % m.groups == 0 and m.out_channels % m.groups == 0
    assert model.unit1.expand.out_channels % 6 == 0 and model.down.out_channels % 2 == 0
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def test_prune_graph_has_grouped_filters_and_macs():
    import torch

    from tinyprune.prune import build_graph
    g, macs = build_graph(_v1(), torch.zeros(1, 1, 8, 8))
    convs = [op for op in g.ops if op.kind == "CONV_2D"]
    assert [g.tensors[op.inputs[1]].shape for op in convs] == [
        (24, 3, 3, 1), (12, 1, 1, 8), (24, 1, 1, 4), (12, 1, 1, 8), (24, 1, 1, 4), (32, 3, 3, 12), (32, 1, 1, 32)]
    assert [ir.conv_groups(op, g) for op in convs] == [1, 3, 3, 3, 3, 2, 1]
    assert macs["unit1.reduce"] == 64 * 12 * 8 and macs["down"] == 16 * 32 * 9 * 12


# ------------------------------------------------------------------------------------------------
# slow: conversion, estimate vs codegen, and a full build

@pytest.mark.slow
@needs_gcc
def test_pruned_shufflev1_figures_equal_codegen_of_converted_model(tmp_path):
    """The prune stage's graph of the pruned ShuffleNet-v1-style model (grouped 1x1 convs, channel
    shuffle, a grouped 3x3 at stride 2) has the converted model's op list and exactly its
    MACs/arena/flash (portable and DSP plans); the converted model is bit-exact in codegen --check."""
    import torch

    from tinyprune.codegen.estimate import estimate
    from tinyprune.codegen.tflite_reader import read_model, read_tflite
    from tinyprune.convert import convert
    from tinyprune.prune import Budget, PruneConfig, build_graph, figures, prune
    model, x = _v1(), torch.zeros(1, 1, 8, 8)
    before = figures(model, x)
    res = prune(model, x, Budget(max_macs=int(before.macs * 0.6)), config=PruneConfig(epochs=0))
    pruned = res.model
    mine = figures(pruned, x)
    assert mine.macs <= before.macs * 0.6 and pruned.down.out_channels < 32 and pruned.stem.out_channels < 24
    conv = convert(pruned, tmp_path / "c", data="digits", input_shape=(1, 1, 8, 8), calib_samples=16)
    g = read_model(conv.tflite_path).graph
    assert sorted(op.kind for op in g.ops) == sorted(op.kind for op in build_graph(pruned, x)[0].ops)
    assert sorted(ir.conv_groups(op, g) for op in g.ops if op.kind == "CONV_2D") == [1, 1, 2, 3, 3, 3, 3]
    for kernels in ("portable", "dsp"):
        real = estimate(read_tflite(conv.tflite_path), kernels)
        mine = figures(pruned, x, kernels=kernels)
        assert (real.macs, real.arena_bytes, real.flash_bytes) == (mine.macs, mine.ram_bytes, mine.flash_bytes)
    r = _cli("codegen", conv.tflite_path, "-o", tmp_path / "cg", "--check", "--random", 10)
    assert r.returncode == 0 and "bit-exact with TFLite Micro on 10 inputs" in r.stdout, r.stdout + r.stderr


@pytest.mark.slow
@pytest.mark.arm
@pytest.mark.qemu
@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                    reason="needs arm-none-eabi-gcc and qemu-system-arm")
def test_build_shufflev1_prunes_and_validates_bit_exact_on_host_and_in_qemu(tmp_path):
    """Every stage of `tinyprune build` (prune to a MAC budget, convert, codegen with the DSP plan,
    firmware, validate on the host and in QEMU -- Cortex-M7 with the DSP kernels, whose conv runs the
    reference for the grouped layers)."""
    out = tmp_path / "b"
    r = _cli("build", "tinyprune.prune.zoo:shufflev1_net", "--board", "nucleo-f746", "--input-shape", "1,1,8,8",
             "--max-macs", 90000, "--epochs", 0, "--samples", 20, "--sim-samples", 5, "--calib-samples", 32,
             "--min-agreement", 0, "-o", out)   # untrained: its int8 agreement is noise
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    d = out / "nucleo-f746"
    s = json.loads((d / "summary.json").read_text())
    assert s["pruning"]["applied"] and s["budget"]["model"]["macs"] <= 90000
    for target in ("host", "sim"):
        v = s["validation"][target]
        assert v["passed"] and v["bit_exact"] and v["mismatched_samples"] == 0
    assert s["codegen"]["notes"] and "run the reference C kernel" in s["codegen"]["notes"][0]
    assert "run the reference C kernel" in r.stderr + r.stdout
    assert "run the reference C kernel" in (d / "report.html").read_text()
    cg = json.loads((d / "codegen" / "codegen.json").read_text())
    assert sorted(L["groups"] for L in cg["layers"] if L["kind"] == "CONV_2D") == [1, 1, 2, 3, 3, 3, 3]
