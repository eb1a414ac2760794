"""The conversion stage: model (PyTorch factory, .onnx, or the example) -> model.onnx,
model_int8.tflite and convert.json in OUT, written atomically; a Keras file, a SavedModel or a float
.tflite -> model_int8.tflite and convert.json (tf_source.py), with the same data, evaluation and report. Everything the conversion writes
elsewhere (TensorFlow autograph's ``__autograph_generated_file*.py``, the ONNX export, onnx2tf's
saved_model folders) goes into one private temporary folder that is removed when it ends.

May import every tinyprune.convert module, tinyprune.data, tinyprune.example, tinyprune.errors and
tinyprune._fs; no later stage (prune/codegen/...) may be imported from here.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

from tinyprune._fs import atomic_output_dir, sha256_file, write_json
from tinyprune.convert import loader, onnx_utils
from tinyprune.convert.tflite_int8 import (evaluate_tflite, io_details, natural_perm, onnx_to_int8_tflite,
                                           to_channels_last, tflite_ops, top1, top1_agreement)
from tinyprune.errors import TinypruneError, UserInputError

DEFAULT_CALIB_SAMPLES = 200
DEFAULT_MAX_INT8_DROP = 1.0     # points of accuracy (or of top-1 agreement) int8 may lose before layers are diagnosed
TORCH_ORT_CHECK_SAMPLES = 16
ONNX_NAME, TFLITE_NAME, REPORT_NAME = "model.onnx", "model_int8.tflite", "convert.json"


@dataclass
class ConvertResult:
    out_dir: Path
    onnx_path: Path | None                # None for Keras / SavedModel / float .tflite inputs
    tflite_path: Path
    report_path: Path
    report: dict = field(default_factory=dict)

    @property
    def agreement(self) -> float:
        return self.report["evaluation"]["top1_agreement"]


def _versions() -> dict:
    out = {}
    for pkg in ("tinyprune", "torch", "onnx", "onnxruntime", "onnx2tf", "tensorflow", "keras", "tf-keras",
                "tflite-micro"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


@contextlib.contextmanager
def private_tempdir(prefix: str = "tinyprune-convert-"):
    """Point ``tempfile`` (and TMPDIR, for child processes) at a fresh folder while the block runs,
    then delete it and restore both. TensorFlow's autograph writes ``__autograph_generated_file*.py``
    into ``tempfile.gettempdir()`` and would remove them only when the interpreter exits."""
    work = tempfile.mkdtemp(prefix=prefix)
    saved_dir, saved_env = tempfile.tempdir, os.environ.get("TMPDIR")
    tempfile.tempdir = os.environ["TMPDIR"] = work
    try:
        yield Path(work)
    finally:
        tempfile.tempdir = saved_dir
        if saved_env is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved_env
        shutil.rmtree(work, ignore_errors=True)


def convert(model, out_dir: str | os.PathLike, *, data=None, weights=None, input_shape=None,
            calib_samples: int = DEFAULT_CALIB_SAMPLES, max_int8_drop: float = DEFAULT_MAX_INT8_DROP,
            equalize: bool = False, bias_correction: bool = False, debug: bool = False) -> ConvertResult:
    """Convert ``model`` to a full-integer int8 TFLite model calibrated on ``data``.

    ``model``: ``"example"``, ``"path/file.py:factory"``, ``"pkg.module:factory"``, a path to an
    ``.onnx`` file, a Keras ``.keras``/``.h5`` file, a SavedModel directory, a float ``.tflite``, or an ``nn.Module`` (its ``input_shape`` attribute or ``input_shape=`` gives the
    shape). ``data``: ``"digits"`` (default), an ``.npz`` path, a tinyprune.data.Dataset, (x, y) NumPy
    arrays or a torch Dataset/DataLoader (tinyprune.data.as_dataset); given data's labels must fit the
    model's outputs (digits: exactly 10). ``weights``: a state_dict (or a file holding one) for a PyTorch model.
    ``calib_samples``: training samples used to calibrate (all of them when fewer). When int8 loses more than
    ``max_int8_drop`` points of accuracy (of top-1 agreement without labelled ``data``), the per-layer
    float-vs-int8 error is measured (report["diagnostics"]). ``equalize`` / ``bias_correction``: cross-layer
    equalization / bias correction on the PyTorch model before export (tinyprune.convert.fixes). Writes
    model.onnx, model_int8.tflite and convert.json into ``out_dir``; on any error nothing is left behind."""
    from tinyprune.data import as_dataset, check_classes

    data = as_dataset(data)
    if calib_samples < 1:
        raise UserInputError(f"--calib-samples must be at least 1 (got {calib_samples})")
    if not 0 <= max_int8_drop <= 100:
        raise UserInputError(f"--max-int8-drop {max_int8_drop}: expected points of accuracy from 0 to 100 (e.g. 1)")
    spec = model if isinstance(model, (str, os.PathLike)) else None
    if spec is None and not callable(getattr(model, "state_dict", None)):
        raise UserInputError(f"cannot convert a {type(model).__name__}",
                             hint="pass a torch nn.Module, 'example', 'file.py:factory', 'pkg.module:factory' "
                                  "or an .onnx path")
    source = {"model": str(spec) if spec is not None else type(model).__name__,
              "weights": None if weights is None else str(weights) if isinstance(weights, (str, os.PathLike))
              else "state_dict"}
    fmt = loader.model_format(spec) if spec is not None else "pytorch"
    if fmt in loader.TF_FORMATS:
        if weights is not None:
            raise UserInputError(f"--weights applies to PyTorch models; a {fmt} model already holds its weights")
        if equalize or bias_correction:
            raise UserInputError(f"--{'equalize' if equalize else 'bias-correction'} changes the PyTorch model before "
                                 f"export; a {fmt} model is converted by TensorFlow's converter as it is",
                                 hint="drop the option")
        return _convert_tf(spec, fmt, out_dir, data, input_shape, calib_samples, debug, source, max_int8_drop)
    if fmt == "tflite" and not Path(spec).is_file():
        raise UserInputError(f"model file not found: {spec}")
    if fmt == "tflite":
        raise UserInputError(f"{spec} is already a full-integer int8 TFLite model: there is nothing to convert",
                             hint="give it to `tinyprune build` or `tinyprune codegen` as it is")
    module = onnx_model = None
    if fmt == "onnx":
        if equalize or bias_correction:
            raise UserInputError(f"--{'equalize' if equalize else 'bias-correction'} changes the PyTorch model before "
                                 "export; an .onnx file has none",
                                 hint="convert the PyTorch model (file.py:factory) to use it, or drop the option")
        if weights is not None:
            raise UserInputError("--weights applies to PyTorch models; an .onnx file already holds its weights")
        onnx_model = onnx_utils.load_onnx(spec)
        shape = onnx_utils.input_shape_of(onnx_model)
        if input_shape is not None and loader.normalise_shape(input_shape) != shape:
            raise UserInputError(f"--input-shape {loader.normalise_shape(input_shape)} differs from the ONNX "
                                 f"model's input {shape}", hint="omit --input-shape for .onnx models")
        source["kind"] = "onnx"
    else:
        if spec is not None:
            module = loader.load_torch_model(str(spec), weights)
            source["kind"] = "example" if str(spec) == "example" else "pytorch"
        else:
            module = model.eval()
            if weights is not None:
                loader.load_weights(module, weights)
            source["kind"] = "pytorch"
        shape = loader.torch_input_shape(module, str(spec or ""), input_shape, data)

    ds, data_name = _dataset(data, shape)

    fixes = {"equalize": {"applied": False, "asked": False}, "bias_correction": {"applied": False, "asked": False}}
    with private_tempdir(), atomic_output_dir(out_dir, REPORT_NAME) as tmp:
        onnx_path = tmp / ONNX_NAME
        if module is not None:
            import torch
            try:
                with torch.no_grad():
                    module(torch.zeros(shape))
            except Exception as e:  # noqa: BLE001 - user code
                msg = " ".join(str(e).split())[:300]
                raise UserInputError(f"the model does not run on an input of shape {shape}: {type(e).__name__}: "
                                     f"{msg}", hint="pass the model's input shape with --input-shape 1,C,H,W "
                                                    "(PyTorch layout, batch 1)") from e
            fixes = _apply_fixes(module, shape, ds, calib_samples, equalize, bias_correction)
            module = fixes.pop("module")
            with tempfile.TemporaryDirectory(prefix="tinyprune-export-") as work:
                raw = onnx_utils.export_onnx(module, torch.zeros(shape), Path(work) / "raw.onnx", debug=debug)
                onnx_model = onnx_utils.load_onnx(raw)
        onnx_utils.input_shape_of(onnx_model)
        onnx_model = onnx_utils.sanitize_node_names(onnx_utils.explicit_max_pool_padding(
            onnx_utils.hardsigmoid_as_relu6(onnx_utils.fuse_hardswish(onnx_utils.simplify(onnx_model)))))
        onnx_ops = onnx_utils.check_supported_ops(onnx_model)
        onnx_path.write_bytes(onnx_model.SerializeToString())
        session = onnx_utils.ort_session(onnx_model)
        float_out = onnx_utils.ort_run(session, ds.x_test)
        if data is not None and ds.labelled:    # the default digits only calibrates; given data must be this model's
            check_classes(ds, int(np.prod(float_out.shape[1:])), data_name)

        torch_ort_err = None
        if module is not None:
            import torch
            xs = ds.x_test[:TORCH_ORT_CHECK_SAMPLES]
            with torch.no_grad():   # one sample at a time: models may hard-code batch 1
                ref = np.concatenate([module(torch.from_numpy(xs[i:i + 1])).numpy() for i in range(len(xs))])
            got = onnx_utils.ort_run(session, xs)
            torch_ort_err = float(np.abs(ref - got).max())
            if torch_ort_err > 1e-4 * max(1.0, float(np.abs(ref).max())):
                raise TinypruneError(f"the exported ONNX model disagrees with PyTorch (max abs error "
                                     f"{torch_ort_err:.3g}); the export is wrong",
                                     hint="re-run with --debug and report it")

        calib = to_channels_last(ds.x_train[:calib_samples])
        conv = onnx_to_int8_tflite(onnx_path, calib, tmp / TFLITE_NAME, debug=debug)
        flat = conv.path.read_bytes()

        report = {
            "source": source,
            **_int8_report(conv.path, flat, shape, ds, data_name, len(calib), float_out,
                           labelled=data is not None and ds.labelled, max_int8_drop=max_int8_drop),
            "onnx": {"opset": max((o.version for o in onnx_model.opset_import if o.domain in ("", "ai.onnx")),
                                  default=None),
                     "operators": onnx_ops, "torch_vs_onnxruntime_max_abs_err": torch_ort_err,
                     "sha256": sha256_file(onnx_path)},
            "fixes": fixes,
        }
        report["tflite"].update(input_transpose=conv.input_transpose, onnx2tf_input_layout=conv.tf_input_layout,
                                float_tf_vs_onnx_max_abs_err=conv.float_tf_max_abs_err, notes=conv.notes)
        report["diagnostics"] = diagnose(onnx_model, flat, ds.x_test, report["evaluation"], max_int8_drop)
        report["versions"] = _versions()
        write_json(tmp / REPORT_NAME, report)
    out = Path(out_dir)
    return ConvertResult(out, out / ONNX_NAME, out / TFLITE_NAME, out / REPORT_NAME, report)


def _dataset(data, shape):
    """The Dataset for a model taking ``shape`` (PyTorch layout, batch 1), and its name."""
    from tinyprune.data import Dataset, load_dataset
    if isinstance(data, Dataset):
        ds = data
        if tuple(ds.x_train.shape[1:]) != shape[1:]:
            raise UserInputError(f"data samples have shape {tuple(ds.x_train.shape[1:])} but the model expects "
                                 f"{shape[1:]}")
    else:
        ds = load_dataset(data if data is not None else "digits", shape)
    return ds, ds.name or str(data)


def _int8_report(path: Path, flat: bytes, shape, ds, data_name: str, calibration: int, float_out, *,
                 labelled: bool, max_int8_drop: float) -> dict:
    """convert.json's input/output/tflite/data/evaluation parts, the same for every input form: the int8
    model run by TFLite Micro on the held-out samples against the float model's outputs (PyTorch layout)."""
    float_pred = top1(float_out, 1)
    q = evaluate_tflite(path, ds.x_test, ds.y_test if ds.labelled else None)
    det = io_details(flat)
    evaluation = {"interpreter": "tflite_micro",
                  "float_accuracy": float((float_pred == ds.y_test).mean())
                  if float_pred.ndim == 1 and ds.labelled else None,
                  "int8_accuracy": q.get("accuracy"), "top1_agreement": top1_agreement(float_out, q["output"]),
                  "samples": int(len(ds.x_test)), "held_out_samples": int(len(ds.x_test))}
    evaluation |= int8_loss(evaluation, labelled=labelled, max_drop=max_int8_drop)
    return {
        "input": {"pytorch_shape": list(shape), "shape": det["input"]["shape"], "dtype": det["input"]["dtype"],
                  "scale": det["input"]["scale"], "zero_point": det["input"]["zero_point"],
                  "layout": {4: "NCHW->NHWC", 3: "NCL->NLC"}.get(len(shape), "none"),
                  "permutation": list(natural_perm(len(shape))),
                  "feed": "x_int8 = clip(round(x.transpose(perm) / scale) + zero_point, -128, 127)"},
        "output": {"shape": det["output"]["shape"], "dtype": det["output"]["dtype"],
                   "scale": det["output"]["scale"], "zero_point": det["output"]["zero_point"],
                   "dequantize": "y = (y_int8 - zero_point) * scale"},
        "tflite": {"operators": tflite_ops(flat), "bytes": len(flat), "sha256": sha256_file(path),
                   "weights": "int8 per-channel", "biases": "int32", "notes": []},
        "data": {"dataset": data_name, "classes": ds.classes, "calibration_samples": int(calibration),
                 "train_samples": int(len(ds.x_train)), "test_samples": int(len(ds.x_test))},
        "evaluation": evaluation,
    }


