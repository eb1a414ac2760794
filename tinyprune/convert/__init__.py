"""tinyprune.convert: PyTorch / ONNX -> ONNX -> float TF (onnx2tf) -> full-integer int8 TFLite; Keras
(.keras/.h5), SavedModel and float .tflite -> full-integer int8 TFLite with TensorFlow's converter
(tf_source.py), on the same data, calibration and checks.

Public API (see docs/convert.md):
    convert(model, out_dir, *, data=None, weights=None, input_shape=None, calib_samples=200,
            max_int8_drop=1.0, equalize=False, bias_correction=False, debug=False)
        -> ConvertResult(out_dir, onnx_path (None for Keras/SavedModel/.tflite), tflite_path, report_path, report)
    layer_errors(onnx_model, tflite_bytes, x_nchw) -> per-layer float-vs-int8 SNR/cosine (diagnose.py)
    equalize(module, example) / bias_correct(module, x_calib) -> (fixed copy, report)   (fixes.py)
    load_torch_model(spec, weights=None) -> nn.Module
    export_onnx(module, example_input, path) -> Path
    onnx_to_int8_tflite(onnx_path, calib_nhwc, out_path, *, debug=False) -> Int8Conversion
    evaluate_tflite(path, x_nchw, y=None) -> dict(accuracy, pred, output_int8, output, samples)
Heavy dependencies (torch, TensorFlow) are imported on first use of a name, not by this package.
"""
from __future__ import annotations

_NAMES = {
    "convert": "core", "ConvertResult": "core", "DEFAULT_CALIB_SAMPLES": "core",
    "load_torch_model": "loader", "load_weights": "loader",
    "export_onnx": "onnx_utils", "load_onnx": "onnx_utils", "SUPPORTED_OPS": "onnx_utils",
    "onnx_to_int8_tflite": "tflite_int8", "evaluate_tflite": "tflite_int8", "Int8Conversion": "tflite_int8",
    "io_details": "tflite_int8", "tflite_ops": "tflite_int8", "run_tflm": "tflite_int8",
    "quantize_input": "tflite_int8", "to_channels_last": "tflite_int8", "natural_perm": "tflite_int8",
    "layer_errors": "diagnose", "equalize": "fixes", "bias_correct": "fixes",
}

__all__ = sorted(_NAMES)


def __getattr__(name):
    if name in _NAMES:
        import importlib
        return getattr(importlib.import_module(f"tinyprune.convert.{_NAMES[name]}"), name)
    raise AttributeError(f"module 'tinyprune.convert' has no attribute {name!r}")


from tinyprune._api import callable_package  # noqa: E402 - after the module's names exist

callable_package(__name__, "convert")   # tinyprune.convert(...) even once this subpackage is imported
