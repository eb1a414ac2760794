"""Models on flat (1, F) feature vectors and data without labels (issue 11: an MLPerf Tiny anomaly-detection
style FC autoencoder, whose output is a reconstruction). (1, F) input shapes are accepted by every stage;
an .npz with ``x`` only is unlabelled data: calibration and validation inputs, accuracy "not measured",
no fine-tuning when pruning; the prune stage's estimate equals codegen's figures for the converted model."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from tinyprune.convert.loader import normalise_shape
from tinyprune.data import check_classes, is_unlabelled, load_dataset
from tinyprune.errors import UserInputError
from tinyprune.pipeline.accuracy import data_plan
from tinyprune.prune import Budget, PruneConfig, figures, prune
from tinyprune.prune.zoo import fc_autoencoder


@pytest.fixture(scope="module")
def ae_npz(tmp_path_factory):
    """64 features per sample (digits' pixels, scaled), no labels."""
    x = load_dataset("digits", (1, 64)).x_train[:120]
    assert x.shape == (120, 64)
    p = tmp_path_factory.mktemp("ae") / "ae.npz"
    np.savez(p, x=x)
    return p


def test_flat_shapes_accepted_and_other_ranks_refused():
    assert normalise_shape("1,640") == (1, 640)
    for bad in ("640", "1,2,3,4,5", "2,640"):
        with pytest.raises(UserInputError, match=r"\(1, C, H, W\), \(1, C, L\) or \(1, F\)"):
            normalise_shape(bad)


def test_x_only_npz_is_unlabelled(ae_npz, tmp_path):
    ds = load_dataset(ae_npz, (1, 64))
    assert not ds.labelled and ds.classes == 0
    assert len(ds.x_train) + len(ds.x_test) == 120 and ds.x_test.shape[1:] == (64,)
    check_classes(ds, 64)          # no labels: fits any output
    assert is_unlabelled(ae_npz) and not is_unlabelled("digits")
    plan = data_plan("ae.py:make", str(ae_npz))
    assert plan["labelled"] is False and plan["calibration"] == str(ae_npz) and "accuracy not measured" in plan["reason"]
    with pytest.raises(UserInputError, match=r"samples of shape \(64,\) but the model expects \(640,\)"):
        load_dataset(ae_npz, (1, 640))
    bad = tmp_path / "rank1.npz"
    np.savez(bad, x=np.zeros(10, np.float32))
    with pytest.raises(UserInputError, match=r"expected \(N, C, H, W\), \(N, C, L\) or \(N, F\)"):
        load_dataset(bad)


def test_pruning_with_unlabelled_data_does_not_fine_tune(ae_npz):
    m, x = fc_autoencoder().eval(), torch.zeros(1, 64)
    f = figures(m, x)
    res = prune(m, x, Budget(max_macs=int(f.macs * 0.6)), data=str(ae_npz), criterion="l1",
                config=PruneConfig(epochs=2))
    assert res.report["after"]["macs"] <= f.macs * 0.6
    assert any("no labels" in w and "NOT fine-tuned" in w for w in res.report["warnings"]), res.report["warnings"]


def test_autoencoder_converts_unlabelled_and_estimate_equals_codegen(ae_npz, tmp_path):
    convert = pytest.importorskip("tinyprune.convert").convert
    from tinyprune.codegen.estimate import estimate
    from tinyprune.codegen.tflite_reader import read_tflite
    torch.manual_seed(0)
    m = fc_autoencoder().eval()
    res = convert(m, tmp_path / "c", data=str(ae_npz), calib_samples=32)
    ev = res.report["evaluation"]
    assert ev["float_accuracy"] is None and ev["int8_accuracy"] is None and ev["int8_drop_basis"] == "agreement"
    assert res.report["input"]["shape"] == [1, 64] and res.report["input"]["layout"] == "none"
    mine = figures(m, torch.zeros(1, 64))
    real = estimate(read_tflite(res.tflite_path))
    assert (mine.macs, mine.ram_bytes, mine.flash_bytes) == (real.macs, real.arena_bytes, real.flash_bytes)


@pytest.mark.slow
@pytest.mark.qemu
@pytest.mark.skipif(shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
                    reason="needs qemu-system-arm and arm-none-eabi-gcc")
def test_autoencoder_builds_pruned_on_unlabelled_data_bit_exact(ae_npz, tmp_path):
    r = subprocess.run([sys.executable, "-m", "tinyprune.cli", "build", "tinyprune.prune.zoo:fc_autoencoder",
                        "--board", "nucleo-f746", "--data", str(ae_npz), "--max-macs", "4000", "--calib-samples", "32",
                        "--samples", "20", "--sim-samples", "5", "--json", "-o", str(tmp_path / "b"),
                        "--min-agreement", "0"], capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads(r.stdout)
    assert s["status"] == "ok" and s["pruning"]["applied"] is True
    assert s["accuracy"]["measured"] is False and "no labels" in s["accuracy"]["reason"]
    assert s["conversion"]["int8_accuracy"] is None
    for target in ("host", "sim"):
        v = s["validation"][target]
        assert v["passed"] and v["bit_exact"] and v["mismatched_samples"] == 0, v
        assert v.get("accuracy") is None
    after = s["pruning"]["estimate_after"]
    assert after["macs"] == s["codegen"]["macs"] <= 4000
    assert (after["ram_bytes"], after["flash_bytes"]) == (s["codegen"]["arena_bytes"], s["codegen"]["flash_bytes"])
