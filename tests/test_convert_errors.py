"""Every bad input to `tinyprune convert` gives a short message naming the problem and what to do,
exit code 2, no traceback (unless --debug), and leaves no output behind. These fail before any
TensorFlow conversion starts, so they are fast."""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from tinyprune.cli import main

ROOT = Path(__file__).resolve().parents[1]
ARCHS_PY = Path(__file__).resolve().parent / "archs.py"

BAD_MODELS = textwrap.dedent('''
    import torch
    from torch import nn

    class LSTMNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(8, 16)
            self.fc = nn.Linear(16, 10)
            self.input_shape = (1, 8, 8)

        def forward(self, x):
            y, _ = self.lstm(x.permute(2, 0, 1))
            return self.fc(y.mean(0))

    class LinalgNet(nn.Module):
        input_shape = (1, 1, 8, 8)

        def forward(self, x):
            return torch.linalg.inv(x[:, 0] + torch.eye(8)).flatten(1)[:, :10]

    def make_lstm():
        return LSTMNet()

    def make_linalg():
        return LinalgNet()

    def make_broken():
        raise ValueError("boom")
''')


def run(args, capfd):
    with pytest.raises(SystemExit) as e:
        main(["convert", *map(str, args)])
    err = capfd.readouterr().err
    return e.value.code, err


def assert_clean_failure(code, err, out: Path, *needles):
    assert code == 2, err
    assert err.startswith("error: "), err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) <= 2, err      # the message and one hint: no library noise
    for n in needles:
        assert n in err, f"{n!r} not in {err!r}"
    assert not out.exists()
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.tmp")] == []


@pytest.fixture()
def bad_models(tmp_path):
    p = tmp_path / "bad_models.py"
    p.write_text(BAD_MODELS)
    return p


def test_unsupported_onnx_op_is_named_before_converting(tmp_path, capfd, bad_models):
    out = tmp_path / "out"
    code, err = run([f"{bad_models}:make_lstm", "-o", out], capfd)
    assert_clean_failure(code, err, out, "cannot take operator", "LSTM (node '", "hint:", "Conv")


def test_unexportable_torch_op(tmp_path, capfd, bad_models):
    out = tmp_path / "out"
    code, err = run([f"{bad_models}:make_linalg", "-o", out], capfd)
    assert_clean_failure(code, err, out, "cannot be exported to ONNX", "linalg_inv")


def test_dynamic_shape_onnx(tmp_path, capfd):
    import torch

    from tinyprune.example import load_example
    src = tmp_path / "dyn.onnx"
    torch.onnx.export(load_example(), (torch.zeros(1, 1, 16, 16),), str(src), dynamo=False, opset_version=14,
                      input_names=["input"], output_names=["logits"], dynamic_axes={"input": {0: "batch"}})
    out = tmp_path / "out"
    code, err = run([src, "-o", out], capfd)
    assert_clean_failure(code, err, out, "dynamic dimension 0 ('batch')", "static")


@pytest.fixture()
def example_onnx(tmp_path):
    import torch

    from tinyprune.convert import export_onnx
    from tinyprune.example import load_example
    return export_onnx(load_example(), torch.zeros(1, 1, 16, 16), tmp_path / "example.onnx")


def test_truncated_onnx(tmp_path, capfd, example_onnx):
    data = example_onnx.read_bytes()
    bad = tmp_path / "truncated.onnx"
    bad.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    code, err = run([bad, "-o", out], capfd)
    assert_clean_failure(code, err, out, "truncated.onnx is not a valid ONNX model", "re-export")


def test_truncated_checkpoint(tmp_path, capfd):
    from tinyprune.example import CHECKPOINT
    bad = tmp_path / "bad.pt"
    bad.write_bytes(CHECKPOINT.read_bytes()[:3000])
    out = tmp_path / "out"
    code, err = run(["example", "--weights", bad, "-o", out], capfd)
    assert_clean_failure(code, err, out, "bad.pt is not a readable PyTorch checkpoint", "state_dict")


