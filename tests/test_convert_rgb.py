"""An RGB (3-channel, 4-D input) model converts with the network unreachable: onnx2tf would download
sample images from GitHub to check such a model; the convert stage gives it images made of the
user's calibration data instead (convert/tflite_int8.py, ONNX2TF_SAMPLE_FILE)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tinyprune.convert.tflite_int8 import ONNX2TF_SAMPLE_SHAPE, onnx2tf_sample_images

pytestmark = pytest.mark.slow


class RGBNet(nn.Module):
    input_shape = (1, 3, 16, 16)

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = torch.relu(self.c2(torch.relu(self.c1(x))))
        return self.fc(x.mean((2, 3)))


def test_sample_images_come_from_the_calibration_data():
    rng = np.random.default_rng(0)
    calib = rng.uniform(0, 1, (7, 16, 16, 3)).astype(np.float32)
    imgs = onnx2tf_sample_images(calib)
    assert imgs.shape == ONNX2TF_SAMPLE_SHAPE and imgs.dtype == np.float32
    # nearest-neighbour 16 -> 128: each source pixel becomes an 8x8 block; samples cycle
    assert np.array_equal(imgs[0, ::8, ::8], calib[0]) and np.array_equal(imgs[7], imgs[0])
    assert np.array_equal(imgs[3, 8:16, 16:24], np.broadcast_to(calib[3, 1, 2], (8, 8, 3)))
    one = onnx2tf_sample_images(calib[..., :1])            # a 1-channel input: channel cycled to 3
    assert one.shape == ONNX2TF_SAMPLE_SHAPE and np.array_equal(one[..., 0], one[..., 2])
    assert onnx2tf_sample_images(calib[:, 0]) is None     # not 4-D: onnx2tf never looks


def test_rgb_model_converts_without_network(tmp_path, monkeypatch):
    requests = pytest.importorskip("requests")
    from tinyprune.convert import convert

    def no_network(*a, **kw):
        raise requests.exceptions.ConnectionError("network unreachable (test)")
    monkeypatch.setattr(requests, "get", no_network)
    monkeypatch.setattr(requests.Session, "request", no_network)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    data = tmp_path / "rgb.npz"
    np.savez(data, x=rng.uniform(0, 1, (40, 3, 16, 16)).astype(np.float32), y=rng.integers(0, 10, 40))
    monkeypatch.chdir(tmp_path)
    res = convert(RGBNet().eval(), tmp_path / "out", data=str(data), calib_samples=16)
    assert res.tflite_path.is_file()
    from tinyprune.codegen.tflite_reader import read_model
    m = read_model(res.tflite_path)
    assert m.graph.tensors[m.graph.inputs[0]].shape == (1, 16, 16, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "rgb.npz"]   # nothing left in the cwd
