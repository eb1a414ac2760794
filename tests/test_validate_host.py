"""`tinyprune validate --host` end to end on the fake model (tests/data/fake_model): bit-exact
comparison with TFLite Micro, reports, exit codes, the baseline check and bad input."""
from __future__ import annotations

import json
import shutil
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from tinyprune.cli import main
from tinyprune.errors import UserInputError, ValidationFailed
from tinyprune.validate import validate

sys.path.insert(0, str(Path(__file__).resolve().parent / "data" / "fake_model"))
import fake_model  # noqa: E402

pytestmark = [pytest.mark.hostcc, pytest.mark.skipif(shutil.which("cc") is None, reason="no host C compiler")]


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    root = tmp_path_factory.mktemp("validate-host")
    good = fake_model.make_build(root / "good", seed=0)
    degraded = fake_model.make_build(root / "degraded", seed=0, degrade=1.0)
    # the firmware of seed 0 with the reference model of seed 1: every output must be caught
    mismatched = fake_model.make_build(root / "mismatched", seed=0)
    shutil.copyfile(fake_model.make_build(root / "other", seed=1) / "model_int8.tflite",
                    mismatched / "model_int8.tflite")
    x, y = fake_model.make_data(160, seed=1)
    data = root / "data.npz"
    np.savez(data, x=x, y=y)
    return {"good": good, "degraded": degraded, "mismatched": mismatched, "data": data, "root": root}


def run_cli(args) -> int:
    try:
        main(["validate", *map(str, args)])
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def test_host_validation_is_bit_exact_and_reports_everything(builds, tmp_path):
    out, junit = tmp_path / "v.json", tmp_path / "v.xml"
    r = validate(builds["good"], "host", data=builds["data"], out=out, junit=junit)
    assert r.passed and r.bit_exact
    assert len(r.samples) == 40  # the 25 % test split of 160 samples
    assert r.accuracy == r.reference_accuracy and r.accuracy >= 0.95
    assert np.array(r.confusion).sum() == 40 and np.trace(np.array(r.confusion)) == round(40 * r.accuracy)
    assert r.metrics["versus"] == "tflite_micro_dequantized" and r.metrics["rmse"] == 0.0
    assert r.metrics["cosine"] == pytest.approx(1.0)
    assert r.selftest["ok"] and r.selftest["device_crc"] == r.selftest["reference_crc"]
    assert r.counters["unit"] == "ns" and len(r.counters["per_inference"]) == 40
    assert [layer["name"] for layer in r.layers] == ["fc_accumulate", "fc_requantize"]
    assert r.device["board"] == "host" and r.device["input_bytes"] == 16
    saved = json.loads(out.read_text())
    assert saved["passed"] and saved["bit_exact"] and saved["samples"] == 40
    assert saved["accuracy"] == r.accuracy and saved["mismatched_samples"] == []
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("tests") == str(40 + 2) and suite.get("failures") == "0"


def test_random_inputs_and_sample_cap(builds, tmp_path):
    r = validate(builds["good"], "host", random=7, seed=3, out=tmp_path / "v.json", layers=False)
    assert r.passed and len(r.samples) == 7 and r.accuracy is None and r.layers == []
    assert r.data == {"source": "random", "seed": 3, "samples": 7}


def test_bit_mismatch_is_caught_and_named_exit_4(builds, tmp_path):
    junit = tmp_path / "j.xml"
    code = run_cli([builds["mismatched"], "--host", "--random", "5", "-o", tmp_path / "v.json", "--junit", junit])
    assert code == ValidationFailed.exit_code
    rep = json.loads((tmp_path / "v.json").read_text())
    assert not rep["passed"] and not rep["bit_exact"]
    assert rep["mismatched_samples"] == [0, 1, 2, 3, 4]
    m = rep["mismatches"][0]
    assert m["count"] >= 1 and len(m["device"]) == len(m["reference"]) == len(m["positions"])
    assert m["device"] != m["reference"]
    assert int(ET.parse(junit).getroot().find("testsuite").get("failures")) >= 5


def test_degraded_model_is_caught_by_the_baseline_exit_4(builds, tmp_path):
    base = tmp_path / "baseline.json"
    assert run_cli([builds["good"], "--host", "--data", builds["data"], "-o", base]) == 0
    assert run_cli([builds["good"], "--host", "--data", builds["data"], "--baseline", base,
                    "-o", tmp_path / "again.json"]) == 0
    junit = tmp_path / "deg.xml"
    code = run_cli([builds["degraded"], "--host", "--data", builds["data"], "--baseline", base,
                    "--max-accuracy-drop", "5", "-o", tmp_path / "deg.json", "--junit", junit])
    assert code == ValidationFailed.exit_code
    rep = json.loads((tmp_path / "deg.json").read_text())
    assert rep["bit_exact"]  # the degraded firmware is faithful to its own model...
    assert rep["baseline"]["drop_pct"] > 5 and not rep["baseline"]["ok"]  # ...but much less accurate
    failed = [tc.get("name") for tc in ET.parse(junit).iter("testcase") if tc.find("failure") is not None]
    assert failed == ["accuracy_vs_baseline"]
    # a generous allowance lets the same run pass
    assert run_cli([builds["degraded"], "--host", "--data", builds["data"], "--baseline", base,
                    "--max-accuracy-drop", "60", "-o", tmp_path / "deg2.json"]) == 0


