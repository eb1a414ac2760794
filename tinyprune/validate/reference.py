"""The reference side of validation: the TFLite Micro interpreter on the build's int8 model,
input preparation (float PyTorch-layout data -> channels-last int8, exactly as the convert stage
feeds its evaluation) and output metrics.

May import numpy, tflite, tflite_micro, tinyprune.errors, tinyprune._int8, tinyprune.tflm and tinyprune.data (never torch/TF).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyprune._int8 import quantize_int8
from tinyprune.errors import UnsupportedModelError, UserInputError


@dataclass
class TensorSpec:
    shape: tuple[int, ...]
    scale: float
    zero_point: int
    dtype: str

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape))


def _spec(sg, index: int) -> TensorSpec:
    t = sg.Tensors(index)
    q = t.Quantization()
    scale = float(q.Scale(0)) if q is not None and q.ScaleLength() else 1.0
    zp = int(q.ZeroPoint(0)) if q is not None and q.ZeroPointLength() else 0
    names = {9: "int8", 2: "int32", 0: "float32", 3: "uint8", 7: "int16"}
    return TensorSpec(tuple(int(d) for d in t.ShapeAsNumpy()), scale, zp, names.get(t.Type(), str(t.Type())))


class Reference:
    """The int8 model under TFLite Micro."""

    def __init__(self, tflite_path: str | Path):
        import tflite
        from tinyprune.tflm import interpreter

        self.path = Path(tflite_path)
        self.flat = self.path.read_bytes()
        try:
            m = tflite.Model.GetRootAsModel(self.flat, 0)
            sg = m.Subgraphs(0)
            if sg.InputsLength() != 1 or sg.OutputsLength() != 1:
                raise UserInputError(f"{self.path}: {sg.InputsLength()} inputs and {sg.OutputsLength()} outputs; "
                                     "validation handles models with one input and one output")
            self.input = _spec(sg, sg.Inputs(0))
            self.output = _spec(sg, sg.Outputs(0))
        except UserInputError:
            raise
        except Exception as e:  # noqa: BLE001 - flatbuffers raises anything on garbage
            raise UserInputError(f"{self.path} is not a readable TFLite model ({type(e).__name__}: {e})") from None
        if self.input.dtype != "int8" or self.output.dtype != "int8":
            raise UserInputError(f"{self.path}: input {self.input.dtype}, output {self.output.dtype}; "
                                 "validation needs a full-integer model with int8 input and output",
                                 hint="convert with `tinyprune convert` (full-integer int8)")
        try:
            self._interp = interpreter(self.flat)
        except RuntimeError as e:   # TFLite Micro's Prepare refuses the model (its reason is printed above)
            raise UnsupportedModelError(
                f"{self.path}: TFLite Micro, the reference validation compares with, cannot run this model ({e})",
                hint="the model uses an operator or option TFLite Micro has no kernel for; re-export it with "
                     "the TFLite converter or replace that layer") from None

    def run(self, x_int8: np.ndarray) -> np.ndarray:
        """One sample (any shape with input.nbytes elements) -> int8 output of output.shape."""
        x = np.ascontiguousarray(np.asarray(x_int8, dtype=np.int8).reshape(self.input.shape))
        self._interp.set_input(x, 0)
        self._interp.invoke()
        return np.array(self._interp.get_output(0), dtype=np.int8, copy=True).reshape(self.output.shape)

    def dequantize(self, y_int8: np.ndarray) -> np.ndarray:
        return (np.asarray(y_int8, dtype=np.float32) - self.output.zero_point) * np.float32(self.output.scale)

    def pytorch_shape(self) -> tuple[int, ...]:
        """The float model's input shape (batch 1) whose channels-last form is the int8 input."""
        s = self.input.shape
        if len(s) == 4:
            return (1, s[3], s[1], s[2])
        if len(s) == 3:
            return (1, s[2], s[1])
        if len(s) == 2:     # a flat feature vector: data (N, F), no permutation
            return (1, s[1])
        raise UserInputError(f"{self.path}: input shape {s} is not (1, H, W, C), (1, L, C) or (1, K)")


def quantize_input(x_cl: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """float -> int8 as TFLite's QUANTIZE does (tinyprune._int8, the one rounding rule)."""
    return quantize_int8(x_cl, scale, zero_point)


def channels_last(x: np.ndarray) -> np.ndarray:
    """PyTorch layout (N, C, H, W) / (N, C, L) -> channels-last (N, H, W, C) / (N, L, C)."""
    if x.ndim < 3:
        return x
    perm = (0,) + tuple(range(2, x.ndim)) + (1,)
    return np.ascontiguousarray(x.transpose(perm))


def prepare_inputs(ref: Reference, x_float: np.ndarray) -> np.ndarray:
    """Float PyTorch-layout samples -> int8 samples of the model's input shape (N, *input.shape[1:])."""
    x_cl = channels_last(np.asarray(x_float, dtype=np.float32))
    n = len(x_cl)
    per = int(np.prod(x_cl.shape[1:]))
    if per != ref.input.nbytes:
        raise UserInputError(f"data samples have {per} values (shape {tuple(x_float.shape[1:])}) but the model's "
                             f"input {ref.input.shape} takes {ref.input.nbytes}",
                             hint="store x in the model's PyTorch layout (N, C, H, W) or (N, C, L)")
    q = quantize_input(x_cl, ref.input.scale, ref.input.zero_point)
    return q.reshape((n,) + tuple(ref.input.shape[1:]))


def output_metrics(got: np.ndarray, want: np.ndarray) -> dict:
    """rmse, mae, relative l2 error and cosine similarity of got vs want (float arrays, any shape,
    first axis = samples); aggregated over all values, plus the worst per-sample relative l2."""
    g = np.asarray(got, dtype=np.float64).reshape(len(got), -1)
    w = np.asarray(want, dtype=np.float64).reshape(len(want), -1)
    d = g - w
    norm_w = float(np.linalg.norm(w))
    norm_g = float(np.linalg.norm(g))
    per_sample = np.linalg.norm(d, axis=1) / np.maximum(np.linalg.norm(w, axis=1), 1e-12)
    return {
        "rmse": float(np.sqrt(np.mean(d ** 2))) if d.size else 0.0,
        "mae": float(np.mean(np.abs(d))) if d.size else 0.0,
        "max_abs": float(np.max(np.abs(d))) if d.size else 0.0,
        "relative_l2": float(np.linalg.norm(d) / norm_w) if norm_w > 0 else float(np.linalg.norm(d) > 0),
        "max_sample_relative_l2": float(per_sample.max()) if len(per_sample) else 0.0,
        "cosine": float(np.sum(g * w) / (norm_g * norm_w)) if norm_g > 0 and norm_w > 0 else
        (1.0 if norm_g == norm_w else 0.0),
    }


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, classes: int) -> list[list[int]]:
    m = np.zeros((classes, classes), dtype=np.int64)
    for t, p in zip(y_true, y_pred):
        if 0 <= t < classes and 0 <= p < classes:
            m[int(t), int(p)] += 1
    return m.tolist()


def float_model_outputs(onnx_path: Path, x_float: np.ndarray) -> np.ndarray | None:
    """The float model's outputs on the float data via onnxruntime (None when unavailable)."""
    try:
        import onnxruntime as ort
    except ImportError:  # pragma: no cover
        return None
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    outs = [sess.run(None, {name: x_float[i:i + 1].astype(np.float32)})[0] for i in range(len(x_float))]
    return np.concatenate(outs, axis=0)
