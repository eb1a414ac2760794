"""One rounding rule for float -> int8 inputs (tinyprune._int8), checked against TFLite Micro's own
QUANTIZE on exact ties, and used by every stage that quantises data (convert's evaluation,
``codegen --check --data``, ``validate``)."""
from __future__ import annotations

import numpy as np
import pytest

from tinyprune._int8 import quantize_int8


def test_ties_round_half_away_from_zero():
    scale = np.float32(0.25)
    # x / scale = -2.5, -1.5, -0.5, 0.5, 1.5, 2.5 exactly (powers of two: no float error)
    x = np.array([-0.625, -0.375, -0.125, 0.125, 0.375, 0.625], np.float32)
    assert quantize_int8(x, scale, 0).tolist() == [-3, -2, -1, 1, 2, 3]
    assert quantize_int8(x, scale, 5).tolist() == [2, 3, 4, 6, 7, 8]
    assert quantize_int8(np.array([1e9, -1e9], np.float32), scale, 0).tolist() == [127, -128]


def test_every_stage_uses_the_rule():
    from tinyprune.codegen import check
    from tinyprune.convert import quantize_input as convert_quantize
    from tinyprune.validate.reference import quantize_input as validate_quantize

    rng = np.random.default_rng(0)
    scale, zp = 0.25, -3
    x = np.concatenate([rng.integers(-80, 80, 200) * np.float32(0.125),   # many exact ties
                        rng.uniform(-40, 40, 200)]).astype(np.float32).reshape(1, 4, 5, 20)
    want = quantize_int8(x, scale, zp)

    class _Q:
        scales, zero_points = [scale], [zp]

    class _T:
        shape, quant = (1, 4, 5, 20), _Q()

    assert np.array_equal(check._prepare_input(x, _T(), "data.npz"), want)
    assert np.array_equal(convert_quantize(x, scale, zp), want)
    assert np.array_equal(validate_quantize(x, scale, zp), want)


def test_matches_tflite_micro_quantize_on_ties(tmp_path):
    """A float-input model (QUANTIZE -> ... ) run by TFLite Micro: its int8 QUANTIZE output equals the rule."""
    tf = pytest.importorskip("tensorflow")
    from tflite_micro.python.tflite_micro import runtime

    import codegen_opmodels

    @tf.function
    def f(x):
        return tf.nn.relu(x)

    rng = np.random.default_rng(1)
    flat = codegen_opmodels.convert(f, [(1, 64)], rng, int8_io=False, calib_range=(-4.0, 4.0))
    from tinyprune.codegen.tflite_reader import read_model
    (tmp_path / "relu.tflite").write_bytes(flat)
    m = read_model(tmp_path / "relu.tflite")
    b = m.input_boundary[m.graph.inputs[0]]
    # values whose x / scale is k + 0.5 in float32, both signs
    k = np.arange(-32, 32, dtype=np.float32)
    x = ((k + np.float32(0.5)) * np.float32(b.scale)).astype(np.float32)
    exact = x / np.float32(b.scale) == k + np.float32(0.5)
    assert exact.sum() >= 32, "too few exact ties to test the rule"
    interp = runtime.Interpreter.from_bytes(
        flat, intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors)
    interp.set_input(x.reshape(1, 64), 0)
    interp.invoke()
    # the QUANTIZE op's int8 output, as TFLite Micro computed it
    q_index = m.tensor_index[m.graph.inputs[0]]
    t = interp.GetTensor(q_index, 0)
    got = np.asarray(t["tensor_data"] if isinstance(t, dict) else t).reshape(-1)
    want = quantize_int8(x, b.scale, b.zero_point)
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got, want)
    # and np.round (half to even) would have differed on some ties: the test can fail
    even = np.clip(np.round(x / np.float32(b.scale)) + b.zero_point, -128, 127).astype(np.int8)
    assert (even != want).any()
