"""Load the user's model: a PyTorch factory (``file.py:factory`` / ``pkg.module:factory``) with an
optional state_dict, an ``.onnx`` file, or ``example``. Also finds the model's input shape, and tells
which form a model argument is (``model_format``: Keras, SavedModel and .tflite files included; those
are loaded by tf_source.py).

May import torch, onnx, tinyprune.errors, tinyprune._tflite_kind, tinyprune.example; never TensorFlow
(kept cheap).
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

from tinyprune.errors import UserInputError


def is_onnx_spec(spec) -> bool:
    return str(spec).lower().endswith(".onnx")


KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
TF_FORMATS = ("keras", "savedmodel", "tflite-float")


def model_format(spec) -> str:
    """What a model argument is: ``example``, ``pytorch`` (a factory or an nn.Module), ``onnx``, ``keras``
    (.keras/.h5/.hdf5), ``savedmodel`` (a directory with saved_model.pb), ``tflite`` (a full-integer
    int8 .tflite, used as it is) or ``tflite-float`` (a float .tflite, quantized like the others).
    A .tflite quantized another way (int16 16x8, dynamic-range, ...) is refused here, naming what it is."""
    if not isinstance(spec, (str, os.PathLike)):
        return "pytorch"
    s = str(spec)
    low = s.lower()
    if s == "example":
        return "example"
    if low.endswith(".onnx"):
        return "onnx"
    if low.endswith(KERAS_SUFFIXES):
        return "keras"
    p = Path(s)
    if p.is_dir():
        if (p / "saved_model.pb").is_file() or (p / "saved_model.pbtxt").is_file():
            return "savedmodel"
        raise UserInputError(f"model {s} is a directory but not a TensorFlow SavedModel (no saved_model.pb in it)",
                             hint="pass a SavedModel directory (model.export(DIR) / tf.saved_model.save), a model "
                                  "file (.keras, .h5, .tflite, .onnx) or file.py:factory")
    if low.endswith(".tflite"):
        return tflite_format(p)
    return "pytorch"


def tflite_format(p: Path) -> str:
    """``tflite`` (int8) or ``tflite-float``; UserInputError for other quantizations. A file that cannot
    be read or parsed is left to the stage that reads it (``tflite``: its reader names the problem)."""
    from tinyprune._tflite_kind import DESCRIPTION, tflite_kind
    try:
        flat = p.read_bytes()
        kind = tflite_kind(flat) if flat[4:8] == b"TFL3" else "int8"
    except Exception:  # noqa: BLE001 - unreadable or corrupt: the int8 reader says which
        return "tflite"
    if kind == "float":
        return "tflite-float"
    if kind in ("int8", "unknown"):
        return "tflite"
    raise UserInputError(f"{p} is {DESCRIPTION[kind]}; tinyprune's kernels take full-integer int8 models",
                         hint="quantize the float model to int8 on your data instead: `tinyprune convert FLOAT_MODEL "
                              "--data CALIB.npz -o OUT` (a float .tflite, .keras/.h5, SavedModel, PyTorch or ONNX "
                              "model), or `tinyprune build FLOAT_MODEL --data CALIB.npz`")


def load_torch_model(spec: str, weights: str | os.PathLike | None = None):
    """Build the nn.Module named by ``spec`` and load ``weights`` (a state_dict .pt) if given.

    ``spec``: ``example`` | ``path/to/file.py:factory`` | ``pkg.module:factory``. The factory is
    called without arguments. Returns the module in eval mode."""
    from torch import nn

    spec = str(spec)
    if spec == "example":
        from tinyprune.example import build_model, load_example
        model = load_example() if weights is None else build_model()
    else:
        factory = _resolve_factory(spec)
        try:
            model = factory()
        except Exception as e:  # noqa: BLE001 - user code
            raise UserInputError(f"calling the model factory {spec}() failed: {type(e).__name__}: {e}",
                                 hint="the factory must take no arguments and return a torch.nn.Module") from e
        if not isinstance(model, nn.Module):
            raise UserInputError(f"{spec}() returned {type(model).__name__}, not a torch.nn.Module",
                                 hint="the factory must return the model (an nn.Module)")
    if weights is not None:
        load_weights(model, weights)
    return model.eval()


def _resolve_factory(spec: str):
    if ":" not in spec and spec.lower().endswith((".pt", ".pth", ".ckpt")):
        raise UserInputError(f"model {spec!r} is a weights file; tinyprune needs the model's code to rebuild it",
                             hint=f"pass the factory and the weights: path/to/model.py:make_model --weights {spec}")
    if ":" not in spec:
        raise UserInputError(f"model {spec!r} is not a known form",
                             hint="use `example`, a .onnx file, `path/to/file.py:factory` or `pkg.module:factory`")
    where, _, attr = spec.rpartition(":")
    if not where or not attr.isidentifier():
        raise UserInputError(f"model {spec!r}: expected MODULE:FACTORY with a Python name after the colon")
    if where.endswith(".py") or os.sep in where or "/" in where:
        path = Path(where)
        if not path.is_file():
            raise UserInputError(f"model file not found: {path}", hint="check the path before the ':'")
        mod_name = _user_module_name(path)
        try:
            module_spec = importlib.util.spec_from_file_location(mod_name, path)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[mod_name] = module
            sys.path.insert(0, str(path.resolve().parent))
            try:
                module_spec.loader.exec_module(module)
            finally:
                sys.path.remove(str(path.resolve().parent))
        except Exception as e:  # noqa: BLE001 - user code
            sys.modules.pop(mod_name, None)
            raise UserInputError(f"importing {path} failed: {type(e).__name__}: {e}",
                                 hint="fix the model file so that `python {path}` runs") from e
    else:
        try:
            module = importlib.import_module(where)
        except ModuleNotFoundError as e:
            raise UserInputError(f"model module {where!r} not found ({e})",
                                 hint="install the package or pass the file path instead: path/to/file.py:factory"
                                 ) from None
        except Exception as e:  # noqa: BLE001 - user code
            raise UserInputError(f"importing {where} failed: {type(e).__name__}: {e}") from e
    factory = getattr(module, attr, None)
    if factory is None:
        import inspect
        own = [n for n, v in vars(module).items() if not n.startswith("_") and inspect.isfunction(v)
               and getattr(v, "__module__", None) == module.__name__]
        raise UserInputError(f"{where} has no factory named {attr!r}",
                             hint=f"functions defined there: {', '.join(sorted(own)[:12]) or 'none'}")
    if not callable(factory):
        raise UserInputError(f"{where}:{attr} is not callable", hint="name a function or class returning an nn.Module")
    return factory


WEIGHTS_HINT = "save the weights with torch.save(model.state_dict(), path)"
ZIP_MAGIC, PICKLE_PROTO = b"PK\x03\x04", 0x80   # torch.save: a zip archive; before PyTorch 1.6: a pickle


def load_weights(model, weights) -> None:
    """Load a state_dict (a file or, from the Python API, the dict itself; or a dict holding one under
    'state_dict'/'model') into ``model``.

    Every problem is a UserInputError (exit code 2) naming the file: not a checkpoint (random bytes,
    truncated), a pickled whole model instead of a state_dict, keys or shapes that do not match the
    model (the first few are named), NaN/inf weights."""
    import torch

    if isinstance(weights, dict):           # the Python API: a state_dict object
        p, state = "the state_dict", weights
    else:
        p = Path(weights)
        if not p.is_file():
            raise UserInputError(f"weights file not found: {p}" if not p.exists() else f"weights {p} is a directory",
                                 hint=WEIGHTS_HINT)
        state = _read_checkpoint(p)
    if isinstance(state, dict) and not any(isinstance(v, torch.Tensor) for v in state.values()):
        for key in ("state_dict", "model"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict):
        raise UserInputError(f"{p} holds a {type(state).__name__}, not a state_dict", hint=WEIGHTS_HINT)
    problem = _state_dict_mismatch(model.state_dict(), state)
    if problem:
        raise UserInputError(f"{p} does not match the model: {problem}",
                             hint="the checkpoint must come from the same architecture (same factory and arguments)")
    for k, v in state.items():
        if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise UserInputError(f"{p}: weight {k!r} has {int((~torch.isfinite(v)).sum())} NaN or infinite "
                                 "value(s)", hint="the training diverged; use a checkpoint from before that")
    try:
        model.load_state_dict(state)
    except RuntimeError as e:   # what _state_dict_mismatch does not foresee (e.g. a custom _load_from_state_dict)
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        raise UserInputError(f"{p} does not match the model: {' '.join(lines[1:3])[:300]}",
                             hint="the checkpoint must come from the same architecture") from None


def _read_checkpoint(p: Path):
    import pickle
    import warnings

    import torch

    with open(p, "rb") as f:
        head = f.read(4)
    if not head:
        raise UserInputError(f"{p} is empty, not a PyTorch checkpoint", hint=WEIGHTS_HINT)
    if head != ZIP_MAGIC and head[0] != PICKLE_PROTO:
        raise UserInputError(f"{p} is not a PyTorch checkpoint (torch.save writes a zip archive; this file starts "
                             f"with bytes {head.hex(' ')})", hint=WEIGHTS_HINT)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        glob = next((ln.split("GLOBAL", 1)[1].split()[0] for ln in str(e).splitlines() if "GLOBAL " in ln), None)
        if glob:
            raise UserInputError(f"{p} holds pickled Python objects ({glob}), not a state_dict of tensors "
                                 "(a whole model saved with torch.save(model)?)",
                                 hint="tinyprune loads only tensors; " + WEIGHTS_HINT) from None
        raise UserInputError(f"{p} is not a readable PyTorch checkpoint (corrupt or truncated?)",
                             hint=WEIGHTS_HINT) from None
    except Exception as e:  # noqa: BLE001 - a damaged file makes torch.load raise almost anything
        first = (str(e).strip().splitlines() or [""])[0][:120]
        raise UserInputError(f"{p} is not a readable PyTorch checkpoint (corrupt or truncated?): "
                             f"{type(e).__name__}{': ' + first if first else ''}", hint=WEIGHTS_HINT) from None


def _state_dict_mismatch(want: dict, got: dict, show: int = 3) -> str:
    """'' when ``got`` fits ``want`` key for key and shape for shape, else what differs (first keys)."""
    import torch

    def names(keys):
        keys = list(keys)
        return ", ".join(keys[:show]) + (f" and {len(keys) - show} more" if len(keys) > show else "")

    bad_type = [k for k, v in got.items() if not isinstance(v, torch.Tensor)
                and (k not in want or isinstance(want[k], torch.Tensor))]   # (extra state may be anything)
    if bad_type:
        return f"{len(bad_type)} entr(ies) are not tensors: {names(bad_type)}"
    missing = [k for k in want if k not in got]
    unexpected = [k for k in got if k not in want]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing key(s): {names(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s): {names(unexpected)}")
    if missing and unexpected and all(k.startswith("module.") for k in unexpected):
        parts.append("(the file's keys start with 'module.': saved from a DataParallel wrapper; save "
                     "model.module.state_dict())")
    shapes = [f"{k} is {tuple(got[k].shape)} in the file, {tuple(v.shape)} in the model"
              for k, v in want.items() if k in got and isinstance(v, torch.Tensor)
              and tuple(got[k].shape) != tuple(v.shape)]
    if shapes:
        parts.append(f"{len(shapes)} shape mismatch(es): " + "; ".join(shapes[:show]))
    return "; ".join(parts)


def torch_input_shape(model, spec: str, input_shape=None, data=None) -> tuple[int, ...]:
    """The batch-1 input shape. ``input_shape`` (--input-shape) wins over what the model declares (its
    ``input_shape`` attribute, else ``INPUT_SHAPE`` in the factory's module -- the file of
    ``file.py:factory`` -- else in the module of the model's class); without it, the samples of
    ``data`` (an .npz path or a Dataset) give the shape. The data's samples must have the shape used:
    every disagreement is an error naming the sources."""
    from tinyprune.data import input_shape_of_data
    declared: tuple[str, tuple[int, ...]] | None = None
    attr = getattr(model, "input_shape", None)
    if attr is not None:
        declared = ("the model's input_shape attribute", _shape_from(attr, "the model's input_shape"))
    else:
        for owner, label in ((_factory_module(spec), "the factory's module"),
                             (sys.modules.get(type(model).__module__), "the model class's module")):
            shape = getattr(owner, "INPUT_SHAPE", None) if owner is not None else None
            if shape is not None:
                declared = (f"INPUT_SHAPE in {label} ({owner.__name__})", _shape_from(shape, "INPUT_SHAPE"))
                break
    d = input_shape_of_data(data)
    found = [("--input-shape", normalise_shape(input_shape))] if input_shape is not None else []
    found += [(f"the samples of --data {getattr(data, 'name', None) or data}", d)] if d is not None else []
    if input_shape is None and declared is not None:
        found.append(declared)
    if not found and str(spec) == "example":
        from tinyprune.example import INPUT_SHAPE
        return INPUT_SHAPE
    if not found:
        raise UserInputError(f"the input shape of {spec or type(model).__name__} is unknown",
                             hint="pass --input-shape 1,C,H,W (or 1,C,L for 1-D models), give --data an .npz of "
                                  "samples, or set input_shape on the model")
    if len({s for _, s in found}) > 1:
        raise UserInputError("the input shape is given differently by " +
                             "; ".join(f"{src}: {s}" for src, s in found),
                             hint="make them agree (data samples are (N, C, H, W) in PyTorch layout); "
                                  "--input-shape overrides what the model declares")
    return found[0][1]


def _shape_from(shape, what: str) -> tuple[int, ...]:
    try:
        return normalise_shape(shape)
    except UserInputError as e:
        raise UserInputError(f"{what}: {e.message}", hint=e.hint) from None


def _factory_module(spec: str):
    """The module a ``file.py:factory`` or ``pkg.module:factory`` spec was loaded from (or None)."""
    where = str(spec).rpartition(":")[0]
    if not where:
        return None
    if where.endswith(".py") or os.sep in where or "/" in where:
        return sys.modules.get(_user_module_name(Path(where)))
    return sys.modules.get(where)


def _user_module_name(path: Path) -> str:
    """The module name a ``file.py:factory`` file is imported under: the file's stem (``model.py`` ->
    ``model``), so that a pickled model (``pruned_model.pt``) loads in a new process that can import the
    file as usual (its folder on sys.path). Only when that name already means another module (``test.py``,
    ``torch.py``, ...) a stable name derived from the path is used instead."""
    import hashlib
    import keyword
    stem, real = path.stem, path.resolve()
    if stem.isidentifier() and not keyword.iskeyword(stem):
        loaded = sys.modules.get(stem)
        if loaded is not None:
            if Path(getattr(loaded, "__file__", None) or "").resolve() == real:
                return stem
        else:
            try:
                found = importlib.util.find_spec(stem)
            except (ImportError, ValueError):
                found = None
            if found is None or (found.origin and Path(found.origin).resolve() == real):
                return stem
    return "_tinyprune_user_" + hashlib.sha1(str(real).encode()).hexdigest()[:16]


def normalise_shape(shape) -> tuple[int, ...]:
    if isinstance(shape, str):
        try:
            shape = [int(s) for s in shape.replace("x", ",").split(",") if s.strip()]
        except ValueError:
            raise UserInputError(f"input shape {shape!r} is not a list of integers",
                                 hint="e.g. --input-shape 1,1,16,16") from None
    s = tuple(int(d) for d in shape)
    if len(s) not in (3, 4) or s[0] != 1 or min(s) < 1:
        raise UserInputError(f"input shape {tuple(shape)} is not (1, C, H, W) or (1, C, L)",
                             hint="the int8 path takes one input with batch 1, e.g. --input-shape 1,1,16,16")
    return s