def test_checkpoint_of_another_model(tmp_path, capfd):
    import torch

    import archs
    wrong = tmp_path / "wrong.pt"
    torch.save(archs.make_dwsep().state_dict(), wrong)
    out = tmp_path / "out"
    code, err = run(["example", "--weights", wrong, "-o", out], capfd)
    assert_clean_failure(code, err, out, "does not match the model")


@pytest.mark.parametrize("spec, needles", [
    ("{tmp}/missing.py:make", ["model file not found", "missing.py"]),
    (f"{ARCHS_PY}:make_nothing", ["has no factory named 'make_nothing'", "make_residual"]),
    ("no_such_pkg.models:make", ["model module 'no_such_pkg.models' not found"]),
    ("resnet", ["is not a known form", ".onnx"]),
])
def test_factory_that_does_not_exist(tmp_path, capfd, spec, needles):
    out = tmp_path / "out"
    code, err = run([spec.format(tmp=tmp_path), "-o", out], capfd)
    assert_clean_failure(code, err, out, *needles)


def test_factory_that_raises(tmp_path, capfd, bad_models):
    out = tmp_path / "out"
    code, err = run([f"{bad_models}:make_broken", "-o", out], capfd)
    assert_clean_failure(code, err, out, "make_broken() failed: ValueError: boom")


def test_input_shape_that_does_not_fit_the_model(tmp_path, capfd):
    out = tmp_path / "out"
    code, err = run(["example", "--input-shape", "1,3,16,16", "-o", out], capfd)
    assert_clean_failure(code, err, out, "does not run on an input of shape (1, 3, 16, 16)", "--input-shape")
    code, err = run(["example", "--input-shape", "16,16", "-o", out], capfd)
    assert_clean_failure(code, err, out, "is not (1, C, H, W), (1, C, L) or (1, F)")


def test_missing_y_key(tmp_path, capfd):
    d = tmp_path / "d.npz"
    np.savez(d, x=np.zeros((10, 1, 16, 16), np.float32), labels=np.zeros(10, np.int64))
    out = tmp_path / "out"
    code, err = run(["example", "--data", d, "-o", out], capfd)
    assert_clean_failure(code, err, out, "has no array 'y' (it has: 'labels', 'x'; expected: 'x' and 'y'", "numpy.savez")


def test_missing_x_key(tmp_path, capfd):
    d = tmp_path / "d.npz"
    np.savez(d, images=np.zeros((10, 1, 16, 16), np.float32), y=np.zeros(10, np.int64))
    out = tmp_path / "out"
    code, err = run(["example", "--data", d, "-o", out], capfd)
    assert_clean_failure(code, err, out, "has no array 'x' (it has: 'images', 'y'")


def test_data_shape_does_not_fit_model(tmp_path, capfd):
    d = tmp_path / "d.npz"
    np.savez(d, x=np.zeros((10, 16, 16, 1), np.float32), y=np.zeros(10, np.int64))   # channels-last: wrong
    out = tmp_path / "out"
    code, err = run(["example", "--data", d, "-o", out], capfd)
    assert_clean_failure(code, err, out, "the samples of --data", ": (1, 16, 16, 1)", "(tinyprune.example): (1, 1, 16, 16)")


def test_data_not_an_npz(tmp_path, capfd):
    d = tmp_path / "d.npz"
    d.write_bytes(b"this is not a zip file at all")
    out = tmp_path / "out"
    code, err = run(["example", "--data", d, "-o", out], capfd)
    assert_clean_failure(code, err, out, "d.npz is not an .npz file (not a zip archive")


def test_debug_shows_traceback(tmp_path, capfd):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        main(["--debug", "convert", "no_such_pkg.models:make", "-o", str(out)])
    err = capfd.readouterr().err
    assert e.value.code == 2 and "Traceback" in err and "not found" in err
    assert not out.exists()


def test_existing_output_left_untouched_on_failure(tmp_path, capfd):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, err = run(["no_such_pkg.models:make", "-o", out], capfd)
    assert code == 2
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"] and (out / "keep.txt").read_text() == "mine"
