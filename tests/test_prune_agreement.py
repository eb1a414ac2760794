"""The prune stage's RAM/flash estimate (int8 graph built from PyTorch shapes) equals what the
code-generation stage reports for the actually converted int8 TFLite model, within 1% (in practice
exactly): the example unpruned and pruned, the residual+depthwise+concat and plain CNN test models
pruned, and a hard-swish + squeeze-and-excitation model unpruned and pruned. Needs the convert stage (onnx2tf + TensorFlow): slow."""
from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.slow


class FuncPool(torch.nn.Module):
    """Pooling written as functions in forward(), as DS-CNN ports do: F.max_pool2d (padded, after a ReLU),
    F.avg_pool2d, torch.max_pool2d, and a global F.avg_pool2d(x, x.shape[-2:])."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.Conv2d(8, 12, 3, padding=1)
        self.fc = torch.nn.Linear(12, 10)

    def forward(self, x):
        import torch.nn.functional as F
        x = F.max_pool2d(torch.relu(self.c1(x)), 3, 2, 1)            # 16x16 -> 8x8 (padded: after a ReLU)
        x = F.avg_pool2d(torch.relu(self.c2(x)), kernel_size=2)      # 8x8 -> 4x4
        x = torch.max_pool2d(x, 2)                                   # 4x4 -> 2x2
        x = F.avg_pool2d(x, x.shape[-2:])                            # a global pool sized from the shape
        return self.fc(torch.flatten(x, 1))


def _models():
    from tinyprune.example import INPUT_SHAPE, load_example
    from tinyprune.prune import Budget, PruneConfig, figures, prune
    from tinyprune.prune.zoo import plain_cnn, res_dw_net, se_hswish_net
    torch.manual_seed(0)
    out = {}
    ex = load_example()
    xe = torch.zeros(INPUT_SHAPE)
    out["example"] = (ex, xe)
    x8 = torch.zeros(1, 1, 8, 8)
    out["se"] = (se_hswish_net(8).eval(), x8)   # hard-swish, SE gate (sigmoid, broadcast MUL), functional pooling
    out["funcpool"] = (FuncPool().eval(), torch.zeros(1, 1, 16, 16))
    out["se-hsig"] = (se_hswish_net(8, gate="hardsigmoid").eval(), x8)   # MobileNetV3's gate: hard-sigmoid
    # res_dw's trunk is pruned too: onnx2tf used to fail on it for trunk widths other than 8 ("'/dw/Conv/kernel'
    # is not a valid root scope name") until the convert stage sanitised ONNX node names
    for name, m, x, macs, ram, cfg in (
            ("example-pruned", ex, xe, 0.5, None, PruneConfig(epochs=0)),
            ("res_dw-pruned", res_dw_net(8).eval(), x8, 0.6, None, PruneConfig(epochs=0)),
            ("plain-pruned", plain_cnn(8).eval(), x8, 0.5, 0.9, PruneConfig(epochs=0)),
            ("se-pruned", se_hswish_net(8).eval(), x8, 0.5, None, PruneConfig(epochs=0))):
        f = figures(m, x)
        budget = Budget(max_macs=int(f.macs * macs), max_ram=int(f.ram_bytes * ram) if ram else None)
        res = prune(m, x, budget, criterion="l1", config=cfg)
        assert res.report["after"]["macs"] < f.macs
        out[name] = (res.model, x)
    return out


@pytest.fixture(scope="module")
def models():
    return _models()


@pytest.mark.parametrize("which", ["example", "example-pruned", "res_dw-pruned", "plain-pruned", "se", "se-pruned",
                                   "se-hsig", "funcpool"])
def test_estimate_matches_codegen_of_converted_model(which, models, tmp_path):
    convert = pytest.importorskip("tinyprune.convert").convert
    from tinyprune.codegen.estimate import estimate
    from tinyprune.codegen.tflite_reader import read_tflite
    from tinyprune.prune import figures
    model, x = models[which]
    mine = figures(model, x)
    assert mine.source == "codegen"
    res = convert(model, tmp_path / "c", data="digits", input_shape=tuple(x.shape), calib_samples=16)
    real = estimate(read_tflite(res.tflite_path))
    assert "RELU_0_TO_1" not in res.report["tflite"]["operators"]   # TFLite Micro has no kernel for it
    assert real.macs == mine.macs
    assert abs(real.arena_bytes - mine.ram_bytes) <= 0.01 * real.arena_bytes, (real.arena_bytes, mine.ram_bytes)
    assert abs(real.flash_bytes - mine.flash_bytes) <= 0.01 * real.flash_bytes, (real.flash_bytes, mine.flash_bytes)


def test_pruned_depthwise_as_grouped_conv_is_bit_exact(models, tmp_path):
    """onnx2tf emits some pruned depthwise layers as grouped CONV_2D (one input channel per group);
    codegen runs them as DEPTHWISE_CONV_2D and must stay bit-exact with TFLite Micro."""
    convert = pytest.importorskip("tinyprune.convert").convert
    from tinyprune.codegen.check import check, load_inputs
    from tinyprune.codegen.generate import generate
    from tinyprune.codegen.tflite_reader import read_model
    model, x = models["res_dw-pruned"]
    res = convert(model, tmp_path / "c", data="digits", input_shape=tuple(x.shape), calib_samples=16)
    m = read_model(res.tflite_path)
    kinds = [op.kind for op in m.graph.ops]
    assert "DEPTHWISE_CONV_2D" in kinds
    generate(res.tflite_path, tmp_path / "g", tflm_arena=False)
    result = check(tmp_path / "g", res.tflite_path, load_inputs(m, random=10), sanitize=False,
                   raise_on_mismatch=False)
    assert result.samples == 10 and result.elements > 0
    assert result.mismatches == 0, result.first_mismatch
