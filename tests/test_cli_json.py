"""``--json`` on every command: stdout is exactly one JSON object -- the content of the JSON file the
command writes -- human lines go to stderr, and a failure prints {"error", "hint", "exit_code"}."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tinyprune.cli import main

needs_cc = pytest.mark.skipif(shutil.which("cc") is None, reason="no host C compiler")
needs_arm = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="arm-none-eabi-gcc not installed")


def run_json(capsys, args) -> tuple[int, dict, str]:
    """Run ``tinyprune ARGS --json``; return (exit code, the one JSON object on stdout, stderr)."""
    try:
        main([*map(str, args), "--json"])
        code = 0
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, json.loads(out), err   # json.loads fails on anything but exactly one JSON document


@pytest.mark.slow
def test_convert_prints_convert_json(tmp_path, capsys):
    code, res, err = run_json(capsys, ["convert", "example", "--data", "digits", "-o", tmp_path / "c"])
    assert code == 0
    assert res == json.loads((tmp_path / "c" / "convert.json").read_text())
    assert res["evaluation"]["samples"] > 0
    assert "wrote" in err and "accuracy on" in err     # the human lines went to stderr


@needs_cc
def test_codegen_firmware_validate_print_their_files(converted, tmp_path, capsys):
    build = tmp_path / "b"    # the layout validate reads: model_int8.tflite + codegen/
    build.mkdir()
    tfl = shutil.copy(converted("example") / "model_int8.tflite", build / "model_int8.tflite")
    code, res, err = run_json(capsys, ["codegen", tfl, "-o", build / "codegen", "--board", "nucleo-f746",
                                       "--check", "--random", "2"])
    assert code == 0
    on_disk = json.loads((build / "codegen" / "codegen.json").read_text())
    check = res.pop("check")
    assert res == on_disk
    assert check["samples"] == 2 and check["mismatches"] == 0
    assert "bit-exact with TFLite Micro" in err

    code, res, err = run_json(capsys, ["validate", build, "--host", "--random", "3",
                                       "-o", tmp_path / "v.json"])
    assert code == 0
    assert res == json.loads((tmp_path / "v.json").read_text())
    assert res["bit_exact"] is True and res["samples"] == 3
    assert "3/3 samples bit-exact" in err


@needs_arm
def test_firmware_prints_firmware_json(converted, tmp_path, capsys):
    tfl = converted("example") / "model_int8.tflite"
    assert run_json(capsys, ["codegen", tfl, "-o", tmp_path / "cg", "--board", "nucleo-f746"])[0] == 0
    code, res, err = run_json(capsys, ["firmware", tmp_path / "cg", "--board", "nucleo-f746", "-o", tmp_path / "fw"])
    assert code == 0
    assert res == json.loads((tmp_path / "fw" / "firmware.json").read_text())
    assert res["flash_used"] > 0 and "flash:" in err


def test_report_prints_the_summary_and_paths(tmp_path, capsys):
    from test_report import SUMMARY
    (tmp_path / "summary.json").write_text(json.dumps(SUMMARY))
    code, res, err = run_json(capsys, ["report", tmp_path])
    assert code == 0
    assert Path(res.pop("report_html")) == tmp_path / "report.html"
    assert Path(res.pop("report_markdown")) == tmp_path / "summary.md"
    assert res == json.loads(json.dumps(SUMMARY))
    assert "wrote" in err


@pytest.mark.parametrize("args,exit_code,gist", [
    (["codegen", "no-such.tflite", "-o", "OUT"], 2, "does not exist"),
    (["validate", "no-such-dir", "--host"], 2, "no-such-dir"),
    (["firmware", "no-such-dir", "--board", "nucleo-f746"], 2, "no such folder"),
    (["prune", "example", "-o", "OUT"], 2, "no budget"),
    (["convert", "example", "--data", "nope.npz", "-o", "OUT"], 2, "nope.npz"),
    (["report", "no-such-dir"], 2, "summary.json"),
    (["build", "example", "--board", "no-such-board"], 2, "no-such-board"),
    (["codegen", "--bogus-option"], 2, "bogus-option"),
])
def test_failure_is_one_json_error_object(tmp_path, capsys, monkeypatch, args, exit_code, gist):
    monkeypatch.chdir(tmp_path)
    code, res, err = run_json(capsys, args)
    assert code == exit_code
    assert set(res) == {"error", "hint", "exit_code"} and res["exit_code"] == exit_code
    assert gist in res["error"] + (res["hint"] or "")
    assert "error" in err.lower()   # the message is still shown to a person
