"""What ``tinyprune build`` says about accuracy, and on which data (docs/build.md, "Accuracy").

Which data a build measures on:

- ``--data D`` (digits, an .npz, or in the Python API arrays / a Dataset / a torch Dataset or
  DataLoader): accuracy is measured on D's held-out split. D must fit the model: samples of the
  model's input shape (an .npz is never resized) and labels below its number of outputs (exit 2).
- ``--data D`` without labels (an .npz with ``x`` only, e.g. an autoencoder's inputs): calibration and
  validation on D's samples, accuracy **not measured**; pruning does not fine-tune.
- no ``--data`` and the bundled ``example`` (trained on digits): digits, accuracy measured.
- no ``--data`` and any other model (file.py:factory, .onnx, int8 .tflite, an nn.Module): accuracy is
  **not measured**. Validation runs on random int8 inputs and reports bit-exactness only; a
  PyTorch/ONNX model is still calibrated (and, when pruned, not fine-tuned) with digits resized to its
  input, which is all digits can do for a model not trained on it.

Whatever the data, two checks need no labels and fail the build with exit 4: the int8 model's top-1
agreement with the float model (convert stage, held-out data) below ``--min-agreement``, and a
collapsed int8 model (the same output for every input).

May import tinyprune.errors, tinyprune.data and tinyprune.validate.reference (no torch, no TensorFlow).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tinyprune.errors import UserInputError, ValidationFailed

DEFAULT_MIN_AGREEMENT = 0.9
COLLAPSE_SAMPLES = 16
NOT_MEASURED = "not measured"


def data_plan(model_spec, data, in_memory_model: bool = False) -> dict:
    """-> {"data": what prune and validate get, "calibration": what convert gets, "labelled": bool,
    "source": name, "reason": str}. ``data`` None: random inputs for validation, no fine-tuning when
    pruning; ``calibration`` None: convert's default (digits, resized; calibration only)."""
    if data is not None:
        name = data if isinstance(data, str) else getattr(data, "name", None) or type(data).__name__
        from tinyprune.data import is_unlabelled
        if is_unlabelled(data):
            return {"data": data, "labelled": False, "calibration": data, "source": str(name),
                    "reason": f"{name} has no labels (x only): calibrated and validated on its samples "
                              "(bit-exactness, agreement with the float model); accuracy not measured"}
        return {"data": data, "labelled": True, "calibration": data, "source": str(name),
                "reason": f"measured on the held-out split of {name}"}
    if not in_memory_model and str(model_spec) == "example":
        return {"data": "digits", "labelled": True, "calibration": "digits", "source": "digits",
                "reason": "the bundled example is trained on digits"}
    return {"data": None, "labelled": False, "calibration": None, "source": "random",
            "reason": "no --data for this model: validated on random inputs (bit-exactness only); "
                      "pass --data with labelled samples to measure accuracy"}


def tflite_io(path: Path) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]]]:
    """The input and output shapes of an int8 .tflite's main subgraph."""
    import tflite
    try:
        sg = tflite.Model.GetRootAsModel(Path(path).read_bytes(), 0).Subgraphs(0)
        ins = [tuple(int(d) for d in sg.Tensors(sg.Inputs(i)).ShapeAsNumpy()) for i in range(sg.InputsLength())]
        outs = [tuple(int(d) for d in sg.Tensors(sg.Outputs(i)).ShapeAsNumpy()) for i in range(sg.OutputsLength())]
    except Exception as e:  # noqa: BLE001 - flatbuffers raises anything on garbage
        raise UserInputError(f"{path} is not a readable TFLite model ({type(e).__name__}: {e})") from None
    return ins, outs


def check_model_io(path: Path, name: str) -> tuple[int, ...]:
    """UserInputError unless the model has exactly one input and one output (codegen, firmware and the
    validation protocol handle one of each). Returns the output shape."""
    ins, outs = tflite_io(path)
    if len(ins) != 1 or len(outs) != 1:
        raise UserInputError(f"{name} has {len(ins)} inputs {ins} and {len(outs)} outputs {outs}; tinyprune builds "
                             "models with exactly one input and one output",
                             hint="export a single-input, single-output model (e.g. concatenate the inputs "
                                  "inside the model, or build one model per output)")
    return outs[0]


