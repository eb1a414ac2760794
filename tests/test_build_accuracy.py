"""What `tinyprune build` says about accuracy (issue 11): without labelled data for *this* model the build
validates on random inputs and says "not measured" everywhere (CLI, summary.json, summary.md, report.html),
never "OK 0.00 %"; data that does not fit the model (labels beyond its outputs, samples of another shape) is
exit 2 before anything is generated; an int8 model that disagrees with the float model or is collapsed is
exit 4 naming the figures; a model with two inputs is refused before codegen; a failed prune stage says what
failed."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tinyprune.cli import main
from tinyprune.errors import UserInputError, ValidationFailed

KWS = Path(__file__).resolve().parents[1].parent / "shared/models/mlperf-tiny/kws_dscnn_int8.tflite"
BOARD = "nucleo-f746"
needs_toolchain = [pytest.mark.arm, pytest.mark.hostcc,
                   pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("cc") is None,
                                      reason="needs arm-none-eabi-gcc and a host C compiler (make setup)")]


def tp(capsys, *args) -> tuple[int, str, str]:
    """Run the CLI in this process: (exit code, stdout (the summary table), stderr)."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def failed_summary(out: Path, board: str = BOARD) -> dict:
    assert not (out / board).exists()          # a failed build is no build folder
    return json.loads((out / f"{board}.failed" / "summary.json").read_text())


@pytest.mark.skipif(not KWS.is_file(), reason=f"MLPerf Tiny KWS model not found at {KWS}")
@pytest.mark.parametrize("_", [pytest.param(None, marks=needs_toolchain)])
def test_12_class_tflite_without_data_is_not_measured(capsys, tmp_path, _):
    """The reported case: a 12-class audio model without --data is validated on random inputs, bit-exact,
    and its accuracy is "not measured" in every place (it used to print OK with 0.00 %)."""
    code, out, err = tp(capsys, "build", KWS, "--board", "mps2-an500", "--no-sim", "--samples", 6, "-o", tmp_path)
    assert code == 0, err[-2000:]
    d = tmp_path / "mps2-an500"
    s = json.loads((d / "summary.json").read_text())
    assert s["accuracy"]["measured"] is False and s["accuracy"]["data"] == "random"
    assert s["accuracy"]["collapsed"] is False
    host = s["validation"]["host"]
    assert host["accuracy"] is None and host["confusion"] is None
    assert host["bit_exact"] is True and host["samples"] == 6 and host["mismatched_samples"] == 0
    assert json.loads((d / "validate-host.json").read_text())["data"]["source"] == "random"
    md, html = (d / "summary.md").read_text(), (d / "report.html").read_text()
    assert "| host accuracy | not measured | bit-exact on 6 random samples |" in md
    assert "| float accuracy | not measured |" in md and "| int8 accuracy | not measured |" in md
    for text in (out, md, html):
        assert "0.00%" not in text
    assert "host accuracy            not measured  bit-exact on 6 random samples" in out
    assert "not measured" in html and 'id="confusion"' not in html


@pytest.mark.skipif(not KWS.is_file(), reason=f"MLPerf Tiny KWS model not found at {KWS}")
def test_digits_for_a_12_class_model_is_bad_input(capsys, tmp_path):
    """digits (10 classes) asked for a 12-output model: exit 2 before codegen, never 'resized and scored'."""
    code, _, err = tp(capsys, "build", KWS, "--board", "mps2-an500", "--no-sim", "--data", "digits", "-o", tmp_path)
    assert code == UserInputError.exit_code, err[-2000:]
    assert "--data digits has 10 classes but the model has 12 outputs" in err
    assert "codegen" not in failed_summary(tmp_path, "mps2-an500")["stage_status"]


def _npz(path: Path, x: np.ndarray, y: np.ndarray) -> Path:
    np.savez(path, x=x, y=y)
    return path


def test_labels_beyond_the_outputs_are_bad_input(capsys, tmp_path, converted):
    """Labels up to 11 for the example's 10 outputs: exit 2 naming both, before codegen."""
    rng = np.random.default_rng(0)
    data = _npz(tmp_path / "d.npz", rng.random((24, 1, 16, 16), dtype=np.float32), np.arange(24) % 12)
    code, _, err = tp(capsys, "build", converted("example") / "model_int8.tflite", "--board", BOARD, "--no-sim",
                      "--data", data, "-o", tmp_path / "o")
    assert code == UserInputError.exit_code, err[-2000:]
    assert "labels up to 11 (12 classes)" in err and "10 outputs" in err and "Traceback" not in err
    s = failed_summary(tmp_path / "o")
    assert s["status"] == "bad_input" and "codegen" not in s["stage_status"]


