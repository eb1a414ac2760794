"""1-D conv models (issue 11): the prune stage's int8 graph for Conv1d / BatchNorm1d / MaxPool1d /
F.max_pool1d / mean over time is what the convert stage emits (RESHAPE to (1, 1, L, C), CONV_2D 1 x k,
PAD of the 3-D tensor when the padding is not SAME), so its MACs / arena / flash equal codegen's figures
for the converted model, before and after pruning Conv1d channels; end to end, `tinyprune build` prunes
an M5-style model to a MAC limit and validates it bit-exact on the host and in QEMU."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch

from archs import make_conv1d
from tinyprune.prune import Budget, PruneConfig, figures, prune
from tinyprune.prune.irgraph import build_graph
from tinyprune.prune.structure import channel_config, rebuild
from tinyprune.prune.zoo import m5_net


def _pruned_m5():
    torch.manual_seed(0)
    m, x = m5_net().eval(), torch.zeros(1, 1, 256)
    f = figures(m, x)
    res = prune(m, x, Budget(max_macs=int(f.macs * 0.5)), criterion="l1", config=PruneConfig(epochs=0))
    assert res.report["after"]["macs"] <= f.macs * 0.5
    return res.model.eval()


def _models():
    torch.manual_seed(0)
    return {"conv1d": (make_conv1d().eval(), (1, 8, 8)), "m5": (m5_net().eval(), (1, 1, 256)),
            "m5-pruned": (_pruned_m5(), (1, 1, 256))}


def test_m5_graph_is_what_the_converter_emits():
    g, macs = build_graph(m5_net().eval(), torch.zeros(1, 1, 256))
    kinds = [op.kind for op in g.ops]
    assert kinds == ["PAD", "RESHAPE", "CONV_2D", "MAX_POOL_2D", "CONV_2D", "MAX_POOL_2D", "RESHAPE", "PAD",
                     "RESHAPE", "CONV_2D", "RESHAPE", "MEAN", "FULLY_CONNECTED"]
    t = g.tensors
    assert t[g.inputs[0]].shape == (1, 256, 1)
    first = g.ops[2]
    assert t[first.inputs[1]].shape == (8, 1, 16, 1) and t[first.outputs[0]].shape == (1, 1, 62, 8)
    assert first.options["padding"] == "VALID" and first.options["stride_w"] == 4
    assert first.options["fused_activation"] == "RELU"     # BatchNorm1d folded, ReLU fused
    assert g.ops[4].options["padding"] == "SAME"
    assert macs["features.0.0"] == 62 * 8 * 16 * 1


def test_pruned_conv1d_channels_rebuild():
    p = _pruned_m5()
    cfg = channel_config(p)
    conv = cfg["layers"]["features.0.0"]
    assert conv["type"] == "Conv1d" and conv["out_channels"] < 8
    r = rebuild(m5_net, cfg, p.state_dict()).eval()
    xs = torch.randn(3, 1, 256)
    with torch.no_grad():
        assert torch.equal(r(xs), p(xs))


@pytest.fixture(scope="module")
def models():
    return _models()


@pytest.mark.parametrize("which", ["conv1d", "m5", "m5-pruned"])
def test_estimate_equals_codegen_of_converted_1d_model(which, models, tmp_path):
    convert = pytest.importorskip("tinyprune.convert").convert
    from tinyprune.codegen.estimate import estimate
    from tinyprune.codegen.tflite_reader import read_tflite
    model, shape = models[which]
    mine = figures(model, torch.zeros(shape))
    assert mine.source == "codegen"
    res = convert(model, tmp_path / "c", data="digits", input_shape=shape, calib_samples=16)
    real = estimate(read_tflite(res.tflite_path))
    assert (mine.macs, mine.ram_bytes, mine.flash_bytes) == (real.macs, real.arena_bytes, real.flash_bytes)


@pytest.mark.slow
@pytest.mark.qemu
@pytest.mark.skipif(shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
                    reason="needs qemu-system-arm and arm-none-eabi-gcc")
def test_m5_builds_pruned_and_bit_exact_on_host_and_qemu(tmp_path):
    r = subprocess.run([sys.executable, "-m", "tinyprune.cli", "build", "tinyprune.prune.zoo:m5_net",
                        "--board", "nucleo-f746", "--max-macs", "15000", "--epochs", "0", "--calib-samples", "32",
                        "--samples", "20", "--sim-samples", "5", "--json", "-o", str(tmp_path / "b"),
                        "--min-agreement", "0"], capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads(r.stdout)
    assert s["status"] == "ok" and s["pruning"]["applied"] is True
    assert "CONV_2D" in [layer["kind"] for layer in s["codegen"]["layers"]]
    for target in ("host", "sim"):
        v = s["validation"][target]
        assert v["passed"] and v["bit_exact"] and v["mismatched_samples"] == 0, v
    after = s["pruning"]["estimate_after"]
    assert after["macs"] == s["codegen"]["macs"] <= 15000
    assert (after["ram_bytes"], after["flash_bytes"]) == (s["codegen"]["arena_bytes"], s["codegen"]["flash_bytes"])
