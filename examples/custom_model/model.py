"""A user's own PyTorch model, as tinyprune takes it: a module with a factory function.

    tinyprune build examples/custom_model/model.py:make_model \
        --weights examples/custom_model/weights.pt --data examples/custom_model/digits8x8.npz \
        --board nucleo-f746

``input_shape`` tells tinyprune the (N, C, H, W) shape the model takes (or pass --input-shape).
"""
import torch.nn as nn


class TinyDigits(nn.Module):
    input_shape = (1, 1, 8, 8)

    def __init__(self, width: int = 16, classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1, bias=False), nn.BatchNorm2d(2 * width), nn.ReLU6(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.classifier = nn.Linear(2 * width, classes)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


def make_model() -> nn.Module:
    return TinyDigits()