def test_wrong_model_hash_stops_at_once_and_writes_a_failed_report(builds, tmp_path):
    """The previous run's passing validate.json and JUnit file are replaced by failed ones, and the
    JUnit model_hash case fails with the message (it used to pass unconditionally)."""
    out, junit = tmp_path / "v.json", tmp_path / "v.xml"
    validate(builds["good"], "host", random=2, out=out, junit=junit)
    assert json.loads(out.read_text())["passed"] is True
    with pytest.raises(ValidationFailed, match="wrong firmware on the board: device runs model [0-9a-f]{64}, "
                                               "build is 0{64}"):
        validate(builds["good"], "host", random=2, out=out, junit=junit, link_kw={"expected_hash": "0" * 64})
    rep = json.loads(out.read_text())
    assert rep["passed"] is False and rep["samples"] == 0 and rep["error"]["exit_code"] == 4
    assert rep["identity"]["ok"] is False and rep["identity"]["expected_model_hash"] == "0" * 64
    assert "wrong firmware on the board" in rep["failures"][0]
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("failures") == "1" and suite.get("errors") == "0"
    (case,) = [tc for tc in suite.iter("testcase") if tc.get("name") == "model_hash"]
    assert "device runs model" in case.find("failure").get("message")


def test_model_hash_case_passes_only_when_the_device_reported_the_build(builds, tmp_path):
    junit = tmp_path / "v.xml"
    r = validate(builds["good"], "host", random=1, out=tmp_path / "v.json", junit=junit)
    assert r.identity["ok"] is True and r.identity["model_hash"] == r.identity["expected_model_hash"]
    assert r.identity["build_id"] == r.identity["expected_build_id"] == r.device["build_id"]
    (case,) = [tc for tc in ET.parse(junit).iter("testcase") if tc.get("name") == "model_hash"]
    assert case.find("failure") is None and case.find("error") is None


def test_host_build_with_another_build_id_is_wrong_firmware(builds, tmp_path, capsys):
    """Same model, other firmware build: refused by build id (exit 4), naming both ids."""
    code = run_cli([builds["good"], "--host", "--random", "1", "-o", tmp_path / "v.json"])
    assert code == 0
    from tinyprune.validate.host import host_build_id

    have = host_build_id(builds["good"] / "host" / "tinyprune_host")
    with pytest.raises(ValidationFailed, match=f"device runs firmware build {have} \\(board host, kernels "
                                               f"portable\\), the build folder's firmware is 00000000"):
        validate(builds["good"], "host", random=1, out=tmp_path / "v.json", link_kw={"expected_build": "0" * 8})


@pytest.mark.parametrize("args,message", [
    (["--host", "--random", "3", "--data", "digits"], "either --data or --random"),
    (["--random", "3"], "--host, --sim or --port"),
])
def test_cli_usage_errors(builds, args, message, capsys):
    code = run_cli([builds["good"], *args])
    assert code == UserInputError.exit_code
    assert message in capsys.readouterr().err


def test_bad_build_dirs_and_data_are_bad_input(builds, tmp_path, capsys):
    assert run_cli([tmp_path / "missing", "--host"]) == 2
    assert "build directory not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert run_cli([tmp_path / "empty", "--host"]) == 2
    assert "no model_int8.tflite" in capsys.readouterr().err
    np.savez(tmp_path / "wrong.npz", x=np.zeros((8, 3, 4, 4), np.float32), y=np.zeros(8, np.int64))
    assert run_cli([builds["good"], "--host", "--data", tmp_path / "wrong.npz", "-o", tmp_path / "v.json"]) == 2
    assert "expects" in capsys.readouterr().err
    assert not (tmp_path / "v.json").exists()
    assert run_cli([builds["good"], "--host", "--random", "2", "--baseline", tmp_path / "nope.json"]) == 2
    assert "baseline report not found" in capsys.readouterr().err


def test_baseline_needs_comparable_labelled_data(builds, tmp_path):
    base = tmp_path / "b.json"
    validate(builds["good"], "host", data=builds["data"], out=base)
    with pytest.raises(UserInputError, match="not comparable"):
        validate(builds["good"], "host", data=builds["data"], samples=10, baseline=base, out=tmp_path / "x.json")
    with pytest.raises(UserInputError, match="labelled data"):
        validate(builds["good"], "host", random=3, baseline=base, out=tmp_path / "y.json")


def test_port_target_over_a_pyserial_url(builds, tmp_path):
    """--port takes any pyserial URL: here the native build's TCP socket stands in for a board."""
    import os
    import subprocess

    from tinyprune.validate.host import _read_port, _stop, build_host

    exe = build_host(builds["good"] / "codegen", builds["good"] / "host")
    proc = subprocess.Popen([str(exe)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ, TP_HOST_PORT="0"))
    try:
        port = _read_port(proc, 10)
        code = run_cli([builds["good"], "--port", f"socket://127.0.0.1:{port}", "--random", "4",
                        "-o", tmp_path / "v.json"])
    finally:
        _stop(proc)
    assert code == 0
    rep = json.loads((tmp_path / "v.json").read_text())
    assert rep["target"] == "port" and rep["bit_exact"] and rep["samples"] == 4


def test_help_lists_every_option():
    from click.testing import CliRunner

    from tinyprune.cli import cli

    r = CliRunner().invoke(cli, ["validate", "--help"])
    assert r.exit_code == 0
    for opt in ("--host", "--sim", "--port", "--baud", "--data", "--random", "--samples", "--baseline",
                "--max-accuracy-drop", "--junit", "--output"):
        assert opt in r.output


def test_missing_serial_port_is_a_tool_error_at_once(builds, tmp_path, capsys):
    import time

    t = time.monotonic()
    assert run_cli([builds["good"], "--port", str(tmp_path / "ttyNOPE"), "--random", "2"]) == 5
    assert time.monotonic() - t < 5
    assert f"serial port {tmp_path / 'ttyNOPE'} not found" in capsys.readouterr().err