def _convert_tf(spec, fmt: str, out_dir, data, input_shape, calib_samples: int, debug: bool,
                source: dict, max_int8_drop: float) -> ConvertResult:
    """A Keras file, a SavedModel or a float .tflite -> model_int8.tflite and convert.json (no model.onnx):
    the same data, calibration samples, evaluation and report as the PyTorch/ONNX path (tf_source.py)."""
    from tinyprune.convert import tf_source
    from tinyprune.convert.tflite_int8 import check_int8_io
    from tinyprune.data import check_classes

    with private_tempdir():
        src = tf_source.load(spec, fmt, debug)
        shape = src.pytorch_shape
        if input_shape is not None and loader.normalise_shape(input_shape) != shape:
            raise UserInputError(f"--input-shape {loader.normalise_shape(input_shape)} differs from the model's input "
                                 f"{src.shape} (channels-last), {shape} in tinyprune's data layout",
                                 hint=f"omit --input-shape for {fmt} models")
        ds, data_name = _dataset(data, shape)
        with atomic_output_dir(out_dir, REPORT_NAME) as tmp:
            float_out = src.run(to_channels_last(ds.x_test))
            if float_out.ndim >= 3:   # a dense channels-last output: classes first, as the PyTorch path has them
                float_out = np.moveaxis(float_out, -1, 1)
            if data is not None and ds.labelled:   # the default digits only calibrates; given data must be this model's
                check_classes(ds, int(np.prod(float_out.shape[1:])), data_name)
            calib = to_channels_last(ds.x_train[:calib_samples])
            flat, _log = src.to_int8(calib, debug)
            tf_source.check_full_integer(flat, str(spec))
            check_int8_io(flat, src.shape)
            path = tmp / TFLITE_NAME
            path.write_bytes(flat)
            report = {"source": source | {"kind": fmt},
                      **_int8_report(path, flat, shape, ds, data_name, len(calib), float_out,
                                     labelled=data is not None and ds.labelled, max_int8_drop=max_int8_drop),
                      "onnx": None,
                      "tf": {"format": fmt, "input_shape": list(src.shape), "loaded_with": src.loaded_with,
                             "converter": src.converter, "float_reference": src.loaded_with},
                      "versions": _versions()}
            report["tflite"]["notes"] = list(src.notes)
            ev = report["evaluation"]
            report["diagnostics"] = {"run": False, "reason": (
                f"int8 loses {ev['int8_drop_points']:.2f} points of {ev['int8_drop_basis']}: per-layer float-vs-int8 "
                f"errors need the float ONNX graph, which a {fmt} model does not have here"
                if ev["int8_drop_exceeded"] else
                f"int8 loses {ev['int8_drop_points']:.2f} points of {ev['int8_drop_basis']}, within "
                f"--max-int8-drop {max_int8_drop:g}")}
            write_json(tmp / REPORT_NAME, report)
    out = Path(out_dir)
    return ConvertResult(out, None, out / TFLITE_NAME, out / REPORT_NAME, report)


