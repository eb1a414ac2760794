"""TANH, LEAKY_RELU, PRELU and STRIDED_SLICE (issue 11, item 3) beyond the randomised TF-built families of
tests/test_codegen_ops.py (activation_cases, slice_cases): hand-built STRIDED_SLICE models with masks and
out-of-range indices TF does not emit, bit-exact with TFLite Micro; refusals naming the operator; the
convert stage's operator check (torch.chunk / split / slicing / PReLU taken, indexing that becomes Gather
refused); the prune stage (estimate graph, channel groups: PReLU slopes follow their channels, channels
before a split kept whole with the reason); and a model with all of them through `tinyprune build`."""
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
import reader_fuzz as RF  # noqa: E402

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs a host gcc")


def _slice_model(in_shape, begin, end, strides, out_shape, *, begin_mask=0, end_mask=0, shrink=0, ellipsis=0,
                 out_scale=0.05, out_zp=3, const=True) -> bytes:
    """input -> STRIDED_SLICE built with the flatbuffer schema (no TensorFlow)."""
    r = len(in_shape)
    T = [dict(name="input", shape=list(in_shape), type="int8", scale=0.05, zp=3)]
    for name, v in (("begin", begin), ("end", end), ("strides", strides)):
        t = dict(name=name, shape=[r], type="int32")
        if const:
            t["data"] = np.array(v, np.int32)
        else:
            t.update(scale=1.0, zp=0)
        T.append(t)
    T.append(dict(name="sliced", shape=list(out_shape), type="int8", scale=out_scale, zp=out_zp))
    opts = RF._opts("StridedSliceOptionsT", beginMask=begin_mask, endMask=end_mask, shrinkAxisMask=shrink,
                    ellipsisMask=ellipsis)
    return RF.build(T, [("STRIDED_SLICE", [0, 1, 2, 3], [4], opts)], [0] if const else [0, 1, 2, 3], [4])


# slices TF's converter folds or never writes: negative/out-of-range indices that clamp, masks that override
# begin/end, negative strides from the end, a shrunk axis, 1-D and 3-D inputs
SLICES = [
    ((1, 5, 6, 7), (0, -9, 1, 2), (1, 99, -1, 7), (1, 1, 2, 3), (1, 5, 2, 2), {}),
    ((1, 5, 6, 7), (0, 4, 0, 6), (1, -99, 6, -99), (1, -2, 1, -3), (1, 3, 6, 3), {}),
    ((1, 5, 6, 7), (0, 3, 3, 3), (1, 1, 1, 1), (1, 1, 1, 1), (1, 5, 6, 7), dict(begin_mask=15, end_mask=15)),
    ((1, 5, 6, 7), (0, 2, 0, 1), (1, 3, 6, 5), (1, 1, 2, 1), (1, 3, 4), dict(shrink=2)),
    ((11,), (-3,), (0,), (-2,), (4,), {}),
    ((4, 3, 9), (1, 0, 8), (3, 3, 0), (1, 2, -4), (2, 2, 2), {}),
]


@needs_gcc
@pytest.mark.parametrize("in_shape,begin,end,strides,out_shape,kw", SLICES)
def test_strided_slice_indices_resolve_as_tflite_micro(in_shape, begin, end, strides, out_shape, kw, tmp_path):
    p = tmp_path / "m.tflite"
    p.write_bytes(_slice_model(in_shape, begin, end, strides, out_shape, **kw))
    model = read_model(p)
    assert [op.kind for op in model.graph.ops] == ["STRIDED_SLICE"]
    generate(p, tmp_path / "cg", tflm_arena=False)
    r = check(tmp_path / "cg", p, load_inputs(model, random=5, seed=1), sanitize=True)
    assert r.mismatches == 0 and r.samples == 5 and r.elements == 5 * int(np.prod(out_shape))


