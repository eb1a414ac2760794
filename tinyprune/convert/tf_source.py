"""TensorFlow-side inputs of the convert stage: a Keras model file (``.keras``, ``.h5``), a SavedModel
directory and a float ``.tflite``. Each is loaded into a ``TfModel`` that runs the float model on
channels-last data (the reference of the int8 checks) and quantizes it to full-integer int8 with
TensorFlow's own post-training quantization, on the representative samples ``core.convert`` gives:

* Keras: ``TFLiteConverter.from_keras_model`` (the model called on a batch-1 Input); SavedModel: ``from_concrete_functions`` on its serving
  signature called at batch 1; both with the settings every float input form gets
  (``tflite_int8.full_integer``);
* float ``.tflite``: there is no TFLiteConverter for a flatbuffer, so the two steps that
  ``TFLiteConverter`` runs on its own float flatbuffer are run on the user's: the calibrator
  (``tensorflow.lite.python.optimize.calibrator``: the model is run by the TFLite interpreter on
  the representative samples and each tensor's range recorded) and the MLIR quantizer
  (``mlir_quantize``, int8 input and output, per-channel weights). These are TensorFlow internals of
  the pinned TensorFlow 2.19 (``lite.py``, ``TFLiteConverter._quantize``).

Keras models (and the models TFLite holds) are channels-last already: the int8 model takes the
same layout, and data follow docs/data.md (PyTorch layout, permuted by tinyprune).

May import numpy, TensorFlow, keras / tf_keras, tinyprune.errors, tinyprune._tflite_kind and
tinyprune.convert.{quiet,tflite_int8}; never torch.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from tinyprune._tflite_kind import DESCRIPTION, tflite_kind
from tinyprune.convert.quiet import import_tensorflow, quiet
from tinyprune.convert.tflite_int8 import converter_error, full_integer, representative
from tinyprune.errors import UnsupportedModelError, UserInputError

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
FLOAT_BATCH = 64
DYNAMIC_SHAPE_OPS = {"SHAPE", "STRIDED_SLICE", "PACK", "GATHER", "RESHAPE"}
SAVED_MODEL_HINT = ("save it with a serving signature: `model.export(DIR)` (Keras) or `tf.saved_model.save(obj, DIR, "
                    "signatures=fn.get_concrete_function(tf.TensorSpec((1, H, W, C), tf.float32)))`")


@dataclass
class TfModel:
    kind: str                              # keras | savedmodel | tflite-float
    path: Path
    shape: tuple[int, ...]                 # the input, channels-last, batch 1: (1, H, W, C) or (1, L, C)
    loaded_with: str                       # e.g. "keras 3.15.1", "tf_keras 2.19.0", "tf.saved_model", "tf.lite"
    run: Callable[[np.ndarray], np.ndarray]   # float model on channels-last samples (N, ...)
    to_int8: Callable[[np.ndarray, bool], tuple[bytes, str]]   # (calibration samples, debug) -> (flat, log)
    converter: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def pytorch_shape(self) -> tuple[int, ...]:
        """The shape data have in tinyprune's data layout (docs/data.md): channels first."""
        return (1, self.shape[-1]) + tuple(self.shape[1:-1])


def load(path, kind: str, debug: bool = False) -> TfModel:
    """Load a Keras file, a SavedModel directory or a float .tflite (``kind`` from loader.model_format)."""
    path = Path(path)
    if not path.exists():
        raise UserInputError(f"model file not found: {path}" if kind != "savedmodel"
                             else f"SavedModel directory not found: {path}")
    tf = import_tensorflow(debug)
    return {"keras": _keras, "savedmodel": _saved_model, "tflite-float": _float_tflite}[kind](tf, path, debug)


