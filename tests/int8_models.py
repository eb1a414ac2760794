"""Models whose int8 conversion loses accuracy on purpose (tests/test_int8_accuracy.py, docs/convert.md
"Int8 accuracy"), and data labelled by the float model itself, so that int8 accuracy = top-1 agreement
and no training is needed.

- ``branch_cat``: a ``torch.cat`` of a 3x3 branch and a 1x1 branch scaled x``k`` (the next layer divides it
  back, so the float function does not depend on k). TFLite gives a concatenation's inputs one int8 scale:
  the small branch is lost.
- ``dw_imbalanced``: conv -> BatchNorm -> ReLU -> depthwise conv -> ... with the first conv's channels scaled
  from 0.01 to 10 (the depthwise conv divides them back): the classic case for cross-layer equalization.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

SHAPE = (1, 1, 16, 16)


class BranchCat(nn.Module):
    def __init__(self, k: float = 1.0):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.ReLU())
        self.small = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.big = nn.Sequential(nn.Conv2d(8, 8, 1), nn.ReLU())
        self.head = nn.Conv2d(16, 8, 1)
        self.fc = nn.Linear(8 * 8 * 8, 10)
        self.k = k
        with torch.no_grad():
            self.head.weight[:, 8:] /= k

    def forward(self, x):
        x = self.stem(x)
        x = torch.cat([self.small(x), self.big(x) * self.k], 1)
        return self.fc(torch.relu(self.head(x)).flatten(1))


class DWNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 16, 3, stride=2, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.pw = nn.Conv2d(16, 16, 1)
        self.fc = nn.Linear(16 * 8 * 8, 10)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x)))
        x = torch.relu(self.dw(x))
        x = torch.relu(self.pw(x))
        return self.fc(x.flatten(1))


def _centred(m: nn.Module) -> nn.Module:
    """The last layer's bias set so that every class has the same mean score on digits: a random model then
    predicts all ten classes, not one."""
    from tinyprune.data import load_digits
    x = torch.from_numpy(load_digits(SHAPE[1:]).x_train)
    with torch.no_grad():
        logits = m(x)
        m.fc.weight.div_(logits.std(0, keepdim=True).T)
        m.fc.bias.div_(logits.std(0))
        m.fc.bias.sub_(m(x).mean(0))
    m.input_shape = SHAPE
    return m


def branch_cat(k: float = 1000.0) -> nn.Module:
    torch.manual_seed(0)
    return _centred(BranchCat(k).eval())


def dw_imbalanced(spread: float = 1000.0) -> nn.Module:
    torch.manual_seed(0)
    m = DWNet().eval()
    c = torch.from_numpy(np.geomspace(10.0 / spread, 10.0, 16)[np.random.default_rng(0).permutation(16)]).float()
    with torch.no_grad():
        m.bn.running_var.fill_(0.25)
        m.bn.weight.mul_(c)
        m.bn.bias.fill_(0.05).mul_(c)
        m.dw.weight.div_(c.reshape(-1, 1, 1, 1))
    return _centred(m)


def self_labelled(model: nn.Module, path) -> None:
    """digits at the model's input shape, labelled with the float model's own top-1 (int8 accuracy is then
    the int8 model's agreement with it), saved as an .npz with x/y and x_test/y_test."""
    from tinyprune.data import load_digits
    ds = load_digits(SHAPE[1:])
    with torch.no_grad():
        y_tr = model(torch.from_numpy(ds.x_train)).argmax(1).numpy()
        y_te = model(torch.from_numpy(ds.x_test)).argmax(1).numpy()
    np.savez(path, x=ds.x_train, y=y_tr, x_test=ds.x_test, y_test=y_te)
