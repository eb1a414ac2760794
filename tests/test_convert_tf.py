"""Keras (.keras, .h5), TensorFlow SavedModel and float .tflite inputs (issue 11): quantized to int8 by
TensorFlow's converter on the user's data, with the same data handling and checks as the PyTorch path,
built for nucleo-f746 bit-exact on the host and in QEMU with accuracy measured on labelled data; not
pruned (exit 3 says why and how to shrink them); bad inputs are exit 2 naming what is wrong; a
16x8 .tflite is called int16, not float.

One small Keras CNN (Conv2D, BatchNormalization, ReLU, DepthwiseConv2D, ReLU6, MaxPooling2D,
AveragePooling2D, GlobalAveragePooling2D, Dense) is trained briefly on digits (16x16, channels-last) and
saved in the four forms once per module.
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from tinyprune.cli import main
from tinyprune.errors import OverBudgetError, UserInputError

pytestmark = pytest.mark.slow

BOARD = "nucleo-f746"
FORMS = ("m.keras", "m.h5", "saved_model", "float.tflite")
KIND = {"m.keras": "keras", "m.h5": "keras", "saved_model": "savedmodel", "float.tflite": "tflite-float"}
OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D", "MEAN", "FULLY_CONNECTED"}
needs_toolchain = [pytest.mark.arm, pytest.mark.hostcc, pytest.mark.qemu,
                   pytest.mark.skipif(any(shutil.which(t) is None for t in ("arm-none-eabi-gcc", "cc",
                                                                           "qemu-system-arm")),
                                      reason="needs arm-none-eabi-gcc, a host C compiler and qemu-system-arm")]


def tp(capsys, *args) -> tuple[int, str]:
    try:
        code = main([str(a) for a in args])
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out + out.err


def keras_cnn(keras, inputs=1, layer=None):
    L = keras.layers
    ins = [keras.Input((16, 16, 1), name=f"image{i}") for i in range(inputs)]
    x = ins[0] if inputs == 1 else L.Add()(ins)
    x = L.Conv2D(16, 3, padding="same")(x)
    x = L.BatchNormalization(momentum=0.8)(x)
    x = L.ReLU()(x)
    x = L.DepthwiseConv2D(3, padding="same")(x)
    x = L.BatchNormalization(momentum=0.8)(x)
    x = L.ReLU(6.0)(x) if layer is None else layer(x)
    x = L.MaxPooling2D(2)(x)
    x = L.Conv2D(32, 1, activation="relu")(x)
    x = L.AveragePooling2D(2)(x)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(ins if inputs > 1 else ins[0], L.Dense(10)(x))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """The trained CNN in the four forms, digits as an .npz in tinyprune's layout (N, C, H, W), and the
    Keras model's own held-out accuracy (computed here, channels-last, without tinyprune)."""
    import keras
    import tensorflow as tf

    from tinyprune.data import load_dataset
    root = tmp_path_factory.mktemp("tf-models")
    ds = load_dataset("digits", (1, 1, 16, 16))
    np.savez(root / "digits16.npz", x=ds.x_train, y=ds.y_train, x_test=ds.x_test, y_test=ds.y_test)
    keras.utils.set_random_seed(0)
    m = keras_cnn(keras)
    m.compile(optimizer=keras.optimizers.Adam(0.01),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    nhwc = lambda x: np.ascontiguousarray(x.transpose(0, 2, 3, 1))  # noqa: E731
    m.fit(nhwc(ds.x_train), ds.y_train, epochs=12, batch_size=16, verbose=0)
    keras_acc = float((m.predict(nhwc(ds.x_test), verbose=0).argmax(1) == ds.y_test).mean())
    m.save(root / "m.keras")
    m.save(root / "m.h5")
    m.export(str(root / "saved_model"), verbose=False)
    (root / "float.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(m).convert())
    return {"root": root, "data": root / "digits16.npz", "keras_acc": keras_acc, "model": m, "ds": ds}


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("_", [pytest.param(0, marks=needs_toolchain)])
def test_build_bit_exact_on_host_and_qemu_with_accuracy(models, form, tmp_path, capsys, _):
    code, out = tp(capsys, "build", models["root"] / form, "--board", BOARD, "--data", models["data"],
                   "--samples", 40, "--sim-samples", 5, "-o", tmp_path)
    assert code == 0, out[-3000:]
    s = json.loads((tmp_path / BOARD / "summary.json").read_text())
    assert s["model"]["kind"] == KIND[form]
    assert s["pruning"]["applied"] is False and s["stage_status"]["prune"] == "skipped"
    conv = s["conversion"]
    assert set(conv["operators"]) == OPS, conv["operators"]
    assert conv["input"]["shape"] == [1, 16, 16, 1] and conv["input"]["pytorch_shape"] == [1, 1, 16, 16]
    # the float reference is the user's model itself: tinyprune's float accuracy (data permuted from the
    # PyTorch layout) is the Keras model's own on channels-last data; a float .tflite matches it closely
    tol = 1e-9 if KIND[form] != "tflite-float" else 0.005
    assert abs(conv["float_accuracy"] - models["keras_acc"]) <= tol, (conv["float_accuracy"], models["keras_acc"])
    assert conv["float_accuracy"] > 0.8
    assert abs(conv["int8_accuracy"] - conv["float_accuracy"]) < 0.03 and conv["agreement"] > 0.95
    assert conv["samples"] == len(models["ds"].x_test)
    for target, n in (("host", 40), ("sim", 5)):
        v = s["validation"][target]
        assert v["passed"] and v["samples"] == n and v["mismatched_samples"] == 0, v
        assert v["accuracy"] is not None
    rep = json.loads((tmp_path / BOARD / "convert" / "convert.json").read_text())
    assert rep["onnx"] is None and rep["tf"]["format"] == KIND[form]
    assert rep["data"]["calibration_samples"] == 200 and rep["evaluation"]["interpreter"] == "tflite_micro"
    assert not (tmp_path / BOARD / "convert" / "model.onnx").exists()


def test_python_api_convert_takes_a_keras_file_and_arrays(models, tmp_path):
    import tinyprune
    ds = models["ds"]
    res = tinyprune.convert(str(models["root"] / "m.keras"), tmp_path / "out", data=(ds.x_train, ds.y_train),
                            calib_samples=50)
    assert res.onnx_path is None and res.tflite_path.is_file()
    assert res.report["source"]["kind"] == "keras" and res.report["data"]["calibration_samples"] == 50
    ev = res.report["evaluation"]
    from tinyprune.data import as_dataset
    assert ev["samples"] == len(as_dataset((ds.x_train, ds.y_train)).x_test)   # the held-out split, all of it
    assert ev["top1_agreement"] > 0.95 and ev["float_accuracy"] > 0.8


def test_channels_last_data_is_refused_naming_both_shapes(models, tmp_path, capsys):
    ds = models["ds"]
    bad = tmp_path / "nhwc.npz"
    np.savez(bad, x=ds.x_train.transpose(0, 2, 3, 1), y=ds.y_train)
    code, out = tp(capsys, "convert", models["root"] / "m.keras", "--data", bad, "-o", tmp_path / "out")
    assert code == UserInputError.exit_code, out
    assert "(16, 16, 1)" in out and "(1, 16, 16)" in out and "Traceback" not in out
    assert not (tmp_path / "out").exists()


def test_over_budget_is_exit_3_with_figures_and_how_to_shrink(models, tmp_path, capsys):
    code, out = tp(capsys, "build", models["root"] / "m.keras", "--board", BOARD, "--no-sim", "--max-flash", 100,
                   "--calib-samples", 40, "-o", tmp_path)
    assert code == OverBudgetError.exit_code, out[-2000:]
    assert "Keras models are not pruned by tinyprune" in out
    assert "limit 100 B" in out or "> 100 B" in out
    assert "alpha" in out and "prune_low_magnitude" in out
    s = json.loads((tmp_path / f"{BOARD}.failed" / "summary.json").read_text())
    assert s["budget"]["over"]["flash_bytes"]["limit"] == 100 and s["budget"]["checked_at"] == "codegen"
    assert s["stage_status"].get("firmware") is None       # refused before cross-compiling
    code, out = tp(capsys, "build", models["root"] / "saved_model", "--board", BOARD, "--prune", "always",
                   "-o", tmp_path / "b")
    assert code == UserInputError.exit_code and "savedmodel models are not pruned" in out


def test_bad_inputs_are_exit_2_naming_the_problem(models, tmp_path, capsys):
    import keras
    import tensorflow as tf
    cases = []
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(np.random.default_rng(0).integers(0, 256, 3000, np.uint8)))
    cases.append((corrupt, "is not a Keras model that can be loaded"))
    nosig = tmp_path / "nosig"
    mod = tf.Module()
    mod.v = tf.Variable(1.0)
    tf.saved_model.save(mod, str(nosig))
    cases.append((nosig, "has no serving signature"))
    two = tmp_path / "two.keras"
    keras_cnn(keras, inputs=2).save(two)
    cases.append((two, "2 input(s) ('image0', 'image1')"))
    elu = tmp_path / "elu.keras"
    keras_cnn(keras, layer=keras.layers.ELU()).save(elu)
    cases.append((elu, "operators without an int8 kernel: ELU (output '"))
    lstm = tmp_path / "lstm.keras"
    inp = keras.Input((16, 8))
    keras.Model(inp, keras.layers.Dense(10)(keras.layers.LSTM(8)(inp))).save(lstm)
    cases.append((lstm, "layer 'lstm"))      # refused before TensorFlow's quantizer (which crashes on it)
    notdir = tmp_path / "plain_dir"
    notdir.mkdir()
    cases.append((notdir, "is a directory but not a TensorFlow SavedModel"))
    for path, want in cases:
        code, out = tp(capsys, "convert", path, "--calib-samples", 20, "-o", tmp_path / "out")
        assert code == UserInputError.exit_code, (path, out[-2000:])
        assert want in out, (path, out[-2000:])
        assert "Traceback" not in out and not (tmp_path / "out").exists()
    assert "(LSTM) is a recurrent layer" in tp(capsys, "convert", lstm, "--calib-samples", 20, "-o", tmp_path / "o")[1]
    code, out = tp(capsys, "build", two, "--board", BOARD, "-o", tmp_path / "b")
    assert code == UserInputError.exit_code and "2 input(s)" in out
    assert not (tmp_path / "b" / BOARD).exists()
    code, out = tp(capsys, "convert", models["root"] / "m.keras", "--weights", corrupt, "-o", tmp_path / "out")
    assert code == UserInputError.exit_code and "--weights applies to PyTorch models" in out


def test_int16_and_dynamic_range_tflite_are_named_not_called_float(models, tmp_path, capsys):
    import tensorflow as tf

    from tinyprune._tflite_kind import tflite_kind
    from tinyprune.codegen.generate import generate
    x = models["ds"].x_train[:20].transpose(0, 2, 3, 1)

    def rep():
        for i in range(len(x)):
            yield [x[i:i + 1]]
    conv = tf.lite.TFLiteConverter.from_keras_model(models["model"])
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    int16 = tmp_path / "int16.tflite"
    int16.write_bytes(conv.convert())
    import keras
    inp = keras.Input((16, 16, 1))      # TFLite leaves weights under 1024 elements float: a 2048-weight Dense
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(16, 3)(inp))
    conv = tf.lite.TFLiteConverter.from_keras_model(keras.Model(inp, keras.layers.Dense(128)(x)))
    conv.optimizations = [tf.lite.Optimize.DEFAULT]   # no representative data: dynamic-range quantization
    dyn = tmp_path / "dynamic.tflite"
    dyn.write_bytes(conv.convert())
    assert tflite_kind(int16.read_bytes()) == "int16" and tflite_kind(dyn.read_bytes()) == "dynamic-range"
    assert tflite_kind((models["root"] / "float.tflite").read_bytes()) == "float"
    for path, what in ((int16, "int16 (16x8) quantized model"), (dyn, "dynamic-range quantized model")):
        for cmd in (("build", path, "--board", BOARD, "-o", tmp_path / "b"), ("convert", path, "-o", tmp_path / "c")):
            code, out = tp(capsys, *cmd)
            assert code == UserInputError.exit_code, out[-2000:]
            assert what in out and "float (non-quantized)" not in out and "tinyprune convert FLOAT_MODEL" in out
        with pytest.raises(UserInputError, match=r"int16 \(16x8\)|dynamic-range") as e:
            generate(path, tmp_path / "cg")
        assert "float (non-quantized)" not in str(e.value)
    assert not (tmp_path / "b" / BOARD).exists() and not (tmp_path / "c").exists()
    # a float .tflite quantizes (above), an int8 one has nothing to convert
    int8 = tmp_path / "int8.tflite"
    code, out = tp(capsys, "convert", models["root"] / "float.tflite", "--data", models["data"],
                   "--calib-samples", 50, "-o", tmp_path / "q")
    assert code == 0, out[-2000:]
    shutil.copyfile(tmp_path / "q" / "model_int8.tflite", int8)
    code, out = tp(capsys, "convert", int8, "-o", tmp_path / "c")
    assert code == UserInputError.exit_code and "already a full-integer int8 TFLite model" in out