# ---------------------------------------------------------------------------------------------- Keras
def _load_keras(path: Path, debug: bool):
    """Keras 3 (``keras``, what ``tf.keras`` is with TensorFlow 2.19) first, then Keras 2 (``tf_keras``):
    each reads both formats, but a file one wrote may need the other."""
    errors = []
    for name in ("keras", "tf_keras"):
        try:
            with quiet(debug):
                mod = importlib.import_module(name)
                model = mod.models.load_model(str(path), compile=False)
            return model, f"{name} {getattr(mod, '__version__', '?')}"
        except ImportError:
            errors.append(f"{name}: not installed")
        except Exception as e:  # noqa: BLE001 - a damaged file makes h5py/zipfile/keras raise anything
            first = (" ".join(str(e).split()) or type(e).__name__)[:200]
            errors.append(f"{name}: {type(e).__name__}: {first}")
    raise UserInputError(f"{path} is not a Keras model that can be loaded ({'; '.join(errors)})",
                         hint="pass a file written by model.save('m.keras') or model.save('m.h5'); a model with "
                              "custom layers cannot be rebuilt from the file alone: export it as a SavedModel "
                              "(model.export(DIR)) and pass DIR")


def _keras(tf, path: Path, debug: bool) -> TfModel:
    model, loaded_with = _load_keras(path, debug)
    ins, outs = list(getattr(model, "inputs", None) or []), list(getattr(model, "outputs", None) or [])
    if len(ins) != 1 or len(outs) != 1:
        names = lambda ts: ", ".join(repr(getattr(t, "name", "?")) for t in ts)  # noqa: E731
        raise UserInputError(f"{path}: the Keras model has {len(ins)} input(s) ({names(ins)}) and {len(outs)} "
                             f"output(s) ({names(outs)}); tinyprune builds models with exactly one input and one "
                             "output", hint="build a single-input, single-output model (e.g. concatenate the "
                                            "inputs inside the model, or build one model per output)")
    shape = _static_shape(path, tuple(ins[0].shape), f"input {getattr(ins[0], 'name', '')!r}")

    def run(x):
        return np.concatenate([np.asarray(model(tf.constant(x[i:i + FLOAT_BATCH]), training=False))
                               for i in range(0, len(x), FLOAT_BATCH)], axis=0)

    def to_int8(calib, dbg):
        with quiet(dbg):
            # the model called on a batch-1 input: with an open batch, a Reshape/Flatten computes its
            # shape at run time (SHAPE, STRIDED_SLICE, PACK), which neither TFLite Micro nor codegen runs
            mod = importlib.import_module(loaded_with.split()[0])
            inp = mod.Input(shape=shape[1:], batch_size=1, name="input")
            fixed = mod.Model(inp, model(inp))
            conv = tf.lite.TFLiteConverter.from_keras_model(fixed)
        return full_integer(tf, conv, calib, dbg)

    return TfModel("keras", path, shape, loaded_with, run, to_int8,
                   converter="TFLiteConverter.from_keras_model (the model on a batch-1 input)")