def test_samples_of_another_shape_are_bad_input(capsys, tmp_path, converted):
    """8x8 samples for a 16x16 model: exit 2 naming both shapes, never resized."""
    rng = np.random.default_rng(0)
    data = _npz(tmp_path / "d.npz", rng.random((20, 1, 8, 8), dtype=np.float32), np.arange(20) % 10)
    code, _, err = tp(capsys, "build", converted("example") / "model_int8.tflite", "--board", BOARD, "--no-sim",
                      "--data", data, "-o", tmp_path / "o")
    assert code == UserInputError.exit_code, err[-2000:]
    assert "(1, 8, 8)" in err and "(1, 16, 16)" in err
    assert "codegen" not in failed_summary(tmp_path / "o")["stage_status"]


def test_min_agreement_out_of_range_is_bad_input(capsys, tmp_path, converted):
    code, _, err = tp(capsys, "build", converted("example") / "model_int8.tflite", "--board", BOARD,
                      "--min-agreement", "90", "-o", tmp_path)
    assert code == UserInputError.exit_code and "--min-agreement 90" in err and "fraction" in err


def test_agreement_below_the_minimum_fails_naming_the_figures(converted):
    """The convert stage's measured agreement (convert.json) against --min-agreement: just above it fails
    with exit 4 and the figures in the message and in summary.json's record; at it, it passes."""
    from tinyprune.pipeline.accuracy import check_int8
    from tinyprune.report.render import headline_rows
    d = converted("example")
    ev = json.loads((d / "convert.json").read_text())["evaluation"]
    conv = {"agreement": ev["top1_agreement"], "float_accuracy": ev["float_accuracy"],
            "int8_accuracy": ev["int8_accuracy"], "samples": ev["samples"]}
    ok = {"conversion": conv, "accuracy": {"measured": True}}
    check_int8(ok, d / "model_int8.tflite", ev["top1_agreement"])
    assert ok["accuracy"]["agreement_ok"] is True and ok["accuracy"]["collapsed"] is False
    bad = {"conversion": conv, "accuracy": {"measured": True}}
    with pytest.raises(ValidationFailed) as e:
        check_int8(bad, d / "model_int8.tflite", ev["top1_agreement"] + 0.005)
    assert e.value.exit_code == 4
    msg = e.value.message
    assert f"only {100 * ev['top1_agreement']:.1f}% of {ev['samples']} held-out samples" in msg
    assert "--min-agreement" in msg and f"float {100 * ev['float_accuracy']:.1f}%" in msg
    assert bad["accuracy"]["agreement_ok"] is False and bad["accuracy"]["failure"] in msg
    rows = {r[0]: r for r in headline_rows(bad)}
    assert rows["int8 check"][1] == "FAILED" and "minimum" in rows["int8 check"][2]


@pytest.mark.slow
def test_two_input_model_is_refused_before_codegen(capsys, tmp_path):
    """A two-input int8 .tflite used to be refused only at validation, after codegen and firmware."""
    import tensorflow as tf
    a, b = tf.keras.Input((4,)), tf.keras.Input((4,))
    m = tf.keras.Model([a, b], tf.keras.layers.Dense(3)(tf.keras.layers.Concatenate()([a, b])))
    conv = tf.lite.TFLiteConverter.from_keras_model(m)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(0)
    conv.representative_dataset = lambda: ([rng.random((1, 4), dtype=np.float32) for _ in range(2)]
                                           for _ in range(8))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    model = tmp_path / "two.tflite"
    model.write_bytes(conv.convert())
    code, _, err = tp(capsys, "build", model, "--board", BOARD, "--no-sim", "-o", tmp_path / "o")
    assert code == UserInputError.exit_code, err[-2000:]
    assert "has 2 inputs" in err and "exactly one input and one output" in err
    s = failed_summary(tmp_path / "o")
    assert "codegen" not in s["stage_status"] and s["stage_status"]["convert"] == "failed"


def test_failed_prune_stage_says_what_failed(capsys, tmp_path):
    """A data-driven criterion without --data for a model not trained on digits: the prune stage fails (exit 2)
    and the summary says so and why, not "pruning off"."""
    archs = Path(__file__).resolve().parent / "archs.py"
    code, out, err = tp(capsys, "build", f"{archs}:make_flat_mlp", "--board", BOARD, "--no-sim", "--prune", "always",
                        "--criterion", "taylor", "-o", tmp_path)
    assert code == UserInputError.exit_code, err[-2000:]
    s = failed_summary(tmp_path)
    reason = s["pruning"]["reason"]
    assert s["pruning"]["failed"] is True and reason.startswith("the prune stage failed: ") and "needs data" in reason
    assert f"not pruned: {reason}" in out and "pruning off" not in out