@pytest.mark.parametrize("kw,expect", [
    (dict(out_scale=0.1), "input and output quantization differ"),
    (dict(ellipsis=1), "ellipsis mask, a new-axis mask or offset is not supported"),
    (dict(const=False), "begin must be a constant int32 vector of 4 values"),
    (dict(out_shape=(1, 5, 6, 6)), "output shape [1, 5, 6, 6] != the slice's shape [1, 5, 6, 7]"),
])
def test_bad_strided_slice_is_refused_naming_the_operator(kw, expect):
    args = dict(in_shape=(1, 5, 6, 7), begin=(0, 0, 0, 0), end=(1, 5, 6, 7), strides=(1, 1, 1, 1),
                out_shape=(1, 5, 6, 7))
    args.update(kw)
    with pytest.raises(UnsupportedModelError) as e:
        read_model_bytes(_slice_model(**args), "m.tflite")
    msg = str(e.value)
    assert expect in msg and "operator 0 (STRIDED_SLICE, output 'sliced')" in msg, msg
    assert e.value.exit_code == 2


def _unary_model(kind, out_scale, out_zp, alpha=None) -> bytes:
    T = [dict(name="input", shape=[1, 4, 4, 3], type="int8", scale=0.05, zp=3)]
    ins = [0]
    if alpha is not None:
        T.append(alpha)
        ins.append(1)
    T.append(dict(name="out", shape=[1, 4, 4, 3], type="int8", scale=out_scale, zp=out_zp))
    return RF.build(T, [(kind, ins, [len(T) - 1], None)], [0], [len(T) - 1])


def test_tanh_output_must_be_the_int8_spec_grid():
    read_model_bytes(_unary_model("TANH", 1 / 128, 0), "m.tflite")
    with pytest.raises(UnsupportedModelError, match=r"TANH output must have scale 1/128 and zero point 0"):
        read_model_bytes(_unary_model("TANH", 1 / 128, -128), "m.tflite")


@pytest.mark.parametrize("alpha,expect", [
    (dict(name="a", shape=[1, 1, 3], type="int8", scale=0.01, zp=0), "must be a constant int8 tensor"),
    (dict(name="a", shape=[1, 1, 2], type="int8", scale=0.01, zp=0, data=np.ones(2, np.int8)),
     "slope shape [1, 1, 2] does not broadcast onto the input [1, 4, 4, 3]"),
])
def test_bad_prelu_slope_is_refused(alpha, expect):
    with pytest.raises(UnsupportedModelError) as e:
        read_model_bytes(_unary_model("PRELU", 0.05, 0, alpha), "m.tflite")
    assert expect in str(e.value) and "PRELU" in str(e.value)


# ---- convert: the ONNX operators ---------------------------------------------------------------

class _Pieces(nn.Module):
    input_shape = (1, 6, 5, 5)

    def __init__(self, how):
        super().__init__()
        self.how = how
        self.act = nn.PReLU(6)

    def forward(self, x):
        x = self.act(x)
        if self.how == "chunk":
            a, b = x.chunk(2, dim=1)
        elif self.how == "split":
            a, b = torch.split(x, [2, 4], dim=1)
        elif self.how == "slice":
            a, b = x[:, :3], x[:, 3:]
        else:                         # integer indexing: ONNX Gather
            a, b = x[:, 0:1], x[:, 1]
            b = b.unsqueeze(1)
        return torch.cat([torch.tanh(a), nn.functional.leaky_relu(b, 0.2)], 1)


def _onnx_ops(module, tmp_path):
    from tinyprune.convert import onnx_utils
    p = onnx_utils.export_onnx(module, torch.zeros(module.input_shape), tmp_path / "m.onnx")
    return onnx_utils.check_supported_ops(onnx_utils.simplify(onnx_utils.load_onnx(p)))


@pytest.mark.parametrize("how,op", [("chunk", "Split"), ("split", "Split"), ("slice", "Slice")])
def test_convert_takes_chunk_split_slice_prelu(how, op, tmp_path):
    ops = _onnx_ops(_Pieces(how), tmp_path)
    assert {"PRelu", "Tanh", "LeakyRelu"} <= set(ops) and (op in ops or "Slice" in ops), ops


def test_convert_refuses_integer_indexing_naming_the_node(tmp_path):
    with pytest.raises(UnsupportedModelError) as e:
        _onnx_ops(_Pieces("index"), tmp_path)
    assert "Gather (node" in str(e.value) and "supported ONNX operators: Add" in e.value.hint
    assert e.value.exit_code == 2


# ---- prune ---------------------------------------------------------------------------------------

