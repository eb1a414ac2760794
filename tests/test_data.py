"""Datasets (tinyprune.data) and the bundled example (tinyprune.example)."""
from __future__ import annotations

import numpy as np
import pytest

from tinyprune.data import load_dataset
from tinyprune.errors import UserInputError


def test_digits_native_size_is_the_raw_images():
    from sklearn.datasets import load_digits
    ds = load_dataset("digits", (1, 1, 8, 8))
    assert ds.x_train.shape == (1347, 1, 8, 8) and ds.x_test.shape == (450, 1, 8, 8)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64 and ds.classes == 10
    raw = {img.tobytes() for img in (load_digits().images / 16.0).astype(np.float32)}
    assert all(x[0].tobytes() in raw for x in ds.x_test[:20])        # no resampling at 8x8


def test_digits_resize_bilinear_16():
    ds8 = load_dataset("digits", (1, 1, 8, 8))
    ds16 = load_dataset("digits", (1, 1, 16, 16))
    assert ds16.x_train.shape == (1347, 1, 16, 16)
    assert 0.0 <= ds16.x_train.min() and ds16.x_train.max() <= 1.0
    np.testing.assert_array_equal(ds8.y_test, ds16.y_test)           # same split whatever the size
    a, b = ds8.x_test[0, 0], ds16.x_test[0, 0]
    # half-pixel bilinear 2x upsampling: corners copy the corner pixels, interior is 3/4-1/4 blends
    assert b[0, 0] == a[0, 0] and b[15, 15] == a[7, 7]
    assert b[1, 1] == pytest.approx(0.5625 * a[0, 0] + 0.1875 * (a[0, 1] + a[1, 0]) + 0.0625 * a[1, 1])
    # row/column means are preserved by this resampling (up to the clamped edges)
    assert b.mean() == pytest.approx(a.mean(), abs=0.02)


def test_digits_split_is_fixed_and_stratified():
    a = load_dataset("digits", (1, 1, 16, 16))
    b = load_dataset("digits", (1, 1, 16, 16))
    np.testing.assert_array_equal(a.x_test, b.x_test)
    counts = np.bincount(a.y_test, minlength=10)
    assert counts.min() >= 43 and counts.max() <= 46


def test_digits_1d_and_multichannel_shapes():
    seq = load_dataset("digits", (1, 1, 64))
    rows = load_dataset("digits", (1, 8, 8))
    assert seq.x_train.shape == (1347, 1, 64) and rows.x_train.shape == (1347, 8, 8)
    np.testing.assert_array_equal(seq.x_test.reshape(-1, 8, 8), rows.x_test)   # rows as channels
    rgb = load_dataset("digits", (1, 3, 32, 32))
    assert rgb.x_test.shape == (450, 3, 32, 32)
    np.testing.assert_array_equal(rgb.x_test[:, 0], rgb.x_test[:, 2])


