"""The TFLite Micro reference interpreter, set up in one place, with an arena sized from the model.

The ``tflite-micro`` package's default arena is ten times the model file: a model with few weights
and large activations (one 3x3 conv on a 96x96 image: a 1.4 KB file, 83 KB of activations) does not
fit it and TFLite Micro refuses to allocate its tensors. ``interpreter(flat)`` starts from an arena
that holds every non-constant tensor twice plus per-tensor bookkeeping (never below the default),
and doubles it on an allocation failure, up to ``MAX_ARENA_BYTES``.

What TFLite Micro would abort the process on (a TFLITE_CHECK in an operator's Prepare) is refused
first with an error (``check_aborts``).

May import numpy, tflite, tflite_micro and tinyprune.errors.
"""
from __future__ import annotations

MAX_ARENA_BYTES = 1 << 30
_DTYPE_BYTES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 9: 1, 10: 8, 16: 4, 17: 1}  # tflite TensorType -> bytes
_PER_TENSOR = 256     # TfLiteEvalTensor / TfLiteTensor and allocation records, generously
_BASE = 16 * 1024     # interpreter, graph and op-data allocations


def arena_bytes_for(flat: bytes) -> int:
    """The first arena size tried for the model in ``flat``."""
    import tflite
    try:
        m = tflite.Model.GetRootAsModel(flat, 0)
        act, n = 0, 0
        for s in range(m.SubgraphsLength()):
            sg = m.Subgraphs(s)
            for i in range(sg.TensorsLength()):
                t = sg.Tensors(i)
                n += 1
                buf = m.Buffers(t.Buffer()) if t.Buffer() < m.BuffersLength() else None
                if buf is not None and buf.DataLength() > 0:
                    continue                                   # a constant: lives in the flatbuffer
                elems = 1
                for d in range(t.ShapeLength()):
                    elems *= max(int(t.Shape(d)), 1)
                act += elems * _DTYPE_BYTES.get(t.Type(), 4)
    except Exception:  # noqa: BLE001 - a strange file: let TFLite Micro itself say what is wrong
        return 10 * len(flat)
    return max(10 * len(flat), 2 * act + _PER_TENSOR * n + _BASE)


def check_aborts(flat: bytes) -> None:
    """Refuse, with an error, what TFLite Micro would abort the process on rather than report: an int8
    SOFTMAX whose input scale is so small that beta * scale * 2**26 <= 1 (its Prepare calls
    QuantizeMultiplierGreaterThanOne, a TFLITE_CHECK: the logits before the softmax are all about 0,
    an untrained model or one calibrated on data it does not respond to)."""
    import tflite

    from tinyprune.errors import UnsupportedModelError
    try:
        m = tflite.Model.GetRootAsModel(flat, 0)
        sg = m.Subgraphs(0)
        for i in range(sg.OperatorsLength()):
            op = sg.Operators(i)
            code = m.OperatorCodes(op.OpcodeIndex())
            if max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) != 25:      # SOFTMAX
                continue
            t = sg.Tensors(int(op.Inputs(0)))
            q = t.Quantization()
            if t.Type() != 9 or q is None or not q.ScaleLength():
                continue
            beta = 1.0
            if op.BuiltinOptions() is not None:
                o = tflite.SoftmaxOptions()
                o.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
                beta = float(o.Beta())
            scale = float(q.Scale(0))
            if beta * scale * (1 << 26) <= 1.0:
                raise UnsupportedModelError(
                    f"TFLite Micro cannot run the int8 model: the input of SOFTMAX (operator {i}, tensor "
                    f"{(t.Name() or b'').decode(errors='replace')!r}) has scale {scale:.3g}, too small for its "
                    "int8 kernel (beta * scale * 2^26 must exceed 1): the values before the softmax are all about 0",
                    hint="the model is untrained, or the calibration data does not excite it: train it, or "
                         "calibrate on its own data (--data)")
    except UnsupportedModelError:
        raise
    except Exception:  # noqa: BLE001 - a strange file: let TFLite Micro itself say what is wrong
        return


def interpreter(flat: bytes, *, preserve_all_tensors: bool = False):
    """A TFLite Micro interpreter for ``flat`` (bytes of a .tflite). Raises the interpreter's
    RuntimeError when it cannot be set up even with ``MAX_ARENA_BYTES`` (or fails otherwise)."""
    from tflite_micro.python.tflite_micro import runtime
    kwargs = {}
    if preserve_all_tensors:
        kwargs["intrepreter_config"] = runtime.InterpreterConfig.kPreserveAllTensors  # (sic) the package's spelling
    check_aborts(flat)
    arena = arena_bytes_for(flat)
    while True:
        try:
            return runtime.Interpreter.from_bytes(flat, arena_size=arena, **kwargs)
        except RuntimeError as e:
            if "allocate" not in str(e).lower() or arena >= MAX_ARENA_BYTES:
                raise
            arena = min(arena * 4, MAX_ARENA_BYTES)
