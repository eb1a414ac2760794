"""The TFLite Micro reference (tinyprune.tflm) sizes its arena from the model: a model with few
weights and large activations (one 3x3 conv on a 96x96 image: a ~1.4 KB file, 83 KB of activations)
ran out of the package's default arena (10x the file) and failed `codegen --check` as an internal
error and `build` with a wrong "operator TFLite Micro has no kernel for" hint."""
from __future__ import annotations

import numpy as np
import pytest

from tinyprune.cli import main

pytestmark = pytest.mark.hostcc


@pytest.fixture(scope="module")
def big_activation_model(tmp_path_factory):
    tf = pytest.importorskip("tensorflow")
    import codegen_opmodels
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 3, 1, 8)).astype(np.float32)

    @tf.function
    def f(x):
        return tf.nn.relu(tf.nn.conv2d(x, w, 1, "SAME"))

    path = tmp_path_factory.mktemp("bigact") / "conv96.tflite"
    path.write_bytes(codegen_opmodels.convert(f, [(1, 96, 96, 1)], rng))
    return path


def test_default_arena_was_too_small(big_activation_model):
    """The case the fix is for: the package's default arena cannot hold this model."""
    from tflite_micro.python.tflite_micro import runtime
    with pytest.raises(RuntimeError, match="allocate"):
        runtime.Interpreter.from_bytes(big_activation_model.read_bytes())


def test_reference_runs_and_codegen_check_is_bit_exact(big_activation_model, tmp_path, capfd):
    from tinyprune.tflm import arena_bytes_for, interpreter
    flat = big_activation_model.read_bytes()
    assert arena_bytes_for(flat) >= 2 * 96 * 96 * 9      # input + output, twice
    it = interpreter(flat)
    x = np.random.default_rng(1).integers(-128, 128, (1, 96, 96, 1), dtype=np.int8)
    it.set_input(x, 0)
    it.invoke()
    assert np.asarray(it.get_output(0)).shape == (1, 96, 96, 8)
    code = main(["codegen", str(big_activation_model), "-o", str(tmp_path / "g"), "--check", "--random", "3"])
    out = capfd.readouterr()
    assert code == 0, out.err
    assert "check: bit-exact with TFLite Micro on 3 inputs" in out.out, out.out
    assert "(TFLite Micro: " in out.out     # its arena was measured too (it could not be before)


def test_reference_refusing_a_model_is_bad_input_not_internal_error(big_activation_model, tmp_path):
    """A full-integer model whose operator TFLite Micro has no kernel for (the conv's opcode rewritten to
    LOCAL_RESPONSE_NORMALIZATION): validation's reference says so (exit 2) instead of raising RuntimeError."""
    from test_atomic_outputs import patched_opcode

    from tinyprune.errors import UnsupportedModelError
    from tinyprune.validate.reference import Reference
    conv_2d, lrn = 3, 13          # tflite BuiltinOperator codes
    path = tmp_path / "lrn.tflite"
    path.write_bytes(patched_opcode(big_activation_model.read_bytes(), conv_2d, lrn))
    with pytest.raises(UnsupportedModelError, match="TFLite Micro, the reference validation compares with, "
                                                    "cannot run this model") as e:
        Reference(path)
    assert e.value.exit_code == 2