# ---------------------------------------------------------------------------------------------- SavedModel
def _saved_model(tf, path: Path, debug: bool) -> TfModel:
    try:
        with quiet(debug):
            loaded = tf.saved_model.load(str(path))
    except Exception as e:  # noqa: BLE001
        first = " ".join(str(e).split())[:200]
        raise UserInputError(f"{path} is not a readable TensorFlow SavedModel ({type(e).__name__}: {first})",
                             hint=SAVED_MODEL_HINT) from None
    sigs = dict(loaded.signatures)
    if not sigs:
        raise UserInputError(f"{path}: the SavedModel has no serving signature, so its input and output are "
                             "unknown", hint=SAVED_MODEL_HINT)
    if "serving_default" in sigs:
        sig_name = "serving_default"
    elif len(sigs) == 1:
        sig_name = next(iter(sigs))
    else:
        raise UserInputError(f"{path}: the SavedModel has {len(sigs)} signatures ({', '.join(sorted(sigs))}) and "
                             "none is 'serving_default'", hint="save the one to build as 'serving_default'")
    sig = sigs[sig_name]
    args, kwargs = sig.structured_input_signature
    outs = sig.structured_outputs
    outs = dict(outs) if isinstance(outs, dict) else {str(i): o for i, o in enumerate(outs or [])}
    if len(args) + len(kwargs) != 1 or len(outs) != 1:
        raise UserInputError(f"{path}: signature {sig_name!r} has {len(args) + len(kwargs)} input(s) "
                             f"({', '.join(sorted(kwargs))}) and {len(outs)} output(s) ({', '.join(sorted(outs))}); "
                             "tinyprune builds models with exactly one input and one output",
                             hint="export a single-input, single-output signature")
    in_name, in_spec = next(iter(kwargs.items()))
    out_name = next(iter(outs))
    if in_spec.dtype != tf.float32:
        raise UserInputError(f"{path}: input {in_name!r} is {in_spec.dtype.name}; tinyprune quantizes float32 models")
    shape = _static_shape(path, tuple(in_spec.shape), f"input {in_name!r}")

    def run(x):
        return np.concatenate([sig(**{in_name: tf.constant(x[i:i + 1])})[out_name].numpy()
                               for i in range(len(x))], axis=0)

    def to_int8(calib, dbg):
        with quiet(dbg):
            @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32, name="input")])
            def batch1(x):
                return sig(**{in_name: x})[out_name]
            try:
                conv = tf.lite.TFLiteConverter.from_concrete_functions([batch1.get_concrete_function()], loaded)
            except Exception as e:  # noqa: BLE001
                raise converter_error(e) from e
        return full_integer(tf, conv, calib, dbg)

    return TfModel("savedmodel", path, shape, f"tf.saved_model (signature {sig_name!r})", run, to_int8,
                   converter="TFLiteConverter.from_concrete_functions (the signature at batch 1)")


# ---------------------------------------------------------------------------------------------- float .tflite
def _float_tflite(tf, path: Path, debug: bool) -> TfModel:
    flat = path.read_bytes()
    kind = tflite_kind(flat)
    if kind != "float":
        raise UserInputError(f"{path} is {DESCRIPTION[kind]}, not a float model that can be quantized")
    try:
        with quiet(debug):
            interp = tf.lite.Interpreter(model_content=flat)
            interp.allocate_tensors()
    except Exception as e:  # noqa: BLE001
        raise UnsupportedModelError(f"TensorFlow Lite cannot run the float model {path}: "
                                    f"{' '.join(str(e).split())[:300]}",
                                    hint="the model needs operators outside TFLite's builtins (SELECT_TF_OPS?)") from None
    ins, outs = interp.get_input_details(), interp.get_output_details()
    if len(ins) != 1 or len(outs) != 1:
        raise UserInputError(f"{path} has {len(ins)} inputs ({', '.join(d['name'] for d in ins)}) and {len(outs)} "
                             f"outputs ({', '.join(d['name'] for d in outs)}); tinyprune builds models with exactly "
                             "one input and one output", hint="export a single-input, single-output model")
    if ins[0]["dtype"] != np.float32:
        raise UserInputError(f"{path}: input {ins[0]['name']!r} is {np.dtype(ins[0]['dtype']).name}; tinyprune "
                             "quantizes float32 models")
    shape = _static_shape(path, tuple(int(d) for d in ins[0]["shape"]), f"input {ins[0]['name']!r}")

    def run(x):
        res = []
        for i in range(len(x)):
            interp.set_tensor(ins[0]["index"], x[i:i + 1])
            interp.invoke()
            res.append(np.array(interp.get_tensor(outs[0]["index"]), copy=True))
        return np.concatenate(res, axis=0)

    def to_int8(calib, dbg):
        from tensorflow.lite.python.convert import mlir_quantize
        from tensorflow.lite.python.optimize import calibrator
        with quiet(dbg) as captured:
            try:
                with_intermediates = calibrator.add_intermediate_tensors(flat)
                calibrated = calibrator.Calibrator(with_intermediates).calibrate(representative(calib))
                q = mlir_quantize(calibrated, False, input_data_type=tf.int8, output_data_type=tf.int8)
            except Exception as e:  # noqa: BLE001
                raise converter_error(e) from e
            return bytes(q), captured()

    return TfModel("tflite-float", path, shape, "tf.lite.Interpreter", run, to_int8,
                   converter="TFLite calibrator + MLIR quantizer (TFLiteConverter's post-training steps)")