def _apply_fixes(module, shape, ds, calib_samples: int, equalize: bool, bias_correction: bool) -> dict:
    """The asked-for fixes (tinyprune.convert.fixes) on the PyTorch model: {"module": the model to export,
    "equalize": report, "bias_correction": report} (a fix not asked for: {"applied": False})."""
    out = {"module": module, "equalize": {"applied": False, "asked": equalize},
           "bias_correction": {"applied": False, "asked": bias_correction}}
    if not (equalize or bias_correction):
        return out
    import torch

    from tinyprune.convert import fixes
    if equalize:
        out["module"], rep = fixes.equalize(out["module"], torch.zeros(shape))
        out["equalize"] = {"asked": True} | rep
    if bias_correction:
        out["module"], rep = fixes.bias_correct(out["module"], ds.x_train[:calib_samples])
        out["bias_correction"] = {"asked": True} | rep
    return out


def int8_loss(ev: dict, labelled: bool, max_drop: float) -> dict:
    """How much int8 loses, in points: of accuracy when the data's labels are this model's and the output is
    one class vector per sample, else of top-1 agreement with the float model (100 - agreement)."""
    if labelled and ev["float_accuracy"] is not None and ev["int8_accuracy"] is not None:
        drop, basis = 100 * (ev["float_accuracy"] - ev["int8_accuracy"]), "accuracy"
    else:
        drop, basis = 100 * (1 - ev["top1_agreement"]), "agreement"
    return {"int8_drop_points": round(drop, 4), "int8_drop_basis": basis, "max_int8_drop": max_drop,
            "int8_drop_exceeded": bool(drop > max_drop)}


