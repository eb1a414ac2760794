"""Build-facing factories of the corpus' PyTorch models: ``tinyprune build
benchmarks/corpus/factories.py:NAME --weights W.pt --data D.npz``. Each returns an untrained model with
an ``input_shape`` attribute (batch 1, PyTorch layout); the registry (``__init__.py``) trains it and
writes the weights.

The imports work both inside the package (``benchmarks.corpus.factories``) and when tinyprune's loader
imports this file by path (its folder is then on ``sys.path``).
"""
from __future__ import annotations

from torch import nn

try:
    from . import nets, torchvision_defs
except ImportError:   # loaded by path (tinyprune build FILE.py:factory)
    import nets
    import torchvision_defs

from tinyprune.prune import zoo


def _shaped(model: nn.Module, *shape: int) -> nn.Module:
    model.input_shape = (1, *shape)
    return model


# ---- torchvision (the real definitions, 10 classes, TinyML resolutions) ----------------------------

def tv_mobilenet_v2_035_96():
    return _shaped(torchvision_defs.models().mobilenet_v2(width_mult=0.35, num_classes=10), 3, 96, 96)


def tv_mobilenet_v2_035_32():   # the CI subset's torchvision net
    return _shaped(torchvision_defs.models().mobilenet_v2(width_mult=0.35, num_classes=10), 3, 32, 32)


def tv_mobilenet_v3_small_64():
    return _shaped(torchvision_defs.models().mobilenet_v3_small(num_classes=10), 3, 64, 64)


def tv_mnasnet0_5_64():
    return _shaped(torchvision_defs.models().mnasnet0_5(num_classes=10), 3, 64, 64)


def tv_squeezenet1_1_64():
    return _shaped(torchvision_defs.models().squeezenet1_1(num_classes=10), 3, 64, 64)


def tv_shufflenet_v2_x0_5_64():
    return _shaped(torchvision_defs.models().shufflenet_v2_x0_5(num_classes=10), 3, 64, 64)


def tv_resnet18_64():
    return _shaped(torchvision_defs.models().resnet18(num_classes=10), 3, 64, 64)


# ---- tinyprune-written ------------------------------------------------------------------------------

def mcunet_style_96():
    return _shaped(nets.MCUNetStyle(), 3, 96, 96)


def ds_cnn_kws():
    return _shaped(nets.DSCNN(), 1, 49, 10)


def shufflenet_v1_style_64():
    return _shaped(nets.ShuffleNetV1Style(), 3, 64, 64)


def audio_conv1d():
    return _shaped(nets.AudioConv1D(), 1, 512)


def fc_autoencoder():
    return _shaped(nets.FCAutoencoder(), 640)


def se_hardsigmoid_32():
    return _shaped(zoo.SEHswishNet(width=16, in_ch=3, gate="hardsigmoid"), 3, 32, 32)


def ceil_maxpool_30():
    return _shaped(nets.CeilPoolNet(), 1, 30, 30)


def cat_ranges_32():
    return _shaped(nets.CatRanges(), 1, 32, 32)


def seg_nearest_32():
    return _shaped(zoo.TinySegNet(width=8, classes=4), 1, 32, 32)