# ---------------------------------------------------------------------------------------------- helpers
def _static_shape(path: Path, shape: tuple, what: str) -> tuple[int, ...]:
    """(None|1, d1, ..., dk) with static dims -> (1, d1, ..., dk); rank 3 (1-D models) or 4 (images)."""
    if len(shape) not in (3, 4):
        raise UserInputError(f"{path}: {what} has shape {_show(shape)}; tinyprune takes images (N, H, W, C) and "
                             "sequences (N, L, C)", hint="give the model a channels-last 4-D or 3-D input")
    if shape[0] not in (None, -1, 1):
        raise UserInputError(f"{path}: {what} has batch {shape[0]}; tinyprune runs one sample at a time",
                             hint="export the model with batch 1 or an unspecified batch")
    if any(d is None or int(d) < 1 for d in shape[1:]):
        raise UserInputError(f"{path}: {what} has a dynamic dimension: shape {_show(shape)}",
                             hint="give the model a fixed input size, e.g. keras.Input((96, 96, 3))")
    return (1,) + tuple(int(d) for d in shape[1:])


def _show(shape) -> str:
    return "(" + ", ".join("None" if d is None or d == -1 else str(int(d)) for d in shape) + ")"


def check_full_integer(flat: bytes, label: str) -> None:
    """The quantized model must be int8 throughout: an operator TFLite cannot quantize is left in float
    between DEQUANTIZE and QUANTIZE; it is named with its output tensor (which carries the layer's name)."""
    from tinyprune.convert.tflite_int8 import tflite_ops
    ops = tflite_ops(flat)
    if "SHAPE" in ops:
        raise UnsupportedModelError(f"{label}: the model computes tensor shapes at run time (SHAPE operator: "
                                    f"{', '.join(sorted(set(ops) & DYNAMIC_SHAPE_OPS))}), which TFLite Micro and "
                                    "tinyprune's code do not run",
                                    hint="export the model with a fixed batch of 1 (e.g. keras.Input(shape, "
                                         "batch_size=1), or a SavedModel signature of shape (1, H, W, C))")
    kind = tflite_kind(flat)
    if kind == "int8":
        return
    floats = float_operators(flat)
    shown = "; ".join(f"{op} (output {out!r})" for op, out in floats[:4]) or "none found"
    raise UnsupportedModelError(f"{label}: TensorFlow's int8 quantizer left {DESCRIPTION[kind]}; operators without "
                                f"an int8 kernel: {shown}",
                                hint="replace those layers with ones TFLite quantizes to int8 (e.g. ReLU/ReLU6 for "
                                     "ELU), docs/convert.md lists what the int8 path takes")


def float_operators(flat: bytes) -> list[tuple[str, str]]:
    """(operator, output tensor name) of each operator other than QUANTIZE/DEQUANTIZE writing a float tensor."""
    import tflite

    from tinyprune.convert.tflite_int8 import tflite_ops
    m = tflite.Model.GetRootAsModel(flat, 0)
    sg = m.Subgraphs(0)
    out = []
    for i, name in enumerate(tflite_ops(flat)):
        op = sg.Operators(i)
        if name in ("QUANTIZE", "DEQUANTIZE") or not op.OutputsLength():
            continue
        t = sg.Tensors(int(op.Outputs(0)))
        if t.Type() in (0, 1):   # float32, float16
            out.append((name, (t.Name() or b"").decode(errors="replace")))
    return out
