"""Schema-level mutation fuzzing of the TFLite reader and code generator (used by test_reader_fuzz.py).

``mutate(model_bytes, rng)`` unpacks a .tflite with the flatbuffer object API (TensorFlow's
``schema_py_generated``, loaded from its file so TensorFlow itself is not imported), changes one
schema field -- a tensor's shape, type, scale, zero point, quantized dimension or buffer; an
operator's options, opcode, input/output indices; a buffer's bytes; the subgraph's inputs/outputs
or operator order -- packs it again and returns (bytes, a description of the change).

``Worker`` runs mutants in a child process (a hang is killed after its time limit, a native crash
is reported, not fatal): read + generate, then optionally TFLite Micro, the sanitizer build of the
generated C (kernels prebuilt once) and the bit-exact comparison. Each result is a dict with
``stage`` in {"refused", "accepted", "internal", "hang", "crash"} plus, for checked mutants,
``check`` in {"bit-exact", "tflm-refused", "sanitizer", "mismatch", "build"}.
"""
from __future__ import annotations

import importlib.util
import multiprocessing as mp
import shutil
import traceback
from pathlib import Path

import numpy as np

_SCHEMA = None


def schema():
    """TensorFlow's generated flatbuffer schema module (object API), without importing TensorFlow."""
    global _SCHEMA
    if _SCHEMA is None:
        tf_dir = Path(importlib.util.find_spec("tensorflow").submodule_search_locations[0])
        path = tf_dir / "lite" / "python" / "schema_py_generated.py"
        spec = importlib.util.spec_from_file_location("tp_tflite_schema", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        _SCHEMA = mod
    return _SCHEMA


def unpack(data: bytes):
    return schema().ModelT.InitFromPackedBuf(bytearray(data), 0)


def pack(m) -> bytes:
    import flatbuffers
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


# ---- mutations: each takes (model, rng) and returns a description, or None when not applicable ----

INT_EDGE = [0, -1, 1, 2, 3, 7, 65535, 65537, 1 << 20, (1 << 31) - 1, -(1 << 31)]
FLOAT_EDGE = [0.0, -1.0, float("nan"), float("inf"), -float("inf"), 1e-45, 1e-30, 1e30, 3.4e38]


def _pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


def _tensor(m, rng, want=None):
    ts = [(i, t) for i, t in enumerate(m.subgraphs[0].tensors) if want is None or want(t)]
    return _pick(rng, ts) if ts else (None, None)


def _tname(t) -> str:
    return (t.name or b"").decode(errors="replace") if isinstance(t.name, bytes) else str(t.name)


def mut_shape(m, rng):
    i, t = _tensor(m, rng, lambda t: t.shape is not None and len(t.shape) > 0)
    if t is None:
        return None
    shape = [int(d) for d in t.shape]
    k = int(rng.integers(len(shape)))
    r = rng.random()
    if r < 0.1:
        new = shape[:k] + shape[k + 1:]
    elif r < 0.2:
        new = shape[:k] + [int(_pick(rng, [1, 2, 3]))] + shape[k:]
    else:
        v = _pick(rng, INT_EDGE + [shape[k] + 1, max(shape[k] - 1, 0), shape[k] * 2])
        new = shape[:k] + [int(v)] + shape[k + 1:]
    t.shape = np.array(new, dtype=np.int32)
    return f"tensor {i} ({_tname(t)!r}).shape {shape} -> {new}"


def mut_type(m, rng):
    i, t = _tensor(m, rng)
    old, t.type = t.type, int(rng.integers(0, 18))
    return f"tensor {i} ({_tname(t)!r}).type {old} -> {t.type}"


def _quant(m, rng):
    return _tensor(m, rng, lambda t: t.quantization is not None and t.quantization.scale is not None
                   and len(t.quantization.scale) > 0)


def mut_scale(m, rng):
    i, t = _quant(m, rng)
    if t is None:
        return None
    q = t.quantization
    s = np.array(q.scale, dtype=np.float32)
    r = rng.random()
    if r < 0.15 and len(s) > 1:
        q.scale = s[:-1]
        return f"tensor {i} ({_tname(t)!r}).quantization.scale: {len(s)} -> {len(s) - 1} values"
    if r < 0.3:
        q.scale = np.concatenate([s, s[:1]])
        return f"tensor {i} ({_tname(t)!r}).quantization.scale: {len(s)} -> {len(s) + 1} values"
    k = int(rng.integers(len(s)))
    old = float(s[k])
    v = _pick(rng, FLOAT_EDGE + [old * 2, old / 3, old * 1000, old / 1000])
    s[k] = np.float32(v)
    q.scale = s
    return f"tensor {i} ({_tname(t)!r}).quantization.scale[{k}] {old} -> {float(s[k])}"


def mut_zero_point(m, rng):
    i, t = _quant(m, rng)
    if t is None:
        return None
    q = t.quantization
    z = np.array(q.zeroPoint if q.zeroPoint is not None else [0] * len(q.scale), dtype=np.int64)
    if rng.random() < 0.2:
        q.zeroPoint = np.concatenate([z, [0]]) if rng.random() < 0.5 or len(z) < 2 else z[:-1]
        return f"tensor {i} ({_tname(t)!r}).quantization.zero_point: {len(z)} -> {len(q.zeroPoint)} values"
    k = int(rng.integers(len(z)))
    old = int(z[k])
    z[k] = int(_pick(rng, [-129, 128, 1000, -1, 1, 127, -128, 5, -(1 << 40), int(rng.integers(-128, 128))]))
    q.zeroPoint = z
    return f"tensor {i} ({_tname(t)!r}).quantization.zero_point[{k}] {old} -> {int(z[k])}"


def mut_quant_dim(m, rng):
    i, t = _quant(m, rng)
    if t is None:
        return None
    old = t.quantization.quantizedDimension
    t.quantization.quantizedDimension = int(_pick(rng, [-1, 0, 1, 2, 3, 7]))
    return f"tensor {i} ({_tname(t)!r}).quantization.quantized_dimension {old} -> {t.quantization.quantizedDimension}"


def mut_options(m, rng):
    ops = [(k, op) for k, op in enumerate(m.subgraphs[0].operators) if op.builtinOptions is not None]
    if not ops:
        return None
    k, op = _pick(rng, ops)
    if rng.random() < 0.1:
        old, op.builtinOptionsType = op.builtinOptionsType, int(rng.integers(0, 40))
        return f"operator {k}.builtin_options_type {old} -> {op.builtinOptionsType}"
    opts = op.builtinOptions
    fields = [f for f, v in vars(opts).items() if isinstance(v, (int, float, bool))]
    if not fields:
        return None
    f = _pick(rng, fields)
    old = getattr(opts, f)
    if isinstance(old, bool):
        new = not old
    elif isinstance(old, float):
        new = float(_pick(rng, FLOAT_EDGE + [0.5, 2.0]))
    elif "activation" in f.lower() or f in ("padding", "weightsFormat"):
        new = int(rng.integers(0, 8)) if rng.random() < 0.8 else int(_pick(rng, [-1, 127]))
    else:
        new = int(_pick(rng, INT_EDGE + [old + 1, old - 1]))
    if f == "padding" or "activation" in f.lower() or f == "weightsFormat":
        new = max(-128, min(127, int(new)))  # int8 enums in the schema
    setattr(opts, f, new)
    return f"operator {k}.{type(opts).__name__}.{f} {old} -> {new}"


def mut_op_io(m, rng):
    sg = m.subgraphs[0]
    k = int(rng.integers(len(sg.operators)))
    op = sg.operators[k]
    which = "inputs" if rng.random() < 0.6 else "outputs"
    idx = [int(x) for x in (getattr(op, which) if getattr(op, which) is not None else [])]
    n_t = len(sg.tensors)
    r = rng.random()
    if r < 0.15 and idx:
        new = idx[:-1]
    elif r < 0.25:
        new = idx + [int(rng.integers(-1, n_t))]
    elif idx:
        j = int(rng.integers(len(idx)))
        new = list(idx)
        new[j] = int(_pick(rng, [-1, -2, n_t, n_t + 100, int(rng.integers(n_t)), int(rng.integers(n_t))]))
    else:
        return None
    setattr(op, which, np.array(new, dtype=np.int32))
    return f"operator {k}.{which} {idx} -> {new}"


def mut_opcode(m, rng):
    sg = m.subgraphs[0]
    if rng.random() < 0.5:
        k = int(rng.integers(len(sg.operators)))
        old = sg.operators[k].opcodeIndex
        sg.operators[k].opcodeIndex = int(_pick(rng, [len(m.operatorCodes), len(m.operatorCodes) + 7,
                                                      int(rng.integers(len(m.operatorCodes)))]))
        return f"operator {k}.opcode_index {old} -> {sg.operators[k].opcodeIndex}"
    j = int(rng.integers(len(m.operatorCodes)))
    oc = m.operatorCodes[j]
    old = oc.builtinCode
    oc.builtinCode = int(_pick(rng, [0, 1, 3, 4, 9, 14, 17, 18, 22, 25, 28, 32, 34, 39, 40, 49, 60, 114, 117, 300]))
    oc.deprecatedBuiltinCode = min(oc.builtinCode, 127)
    return f"operator_codes[{j}].builtin_code {old} -> {oc.builtinCode}"


def mut_buffer(m, rng):
    sg = m.subgraphs[0]
    consts = [(i, t) for i, t in enumerate(sg.tensors)
              if 0 < t.buffer < len(m.buffers) and m.buffers[t.buffer].data is not None
              and len(m.buffers[t.buffer].data) > 0]
    r = rng.random()
    if r < 0.2 or not consts:
        i, t = _tensor(m, rng)
        old = t.buffer
        t.buffer = int(_pick(rng, [0, len(m.buffers), len(m.buffers) + 5, int(rng.integers(len(m.buffers)))]))
        return f"tensor {i} ({_tname(t)!r}).buffer {old} -> {t.buffer}"
    i, t = _pick(rng, consts)
    buf = m.buffers[t.buffer]
    data = np.array(buf.data, dtype=np.uint8)
    if r < 0.4:
        buf.data = data[: int(rng.integers(len(data)))]
        return f"buffer {t.buffer} of tensor {i} ({_tname(t)!r}): {len(data)} -> {len(buf.data)} bytes"
    if r < 0.5:
        buf.data = np.concatenate([data, np.zeros(int(_pick(rng, [1, 4, 64])), np.uint8)])
        return f"buffer {t.buffer} of tensor {i} ({_tname(t)!r}): {len(data)} -> {len(buf.data)} bytes"
    # values: int32 parameters (axes, paddings, perm, shapes, biases) get edge values, others random bytes
    if t.type == 2 and len(data) >= 4:
        v = data.view(np.int32).copy()
        k = int(rng.integers(len(v)))
        old = int(v[k])
        v[k] = int(_pick(rng, [-1, -2, 0, 1, 2, 3, 4, 5, 100, 65536, (1 << 31) - 1, -(1 << 31), old + 1]))
        buf.data = v.view(np.uint8)
        return f"buffer {t.buffer} of tensor {i} ({_tname(t)!r}): int32[{k}] {old} -> {int(v[k])}"
    k = int(rng.integers(len(data)))
    old = int(data[k])
    data[k] = int(rng.integers(256))
    buf.data = data
    return f"buffer {t.buffer} of tensor {i} ({_tname(t)!r}): byte {k} {old} -> {int(data[k])}"


def mut_graph_io(m, rng):
    sg = m.subgraphs[0]
    which = "inputs" if rng.random() < 0.5 else "outputs"
    idx = [int(x) for x in getattr(sg, which)]
    n_t = len(sg.tensors)
    r = rng.random()
    if r < 0.2:
        new = []
    elif r < 0.35:
        new = idx + [idx[0]]
    else:
        new = list(idx)
        new[int(rng.integers(len(idx)))] = int(_pick(rng, [-1, n_t, int(rng.integers(n_t)), int(rng.integers(n_t))]))
    setattr(sg, which, np.array(new, dtype=np.int32))
    return f"subgraph.{which} {idx} -> {new}"


def mut_op_order(m, rng):
    ops = m.subgraphs[0].operators
    if len(ops) < 2:
        return None
    a, b = (int(x) for x in rng.choice(len(ops), 2, replace=False))
    ops[a], ops[b] = ops[b], ops[a]
    return f"operators {a} and {b} swapped"


MUTATIONS = [
    (mut_shape, 4), (mut_type, 1), (mut_scale, 3), (mut_zero_point, 2), (mut_quant_dim, 1), (mut_options, 4),
    (mut_op_io, 3), (mut_opcode, 1), (mut_buffer, 3), (mut_graph_io, 1), (mut_op_order, 1),
]


def mutate(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    fns = [f for f, _ in MUTATIONS]
    p = np.array([w for _, w in MUTATIONS], dtype=float)
    p /= p.sum()
    for _ in range(20):
        m = unpack(data)
        f = fns[int(rng.choice(len(fns), p=p))]
        desc = f(m, rng)
        if desc is not None:
            try:
                return pack(m), f"{f.__name__}: {desc}"
            except Exception:  # noqa: BLE001 - the schema cannot encode this value (field range): try another
                continue
    raise RuntimeError("no applicable mutation")


# ---- small hand-built int8 models (no TensorFlow needed) ----

def build(tensors: list[dict], ops: list[tuple], inputs: list[int], outputs: list[int]) -> bytes:
    """tensors: dicts with name, shape, type ("int8"/"int32"), scale (float or list), zp, data, axis;
    ops: (BUILTIN_NAME, input indices, output indices, options object or None)."""
    S = schema()
    types = {"int8": S.TensorType.INT8, "int32": S.TensorType.INT32}
    m = S.ModelT()
    m.version, m.description = 3, b"tinyprune reader fuzz base"
    m.buffers = [S.BufferT()]
    m.operatorCodes, codes = [], {}
    sg = S.SubGraphT()
    sg.tensors, sg.operators, sg.inputs, sg.outputs = [], [], np.array(inputs, np.int32), np.array(outputs, np.int32)
    for spec in tensors:
        t = S.TensorT()
        t.name, t.shape, t.type = spec["name"].encode(), np.array(spec["shape"], np.int32), types[spec["type"]]
        t.buffer = 0
        if spec.get("data") is not None:
            b = S.BufferT()
            b.data = np.frombuffer(np.ascontiguousarray(spec["data"]).tobytes(), np.uint8)
            m.buffers.append(b)
            t.buffer = len(m.buffers) - 1
        if spec.get("scale") is not None:
            q = S.QuantizationParametersT()
            q.scale = np.atleast_1d(np.array(spec["scale"], np.float32))
            q.zeroPoint = np.atleast_1d(np.array(spec.get("zp", 0), np.int64))
            if len(q.zeroPoint) != len(q.scale):
                q.zeroPoint = np.repeat(q.zeroPoint, len(q.scale))
            q.quantizedDimension = spec.get("axis", 0)
            t.quantization = q
        sg.tensors.append(t)
    for name, ins, outs, opts in ops:
        if name not in codes:
            oc = S.OperatorCodeT()
            oc.builtinCode = getattr(S.BuiltinOperator, name)
            oc.deprecatedBuiltinCode, oc.version = min(oc.builtinCode, 127), 1
            codes[name] = len(m.operatorCodes)
            m.operatorCodes.append(oc)
        op = S.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = codes[name], np.array(ins, np.int32), np.array(outs, np.int32)
        if opts is not None:
            op.builtinOptionsType = getattr(S.BuiltinOptions, type(opts).__name__[:-1])
            op.builtinOptions = opts
        sg.operators.append(op)
    m.subgraphs = [sg]
    return pack(m)


def _opts(cls_name: str, **fields):
    o = getattr(schema(), cls_name)()
    for k, v in fields.items():
        setattr(o, k, v)
    return o


def tiny_conv_model(seed: int = 0) -> bytes:
    """input [1,6,6,2] -> CONV_2D 3x3 SAME (4 ch, per-channel, RELU) -> DEPTHWISE_CONV_2D 3x3 stride 2 VALID
    -> MAX_POOL_2D 2x2 -> RESHAPE [1,4] -> FULLY_CONNECTED (3) -> SOFTMAX."""
    rng = np.random.default_rng(seed)
    i8 = lambda shape: rng.integers(-127, 128, size=shape).astype(np.int8)  # noqa: E731
    i32 = lambda shape: rng.integers(-2000, 2000, size=shape).astype(np.int32)  # noqa: E731
    T = [
        dict(name="input", shape=[1, 6, 6, 2], type="int8", scale=0.05, zp=-3),                          # 0
        dict(name="conv/w", shape=[4, 3, 3, 2], type="int8", scale=[0.01, 0.02, 0.015, 0.03], zp=0,
             data=i8((4, 3, 3, 2)), axis=0),                                                               # 1
        dict(name="conv/b", shape=[4], type="int32", scale=[5e-4, 1e-3, 7.5e-4, 1.5e-3], zp=0, data=i32(4)),  # 2
        dict(name="conv", shape=[1, 6, 6, 4], type="int8", scale=0.1, zp=-128),                           # 3
        dict(name="dw/w", shape=[1, 3, 3, 4], type="int8", scale=[0.02, 0.01, 0.03, 0.02], zp=0,
             data=i8((1, 3, 3, 4)), axis=3),                                                               # 4
        dict(name="dw/b", shape=[4], type="int32", scale=[2e-3, 1e-3, 3e-3, 2e-3], zp=0, data=i32(4)),   # 5
        dict(name="dw", shape=[1, 2, 2, 4], type="int8", scale=0.2, zp=5),                                # 6
        dict(name="pool", shape=[1, 1, 1, 4], type="int8", scale=0.2, zp=5),                              # 7
        dict(name="flat/shape", shape=[2], type="int32", data=np.array([1, 4], np.int32)),               # 8
        dict(name="flat", shape=[1, 4], type="int8", scale=0.2, zp=5),                                    # 9
        dict(name="fc/w", shape=[3, 4], type="int8", scale=0.02, zp=0, data=i8((3, 4))),                 # 10
        dict(name="fc/b", shape=[3], type="int32", scale=0.004, zp=0, data=i32(3)),                      # 11
        dict(name="fc", shape=[1, 3], type="int8", scale=0.08, zp=2),                                     # 12
        dict(name="softmax", shape=[1, 3], type="int8", scale=1 / 256, zp=-128),                          # 13
    ]
    O = [
        ("CONV_2D", [0, 1, 2], [3], _opts("Conv2DOptionsT", padding=0, strideH=1, strideW=1, dilationHFactor=1,
                                          dilationWFactor=1, fusedActivationFunction=1)),
        ("DEPTHWISE_CONV_2D", [3, 4, 5], [6], _opts("DepthwiseConv2DOptionsT", padding=1, strideH=2, strideW=2,
                                                    depthMultiplier=1, dilationHFactor=1, dilationWFactor=1)),
        ("MAX_POOL_2D", [6], [7], _opts("Pool2DOptionsT", padding=1, strideH=2, strideW=2, filterHeight=2,
                                        filterWidth=2)),
        ("RESHAPE", [7, 8], [9], None),
        ("FULLY_CONNECTED", [9, 10, 11], [12], _opts("FullyConnectedOptionsT")),
        ("SOFTMAX", [12], [13], _opts("SoftmaxOptionsT", beta=1.0)),
    ]
    return build(T, O, [0], [13])


def tiny_layout_model(seed: int = 0) -> bytes:
    """input [1,4,4,3] -> PAD 1 -> AVERAGE_POOL_2D 3x3 VALID -> ADD(input) -> CONCATENATION(input, axis 3)
    -> TRANSPOSE [0,2,1,3] -> MUL(const) -> MEAN over [1,2] (keep dims) -> LOGISTIC."""
    rng = np.random.default_rng(seed)
    T = [
        dict(name="input", shape=[1, 4, 4, 3], type="int8", scale=0.04, zp=1),                            # 0
        dict(name="pad/p", shape=[4, 2], type="int32", data=np.array([[0, 0], [1, 1], [1, 1], [0, 0]], np.int32)),
        dict(name="pad", shape=[1, 6, 6, 3], type="int8", scale=0.04, zp=1),                              # 2
        dict(name="avg", shape=[1, 4, 4, 3], type="int8", scale=0.04, zp=1),                              # 3
        dict(name="add", shape=[1, 4, 4, 3], type="int8", scale=0.04, zp=1),                              # 4
        dict(name="cat", shape=[1, 4, 4, 6], type="int8", scale=0.04, zp=1),                              # 5
        dict(name="perm", shape=[4], type="int32", data=np.array([0, 2, 1, 3], np.int32)),               # 6
        dict(name="tr", shape=[1, 4, 4, 6], type="int8", scale=0.04, zp=1),                               # 7
        dict(name="mul/c", shape=[1, 1, 1, 6], type="int8", scale=0.01, zp=0,
             data=rng.integers(-127, 128, size=(1, 1, 1, 6)).astype(np.int8)),                             # 8
        dict(name="mul", shape=[1, 4, 4, 6], type="int8", scale=0.02, zp=3),                              # 9
        dict(name="axes", shape=[2], type="int32", data=np.array([1, 2], np.int32)),                     # 10
        dict(name="mean", shape=[1, 1, 1, 6], type="int8", scale=0.015, zp=-1),                           # 11
        dict(name="sigmoid", shape=[1, 1, 1, 6], type="int8", scale=1 / 256, zp=-128),                   # 12
    ]
    O = [
        ("PAD", [0, 1], [2], _opts("PadOptionsT")),
        ("AVERAGE_POOL_2D", [2], [3], _opts("Pool2DOptionsT", padding=1, strideH=1, strideW=1, filterHeight=3,
                                            filterWidth=3)),
        ("ADD", [0, 3], [4], _opts("AddOptionsT")),
        ("CONCATENATION", [4, 0], [5], _opts("ConcatenationOptionsT", axis=3)),
        ("TRANSPOSE", [5, 6], [7], _opts("TransposeOptionsT")),
        ("MUL", [7, 8], [9], _opts("MulOptionsT")),
        ("MEAN", [9, 10], [11], _opts("ReducerOptionsT", keepDims=True)),
        ("LOGISTIC", [11], [12], None),
    ]
    return build(T, O, [0], [12])


# ---- running mutants in a child process ----

def _child(conn, kernels_dir: str, san_flags: list[str], work: str):
    work = Path(work)
    state: dict = {"kernels_dir": Path(kernels_dir), "san_flags": san_flags, "lib": None, "work": work}
    while True:
        msg = conn.recv()
        if msg is None:
            return
        data, full, n = msg
        d = work / f"m{n}"
        try:
            _one(conn, state, d, data, full, n)
        finally:
            shutil.rmtree(d, ignore_errors=True)


def _one(conn, state: dict, d: Path, data: bytes, full: bool, n: int) -> None:
    """Send {"stage": ...} after read + generate, then (``full``, accepted) {"check": ...}."""
    from tinyprune.codegen import check as C
    from tinyprune.codegen.generate import generate
    from tinyprune.codegen.tflite_reader import read_model
    from tinyprune.errors import TinypruneError
    d.mkdir(parents=True, exist_ok=True)
    path = d / "model.tflite"
    path.write_bytes(data)
    try:
        generate(path, d / "out", tflm_arena=False)
        model = read_model(path)
    except TinypruneError as e:
        conn.send({"stage": "refused", "exit": e.exit_code, "message": str(e).splitlines()[0]})
        return
    except BaseException:  # noqa: BLE001 - the point: anything else is a tinyprune bug
        conn.send({"stage": "internal", "traceback": traceback.format_exc()[-3000:]})
        return
    conn.send({"stage": "accepted"})
    if not full:
        return
    try:
        inputs = C.load_inputs(model, random=3, seed=n)
        try:
            ref = C.tflm_outputs(model, inputs)
        except Exception as e:  # noqa: BLE001 - TFLite Micro refusing the model too is fine
            conn.send({"check": "tflm-refused", "message": f"{type(e).__name__}: {e}"[:500]})
            return
        if state["lib"] is None:
            state["lib"] = C.compile_kernels(state["kernels_dir"], state["work"] / "kernels-san", state["san_flags"])
        try:
            exe = C.compile_runner(d / "out", "model", d / "san", state["san_flags"], kernels_lib=state["lib"])
        except TinypruneError as e:
            conn.send({"check": "build", "message": str(e)[-2000:]})
            return
        g = model.graph
        try:
            ours = C.run_runner(exe, inputs, [g.tensors[t].nbytes for t in g.outputs], d / "san", timeout=60)
        except TinypruneError as e:
            conn.send({"check": "sanitizer", "message": str(e)[-2000:]})
            return
        bad = sum(int(np.count_nonzero(o != r.reshape(len(r), -1))) for o, r in zip(ours, ref))
        res = {"check": "bit-exact" if bad == 0 else "mismatch", "message": f"{bad} elements differ"}
    except BaseException:  # noqa: BLE001
        res = {"check": "internal", "message": traceback.format_exc()[-3000:]}
    conn.send(res)


class Worker:
    """One child process running mutants; restarted after a hang (killed) or a crash."""

    def __init__(self, work: Path, kernels_dir: Path, san_flags: list[str]):
        self.work, self.kernels_dir, self.san_flags = work, kernels_dir, san_flags
        self.proc = None
        self.n = 0

    def _start(self):
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_child, args=(child, str(self.kernels_dir), self.san_flags, str(self.work)),
                                daemon=True)
        self.proc.start()

    def _recv(self, timeout: float):
        if not self.conn.poll(timeout):
            self.proc.kill()
            self.proc.join()
            self.proc = None
            return None, "hang"
        try:
            return self.conn.recv(), None
        except (EOFError, OSError):
            self.proc.join()
            code = self.proc.exitcode
            self.proc = None
            return None, f"crash (exit {code})"

    def run(self, data: bytes, full: bool, timeout: float = 30.0, check_timeout: float = 300.0) -> dict:
        if self.proc is None or not self.proc.is_alive():
            self._start()
        self.n += 1
        self.conn.send((data, full, self.n))
        first, err = self._recv(timeout if self.n > 1 else timeout + 60)  # the first one imports numpy etc.
        if err:
            return {"stage": "hang" if err == "hang" else "crash", "message": err}
        if first["stage"] != "accepted" or not full:
            return first
        second, err = self._recv(check_timeout)
        if err:
            return {"stage": "accepted", "check": "hang" if err == "hang" else "crash", "message": err}
        return {**first, **second}

    def close(self):
        if self.proc is not None and self.proc.is_alive():
            self.conn.send(None)
            self.proc.join(10)
            if self.proc.is_alive():
                self.proc.kill()
