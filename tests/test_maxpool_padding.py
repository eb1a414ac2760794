"""Padded and ceil-mode max-pool (the stems of ResNet and ShuffleNet): onnx2tf padded them with
-3.4e38, which became the int8 range of the tensor before the pool and collapsed the model. The
convert stage rewrites them into Pad(0) + VALID MaxPool when the input can't be negative (exact),
refuses them otherwise, and the prune stage's estimate mirrors the rewrite."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tinyprune.errors import UnsupportedModelError


class Stem(nn.Module):
    input_shape = (1, 1, 16, 16)

    def __init__(self, pad=1, ceil=False, relu=True, size=16):
        super().__init__()
        self.input_shape = (1, 1, size, size)
        self.c = nn.Conv2d(1, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.relu = nn.ReLU() if relu else nn.Identity()
        self.pool = nn.MaxPool2d(3, 2, padding=pad, ceil_mode=ceil)
        self.c2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.pool(self.relu(self.bn(self.c(x))))
        return self.fc(torch.relu(self.c2(x)).mean((2, 3)))


def _onnx(model, tmp_path):
    from tinyprune.convert import onnx_utils
    torch.manual_seed(0)
    path = onnx_utils.export_onnx(model.eval(), torch.zeros(model.input_shape), tmp_path / "m.onnx")
    return onnx_utils.load_onnx(path)


@pytest.mark.parametrize("pad,ceil,size", [(1, False, 16), (0, True, 16), (1, True, 15), (1, True, 16), (0, True, 13)])
def test_rewrite_is_exact_in_onnxruntime(pad, ceil, size, tmp_path):
    from tinyprune.convert import onnx_utils
    torch.manual_seed(0)
    model = Stem(pad, ceil, size=size).eval()
    m = _onnx(model, tmp_path)
    x = np.random.default_rng(0).standard_normal((4, 1, size, size)).astype(np.float32)
    before = onnx_utils.ort_run(onnx_utils.ort_session(m), x)
    m2 = onnx_utils.explicit_max_pool_padding(m)
    kinds = [n.op_type for n in m2.graph.node]
    assert "Pad" in kinds and kinds.index("Pad") == kinds.index("MaxPool") - 1
    pool = next(n for n in m2.graph.node if n.op_type == "MaxPool")
    assert {a.name for a in pool.attribute}.isdisjoint({"pads", "ceil_mode"})
    after = onnx_utils.ort_run(onnx_utils.ort_session(m2), x)
    np.testing.assert_array_equal(after, before)
    with torch.no_grad():
        np.testing.assert_allclose(after, model(torch.from_numpy(x)).numpy(), atol=1e-5)


def test_padded_pool_over_negative_input_is_refused(tmp_path):
    from tinyprune.convert import onnx_utils
    with pytest.raises(UnsupportedModelError, match="can be negative") as e:
        onnx_utils.explicit_max_pool_padding(_onnx(Stem(1, relu=False), tmp_path))
    assert "'/pool/MaxPool'" in str(e.value) and e.value.exit_code == 2
    from tinyprune.prune import figures
    with pytest.raises(UnsupportedModelError, match="after a ReLU"):
        figures(Stem(1, relu=False).eval(), torch.zeros(1, 1, 16, 16))


def test_unpadded_pool_is_left_alone(tmp_path):
    from tinyprune.convert import onnx_utils
    m = _onnx(Stem(0, False), tmp_path)
    before = m.SerializeToString()
    assert onnx_utils.explicit_max_pool_padding(m).SerializeToString() == before


@pytest.mark.slow
@pytest.mark.parametrize("pad,ceil", [(1, True), (0, True)])
def test_int8_model_does_not_collapse_and_estimate_matches(pad, ceil, tmp_path):
    """Converted: the tensor before the pool keeps a sane int8 scale, int8 agrees with float, the C
    code is bit-exact with TFLite Micro, and the prune stage's figures equal codegen's."""
    from tinyprune.codegen.check import check, load_inputs, tflm_outputs
    from tinyprune.codegen.estimate import estimate
    from tinyprune.codegen.generate import generate
    from tinyprune.codegen.tflite_reader import read_model, read_tflite
    from tinyprune.convert import convert
    from tinyprune.prune import figures
    torch.manual_seed(0)
    model = Stem(pad, ceil).eval()
    res = convert(model, tmp_path / "c", data="digits", calib_samples=32)
    m = read_model(res.tflite_path)
    kinds = [op.kind for op in m.graph.ops]
    assert kinds[:3] == ["CONV_2D", "PAD", "MAX_POOL_2D"]
    assert max(m.graph.tensors[op.outputs[0]].quant.scales[0] for op in m.graph.ops[:3]) < 1.0
    assert res.agreement >= 0.98
    inputs = load_inputs(m, random=8)
    outs = tflm_outputs(m, inputs)[0]
    assert len({o.tobytes() for o in outs}) == len(outs)      # collapsed: the same output for every input
    generate(res.tflite_path, tmp_path / "g", tflm_arena=False)
    r = check(tmp_path / "g", res.tflite_path, inputs, sanitize=True, raise_on_mismatch=False)
    assert r.mismatches == 0, r.first_mismatch
    mine, real = figures(model, torch.zeros(1, 1, 16, 16)), estimate(read_tflite(res.tflite_path))
    assert (mine.macs, mine.ram_bytes, mine.flash_bytes) == (real.macs, real.arena_bytes, real.flash_bytes)


class Fire(nn.Module):
    """SqueezeNet's pattern: a ceil-mode max-pool after torch.cat of two ReLU branches (expand 1x1 / 3x3):
    the concatenation of non-negative tensors is non-negative, so Pad(0) is exact there too."""
    input_shape = (1, 1, 15, 15)

    def __init__(self, relu_b=True):
        super().__init__()
        self.sq = nn.Conv2d(1, 4, 1)
        self.e1, self.e3 = nn.Conv2d(4, 4, 1), nn.Conv2d(4, 4, 3, padding=1)
        self.relu_b = relu_b
        self.pool = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        s = torch.relu(self.sq(x))
        b = self.e3(s)
        x = torch.cat([torch.relu(self.e1(s)), torch.relu(b) if self.relu_b else b], 1)
        return self.fc(self.pool(x).mean((2, 3)))


def test_pool_after_a_concatenation_of_relus_is_rewritten_and_estimated(tmp_path):
    from tinyprune.convert import onnx_utils
    from tinyprune.prune import figures
    model = Fire().eval()
    m = _onnx(model, tmp_path)
    x = np.random.default_rng(0).standard_normal((4, 1, 15, 15)).astype(np.float32)
    m2 = onnx_utils.explicit_max_pool_padding(m)
    assert "Pad" in [n.op_type for n in m2.graph.node]
    np.testing.assert_array_equal(onnx_utils.ort_run(onnx_utils.ort_session(m2), x),
                                  onnx_utils.ort_run(onnx_utils.ort_session(m), x))
    from tinyprune.prune import build_graph
    graph, _ = build_graph(model, torch.zeros(model.input_shape))
    kinds = [op.kind for op in graph.ops]
    assert kinds.index("PAD") == kinds.index("MAX_POOL_2D") - 1   # the estimate mirrors the rewrite
    # one branch without its ReLU: the concatenation can be negative, refused by both stages
    bad = Fire(relu_b=False).eval()
    with pytest.raises(UnsupportedModelError, match="can be negative"):
        onnx_utils.explicit_max_pool_padding(_onnx(bad, tmp_path))
    with pytest.raises(UnsupportedModelError, match="after a ReLU"):
        figures(bad, torch.zeros(bad.input_shape))