def test_estimate_graph_and_channel_groups():
    from tinyprune.prune import structure
    from tinyprune.prune.irgraph import build_graph
    from tinyprune.prune.zoo import act_split_net
    m, x = act_split_net().eval(), torch.zeros(1, 1, 8, 8)
    g, _ = build_graph(m, x)
    kinds = [op.kind for op in g.ops]
    assert kinds.count("PRELU") == 3 and kinds.count("STRIDED_SLICE") == 6
    assert {"TANH", "LEAKY_RELU"} <= set(kinds)
    slopes = sorted(g.tensors[op.inputs[1]].shape for op in g.ops if op.kind == "PRELU")
    assert slopes == [(1, 1, 1), (1, 1, 8), (1, 1, 16)]
    st = structure.Structure(m, x)
    assert set(st.groups) == {"a", "b"} and "a_act" in st.groups["a"].layers
    assert st.excluded["stem"] == structure.CHANNEL_SPLIT_REASON
    assert "torch-pruning fails to map their channels" in st.excluded["mid"]
    assert "torch-pruning fails to map their channels" in st.excluded["head"]


def test_layers_coupled_to_a_split_are_all_named():
    """x[:, :4] / x[:, 4:] of a conv's output, one piece through a conv, concatenated: torch-pruning
    couples the second conv to the first through the slice; both are kept whole, both are named."""
    from tinyprune.errors import UnsupportedModelError as E
    from tinyprune.prune import structure

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.c, self.d, self.fc = nn.Conv2d(1, 8, 3, padding=1), nn.Conv2d(4, 4, 1), nn.Linear(8, 10)

        def forward(self, x):
            x = torch.relu(self.c(x))
            return self.fc(torch.cat([self.d(x[:, :4]), x[:, 4:]], 1).mean((2, 3)))
    with pytest.raises(E) as e:
        structure.Structure(Net(), torch.zeros(1, 1, 8, 8))
    assert "layer(s) d, c are kept whole: their channels are split by torch.chunk" in str(e.value)
    assert e.value.exit_code == 2


def test_prune_keeps_prelu_slopes_with_their_channels_and_rebuilds():
    from tinyprune.prune import Budget, PruneConfig, figures, prune, structure
    from tinyprune.prune.structure import channel_config, rebuild
    from tinyprune.prune.zoo import act_split_net
    torch.manual_seed(0)
    m, x = act_split_net().eval(), torch.zeros(1, 1, 8, 8)
    before = figures(m, x)
    res = prune(m, x, Budget(max_macs=int(before.macs * 0.85)), criterion="l1", data="digits",
                config=PruneConfig(epochs=0))
    p = res.model
    assert res.report["after"]["macs"] <= before.macs * 0.85
    assert p.a.out_channels < 8 and p.a_act.num_parameters == p.a.out_channels   # the slopes followed
    assert p.stem.out_channels == 16 and p.mid.out_channels == 24                  # kept whole
    kept = res.report["not_pruned"]
    assert kept["layers"] == ["head", "mid", "stem"]
    assert kept["by_layer"]["stem"] == structure.CHANNEL_SPLIT_REASON
    assert structure.CHANNEL_SPLIT_REASON in kept["reason"] and "torch-pruning fails" in kept["reason"]
    cfg = channel_config(p)
    assert cfg["layers"]["a_act"] == {"type": "PReLU", "num_parameters": p.a.out_channels}
    r = rebuild(act_split_net, cfg, p.state_dict()).eval()
    xs = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(r(xs), p(xs))


# ---- end to end ------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.qemu
@pytest.mark.skipif(shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
                    reason="needs qemu-system-arm and arm-none-eabi-gcc")
