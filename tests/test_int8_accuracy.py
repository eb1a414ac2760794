"""Int8 accuracy (issue 11 item 4; docs/convert.md "Int8 accuracy"): float vs int8 on all the held-out data,
the per-layer float-vs-int8 error naming the layer made lossy on purpose, and fixes (cross-layer equalization,
bias correction) that measurably help a model built to need them. Models: tests/int8_models.py, labelled by
the float model itself (int8 accuracy = agreement), so no training is needed."""
from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import int8_models as M
from test_build_accuracy import tp  # the in-process CLI runner: (exit code, stdout, stderr)
from tinyprune.convert.diagnose import layer_name
from tinyprune.convert.fixes import bias_correct, equalize, tflite_weight_quantization
from tinyprune.errors import UserInputError




# ------------------------------------------------------------------ fast: no conversion

def test_layer_names_come_from_pytorch_module_paths():
    assert layer_name("/features/features.3/conv/conv.0/Conv_output_0", "Conv") == "conv.0"
    assert layer_name("/small/small.0/Conv_output_0", "Conv") == "small.0"
    assert layer_name("/head/Conv_output_0", "Conv") == "head"
    assert layer_name("/Concat_output_0", "Concat") == "Concat"
    assert layer_name("/Add_1_output_0", "Add") == "Add_1"
    assert layer_name("output", "Gemm") == "output"


def test_equalize_evens_channel_ranges_and_keeps_the_function():
    m = M.dw_imbalanced()
    x = torch.from_numpy(np.random.default_rng(0).random((8,) + M.SHAPE[1:], dtype=np.float32))
    eq, rep = equalize(m, torch.zeros(M.SHAPE))
    assert rep["pairs"] == ["conv -> dw", "dw -> pw"] and rep["applied"]
    assert rep["weight_range_spread_before"] > 500 and rep["weight_range_spread_after"] < 2
    with torch.no_grad():
        assert float((eq(x) - m(x)).abs().max()) < 1e-4 * float(m(x).abs().max())
        # the BatchNorm is folded into the conv and left as an identity
        assert torch.allclose(eq.bn(x.new_ones(1, 16, 2, 2)), x.new_ones(1, 16, 2, 2))
    assert m.bn.running_var.min() < 0.3          # the caller's model is not changed


def test_equalize_leaves_relu6_pairs_alone():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU6(), torch.nn.Conv2d(4, 4, 1)).eval()
    _, rep = equalize(net, torch.zeros(1, 1, 8, 8))
    assert rep["pairs"] == [] and not rep["applied"]
    assert rep["skipped"] == ["0 -> ...: ReLU6 is not scale-equivariant"]


def test_bias_correction_removes_the_mean_shift_of_int8_weights():
    """With every weight rounded as TFLite stores it, the model's mean output per class moves; after bias
    correction it moves (much) less."""
    m = M.dw_imbalanced()
    from tinyprune.data import load_digits
    x = load_digits(M.SHAPE[1:]).x_train[:200]
    bc, rep = bias_correct(m, x)
    assert rep["applied"] and rep["layers"] == 4 and rep["samples"] == 200

    def mean_shift(model):
        q = copy.deepcopy(model)
        with torch.no_grad():
            for mod in q.modules():
                if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)):
                    mod.weight.copy_(tflite_weight_quantization(mod.weight))
            xt = torch.from_numpy(x)
            return float((q(xt).mean(0) - m(xt).mean(0)).abs().mean())

    before, after = mean_shift(m), mean_shift(bc)
    assert after < 0.5 * before, (before, after)


# ------------------------------------------------------------------ conversions

@pytest.fixture(scope="module")
def lossy_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("int8")
    M.self_labelled(M.branch_cat(), d / "branch_cat.npz")
    M.self_labelled(M.dw_imbalanced(), d / "dw.npz")
    return d


@pytest.mark.slow
def test_concat_of_unequal_branches_is_diagnosed(capsys, lossy_dir, monkeypatch):
    """A branch scaled x1000 before torch.cat: int8 loses far more than 1 point on all 450 held-out samples,
    the layers losing most are the concatenation's inputs, named by their PyTorch modules, and the note says
    why. The CLI's text and --json say the same."""
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    out = lossy_dir / "bc"
    code, stdout, err = tp(capsys, "convert", "int8_models:branch_cat", "--data", lossy_dir / "branch_cat.npz",
                           "--json", "-o", out)
    assert code == 0, err[-2000:]
    r = json.loads(stdout)
    assert r == json.loads((out / "convert.json").read_text())
    ev = r["evaluation"]
    assert ev["samples"] == ev["held_out_samples"] == r["data"]["test_samples"] == 450
    assert ev["float_accuracy"] == 1.0 and ev["int8_drop_basis"] == "accuracy"
    assert ev["int8_drop_points"] == pytest.approx(100 * (1 - ev["int8_accuracy"]), abs=1e-3)
    assert ev["int8_drop_exceeded"] is True and ev["int8_drop_points"] > 20
    d = r["diagnostics"]
    assert d["run"] and d["samples"] == 32 and d["unmatched"] == []
    worst = [w["layer"] for w in d["worst"]]
    assert set(worst[:2]) == {"small.0+Relu", "big.0+Relu"}, worst
    by_layer = {L["layer"]: L for L in d["layers"] if L["layer"]}
    assert by_layer["stem.0+Relu"]["snr_db"] > 30                      # the stem is fine
    assert by_layer["small.0+Relu"]["snr_db"] < 5
    assert "concatenation 'Concat'" in by_layer["small.0+Relu"]["note"]
    assert by_layer["Concat"]["concat_range_ratio"] > 100
    assert any("percentiles: not available" in a for a in d["advice"])
    # the text summary says the same
    code, stdout, err = tp(capsys, "convert", "int8_models:branch_cat", "--data", lossy_dir / "branch_cat.npz",
                           "-o", lossy_dir / "bc_text")
    assert code == 0, err[-2000:]
    assert "accuracy on all 450 held-out samples" in stdout
    assert f"int8 loses {ev['int8_drop_points']:.2f} points of accuracy (--max-int8-drop 1)" in stdout
    assert "layers losing most" in stdout and "small.0+Relu" in stdout