def test_npz_with_and_without_test_split(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((40, 2, 5, 5), dtype=np.float32)
    y = np.arange(40) % 4
    p = tmp_path / "d.npz"
    np.savez(p, x=x, y=y)
    ds = load_dataset(p, (1, 2, 5, 5))
    assert len(ds.x_train) == 30 and len(ds.x_test) == 10 and ds.classes == 4
    both = np.concatenate([ds.x_train, ds.x_test])
    assert sorted(map(bytes, both)) == sorted(map(bytes, x))           # a partition of the samples
    p2 = tmp_path / "d2.npz"
    np.savez(p2, x=x, y=y, x_test=x[:7], y_test=y[:7] + 5)
    ds2 = load_dataset(p2, (1, 2, 5, 5))
    assert len(ds2.x_train) == 40 and len(ds2.x_test) == 7 and ds2.classes == 9
    one_d = tmp_path / "d3.npz"
    np.savez(one_d, x=rng.random((8, 3, 20)).astype(np.float64), y=np.zeros(8, np.int32))
    ds3 = load_dataset(one_d, (1, 3, 20))
    assert ds3.x_train.dtype == np.float32 and ds3.x_train.shape[1:] == (3, 20)


X4 = np.zeros((4, 1, 8, 8), np.float32)
X_NAN = X4.copy()
X_NAN[2, 0, 3, 3] = np.nan
X_INF = X4.copy()
X_INF[1, 0, 0, 0] = -np.inf


@pytest.mark.parametrize("arrays, message", [
    ({"x": np.zeros((4, 1, 8, 8)), "labels": np.zeros(4)}, "has no array 'y' (it has: 'labels', 'x'; expected: "
                                                          "'x' and 'y'"),
    ({"x": np.zeros((4, 1, 8, 8)), "y_test": np.zeros(4)}, "has no array 'y' (it has: 'x', 'y_test'"),
    ({"y": np.zeros(4)}, "has no array 'x' (it has: 'y'; expected"),
    ({"a": X4, "b": np.zeros(4)}, "has no array 'x' (it has: 'a', 'b'; expected: 'x' and 'y'"),
    ({"x": X4, "x_train": X4, "y": np.zeros(4)}, "has both 'x' and 'x_train'"),
    ({"x": np.zeros((4, 1, 8, 8)), "y": np.zeros(5)}, "'y' has shape (5,); expected (4,)"),
    ({"x": np.zeros((4, 8, 8, 1)), "y": np.zeros(4)}, "samples of shape (8, 8, 1) but the model expects (1, 8, 8)"),
    ({"x": np.zeros(4), "y": np.zeros(4)}, "expected (N, C, H, W), (N, C, L) or (N, F)"),
    ({"x": np.zeros((4, 1, 1, 8, 8)), "y": np.zeros(4)}, "expected (N, C, H, W), (N, C, L) or (N, F)"),
    ({"x": np.zeros((4, 1, 8, 8)), "y": np.full(4, 0.5)}, "'y' has non-integer labels (e.g. 0.5)"),
    ({"x": np.zeros((4, 1, 8, 8)), "y": np.zeros(4), "x_test": np.zeros((2, 1, 8, 8))}, "only one of"),
    ({"x": X_NAN, "y": np.zeros(4)}, "'x' has 1 NaN and 0 infinite value(s) (first in sample 2)"),
    ({"x": X_INF, "y": np.zeros(4)}, "'x' has 0 NaN and 1 infinite value(s) (first in sample 1)"),
    ({"x": X4, "y": np.zeros(4), "x_test": X_NAN, "y_test": np.zeros(4)}, "'x_test' has 1 NaN"),
    ({"x": np.full((4, 1, 8, 8), 1e300), "y": np.zeros(4)}, "'x' has values beyond float32's range"),
    ({"x": X4, "y": np.array([0, 1, np.nan, 2])}, "'y' has 1 NaN or infinite label(s)"),
    ({"x": X4, "y": np.array([0, -1, 2, 3])}, "'y' has negative labels (min -1)"),
    ({"x": X4, "y": np.array(["cat", "dog", "cat", "dog"])}, "'y' has dtype <U3; expected integer class labels"),
    ({"x": np.full((4, 1, 8, 8), "a"), "y": np.zeros(4)}, "'x' has dtype <U1; expected numbers"),
    ({"x": X4.astype(bool), "y": np.zeros(4)}, "'x' has dtype bool; expected numbers"),
    ({"x": np.zeros((0, 1, 8, 8)), "y": np.zeros(0)}, "'x' is empty (shape (0, 1, 8, 8))"),
])
def test_npz_errors(tmp_path, arrays, message):
    p = tmp_path / "bad.npz"
    np.savez(p, **arrays)
    with pytest.raises(UserInputError) as e:
        load_dataset(p, (1, 1, 8, 8))
    assert message in str(e.value)
    assert e.value.exit_code == 2


def test_not_an_npz_and_missing_file(tmp_path):
    p = tmp_path / "x.npz"
    p.write_bytes(b"\x00" * 100)
    with pytest.raises(UserInputError, match=r"x.npz is not an .npz file \(not a zip archive"):
        load_dataset(p)
    p.write_bytes(np.random.default_rng(0).bytes(3000))
    with pytest.raises(UserInputError, match=r"x.npz is not an .npz file"):
        load_dataset(p)
    np.save(tmp_path / "a.npy", X4)
    with pytest.raises(UserInputError, match=r"a.npy is a single .npy array, not an .npz archive"):
        load_dataset(tmp_path / "a.npy")
    with pytest.raises(UserInputError, match="is a directory, not an .npz file"):
        load_dataset(tmp_path)
    with pytest.raises(UserInputError, match="data file not found"):
        load_dataset(tmp_path / "nope.npz")
    with pytest.raises(UserInputError, match=r"not \(1, C, H, W\), \(1, C, L\) or \(1, F\)"):
        load_dataset("digits", (2, 1, 8, 8))


def test_object_array_is_refused_by_name(tmp_path):
    p = tmp_path / "obj.npz"
    np.savez(p, x=np.array([[1.0], "two"], dtype=object), y=np.zeros(2))
    with pytest.raises(UserInputError, match=r"obj.npz: array 'x' holds Python objects \(dtype object\)"):
        load_dataset(p)


def test_corrupt_member_is_a_data_error(tmp_path):
    p = tmp_path / "d.npz"
    np.savez_compressed(p, x=np.random.default_rng(0).random((50, 1, 8, 8)), y=np.zeros(50, np.int64))
    raw = bytearray(p.read_bytes())
    raw[200:260] = bytes(60)          # inside x's compressed stream; the zip directory stays intact
    p.write_bytes(bytes(raw))
    with pytest.raises(UserInputError, match=r"d.npz is not a readable .npz file \("):
        load_dataset(p, (1, 1, 8, 8))


def test_x_train_y_train_are_accepted_for_x_y(tmp_path):
    """`tinyprune prune --help` documented x_train/y_train; both spellings load the same data."""
    rng = np.random.default_rng(0)
    x, y = rng.random((20, 1, 8, 8), dtype=np.float32), np.arange(20) % 3
    np.savez(tmp_path / "a.npz", x=x, y=y)
    np.savez(tmp_path / "b.npz", x_train=x, y_train=y)
    a, b = load_dataset(tmp_path / "a.npz", (1, 1, 8, 8)), load_dataset(tmp_path / "b.npz", (1, 1, 8, 8))
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_test, b.y_test) and a.classes == b.classes == 3