def test_act_split_net_builds_pruned_and_bit_exact_on_host_and_qemu(tmp_path):
    """PReLU (per channel, shared), LeakyReLU, tanh, torch.chunk / torch.split / slices: pruned to a MAC
    limit, converted, generated, bit-exact with TFLite Micro on the host and in QEMU; the prune stage's
    estimate is what codegen reports for the converted model."""
    r = subprocess.run([sys.executable, "-m", "tinyprune.cli", "build", "tinyprune.prune.zoo:act_split_net",
                        "--board", "nucleo-f746", "--max-macs", "95000", "--epochs", "0", "--samples", "20",
                        "--sim-samples", "10", "--json", "-o", str(tmp_path / "b"), "--min-agreement", "0"],
                       capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads(r.stdout)
    assert s["status"] == "ok" and s["pruning"]["applied"] is True
    kinds = [layer["kind"] for layer in s["codegen"]["layers"]]
    assert {"PRELU", "LEAKY_RELU", "TANH", "STRIDED_SLICE"} <= set(kinds), kinds
    for target in ("host", "sim"):
        v = s["validation"][target]
        assert v["passed"] and v["bit_exact"] and v["mismatched_samples"] == 0, v
    after = s["pruning"]["estimate_after"]
    assert after["macs"] == s["codegen"]["macs"] <= 95000
    assert (after["ram_bytes"], after["flash_bytes"]) == (s["codegen"]["arena_bytes"], s["codegen"]["flash_bytes"])


# ---- SPLIT / SPLIT_V: read as one STRIDED_SLICE per output ------------------------------------------

def _split_model(kind, in_shape, axis, sizes, out_shapes, out_scale=0.05) -> bytes:
    T = [dict(name="input", shape=list(in_shape), type="int8", scale=0.05, zp=3),
         dict(name="axis", shape=[], type="int32", data=np.array(axis, np.int32))]
    if kind == "SPLIT":
        ins = [1, 0]
        opts = RF._opts("SplitOptionsT", numSplits=len(out_shapes))
    else:
        T.append(dict(name="sizes", shape=[len(sizes)], type="int32", data=np.array(sizes, np.int32)))
        ins = [0, 2, 1]
        opts = RF._opts("SplitVOptionsT", numSplits=len(out_shapes))
    outs = []
    for k, s in enumerate(out_shapes):
        T.append(dict(name=f"piece{k}", shape=list(s), type="int8", scale=out_scale if k == 0 else 0.05, zp=3))
        outs.append(len(T) - 1)
    return RF.build(T, [(kind, ins, outs, opts)], [0], outs)


@needs_gcc
@pytest.mark.parametrize("kind,in_shape,axis,sizes,out_shapes", [
    ("SPLIT", (1, 3, 4, 6), 3, None, [(1, 3, 4, 2)] * 3),
    ("SPLIT", (1, 4, 5, 3), -3, None, [(1, 2, 5, 3)] * 2),
    ("SPLIT_V", (1, 3, 4, 7), 3, [2, -1, 1], [(1, 3, 4, 2), (1, 3, 4, 4), (1, 3, 4, 1)]),
    ("SPLIT_V", (5, 9), 1, [4, 5], [(5, 4), (5, 5)]),
])
def test_split_is_read_as_slices_bit_exact(kind, in_shape, axis, sizes, out_shapes, tmp_path):
    p = tmp_path / "m.tflite"
    p.write_bytes(_split_model(kind, in_shape, axis, sizes, out_shapes))
    model = read_model(p)
    assert [op.kind for op in model.graph.ops] == ["STRIDED_SLICE"] * len(out_shapes)
    assert model.graph.outputs == [f"piece{k}" for k in range(len(out_shapes))]
    generate(p, tmp_path / "cg", tflm_arena=False)
    r = check(tmp_path / "cg", p, load_inputs(model, random=5, seed=2), sanitize=True)
    assert r.mismatches == 0 and r.elements == 5 * int(np.prod(in_shape))


@pytest.mark.parametrize("kind,sizes,out_shapes,out_scale,expect", [
    ("SPLIT", None, [(1, 3, 4, 3)] * 2, 0.05, "do not split into 4 pieces"),
    ("SPLIT_V", [2, 3], [(1, 3, 4, 2), (1, 3, 4, 3)], 0.05, "split sizes [2, 3] do not divide the 6 elements"),
    ("SPLIT", None, [(1, 3, 4, 3)] * 2, 0.1, "input and output quantization differ"),
])
def test_bad_split_is_refused_naming_the_operator(kind, sizes, out_shapes, out_scale, expect):
    data = _split_model(kind, (1, 3, 4, 6), 3, sizes, out_shapes, out_scale)
    if expect.startswith("do not split"):    # 4 outputs of an axis of 6
        data = _split_model(kind, (1, 3, 4, 6), 3, sizes, [(1, 3, 4, 1)] * 4)
    with pytest.raises(UnsupportedModelError) as e:
        read_model_bytes(data, "m.tflite")
    assert expect in str(e.value) and "operator 0 (" in str(e.value), str(e.value)
    assert e.value.exit_code == 2