@pytest.mark.slow
def test_equalization_fixes_a_depthwise_net_with_imbalanced_channels(lossy_dir, monkeypatch):
    """The classic CLE case: int8 loses over 30 points, the depthwise layer is named as losing most; with
    --equalize the same model loses under 10 and no layer pair is left unequal."""
    from tinyprune.convert import convert
    data = str(lossy_dir / "dw.npz")
    base = convert(M.dw_imbalanced(), lossy_dir / "dw0", data=data).report
    fixed = convert(M.dw_imbalanced(), lossy_dir / "dw1", data=data, equalize=True, max_int8_drop=0).report
    b, f = base["evaluation"], fixed["evaluation"]
    assert b["int8_drop_points"] > 30, b
    assert base["diagnostics"]["worst"][0]["layer"] == "dw+Relu"
    assert f["int8_drop_points"] < 10 and f["int8_accuracy"] > b["int8_accuracy"] + 0.3, (b, f)
    assert fixed["fixes"]["equalize"]["pairs"] == ["conv -> dw", "dw -> pw"]
    assert base["fixes"]["equalize"] == {"applied": False, "asked": False}
    assert fixed["diagnostics"]["run"] is True                  # --max-int8-drop 0: always diagnosed
    snr = {L["layer"]: L["snr_db"] for L in fixed["diagnostics"]["layers"] if L["layer"]}
    assert snr["dw+Relu"] > 30


def test_fixes_refuse_an_onnx_model(tmp_path):
    onnx_file = tmp_path / "m.onnx"
    onnx_file.write_bytes(b"")
    from tinyprune.convert import convert
    with pytest.raises(UserInputError, match="--equalize changes the PyTorch model"):
        convert(str(onnx_file), tmp_path / "o", equalize=True)


@pytest.mark.slow
@pytest.mark.arm
@pytest.mark.hostcc
@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("cc") is None,
                    reason="needs arm-none-eabi-gcc and a host C compiler (make setup)")
def test_build_summary_and_report_carry_the_int8_loss(capsys, lossy_dir, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    code, stdout, err = tp(capsys, "build", "int8_models:dw_imbalanced", "--board", "nucleo-f746",
                           "--data", lossy_dir / "dw.npz", "--no-sim", "--samples", 4, "--min-agreement", 0,
                           "--prune", "never", "--json", "-o", lossy_dir / "build")
    assert code == 0, err[-3000:]
    s = json.loads(stdout)
    cv = s["conversion"]
    assert cv["held_out_samples"] == cv["samples"] == 450 and cv["int8_drop_exceeded"] is True
    assert cv["diagnostics"]["worst"][0]["layer"] == "dw+Relu"
    assert cv["fixes"]["equalize"] == {"applied": False, "asked": False}
    d = lossy_dir / "build" / "nucleo-f746"
    md, html = (d / "summary.md").read_text(), (d / "report.html").read_text()
    assert f"| int8 loss | {cv['int8_drop_points']:.2f} points | of accuracy on all 450 held-out samples" in md
    assert "layers losing most: dw+Relu" in md
    assert 'id="int8-layers"' in html and "dw+Relu" in html


def test_int8_loss_basis_and_a_failed_diagnosis_is_said(monkeypatch):
    """The loss is in points of accuracy with this model's labels, else of agreement; within the threshold the
    layers are not diagnosed (with the reason); a diagnosis that raises is reported, not fatal."""
    from tinyprune.convert import core, diagnose
    ev = {"float_accuracy": 0.9, "int8_accuracy": 0.85, "top1_agreement": 0.93}
    assert core.int8_loss(ev, labelled=True, max_drop=1.0) == {
        "int8_drop_points": 5.0, "int8_drop_basis": "accuracy", "max_int8_drop": 1.0, "int8_drop_exceeded": True}
    loss = core.int8_loss(ev, labelled=False, max_drop=10.0)
    assert loss["int8_drop_basis"] == "agreement" and loss["int8_drop_points"] == pytest.approx(7.0)
    assert loss["int8_drop_exceeded"] is False
    d = core.diagnose(None, b"", None, ev | loss, 10.0)
    assert d == {"run": False, "reason": "int8 loses 7.00 points of agreement, within --max-int8-drop 10"}

    def boom(*a, **k):
        raise RuntimeError("no such tensor")
    monkeypatch.setattr(diagnose, "layer_errors", boom)
    d = core.diagnose(None, b"", None, ev | core.int8_loss(ev, labelled=True, max_drop=1.0), 1.0)
    assert d["run"] is False and d["failed"] is True
    assert "per-layer diagnosis failed (RuntimeError: no such tensor)" in d["reason"]


def test_build_refuses_fixes_for_a_tflite_model(capsys, tmp_path):
    code, out, err = tp(capsys, "build", tmp_path / "m.tflite", "--board", "nucleo-f746", "--bias-correction",
                        "-o", tmp_path / "b")
    assert code == 2 and "--bias-correction changes the PyTorch model before conversion; a tflite model" in err
    assert not (tmp_path / "b").exists()
