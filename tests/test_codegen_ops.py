"""Per-operator bit-exactness of the generated code vs TFLite Micro on single-op int8 models built
with TensorFlow's converter (randomised shapes, strides, paddings, dilations, depth multipliers,
activations and quantisation parameters; several cases per model, one compile each), plus the
refusals that need TensorFlow to build their models (unsupported op, float model)."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from tinyprune.codegen.check import check, load_inputs
from tinyprune.codegen.generate import generate
from tinyprune.codegen.tflite_reader import read_model
from tinyprune.errors import UnsupportedModelError, UserInputError

sys.path.insert(0, str(Path(__file__).resolve().parent))
import codegen_opmodels as M  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs a host gcc")

FAMILIES = {
    "conv_cases": {"CONV_2D"},
    "depthwise_cases": {"DEPTHWISE_CONV_2D"},
    "dense_activation_cases": {"FULLY_CONNECTED", "SOFTMAX", "LOGISTIC", "HARD_SWISH", "MUL"},
    "elementwise_cases": {"ADD", "MUL", "MEAN", "LOGISTIC", "CONV_2D"},
    "pool_cases": {"AVERAGE_POOL_2D", "MAX_POOL_2D"},
    "layout_cases": {"PAD", "CONCATENATION", "TRANSPOSE", "RESHAPE", "RELU", "RELU6", "QUANTIZE"},
    "activation_cases": {"TANH", "LEAKY_RELU", "PRELU"},
    "slice_cases": {"STRIDED_SLICE"},      # SPLIT / SPLIT_V among them, read as STRIDED_SLICEs
}


@pytest.fixture(scope="session")
def op_model(tmp_path_factory):
    cache: dict = {}

    def get(family: str, seed: int, **kw) -> Path:
        key = (family, seed, tuple(sorted(kw.items())))
        if key not in cache:
            rng = np.random.default_rng(seed)
            fn, shapes = getattr(M, family)(rng)
            data = M.convert(fn, shapes, rng, **kw)
            p = tmp_path_factory.mktemp(f"op-{family}-{seed}") / "model.tflite"
            p.write_bytes(data)
            cache[key] = p
        return cache[key]
    return get


def _run(op_model, family, seed, tmp_path, samples=20, sanitize=True, **kw):
    path = op_model(family, seed, **kw)
    model = read_model(path)
    kinds = {op.kind for op in model.graph.ops}
    out = tmp_path / "cg"
    generate(path, out, tflm_arena=False)
    r = check(out, path, load_inputs(model, random=samples, seed=seed + 100), sanitize=sanitize)
    return r, kinds


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_operator_family_bit_exact(op_model, family, tmp_path):
    r, kinds = _run(op_model, family, 0, tmp_path)
    assert FAMILIES[family] <= kinds, kinds        # the converter produced the ops under test
    assert r.mismatches == 0 and r.samples == 20 and r.elements > 0


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("family", ["conv_cases", "depthwise_cases", "elementwise_cases", "pool_cases",
                                    "dense_activation_cases", "activation_cases", "slice_cases"])
def test_operator_family_more_random_cases(op_model, family, seed, tmp_path):
    r, kinds = _run(op_model, family, seed, tmp_path, sanitize=False)
    assert r.mismatches == 0 and r.elements > 0


def test_float_boundary_quantize_dequantize_is_stripped(op_model, tmp_path):
    path = op_model("conv_cases", 3, int8_io=False)
    model = read_model(path)
    assert model.input_boundary and model.output_boundary      # the flatbuffer has QUANTIZE/DEQUANTIZE
    assert all(op.kind == "CONV_2D" for op in model.graph.ops)
    assert all(model.graph.tensors[t].dtype == "int8" for t in model.graph.inputs + model.graph.outputs)
    r, _ = _run(op_model, "conv_cases", 3, tmp_path, samples=10, sanitize=False, int8_io=False)
    assert r.mismatches == 0


def test_unsupported_operator_is_refused_with_node_and_list(tmp_path):
    rng = np.random.default_rng(0)
    fn, shapes = M.unsupported_abs(rng)
    p = tmp_path / "abs.tflite"
    p.write_bytes(M.convert(fn, shapes, rng))
    with pytest.raises(UnsupportedModelError) as e:
        generate(p, tmp_path / "out")
    msg = str(e.value)
    assert "unsupported operator ABS at node 1" in msg
    assert "supported operators: CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED" in msg
    assert not (tmp_path / "out").exists()
    from tinyprune.cli import main
    with pytest.raises(SystemExit) as ex:
        main(["codegen", str(p), "-o", str(tmp_path / "out")])
    assert ex.value.code == 2


def test_float_model_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    fn, shapes = M.conv_cases(rng)
    p = tmp_path / "float.tflite"
    p.write_bytes(M.convert(fn, shapes, rng, quantize=False))
    with pytest.raises(UserInputError, match=r"float \(non-quantized\) model") as e:
        generate(p, tmp_path / "out")
    assert "tinyprune convert" in str(e.value)
    assert not (tmp_path / "out").exists()


def test_multi_input_model_check_with_npz_data(op_model, tmp_path):
    path = op_model("elementwise_cases", 0)
    model = read_model(path)
    assert len(model.graph.inputs) == 2 and len(model.graph.outputs) >= 5
    rng = np.random.default_rng(4)
    shapes = [model.graph.tensors[t].shape[1:] for t in model.graph.inputs]
    xs = {f"x{k}": rng.integers(-128, 128, (7,) + tuple(s), dtype=np.int8) for k, s in enumerate(shapes)}
    np.savez(tmp_path / "d.npz", **xs)
    loaded = load_inputs(model, data=tmp_path / "d.npz")
    assert [a.shape[0] for a in loaded] == [7, 7] and np.array_equal(loaded[1], xs["x1"])
    generate(path, tmp_path / "cg", tflm_arena=False)
    assert check(tmp_path / "cg", path, loaded, sanitize=False).mismatches == 0
    np.savez(tmp_path / "bad.npz", x=xs["x0"])
    with pytest.raises(UserInputError, match="needs arrays x0, x1"):
        load_inputs(model, data=tmp_path / "bad.npz")
