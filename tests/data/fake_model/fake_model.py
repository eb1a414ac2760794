"""A tiny stand-in for the code generator, for the validate stage's own tests.

``make_build(out_dir, seed, degrade=0.0)`` writes a BUILD_DIR with
``model_int8.tflite`` (one int8 FULLY_CONNECTED layer 16 -> 4, written with the flatbuffer
builders of the ``tflite`` package) and ``codegen/`` (model.h with the generated-header API,
model.c: a hand-written int8 fully-connected kernel following TFLite's reference integer math,
its parameters emitted as constants). ``make_data`` gives a 4-class problem the model solves,
so a model whose weights are perturbed (``degrade``) loses accuracy measurably.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

import flatbuffers
import numpy as np
import importlib

# the tflite package re-exports the classes under the module names: load the modules themselves
(Buffer, BuiltinOperator, BuiltinOptions, FullyConnectedOptions, Model, Operator, OperatorCode,
 QuantizationParameters, SubGraph, Tensor, TensorType) = (
    importlib.import_module(f"tflite.{m}") for m in (
        "Buffer", "BuiltinOperator", "BuiltinOptions", "FullyConnectedOptions", "Model", "Operator",
        "OperatorCode", "QuantizationParameters", "SubGraph", "Tensor", "TensorType"))

HERE = Path(__file__).resolve().parent
IN, OUT = 16, 4
S_IN, ZP_IN = 1.0 / 64, -10      # input: float x in [-1.84, 2.14]
S_W = 1.0 / 128
S_OUT, ZP_OUT = 0.1, 3


def weights(seed: int = 0, degrade: float = 0.0, inputs: int = IN):
    rng = np.random.default_rng(seed)
    w = rng.integers(-12, 12, size=(OUT, inputs))
    for k in range(OUT):
        w[k, 4 * k:4 * k + 4] = 100
    if degrade:
        noise = rng.normal(0, degrade * 127, size=w.shape)
        w = w + noise
    w = np.clip(np.round(w), -127, 127).astype(np.int8)
    b = rng.integers(-2000, 2000, size=OUT).astype(np.int32)
    return w, b


def make_data(n: int, seed: int = 1):
    """x float (N, 16) (the model's flat (1, 16) input, docs/data.md), y in 0..3: class k lights up
    features 4k..4k+3."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, OUT, size=n)
    x = rng.normal(0, 0.35, size=(n, IN)).astype(np.float32)
    for i, k in enumerate(y):
        x[i, 4 * k:4 * k + 4] += 1.0
    return x.astype(np.float32), y.astype(np.int64)


def _vec(builder, start_fn, values, prepend):
    start_fn(builder, len(values))
    for v in reversed(values):
        prepend(v)
    return builder.EndVector()


def tflite_bytes(w: np.ndarray, b: np.ndarray) -> bytes:
    bld = flatbuffers.Builder(1024)

    def buffer(data: bytes | None):
        vec = None
        if data is not None:
            bld.StartVector(1, len(data), 16)
            for byte in reversed(data):
                bld.PrependUint8(byte)
            vec = bld.EndVector()
        Buffer.BufferStart(bld)
        if vec is not None:
            Buffer.BufferAddData(bld, vec)
        return Buffer.BufferEnd(bld)

    bufs = [buffer(None), buffer(w.tobytes()), buffer(b.astype("<i4").tobytes()), buffer(None), buffer(None)]

    def quant(scale, zp):
        sv = _vec(bld, QuantizationParameters.QuantizationParametersStartScaleVector, [scale], bld.PrependFloat32)
        zv = _vec(bld, QuantizationParameters.QuantizationParametersStartZeroPointVector, [zp], bld.PrependInt64)
        QuantizationParameters.QuantizationParametersStart(bld)
        QuantizationParameters.QuantizationParametersAddScale(bld, sv)
        QuantizationParameters.QuantizationParametersAddZeroPoint(bld, zv)
        return QuantizationParameters.QuantizationParametersEnd(bld)

    def tensor(name, shape, ttype, buf, q):
        nm = bld.CreateString(name)
        sh = _vec(bld, Tensor.TensorStartShapeVector, shape, bld.PrependInt32)
        Tensor.TensorStart(bld)
        Tensor.TensorAddShape(bld, sh)
        Tensor.TensorAddType(bld, ttype)
        Tensor.TensorAddBuffer(bld, buf)
        Tensor.TensorAddName(bld, nm)
        Tensor.TensorAddQuantization(bld, q)
        return Tensor.TensorEnd(bld)

    s_bias = float(np.float32(S_IN) * np.float32(S_W))
    n_in = int(w.shape[1])
    tensors = [
        tensor("input", [1, n_in], TensorType.TensorType.INT8, 3, quant(S_IN, ZP_IN)),
        tensor("fc/weights", [OUT, n_in], TensorType.TensorType.INT8, 1, quant(S_W, 0)),
        tensor("fc/bias", [OUT], TensorType.TensorType.INT32, 2, quant(s_bias, 0)),
        tensor("output", [1, OUT], TensorType.TensorType.INT8, 4, quant(S_OUT, ZP_OUT)),
    ]
    FullyConnectedOptions.FullyConnectedOptionsStart(bld)
    FullyConnectedOptions.FullyConnectedOptionsAddFusedActivationFunction(bld, 0)
    fc_opts = FullyConnectedOptions.FullyConnectedOptionsEnd(bld)
    ins = _vec(bld, Operator.OperatorStartInputsVector, [0, 1, 2], bld.PrependInt32)
    outs = _vec(bld, Operator.OperatorStartOutputsVector, [3], bld.PrependInt32)
    Operator.OperatorStart(bld)
    Operator.OperatorAddOpcodeIndex(bld, 0)
    Operator.OperatorAddInputs(bld, ins)
    Operator.OperatorAddOutputs(bld, outs)
    Operator.OperatorAddBuiltinOptionsType(bld, BuiltinOptions.BuiltinOptions.FullyConnectedOptions)
    Operator.OperatorAddBuiltinOptions(bld, fc_opts)
    op = Operator.OperatorEnd(bld)

    tv = _vec(bld, SubGraph.SubGraphStartTensorsVector, tensors, bld.PrependUOffsetTRelative)
    iv = _vec(bld, SubGraph.SubGraphStartInputsVector, [0], bld.PrependInt32)
    ov = _vec(bld, SubGraph.SubGraphStartOutputsVector, [3], bld.PrependInt32)
    opv = _vec(bld, SubGraph.SubGraphStartOperatorsVector, [op], bld.PrependUOffsetTRelative)
    sg_name = bld.CreateString("main")
    SubGraph.SubGraphStart(bld)
    SubGraph.SubGraphAddTensors(bld, tv)
    SubGraph.SubGraphAddInputs(bld, iv)
    SubGraph.SubGraphAddOutputs(bld, ov)
    SubGraph.SubGraphAddOperators(bld, opv)
    SubGraph.SubGraphAddName(bld, sg_name)
    sg = SubGraph.SubGraphEnd(bld)

    OperatorCode.OperatorCodeStart(bld)
    OperatorCode.OperatorCodeAddDeprecatedBuiltinCode(bld, BuiltinOperator.BuiltinOperator.FULLY_CONNECTED)
    OperatorCode.OperatorCodeAddBuiltinCode(bld, BuiltinOperator.BuiltinOperator.FULLY_CONNECTED)
    OperatorCode.OperatorCodeAddVersion(bld, 4)
    opc = OperatorCode.OperatorCodeEnd(bld)

    codes = _vec(bld, Model.ModelStartOperatorCodesVector, [opc], bld.PrependUOffsetTRelative)
    sgs = _vec(bld, Model.ModelStartSubgraphsVector, [sg], bld.PrependUOffsetTRelative)
    bv = _vec(bld, Model.ModelStartBuffersVector, bufs, bld.PrependUOffsetTRelative)
    desc = bld.CreateString("tinyprune validate test model")
    Model.ModelStart(bld)
    Model.ModelAddVersion(bld, 3)
    Model.ModelAddOperatorCodes(bld, codes)
    Model.ModelAddSubgraphs(bld, sgs)
    Model.ModelAddBuffers(bld, bv)
    Model.ModelAddDescription(bld, desc)
    bld.Finish(bld_root := Model.ModelEnd(bld), file_identifier=b"TFL3")
    del bld_root
    return bytes(bld.Output())


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: real = m * 2^shift with m a Q31 fixed-point value."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    m = int(round(q * (1 << 31)))
    if m == (1 << 31):
        m //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return m, shift


def _c_array(values) -> str:
    return ", ".join(str(int(v)) for v in values)


def make_build(out: Path, seed: int = 0, degrade: float = 0.0, inputs: int = IN) -> Path:
    """Write BUILD_DIR (model_int8.tflite + codegen/) and return it; ``inputs`` input bytes
    (16 by default; e.g. 490 for a KWS-sized input that needs several LOAD chunks)."""
    out = Path(out)
    (out / "codegen").mkdir(parents=True, exist_ok=True)
    w, b = weights(seed, degrade, inputs)
    tfl = tflite_bytes(w, b)
    (out / "model_int8.tflite").write_bytes(tfl)
    digest = hashlib.sha256(tfl).hexdigest()
    real = float(np.float32(S_IN) * np.float32(S_W)) / float(np.float32(S_OUT))
    m, shift = quantize_multiplier(real)
    header = (HERE / "model.h.in").read_text().replace("@HASH@", digest).replace(
        f"#define MODEL_INPUT_BYTES {IN}\n", f"#define MODEL_INPUT_BYTES {inputs}\n")
    (out / "codegen" / "model.h").write_text(header)
    params = (f"static const int8_t fc_w[{OUT * inputs}] = {{{_c_array(w.ravel())}}};\n"
              f"static const int32_t fc_b[{OUT}] = {{{_c_array(b)}}};\n"
              f"#define FC_IN {inputs}\n#define FC_OUT {OUT}\n#define IN_OFFSET ({-ZP_IN})\n"
              f"#define OUT_OFFSET ({ZP_OUT})\n#define OUT_MULT ({m})\n#define OUT_SHIFT ({shift})\n")
    (out / "codegen" / "fake_params.h").write_text(params)
    (out / "codegen" / "model.c").write_text((HERE / "model.c").read_text())
    return out