def test_softmax_tflite_micro_would_abort_on_is_an_error(tmp_path):
    """An int8 SOFTMAX with an input scale below 2^-26 makes TFLite Micro's Prepare abort the process (an
    untrained Keras MobileNet's logits are ~1e-7); tinyprune.tflm refuses it with an error instead."""
    import tensorflow as tf

    from tinyprune.errors import UnsupportedModelError
    from tinyprune.tflm import interpreter
    rng = np.random.default_rng(0)

    def flat(gain):
        fn = tf.function(lambda x: tf.nn.softmax(x * gain), input_signature=[tf.TensorSpec((1, 10), tf.float32)])
        conv = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
        xs = rng.uniform(-1, 1, (16, 1, 10)).astype(np.float32)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([x] for x in xs)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = conv.inference_output_type = tf.int8
        return conv.convert()
    with pytest.raises(UnsupportedModelError, match=r"input of SOFTMAX .* too small for its int8 kernel"):
        interpreter(flat(1e-7))
    interpreter(flat(1.0))     # an ordinary scale runs


def test_files_written_by_keras_2_load_with_the_keras_that_reads_them(tmp_path):
    """tf.keras is Keras 3 here; a .keras written by Keras 2 (tf_keras) is read by tf_keras (Keras 3 cannot),
    its .h5 by Keras 3; both convert, and convert.json says which Keras read the file."""
    import tf_keras

    import tinyprune
    L = tf_keras.layers
    inp = tf_keras.Input((16, 16, 1))
    x = L.GlobalAveragePooling2D()(L.ReLU()(L.BatchNormalization()(L.Conv2D(8, 3)(inp))))
    m = tf_keras.Model(inp, L.Dense(10)(x))
    m.save(tmp_path / "k2.h5")
    m.save(tmp_path / "k2.keras")
    for name, reader in (("k2.keras", "tf_keras 2."), ("k2.h5", "keras 3.")):
        res = tinyprune.convert(str(tmp_path / name), tmp_path / name.replace(".", "_"), calib_samples=20)
        assert res.report["tf"]["loaded_with"].startswith(reader), res.report["tf"]
        assert res.report["input"]["shape"] == [1, 16, 16, 1] and res.report["output"]["shape"] == [1, 10]