def check_data_fits(data, tflite: Path, outputs: int) -> None:
    """For an int8 .tflite given with --data: samples of its input shape and labels below ``outputs``
    (UserInputError, exit 2, naming both). PyTorch/ONNX models are checked by the convert stage."""
    from tinyprune.data import check_classes, load_dataset
    from tinyprune.validate.reference import Reference
    ds = load_dataset(data, Reference(tflite).pytorch_shape())
    check_classes(ds, outputs, ds.name or str(data))


def collapsed(tflite: Path, samples: int = COLLAPSE_SAMPLES, seed: int = 0) -> bool:
    """True when the int8 model gives the same output for ``samples`` different random inputs."""
    from tinyprune.validate.reference import Reference
    ref = Reference(tflite)
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, size=(samples,) + tuple(ref.input.shape[1:])).astype(np.int8)
    first = ref.run(x[0])
    return all(np.array_equal(ref.run(x[i]), first) for i in range(1, samples))


def check_int8(summary: dict, tflite: Path, min_agreement: float) -> None:
    """The labels-free checks of the int8 model; records ``summary["accuracy"]`` and raises
    ValidationFailed (exit 4) naming the figures when one fails."""
    acc = summary.setdefault("accuracy", {})
    cv = summary.get("conversion") or {}
    agreement = cv.get("agreement")
    acc["min_agreement"] = min_agreement
    acc["agreement"] = agreement
    acc["collapsed"] = collapsed(tflite)
    problems = []
    if acc["collapsed"]:
        problems.append(f"the int8 model is collapsed: it gives the same output for {COLLAPSE_SAMPLES} different "
                        "random inputs")
    if agreement is not None and agreement < min_agreement:
        figs = [f"float {_pct(cv.get('float_accuracy'))}", f"int8 {_pct(cv.get('int8_accuracy'))}"] \
            if acc.get("measured") else []
        problems.append(f"the int8 model agrees with the float model on only {100 * agreement:.1f}% of "
                        f"{cv.get('samples')} held-out samples (top-1), below --min-agreement "
                        f"{100 * min_agreement:.0f}%" + (f" (accuracy: {', '.join(figs)})" if figs else ""))
    acc["agreement_ok"] = not problems
    if problems:
        acc["failure"] = "; ".join(problems)
        worst = ((cv.get("diagnostics") or {}).get("worst") or [])[:3]
        where = (f"the layers losing most: {', '.join(str(w['layer']) for w in worst)}; " if worst else "")
        raise ValidationFailed("int8 model check failed: " + acc["failure"],
                               hint="the int8 conversion lost the model (see convert/convert.json): " + where +
                                    "calibrate on representative data (--data), try --equalize or "
                                    "--bias-correction (docs/convert.md, \"Int8 accuracy\"), or lower "
                                    "--min-agreement if this is expected")


def int8_summary(report: dict) -> dict:
    """What summary.json keeps of convert.json's int8 loss record (docs/convert.md, "Int8 accuracy"): the loss
    in points and on what it is measured, the fixes applied, and the layers that lose most (the full per-layer
    table stays in convert/convert.json)."""
    ev = report["evaluation"]
    d = report.get("diagnostics") or {}
    keep = ("int8_drop_points", "int8_drop_basis", "max_int8_drop", "int8_drop_exceeded", "held_out_samples")
    out = {k: ev.get(k) for k in keep}
    out["fixes"] = {k: {"applied": v.get("applied", False), "asked": v.get("asked", False)}
                    for k, v in (report.get("fixes") or {}).items()}
    out["diagnostics"] = ({"run": True, "samples": d.get("samples"), "worst": d.get("worst"), "advice": d.get("advice")}
                          if d.get("run") else {"run": False, "reason": d.get("reason"), "failed": bool(d.get("failed"))})
    return out


def _pct(x) -> str:
    return NOT_MEASURED if x is None else f"{100 * float(x):.1f}%"
