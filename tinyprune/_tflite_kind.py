"""What kind of numbers a TFLite model computes in: the one classification the code generator (which
takes only int8 models), the convert stage (which quantizes float ones) and the build's input
detection all use.

``tflite_kind(flat)`` -> one of
  * ``"int8"``: full-integer int8 activations (what tinyprune generates code for);
  * ``"float"``: float32/float16 activations and no int8 weights: quantizable on calibration data;
  * ``"int16"``: int16 activations (16x8 quantization: int16 activations, int8 weights);
  * ``"dynamic-range"``: float activations with int8 weights (``Optimize.DEFAULT`` without a
    representative dataset): already quantized, so it cannot be calibrated again;
  * ``"mixed"``: int8 and float activations (a partly quantized model);
  * ``"uint8"``: uint8 activations (the legacy asymmetric scheme);
  * ``"unknown"``: no operator with a non-constant tensor.
Boundary QUANTIZE/DEQUANTIZE operators are not counted (a full-integer model may take and return float).

May import only numpy and tflite (the flatbuffer schema package).
"""
from __future__ import annotations

_TYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 7: "int16", 9: "int8"}
_BOUNDARY = {"QUANTIZE", "DEQUANTIZE"}

DESCRIPTION = {
    "int8": "a full-integer int8 model",
    "float": "a float (non-quantized) model",
    "int16": "an int16 (16x8) quantized model: int16 activations and int8 weights",
    "dynamic-range": "a dynamic-range quantized model: int8 weights but float activations",
    "mixed": "a partly quantized model: some operators compute in int8, others in float",
    "uint8": "a uint8 (legacy asymmetric) quantized model",
    "unknown": "a model without computing operators",
}


def activation_dtypes(flat: bytes) -> tuple[set[str], set[str]]:
    """(dtypes of the non-constant tensors, dtypes of the constant ones) read and written by the
    operators of subgraph 0 other than QUANTIZE/DEQUANTIZE."""
    import tflite

    model = tflite.Model.GetRootAsModel(flat, 0)
    sg = model.Subgraphs(0)

    def const(t) -> bool:
        b = t.Buffer()
        if b <= 0 or b >= model.BuffersLength():
            return False
        buf = model.Buffers(b)
        return buf.DataLength() > 0 or buf.Offset() > 1

    acts, consts = set(), set()
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        if not 0 <= op.OpcodeIndex() < model.OperatorCodesLength():
            continue                     # a corrupt model: the reader names it
        code = model.OperatorCodes(op.OpcodeIndex())
        name = tflite.opcode2name(max(code.BuiltinCode(), code.DeprecatedBuiltinCode())) \
            if max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) != 32 else "CUSTOM"
        if name in _BOUNDARY:
            continue
        idx = list(op.InputsAsNumpy() if op.InputsLength() else []) + \
            list(op.OutputsAsNumpy() if op.OutputsLength() else [])
        for j in idx:
            if j < 0 or j >= sg.TensorsLength():
                continue
            t = sg.Tensors(int(j))
            (consts if const(t) else acts).add(_TYPES.get(t.Type(), f"type{t.Type()}"))
    return acts, consts


def tflite_kind(flat: bytes) -> str:
    acts, consts = activation_dtypes(flat)
    floats = acts & {"float32", "float16"}
    if "int16" in acts:
        return "int16"
    if "uint8" in acts and not floats:
        return "uint8"
    if floats and "int8" in acts:
        return "mixed"
    if floats:
        return "dynamic-range" if "int8" in consts else "float"
    if "int8" in acts:
        return "int8"
    return "unknown"
