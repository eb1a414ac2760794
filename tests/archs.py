"""Test architectures for conversion and code generation, importable by any test.

Each ``make_<name>()`` returns an untrained nn.Module with an ``input_shape`` attribute (batch 1,
PyTorch layout); ARCHS maps name -> (factory, input shape). ``trained(name)`` trains a fresh model
briefly on digits (seeded, a few seconds on one core). Between them they cover residual adds,
depthwise-separable blocks, concatenation, max pooling, ReLU6 and hard-swish, a flatten after
spatial layers (channels-last layout of the classifier's input), and a 1-D convolution model;
LAYOUT_ARCHS holds models whose input layout the converter has to fix.
"""
from __future__ import annotations

import torch
from torch import nn


def _cbr(cin, cout, k=3, stride=1, groups=1, act=nn.ReLU):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


class Residual(nn.Module):
    """conv -> two residual blocks (3x3, 3x3 + identity) -> strided conv -> GAP -> linear."""

    def __init__(self):
        super().__init__()
        self.stem = _cbr(1, 12, stride=2)
        self.a1, self.a2 = _cbr(12, 12), _cbr(12, 12, act=None)
        self.b1, self.b2 = _cbr(12, 12), _cbr(12, 12, act=None)
        self.down = _cbr(12, 24, stride=2)
        self.fc = nn.Linear(24, 10)

    def forward(self, x):
        x = self.stem(x)
        x = torch.relu(x + self.a2(self.a1(x)))
        x = torch.relu(x + self.b2(self.b1(x)))
        x = self.down(x).mean((2, 3))
        return self.fc(x)


class DepthwiseSeparable(nn.Module):
    """MobileNet-v1 style: conv, then depthwise 3x3 + pointwise 1x1 blocks (one strided)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            _cbr(1, 8, stride=2),
            _cbr(8, 8, groups=8), _cbr(8, 16, k=1),
            _cbr(16, 16, stride=2, groups=16), _cbr(16, 32, k=1),
            _cbr(32, 32, groups=32), _cbr(32, 32, k=1),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        return self.fc(self.features(x))


class Concat(nn.Module):
    """Inception-like: a 1x1 and a 3x3 branch concatenated on channels, twice."""

    def __init__(self):
        super().__init__()
        self.stem = _cbr(1, 8, stride=2)
        self.a1, self.a3 = _cbr(8, 8, k=1), _cbr(8, 8)
        self.b1, self.b3 = _cbr(16, 12, k=1, stride=2), _cbr(16, 12, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(24, 10)

    def forward(self, x):
        x = self.stem(x)
        x = torch.cat([self.a1(x), self.a3(x)], 1)
        x = torch.cat([self.b1(x), self.b3(x)], 1)
        return self.fc(torch.flatten(self.pool(x), 1))


class MaxPoolFlatten(nn.Module):
    """LeNet-like: conv, max-pool, conv, max-pool, then flatten of a 4x4x16 map into a linear layer
    (flatten order differs between NCHW and NHWC: the converter must keep the PyTorch semantics)."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = _cbr(1, 8), _cbr(8, 16)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(16 * 4 * 4, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        x = self.pool(self.c2(self.pool(self.c1(x))))
        x = x.view(x.size(0), -1)
        return self.fc2(torch.relu(self.fc1(x)))


