"""Channel shuffle (ShuffleNet): the TRANSPOSE lowering (drop size-1 axes, merge axes that move
together) that lets the 4-D kernel run 5-/6-D transposes, bit-exact with TFLite Micro through
``tinyprune codegen --check`` on TensorFlow-converted models; the refusal of a transpose that stays
above 4-D; and (below) the prune stage's tracing of shape access in forward()."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinyprune.codegen.layout_ops import lower_transpose, reduce_transpose
from tinyprune.errors import UnsupportedModelError

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
import codegen_opmodels as M

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs a host gcc")


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "tinyprune.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, check=False)


# ------------------------------------------------------------------------------------------------
# lowering (pure Python)

def test_reduce_transpose_moves_bytes_like_numpy_for_random_ranks_up_to_6():
    rng = np.random.default_rng(0)
    lowered = refused = 0
    for _ in range(400):
        r = int(rng.integers(1, 7))
        shape = [int(s) for s in rng.choice([1, 1, 2, 3, 4], size=r)]
        perm = [int(p) for p in rng.permutation(r)]
        x = rng.integers(-128, 128, size=shape).astype(np.int8)
        want = np.transpose(x, perm).ravel()
        dims, p = reduce_transpose(shape, perm)
        assert np.array_equal(np.transpose(x.reshape(dims), p).ravel(), want), (shape, perm, dims, p)
        if len(dims) <= 4:
            d4, p4 = lower_transpose(shape, perm)
            assert len(d4) == len(p4) == 4
            assert np.array_equal(np.transpose(x.reshape(d4), p4).ravel(), want), (shape, perm, d4, p4)
            lowered += 1
        else:
            with pytest.raises(UnsupportedModelError, match="after dropping size-1 dimensions"):
                lower_transpose(shape, perm)
            refused += 1
    assert lowered > 300 and refused > 0


def test_channel_shuffle_lowers_to_3d():
    assert reduce_transpose((1, 5, 7, 3, 4), (0, 1, 2, 4, 3)) == ([35, 3, 4], [0, 2, 1])
    assert lower_transpose((1, 5, 7, 3, 4), (0, 1, 2, 4, 3)) == ([1, 35, 3, 4], [0, 1, 3, 2])
    # g = 1 or C/g = 1: nothing moves
    assert reduce_transpose((1, 5, 7, 1, 4), (0, 1, 2, 4, 3)) == ([140], [0])
    assert reduce_transpose((1, 1, 1, 1, 1, 1), (5, 4, 3, 2, 1, 0)) == ([1], [0])


# ------------------------------------------------------------------------------------------------
# TensorFlow-converted models through codegen --check (host gcc, TFLite Micro)

@pytest.fixture(scope="module")
def shuffle_tflite(tmp_path_factory):
    pytest.importorskip("tensorflow")
    cache = {}

    def get(seed):
        if seed not in cache:
            rng = np.random.default_rng(seed)
            fn, shapes = M.channel_shuffle_cases(rng)
            p = tmp_path_factory.mktemp(f"shuffle{seed}") / "model.tflite"
            p.write_bytes(M.convert(fn, shapes, rng))
            cache[seed] = p
        return cache[seed]
    return get


@needs_gcc
@pytest.mark.parametrize("seed", [0, 1])
def test_5d_channel_shuffle_codegen_check_bit_exact(shuffle_tflite, seed, tmp_path):
    from tinyprune.codegen.tflite_reader import read_model
    path = shuffle_tflite(seed)
    g = read_model(path).graph
    five_d = [op for op in g.ops if op.kind == "TRANSPOSE" and len(g.tensors[op.inputs[0]].shape) == 5]
    assert len(five_d) == 2 and all(op.options["perm"] == [0, 1, 2, 4, 3] for op in five_d)
    r = _cli("codegen", path, "-o", tmp_path / "cg", "--check", "--random", 20)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "bit-exact with TFLite Micro on 20 inputs" in r.stdout
    src = (tmp_path / "cg" / "model.c").read_text()
    assert src.count("tp_transpose_s8(") == 2


def test_transpose_still_5d_after_merging_is_refused_with_exit_2(tmp_path):
    tf = pytest.importorskip("tensorflow")

    @tf.function
    def f(x):
        t = tf.reshape(x, [2, 3, 4, 5, 6])
        return tf.reshape(tf.transpose(t, [4, 3, 2, 1, 0]), [1, 720])
    rng = np.random.default_rng(3)
    path = tmp_path / "t5.tflite"
    path.write_bytes(M.convert(f, [(1, 720)], rng))
    r = _cli("codegen", path, "-o", tmp_path / "cg")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "TRANSPOSE" in r.stderr and "still has 5 dimensions" in r.stderr and "at most 4" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "cg").exists()


# ------------------------------------------------------------------------------------------------
# prune: tracing shape access, the int8 graph of a channel shuffle, channel groups kept whole

def _shuffle_net():
    import torch

    from tinyprune.prune.zoo import shuffle_net
    torch.manual_seed(0)
    return shuffle_net(8).eval()


# the convert stage's op list for zoo.shuffle_net (onnx2tf + TF converter, checked by the slow test below)
SHUFFLE = ["TRANSPOSE", "RESHAPE", "TRANSPOSE", "RESHAPE", "TRANSPOSE"]
SHUFFLE_NET_OPS = (["CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D",
                    "CONCATENATION"] + SHUFFLE + ["CONV_2D"] + SHUFFLE + ["MEAN", "FULLY_CONNECTED"])


def test_build_graph_follows_shape_access_and_channel_shuffle():
    import torch

    from tinyprune.prune import build_graph
    g, macs = build_graph(_shuffle_net(), torch.zeros(1, 1, 8, 8))
    assert [op.kind for op in g.ops] == SHUFFLE_NET_OPS
    five_d = [op for op in g.ops if op.kind == "TRANSPOSE" and len(g.tensors[op.inputs[0]].shape) == 5]
    assert [(g.tensors[op.inputs[0]].shape, op.options["perm"]) for op in five_d] == [
        ((1, 2, 8, 8, 8), [0, 2, 1, 3, 4]), ((1, 4, 8, 8, 8), [0, 2, 1, 3, 4])]
    assert g.tensors[g.outputs[0]].shape == (1, 10)
    assert sum(macs.values()) == 59200


def test_shape_access_forms_trace_and_transpose_of_a_map_is_refused():
    import torch
    from torch import nn

    from tinyprune.prune import build_graph

    class Forms(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(1, 6, 3, padding=1)
            self.fc = nn.Linear(6 * 16, 4)

        def forward(self, x):
            x = self.c(x)
            g = 3
            b, c = x.size(0), x.size(1)
            h, w = x.size()[2], x.shape[-1]
            x = x.view(b, g, c // g, h, w).transpose(1, 2).contiguous().view(b, -1, h, w)
            return self.fc(torch.flatten(x, 1))
    g, _ = build_graph(Forms().eval(), torch.zeros(1, 1, 4, 4))
    assert [op.kind for op in g.ops] == ["CONV_2D"] + SHUFFLE + ["TRANSPOSE", "RESHAPE", "FULLY_CONNECTED"]

    class MapTranspose(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(1, 4, 3)

        def forward(self, x):
            return self.c(x).transpose(2, 3)
    with pytest.raises(UnsupportedModelError, match=r"transpose/permute \[0, 1, 3, 2\] of a 4-D"):
        build_graph(MapTranspose().eval(), torch.zeros(1, 1, 5, 5))


def test_torch_pruning_misreads_the_shuffle_so_its_groups_are_kept_whole():
    """torch-pruning maps channel indices through a shuffle as if it were the identity: pruning
    channel 1 of ``unit.left.2`` with it removes input channel 1 of ``mix`` (the shuffle put it at
    2) and leaves 15 channels for a 2-group shuffle: a broken model. tinyprune keeps such groups
    whole and says so; the other groups still prune and the model still runs."""
    import copy

    import torch
    import torch_pruning as tp

    from tinyprune.prune.structure import CHANNEL_REORDER_REASON, Structure
    model = _shuffle_net()
    x = torch.randn(4, 1, 8, 8)
    raw = copy.deepcopy(model)
    dg = tp.DependencyGraph().build_dependency(raw, example_inputs=x[:1])
    group = dg.get_pruning_group(raw.unit.left[2], tp.prune_conv_out_channels, [1])
    assert [idxs for dep, idxs in group if dep.target.module is raw.mix] == [[1]]
    group.prune()
    with pytest.raises(RuntimeError, match="invalid for input of size"):
        raw(x)

    st = Structure(model, x[:1])
    assert sorted(st.excluded) == ["mix", "unit.left.2", "unit.right.5"]
    assert set(st.excluded.values()) == {CHANNEL_REORDER_REASON}
    assert sorted(st.groups) == ["stem", "unit.right.3"]
    st.remove({"stem": [0, 1], "unit.right.3": [3]})
    assert tuple(model.mix.weight.shape) == (32, 16, 1, 1)
    assert model(x).shape == (4, 10)


def test_prune_cli_reports_the_layers_kept_whole(tmp_path):
    import json

    import torch

    from tinyprune.prune import figures
    out = tmp_path / "p"
    r = _cli("prune", "tinyprune.prune.zoo:shuffle_net", "--input-shape", "1,1,8,8", "--max-macs", 45000,
             "--epochs", 0, "-o", out)
    assert r.returncode == 0, r.stderr
    assert "note: not pruned: mix, unit.left.2, unit.right.5: their channels pass through a transpose/permute" \
        in r.stdout
    rep = json.loads((out / "prune.json").read_text())
    assert rep["not_pruned"]["layers"] == ["mix", "unit.left.2", "unit.right.5"]
    model = torch.load(out / "pruned_model.pt", weights_only=False).eval()
    f = figures(model, torch.zeros(1, 1, 8, 8))
    assert f.macs <= 45000 and rep["after"]["macs"] == f.macs
    assert model.mix.in_channels == 16 and model.mix.out_channels == 32 and model.stem.out_channels < 8
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


# ------------------------------------------------------------------------------------------------
# slow: the convert stage (onnx2tf + TensorFlow) and a full build

@pytest.mark.slow
@needs_gcc
def test_pruned_shuffle_net_figures_equal_codegen_of_converted_model(tmp_path):
    """The prune stage's graph of the pruned ShuffleNet-style model has the converted model's op list
    and exactly its MACs/arena/flash; the converted model (5-D TRANSPOSE) is bit-exact in codegen --check."""
    import torch

    from tinyprune.codegen.estimate import estimate
    from tinyprune.codegen.tflite_reader import read_model, read_tflite
    from tinyprune.convert import convert
    from tinyprune.prune import Budget, PruneConfig, build_graph, figures, prune
    model, x = _shuffle_net(), torch.zeros(1, 1, 8, 8)
    before = figures(model, x)
    res = prune(model, x, Budget(max_macs=int(before.macs * 0.75)), config=PruneConfig(epochs=0))
    pruned = res.model
    mine = figures(pruned, x)
    assert mine.macs <= before.macs * 0.75 and pruned(x).shape == (1, 10)
    conv = convert(pruned, tmp_path / "c", data="digits", input_shape=(1, 1, 8, 8), calib_samples=16)
    g = read_model(conv.tflite_path).graph
    # the same operators as the prune stage's graph of the same pruned model; the TF converter may order the
    # two branches of a shuffle unit either way (seen in full-suite runs), and the planner plans from a
    # canonical order, so the figures below must agree whatever the order
    assert sorted(op.kind for op in g.ops) == sorted(op.kind for op in build_graph(pruned, x)[0].ops) == \
        sorted(SHUFFLE_NET_OPS)
    real = estimate(read_tflite(conv.tflite_path))
    assert (real.macs, real.arena_bytes, real.flash_bytes) == (mine.macs, mine.ram_bytes, mine.flash_bytes)
    r = _cli("codegen", conv.tflite_path, "-o", tmp_path / "cg", "--check", "--random", 10)
    assert r.returncode == 0 and "bit-exact with TFLite Micro on 10 inputs" in r.stdout, r.stdout + r.stderr


@pytest.mark.slow
@pytest.mark.arm
@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="needs arm-none-eabi-gcc")
def test_build_shuffle_net_for_nucleo_f746_is_bit_exact_on_host(tmp_path):
    import json
    out = tmp_path / "b"
    r = _cli("build", "tinyprune.prune.zoo:shuffle_net", "--board", "nucleo-f746", "--no-sim", "--input-shape",
             "1,1,8,8", "--max-macs", 45000, "--epochs", 0, "--samples", 20, "--calib-samples", 32, "-o", out,
             "--min-agreement", 0)   # an untrained, unseeded model: its int8 top-1 agreement is noise
    assert r.returncode == 0, r.stdout + r.stderr
    d = out / "nucleo-f746"
    v = json.loads((d / "validate-host.json").read_text())
    assert v["passed"] and v["bit_exact"] and v["samples"] == 20
    assert json.loads((d / "prune" / "prune.json").read_text())["not_pruned"]["layers"] == [
        "mix", "unit.left.2", "unit.right.5"]
    summary = json.loads((d / "summary.json").read_text())
    assert summary["budget"]["model"]["macs"] <= 45000
    # the layers kept out of pruning are said by build too, not only by `tinyprune prune`
    assert summary["pruning"]["not_pruned"]["layers"] == ["mix", "unit.left.2", "unit.right.5"]
    assert "not pruned: mix, unit.left.2, unit.right.5" in r.stderr + r.stdout


@pytest.mark.slow
def test_view_with_size_figures_equal_codegen_of_converted_model(tmp_path):
    """``x.view(x.size(0), -1)`` (tests/archs.py MaxPoolFlatten), refused by the prune stage before
    shape access was traced: same op list and figures as codegen of the converted model."""
    import archs
    import torch

    from tinyprune.codegen.estimate import estimate
    from tinyprune.codegen.tflite_reader import read_model, read_tflite
    from tinyprune.convert import convert
    from tinyprune.prune import build_graph, figures
    torch.manual_seed(0)
    model, x = archs.MaxPoolFlatten().eval(), torch.zeros(1, 1, 16, 16)
    conv = convert(model, tmp_path / "c", data="digits", input_shape=(1, 1, 16, 16), calib_samples=16)
    assert [op.kind for op in read_model(conv.tflite_path).graph.ops] == [op.kind for op in build_graph(model, x)[0].ops]
    real, mine = estimate(read_tflite(conv.tflite_path)), figures(model, x)
    assert (real.macs, real.arena_bytes, real.flash_bytes) == (mine.macs, mine.ram_bytes, mine.flash_bytes)
