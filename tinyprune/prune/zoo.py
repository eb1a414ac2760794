"""Small reference architectures for the prune tests and benchmark (digits-sized inputs):
``plain_cnn`` (conv-bn-relu stack, max pool, linear after flatten), ``res_dw_net`` (residual add,
depthwise-separable block, channel concatenation, global average pool), ``se_hswish_net``
(hard-swish, squeeze-and-excitation with a broadcast multiply, functional adaptive pooling),
``shuffle_net`` (ShuffleNet-v2-style units: two branches concatenated, depthwise convs, a channel
shuffle written with shape access, view and transpose as torchvision writes it) and ``tiny_seg_net``
(a segmentation-style encoder-decoder: nearest-neighbour upsampling, skip concat) and
``act_split_net`` (PReLU per channel and shared, LeakyReLU, tanh, channels split with torch.chunk,
torch.split and x[:, a:b]).

May import: torch only.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class PlainCNN(nn.Module):
    def __init__(self, width=16, classes=10, in_ch=1):
        super().__init__()
        w = width
        self.c1 = nn.Conv2d(in_ch, w, 3, padding=1, bias=False)
        self.b1 = nn.BatchNorm2d(w)
        self.c2 = nn.Conv2d(w, 2 * w, 3, padding=1, bias=False)
        self.b2 = nn.BatchNorm2d(2 * w)
        self.pool = nn.MaxPool2d(2)
        self.c3 = nn.Conv2d(2 * w, 2 * w, 3, padding=1, bias=False)
        self.b3 = nn.BatchNorm2d(2 * w)
        self.flat = nn.Flatten()
        self.fc1 = nn.Linear(2 * w * 4 * 4, 4 * w)
        self.fc2 = nn.Linear(4 * w, classes)

    def forward(self, x):
        x = torch.relu(self.b1(self.c1(x)))
        x = self.pool(torch.relu(self.b2(self.c2(x))))
        x = torch.relu(self.b3(self.c3(x)))
        return self.fc2(torch.relu(self.fc1(self.flat(x))))


class ResDWNet(nn.Module):
    """stem -> residual block (two convs + skip add) -> depthwise-separable branch concatenated
    with a 1x1 branch -> global average pool -> linear classifier."""

    def __init__(self, width=16, classes=10, in_ch=1):
        super().__init__()
        w = width
        self.stem = nn.Conv2d(in_ch, w, 3, padding=1, bias=False)
        self.stem_bn = nn.BatchNorm2d(w)
        self.r1 = nn.Conv2d(w, w, 3, padding=1, bias=False)
        self.r1_bn = nn.BatchNorm2d(w)
        self.r2 = nn.Conv2d(w, w, 3, padding=1, bias=False)
        self.r2_bn = nn.BatchNorm2d(w)
        self.dw = nn.Conv2d(w, w, 3, stride=2, padding=1, groups=w, bias=False)
        self.dw_bn = nn.BatchNorm2d(w)
        self.pw = nn.Conv2d(w, 2 * w, 1, bias=False)
        self.pw_bn = nn.BatchNorm2d(2 * w)
        self.side = nn.Conv2d(w, w, 1, stride=2, bias=False)
        self.side_bn = nn.BatchNorm2d(w)
        self.head = nn.Conv2d(3 * w, 4 * w, 3, padding=1, bias=False)
        self.head_bn = nn.BatchNorm2d(4 * w)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.flat = nn.Flatten()
        self.fc = nn.Linear(4 * w, classes)

    def forward(self, x):
        x = torch.relu(self.stem_bn(self.stem(x)))
        y = torch.relu(self.r1_bn(self.r1(x)))
        y = self.r2_bn(self.r2(y))
        x = torch.relu(x + y)
        a = torch.relu(self.dw_bn(self.dw(x)))
        a = torch.relu(self.pw_bn(self.pw(a)))
        b = torch.relu(self.side_bn(self.side(x)))
        x = torch.cat([a, b], dim=1)
        x = torch.relu(self.head_bn(self.head(x)))
        return self.fc(self.flat(self.gap(x)))


class SEHswishNet(nn.Module):
    """MobileNetV3-flavoured: hard-swish activations, an inverted-residual block with a
    squeeze-and-excitation gate (``F.adaptive_avg_pool2d(x, 1)``, 1x1 convs, sigmoid, broadcast
    multiply) and a skip add, functional global average pool before the classifier."""

    def __init__(self, width=16, classes=10, in_ch=1, gate="sigmoid"):
        super().__init__()
        w = width
        self.gate = {"sigmoid": torch.sigmoid, "hardsigmoid": F.hardsigmoid}[gate]   # MobileNetV3: hard-sigmoid
        self.stem = nn.Conv2d(in_ch, w, 3, stride=2, padding=1, bias=False)
        self.stem_bn = nn.BatchNorm2d(w)
        self.act = nn.Hardswish()
        self.expand = nn.Conv2d(w, 2 * w, 1, bias=False)
        self.expand_bn = nn.BatchNorm2d(2 * w)
        self.dw = nn.Conv2d(2 * w, 2 * w, 3, padding=1, groups=2 * w, bias=False)
        self.dw_bn = nn.BatchNorm2d(2 * w)
        self.se_reduce = nn.Conv2d(2 * w, w // 2, 1)
        self.se_expand = nn.Conv2d(w // 2, 2 * w, 1)
        self.project = nn.Conv2d(2 * w, w, 1, bias=False)
        self.project_bn = nn.BatchNorm2d(w)
        self.head = nn.Conv2d(w, 2 * w, 1, bias=False)
        self.head_bn = nn.BatchNorm2d(2 * w)
        self.fc = nn.Linear(2 * w, classes)

    def forward(self, x):
        x = self.act(self.stem_bn(self.stem(x)))
        y = F.hardswish(self.expand_bn(self.expand(x)))
        y = F.hardswish(self.dw_bn(self.dw(y)))
        s = F.adaptive_avg_pool2d(y, 1)
        s = self.gate(self.se_expand(torch.relu(self.se_reduce(s))))
        y = self.project_bn(self.project(y * s))
        x = F.hardswish(self.head_bn(self.head(x + y)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def channel_shuffle(x, groups: int):
    """ShuffleNet's channel shuffle, as torchvision's shufflenet_v2 writes it."""
    n, c, h, w = x.size()
    x = x.view(n, groups, c // groups, h, w)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(n, -1, h, w)


class ShuffleUnit(nn.Module):
    """ShuffleNet-v2 down-sampling-style unit at stride 1: a depthwise + 1x1 branch and a
    1x1 + depthwise + 1x1 branch, both on the input, concatenated and shuffled (2 groups)."""

    def __init__(self, cin, cout):
        super().__init__()
        b = cout // 2
        self.left = nn.Sequential(nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False), nn.BatchNorm2d(cin),
                                  nn.Conv2d(cin, b, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU())
        self.right = nn.Sequential(nn.Conv2d(cin, b, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU(),
                                   nn.Conv2d(b, b, 3, padding=1, groups=b, bias=False), nn.BatchNorm2d(b),
                                   nn.Conv2d(b, b, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU())

    def forward(self, x):
        return channel_shuffle(torch.cat([self.left(x), self.right(x)], dim=1), 2)


class ShuffleNetTiny(nn.Module):
    """stem -> max pool -> shuffle unit -> 1x1 conv whose shape is read with ``x.shape`` for a
    4-group shuffle -> global average pool -> linear classifier."""

    def __init__(self, width=8, classes=10, in_ch=1):
        super().__init__()
        w = width
        self.stem = nn.Conv2d(in_ch, w, 3, padding=1, bias=False)
        self.stem_bn = nn.BatchNorm2d(w)
        self.unit = ShuffleUnit(w, 2 * w)
        self.mix = nn.Conv2d(2 * w, 4 * w, 1, bias=False)
        self.mix_bn = nn.BatchNorm2d(4 * w)
        self.fc = nn.Linear(4 * w, classes)

    def forward(self, x):
        x = torch.relu(self.stem_bn(self.stem(x)))
        x = self.unit(x)
        x = torch.relu(self.mix_bn(self.mix(x)))
        n, c, h, w = x.shape
        g = 4
        x = x.reshape(n, g, c // g, h, w).permute(0, 2, 1, 3, 4).reshape(n, c, h, w)
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))

class ShuffleV1Unit(nn.Module):
    """ShuffleNet-v1 unit at stride 1: grouped 1x1 -> channel shuffle -> depthwise 3x3 -> grouped 1x1,
    added to the input."""

    def __init__(self, c, mid, groups):
        super().__init__()
        self.groups = groups
        self.reduce = nn.Conv2d(c, mid, 1, groups=groups, bias=False)
        self.reduce_bn = nn.BatchNorm2d(mid)
        self.dw = nn.Conv2d(mid, mid, 3, padding=1, groups=mid, bias=False)
        self.dw_bn = nn.BatchNorm2d(mid)
        self.expand = nn.Conv2d(mid, c, 1, groups=groups, bias=False)
        self.expand_bn = nn.BatchNorm2d(c)

    def forward(self, x):
        y = channel_shuffle(torch.relu(self.reduce_bn(self.reduce(x))), self.groups)
        y = self.expand_bn(self.expand(self.dw_bn(self.dw(y))))
        return torch.relu(x + y)


class ShuffleNetV1Tiny(nn.Module):
    """stem -> two ShuffleNet-v1 units (grouped 1x1 convolutions, 3 groups, channel shuffle) -> a
    ResNeXt-style grouped 3x3 convolution at stride 2 (2 groups) -> 1x1 head -> global average pool ->
    linear classifier. Channel counts are not multiples of 4 (the grouped convs' filters have 8, 4
    and 12 input channels)."""
    input_shape = (1, 1, 8, 8)

    def __init__(self, width=24, classes=10, in_ch=1, groups=3):
        super().__init__()
        w = width
        self.stem = nn.Conv2d(in_ch, w, 3, padding=1, bias=False)
        self.stem_bn = nn.BatchNorm2d(w)
        self.unit1 = ShuffleV1Unit(w, w // 2, groups)
        self.unit2 = ShuffleV1Unit(w, w // 2, groups)
        self.down = nn.Conv2d(w, 4 * w // 3, 3, stride=2, padding=1, groups=2, bias=False)
        self.down_bn = nn.BatchNorm2d(4 * w // 3)
        self.head = nn.Conv2d(4 * w // 3, 4 * w // 3, 1, bias=False)
        self.head_bn = nn.BatchNorm2d(4 * w // 3)
        self.fc = nn.Linear(4 * w // 3, classes)

    def forward(self, x):
        x = torch.relu(self.stem_bn(self.stem(x)))
        x = self.unit2(self.unit1(x))
        x = torch.relu(self.down_bn(self.down(x)))
        x = torch.relu(self.head_bn(self.head(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class TinySegNet(nn.Module):
    """conv -> strided conv (downsample) -> conv -> nearest upsample x2 (``nn.Upsample``, or
    ``F.interpolate`` to the skip's size) -> concat with the skip -> 1x1 conv head (per-pixel classes)."""
    input_shape = (1, 1, 16, 16)

    def __init__(self, width=8, classes=4, in_ch=1, interpolate=False):
        super().__init__()
        w = width
        self.stem = nn.Conv2d(in_ch, w, 3, padding=1)
        self.down = nn.Conv2d(w, 2 * w, 3, stride=2, padding=1)
        self.mid = nn.Conv2d(2 * w, 2 * w, 3, padding=1)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.interpolate = interpolate
        self.head = nn.Conv2d(3 * w, classes, 1)

    def forward(self, x):
        s = torch.relu(self.stem(x))
        y = torch.relu(self.mid(torch.relu(self.down(s))))
        y = F.interpolate(y, size=s.shape[-2:], mode="nearest") if self.interpolate else self.up(y)
        return self.head(torch.cat([y, s], 1))


class ActSplitNet(nn.Module):
    """stem conv + PReLU (one slope per channel) -> torch.chunk into two branches (conv + PReLU per
    channel, conv + tanh) -> concat -> strided conv + PReLU (one shared slope) -> torch.split into a 1x1
    conv + leaky ReLU branch and x[:, a:b] slices multiplied -> global average pools -> linear."""
    input_shape = (1, 1, 8, 8)

    def __init__(self, width=8, classes=10, in_ch=1):
        super().__init__()
        w = self.w = width
        self.stem = nn.Conv2d(in_ch, 2 * w, 3, padding=1)
        self.stem_act = nn.PReLU(2 * w)
        self.a = nn.Conv2d(w, w, 3, padding=1)
        self.a_act = nn.PReLU(w)
        self.b = nn.Conv2d(w, w, 1)
        self.b_act = nn.Tanh()
        self.mid = nn.Conv2d(2 * w, 3 * w, 3, stride=2, padding=1)
        self.mid_act = nn.PReLU()
        self.head = nn.Conv2d(2 * w, 2 * w, 1)
        self.fc = nn.Linear(2 * w + w // 2, classes)

    def forward(self, x):
        w = self.w
        x = self.stem_act(self.stem(x))
        a, b = torch.chunk(x, 2, dim=1)
        x = torch.cat([self.a_act(self.a(a)), self.b_act(self.b(b))], 1)
        x = self.mid_act(self.mid(x))
        p, q = torch.split(x, [2 * w, w], dim=1)
        p = F.leaky_relu(self.head(p), 0.1)
        q = q[:, : w // 2] * q[:, w - w // 2:]
        return self.fc(torch.cat([p.mean((2, 3)), q.mean((2, 3))], 1))


def plain_cnn(width=16):
    return PlainCNN(width)


def res_dw_net(width=16):
    return ResDWNet(width)


def se_hswish_net(width=16, gate="sigmoid"):
    return SEHswishNet(width, gate=gate)


def shuffle_net(width=8):
    return ShuffleNetTiny(width)


def shufflev1_net(width=24):
    return ShuffleNetV1Tiny(width)


def tiny_seg_net(width=8, interpolate=False):
    return TinySegNet(width, interpolate=interpolate)


def tiny_seg_net_interpolate(width=8):
    return tiny_seg_net(width, interpolate=True)


def act_split_net(width=8):
    return ActSplitNet(width)