def test_prune_api_arrays_get_the_same_checks():
    from tinyprune.prune.train import as_data

    y = np.zeros(4, np.int64)
    with pytest.raises(UserInputError, match=r"'x_train' has 1 NaN"):
        as_data((X_NAN, y, X4, y), (1, 1, 8, 8))
    with pytest.raises(UserInputError, match=r"'y_test' has negative labels"):
        as_data((X4, y, X4, y - 1), (1, 1, 8, 8))
    d = as_data((X4.astype(np.float64), y.astype(np.int32), X4, y), (1, 1, 8, 8))
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int64


def test_example_model_accuracy_and_size():
    import torch

    from tinyprune.example import CHECKPOINT, INPUT_SHAPE, load_example
    from tinyprune.example.train import accuracy

    model = load_example()
    assert not model.training
    params = sum(p.numel() for p in model.parameters())
    assert 3_000 < params < 20_000
    assert CHECKPOINT.stat().st_size < 200_000
    ds = load_dataset("digits", INPUT_SHAPE)
    assert accuracy(model, ds.x_test, ds.y_test) >= 0.97
    kinds = {type(m).__name__ for m in model.modules()}
    assert {"Conv2d", "BatchNorm2d", "ReLU", "AdaptiveAvgPool2d", "Linear"} <= kinds
    assert any(isinstance(m, torch.nn.Conv2d) and m.groups == m.in_channels > 1 for m in model.modules())
    macs = _conv_linear_macs(model, INPUT_SHAPE)
    assert 200_000 <= macs <= 1_000_000


def _conv_linear_macs(model, shape):
    import torch
    total = 0

    def hook(m, inp, out):
        nonlocal total
        if isinstance(m, torch.nn.Conv2d):
            total += out.numel() * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, torch.nn.Linear):
            total += m.in_features * m.out_features
    hs = [m.register_forward_hook(hook) for m in model.modules()]
    with torch.no_grad():
        model(torch.zeros(shape))
    for h in hs:
        h.remove()
    return total


@pytest.mark.slow
def test_training_script_is_deterministic(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    import torch
    script = Path(__file__).resolve().parents[1] / "scripts" / "train_example.py"
    outs = []
    for i in range(2):
        out = tmp_path / f"run{i}" / "example.pt"
        proc = subprocess.run([sys.executable, str(script), "--epochs", "1", "--out", str(out)],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert "test accuracy" in proc.stdout
        outs.append(torch.load(out, weights_only=True))
    assert outs[0].keys() == outs[1].keys()
    assert all(torch.equal(outs[0][k], outs[1][k]) for k in outs[0])
