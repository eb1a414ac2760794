"""A hard-sigmoid gate (MobileNetV3's squeeze-and-excitation): onnx2tf made RELU_0_TO_1 of it, which
TFLite Micro has no kernel for (mobilenet_v3_small failed `convert`). The convert stage rewrites it into
Add, Clip(0, 6), Mul(1/6); the prune estimate mirrors what the converter then emits
(tests/test_prune_agreement.py, "se-hsig")."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class Gate(nn.Module):
    input_shape = (1, 1, 8, 8)

    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(1, 4, 3, padding=1)
        self.d = nn.Conv2d(1, 4, 3, padding=1)

    def forward(self, x):
        a = self.c(x)
        return a * F.hardsigmoid(self.d(x) + a) + nn.Hardsigmoid()(a)


def test_rewrite_is_the_same_function_and_leaves_no_hardsigmoid(tmp_path):
    from tinyprune.convert import onnx_utils
    torch.manual_seed(0)
    model = Gate().eval()
    m = onnx_utils.load_onnx(onnx_utils.export_onnx(model, torch.zeros(1, 1, 8, 8), tmp_path / "g.onnx"))
    assert [n.op_type for n in m.graph.node].count("HardSigmoid") == 2
    x = np.random.default_rng(0).standard_normal((6, 1, 8, 8)).astype(np.float32) * 4
    before = onnx_utils.ort_run(onnx_utils.ort_session(m), x)
    m2 = onnx_utils.hardsigmoid_as_relu6(m)
    kinds = [n.op_type for n in m2.graph.node]
    assert "HardSigmoid" not in kinds and kinds.count("Clip") == 2
    np.testing.assert_allclose(onnx_utils.ort_run(onnx_utils.ort_session(m2), x), before, atol=1e-6)
    with torch.no_grad():
        np.testing.assert_allclose(before, model(torch.from_numpy(x)).numpy(), atol=1e-5)


def test_hard_swish_is_still_fused_first(tmp_path):
    """x * hardsigmoid(x) stays one HardSwish (the int8 HARD_SWISH kernel), not a rewritten gate."""
    from tinyprune.convert import onnx_utils

    class HS(nn.Module):
        def forward(self, x):
            return x * F.hardsigmoid(x)
    m = onnx_utils.load_onnx(onnx_utils.export_onnx(HS().eval(), torch.zeros(1, 1, 4, 4), tmp_path / "h.onnx",
                                                    opset=13))
    m = onnx_utils.hardsigmoid_as_relu6(onnx_utils.fuse_hardswish(m))
    assert [n.op_type for n in m.graph.node] == ["HardSwish"]
