"""The corpus' tinyprune-written architectures, each after a published TinyML design (plain PyTorch,
written the way people write them: ``x.shape`` unpacking, ``view``/``transpose`` shuffles, functional
pooling). Models that already exist in ``tinyprune/prune/zoo.py`` are reused from there by
``factories.py``.

May import: torch only.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _cbr(cin, cout, k=3, stride=1, groups=1, act=nn.ReLU, padding=None):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2 if padding is None else padding, groups=groups, bias=False),
              nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


class MBConv(nn.Module):
    """MobileNetV2/MCUNet inverted residual: 1x1 expand, kxk depthwise, 1x1 project (+ skip)."""

    def __init__(self, cin, cout, k, stride, expand):
        super().__init__()
        mid = cin * expand
        self.skip = stride == 1 and cin == cout
        self.body = nn.Sequential(_cbr(cin, mid, 1, act=nn.ReLU6), _cbr(mid, mid, k, stride, groups=mid, act=nn.ReLU6),
                                  _cbr(mid, cout, 1, act=None))

    def forward(self, x):
        y = self.body(x)
        return x + y if self.skip else y


class MCUNetStyle(nn.Module):
    """MCUNet-style searched backbone (Lin et al. 2020): inverted residuals whose kernel sizes (3/5/7)
    and expand ratios (3/4/6) vary per block, ReLU6, global average pool, linear classifier."""

    # (cout, kernel, stride, expand)
    BLOCKS = [(8, 3, 1, 1), (16, 7, 2, 3), (16, 3, 1, 4), (24, 5, 2, 3), (24, 7, 1, 4), (40, 5, 2, 6),
              (40, 3, 1, 4), (48, 7, 1, 3), (96, 5, 2, 6), (96, 3, 1, 4)]

    def __init__(self, classes=10, in_ch=3, stem=16):
        super().__init__()
        layers, c = [_cbr(in_ch, stem, 3, 2, act=nn.ReLU6)], stem
        for cout, k, s, e in self.BLOCKS:
            layers.append(MBConv(c, cout, k, s, e))
            c = cout
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


class DSCNN(nn.Module):
    """DS-CNN for keyword spotting (Zhang et al. 2017, MLPerf Tiny KWS): a 10x4 strided conv on the
    49x10 MFCC map, four depthwise-separable blocks, average pool, 12 classes."""

    def __init__(self, classes=12, width=64):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, (10, 4), (2, 2), (5, 1), bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.blocks = nn.Sequential(*[nn.Sequential(_cbr(width, width, 3, groups=width), _cbr(width, width, 1))
                                      for _ in range(4)])
        self.fc = nn.Linear(width, classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.fc(F.avg_pool2d(x, x.shape[-2:]).flatten(1))


def channel_shuffle(x, groups: int):
    batch, channels, height, width = x.shape
    x = x.view(batch, groups, channels // groups, height, width).transpose(1, 2).contiguous()
    return x.view(batch, channels, height, width)


class ShuffleV1Unit(nn.Module):
    """ShuffleNet v1 unit (Zhang et al. 2018): grouped 1x1 conv, channel shuffle, 3x3 depthwise, grouped
    1x1 conv; stride 1 adds the input, stride 2 concatenates a 3x3 average-pooled input."""

    def __init__(self, cin, cout, groups, stride):
        super().__init__()
        self.stride, self.groups = stride, groups
        branch = cout - cin if stride == 2 else cout
        mid = branch // 4 // groups * groups
        self.g1 = _cbr(cin, mid, 1, groups=groups)
        self.dw = _cbr(mid, mid, 3, stride, groups=mid, act=None)
        self.g2 = _cbr(mid, branch, 1, groups=groups, act=None)

    def forward(self, x):
        y = self.g2(self.dw(channel_shuffle(self.g1(x), self.groups)))
        if self.stride == 2:
            return torch.relu(torch.cat([F.avg_pool2d(x, 3, 2, 1), y], 1))
        return torch.relu(x + y)


class ShuffleNetV1Style(nn.Module):
    """stem, padded 3x3 max pool, three ShuffleNet-v1 stages with 2, 3 and 4 groups, GAP, linear."""

    def __init__(self, classes=10, in_ch=3):
        super().__init__()
        self.stem = _cbr(in_ch, 24, 3, 2)
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.stages = nn.Sequential(ShuffleV1Unit(24, 48, 2, 2), ShuffleV1Unit(48, 48, 2, 1),
                                    ShuffleV1Unit(48, 96, 3, 2), ShuffleV1Unit(96, 96, 3, 1),
                                    ShuffleV1Unit(96, 192, 4, 2), ShuffleV1Unit(192, 192, 4, 1))
        self.fc = nn.Linear(192, classes)

    def forward(self, x):
        x = self.stages(self.pool(self.stem(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class AudioConv1D(nn.Module):
    """A raw-waveform 1-D CNN (M5-like, Dai et al. 2017, scaled down): strided Conv1d stack, GAP, linear."""

    def __init__(self, classes=8):
        super().__init__()
        def c(cin, cout, k, s):
            return nn.Sequential(nn.Conv1d(cin, cout, k, s, k // 2, bias=False), nn.BatchNorm1d(cout), nn.ReLU())
        self.features = nn.Sequential(c(1, 16, 9, 2), c(16, 32, 9, 2), c(32, 32, 9, 2), c(32, 64, 3, 2), c(64, 64, 3, 1))
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        return self.fc(self.features(x).mean(-1))


class FCAutoencoder(nn.Module):
    """MLPerf Tiny anomaly-detection autoencoder: 640 -> 128 -> 128 -> 128 -> 8 -> 128 -> 128 -> 128 -> 640
    (Linear + BatchNorm1d + ReLU); the output is the reconstruction of the input."""

    def __init__(self, features=640, hidden=128, code=8):
        super().__init__()
        dims = [features, hidden, hidden, hidden, code, hidden, hidden, hidden]
        layers = []
        for a, b in zip(dims, dims[1:]):
            layers += [nn.Linear(a, b), nn.BatchNorm1d(b), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(hidden, features)

    def forward(self, x):
        return self.out(self.body(x))


class CeilPoolNet(nn.Module):
    """Max pools with ``ceil_mode=True`` on odd feature maps (as Caffe-era models and torchvision's
    squeezenet use them): conv, 3x3/2 ceil pool, conv, 2x2/2 ceil pool, conv, GAP, linear."""

    def __init__(self, classes=10, in_ch=1, w=16):
        super().__init__()
        self.c1, self.c2, self.c3 = _cbr(in_ch, w, 3), _cbr(w, 2 * w, 3), _cbr(2 * w, 4 * w, 3)
        self.p1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.p2 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.fc = nn.Linear(4 * w, classes)

    def forward(self, x):
        x = self.c3(self.p2(self.c2(self.p1(self.c1(x)))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class CatRanges(nn.Module):
    """``torch.cat`` of branches with very different value ranges -- a ReLU6 branch (0..6) and a
    linear branch scaled by 16 -- so one int8 scale has to cover both (a known int8 accuracy trap)."""

    def __init__(self, classes=10, in_ch=1, w=16):
        super().__init__()
        self.stem = _cbr(in_ch, w, 3, 2)
        self.a = _cbr(w, w, 3, act=nn.ReLU6)
        self.b = _cbr(w, w, 1, act=None)
        self.head = _cbr(2 * w, 4 * w, 3, 2)
        self.fc = nn.Linear(4 * w, classes)

    def forward(self, x):
        x = self.stem(x)
        x = torch.cat([self.a(x), 16.0 * self.b(x)], dim=1)
        return self.fc(F.adaptive_avg_pool2d(self.head(x), 1).flatten(1))
