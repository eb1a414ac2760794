"""The bundled example: a small MCU-style CNN for 1x16x16 digits, with its trained checkpoint.

Architecture (PyTorch layout N, C, H, W):
    stem   conv3x3 1->8 (pad 1) + BN + ReLU                16x16x8
    down1  conv3x3 8->16 stride 2 + BN + ReLU              8x8x16
    block  depthwise 3x3 (16) + BN + ReLU, pointwise 16->16 + BN, residual add, ReLU
    down2  conv3x3 16->32 stride 2 + BN + ReLU             4x4x32
    sep    depthwise 3x3 (32) + BN + ReLU, pointwise 32->32 + BN + ReLU
    head   global average pool, linear 32->10
About 0.21 M multiply-accumulates and 8.2 k parameters. ``example.pt`` is a state_dict written by
``scripts/train_example.py`` (deterministic, seeded). This module imports torch but no other stage.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

CHECKPOINT = Path(__file__).resolve().parent / "example.pt"
INPUT_SHAPE = (1, 1, 16, 16)
NUM_CLASSES = 10
DATASET = "digits"


def _conv_bn(cin, cout, k=3, stride=1, groups=1, relu=True):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class ExampleNet(nn.Module):
    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.stem = _conv_bn(1, 8)
        self.down1 = _conv_bn(8, 16, stride=2)
        self.block_dw = _conv_bn(16, 16, groups=16)
        self.block_pw = _conv_bn(16, 16, k=1, relu=False)
        self.block_act = nn.ReLU()
        self.down2 = _conv_bn(16, 32, stride=2)
        self.sep_dw = _conv_bn(32, 32, groups=32)
        self.sep_pw = _conv_bn(32, 32, k=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x):
        x = self.down1(self.stem(x))
        x = self.block_act(x + self.block_pw(self.block_dw(x)))
        x = self.sep_pw(self.sep_dw(self.down2(x)))
        x = torch.flatten(self.pool(x), 1)
        return self.fc(x)


def build_model(num_classes: int = NUM_CLASSES) -> nn.Module:
    """The example architecture with fresh (untrained) weights."""
    return ExampleNet(num_classes)


def load_example() -> nn.Module:
    """The example with its trained weights, in eval mode."""
    from tinyprune.errors import UserInputError

    model = build_model()
    try:
        state = torch.load(CHECKPOINT, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserInputError(f"the example checkpoint {CHECKPOINT} is missing",
                             hint="recreate it with `python scripts/train_example.py`") from None
    model.load_state_dict(state)
    return model.eval()