def diagnose(onnx_model, flat: bytes, x_test, ev: dict, max_drop: float) -> dict:
    """The per-layer float-vs-int8 error when int8 loses more than ``max_drop`` points (always with 0)."""
    from tinyprune.convert.diagnose import DIAGNOSE_SAMPLES, layer_errors
    if not (ev["int8_drop_exceeded"] or max_drop == 0):
        return {"run": False, "reason": f"int8 loses {ev['int8_drop_points']:.2f} points of {ev['int8_drop_basis']}, "
                                        f"within --max-int8-drop {max_drop:g}"}
    try:
        res = layer_errors(onnx_model, flat, x_test, samples=DIAGNOSE_SAMPLES)
    except Exception as e:  # noqa: BLE001 - a diagnosis that fails must not lose the conversion; it is said
        return {"run": False, "failed": True,
                "reason": f"int8 loses {ev['int8_drop_points']:.2f} points of {ev['int8_drop_basis']}, but the "
                          f"per-layer diagnosis failed ({type(e).__name__}: {str(e)[:300]})", "advice": ADVICE}
    return {"run": True} | res | {"advice": ADVICE}


ADVICE = [
    "--calib-samples N: calibrate on more training samples (ranges seen on few samples can be too narrow)",
    "--equalize: cross-layer equalization (conv/depthwise/linear pairs through ReLU) evens out per-channel ranges",
    "--bias-correction: removes the mean output shift that int8 weight rounding causes",
    ("a concatenation of branches with different value ranges shares one int8 scale: scale the branches to "
     "similar ranges in the model (e.g. a BatchNorm or a constant factor before torch.cat)"),
    ("per-channel activation ranges from percentiles: not available, TFLite's converter takes one min/max "
     "range per activation tensor"),
]