class Relu6HardSwish(nn.Module):
    """MobileNet-v3 flavoured: ReLU6 and hard-swish activations, average pooling."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            _cbr(1, 8, stride=2, act=nn.ReLU6), _cbr(8, 8, groups=8, act=nn.Hardswish),
            _cbr(8, 16, k=1, act=nn.ReLU6), _cbr(16, 24, stride=2, act=nn.Hardswish),
            nn.AvgPool2d(4), nn.Flatten())
        self.fc = nn.Linear(24, 10)

    def forward(self, x):
        return self.fc(self.features(x))


class Conv1D(nn.Module):
    """1-D model on (N, C=8, L=8) sequences (digit rows as channels): conv1d, max-pool, conv1d,
    global average, linear. C == L makes onnx2tf's axis order ambiguous by shape alone."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Sequential(nn.Conv1d(8, 16, 3, padding=1, bias=False), nn.BatchNorm1d(16), nn.ReLU())
        self.pool = nn.MaxPool1d(2)
        self.c2 = nn.Sequential(nn.Conv1d(16, 32, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = self.c2(self.pool(self.c1(x)))
        return self.fc(x.mean(2))


class FlatMLP(nn.Module):
    """A multi-layer perceptron straight on a 2-channel 8x8 image (flatten at the input). onnx2tf would
    read the input buffer in NCHW order; the converter permutes the first layer's weights instead so
    the int8 model takes channels-last input with no TRANSPOSE."""

    def __init__(self, relu_first: bool = False):
        super().__init__()
        self.relu_first = relu_first
        self.fc1 = nn.Linear(2 * 8 * 8, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        x = torch.flatten(x, 1)
        if self.relu_first:   # an op between flatten and linear: the weight permutation does not apply
            x = torch.relu(x)
        return self.fc2(torch.relu(self.fc1(x)))


def _with_shape(model: nn.Module, shape) -> nn.Module:
    model.input_shape = tuple(shape)
    return model


def make_residual() -> nn.Module:
    return _with_shape(Residual(), (1, 1, 16, 16))


def make_dwsep() -> nn.Module:
    return _with_shape(DepthwiseSeparable(), (1, 1, 16, 16))


def make_concat() -> nn.Module:
    return _with_shape(Concat(), (1, 1, 16, 16))


def make_maxpool() -> nn.Module:
    return _with_shape(MaxPoolFlatten(), (1, 1, 16, 16))


def make_relu6_hswish() -> nn.Module:
    return _with_shape(Relu6HardSwish(), (1, 1, 16, 16))


def make_conv1d() -> nn.Module:
    return _with_shape(Conv1D(), (1, 8, 8))


def make_flat_mlp() -> nn.Module:
    return _with_shape(FlatMLP(), (1, 2, 8, 8))


def make_flat_relu_mlp() -> nn.Module:
    """FlatMLP with a ReLU right after the flatten: the converter must compose a transpose/reshape
    in front of onnx2tf's model to keep the channels-last input contract."""
    return _with_shape(FlatMLP(relu_first=True), (1, 2, 8, 8))


ARCHS = {
    "residual": (make_residual, (1, 1, 16, 16)),
    "dwsep": (make_dwsep, (1, 1, 16, 16)),
    "concat": (make_concat, (1, 1, 16, 16)),
    "maxpool": (make_maxpool, (1, 1, 16, 16)),
    "relu6_hswish": (make_relu6_hswish, (1, 1, 16, 16)),
    "conv1d": (make_conv1d, (1, 8, 8)),
}
# Models whose input layout the converter has to fix (flat_relu_mlp keeps a TRANSPOSE near the input).
LAYOUT_ARCHS = {"flat_mlp": (make_flat_mlp, (1, 2, 8, 8)), "flat_relu_mlp": (make_flat_relu_mlp, (1, 2, 8, 8))}
TRAIN_EPOCHS = 8


def trained(name: str, epochs: int = TRAIN_EPOCHS, seed: int = 0) -> nn.Module:
    """A fresh ``name`` model trained on digits (seeded; one thread); eval mode."""
    from tinyprune.data import load_dataset
    from tinyprune.example.train import train

    factory, shape = {**ARCHS, **LAYOUT_ARCHS}[name]
    torch.manual_seed(seed)
    model = factory()
    data = load_dataset("digits", shape)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(model, data.x_train, data.y_train, epochs=epochs, seed=seed)
    finally:
        torch.set_num_threads(threads)
    return model
