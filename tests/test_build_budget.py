"""`tinyprune build` budgets for every input form (issues 11 and 13): an int8 .tflite (the MLPerf Tiny KWS
model, and the bundled example converted in this session) and an .onnx model are checked against the
board and --max-flash / --max-ram / --max-macs. Over by a single unit is exit 3 before anything is
cross-compiled, with the measured figure, the limit and the excess in the message and in summary.json;
exactly at the limits the build succeeds and summary.json records the limits and the figures measured
both by codegen and in the linked image."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tinyprune.cli import main
from tinyprune.errors import OverBudgetError, UserInputError

BOARD = "nucleo-f746"
KWS = Path(__file__).resolve().parents[1].parent / "shared/models/mlperf-tiny/kws_dscnn_int8.tflite"
FORMS = ["kws.tflite", "example.tflite", "example.onnx"]
# option -> (figure in summary.json's budget, its name in the message, unit)
LIMITS = {
    "--max-flash": ("flash_bytes", "model constants (weights + requantisation)", " B"),
    "--max-ram": ("ram_bytes", "arena (int8 activations + scratch)", " B"),
    "--max-macs": ("macs", "MACs per inference", ""),
}
needs_toolchain = [pytest.mark.arm, pytest.mark.hostcc,
                   pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("cc") is None,
                                      reason="needs arm-none-eabi-gcc and a host C compiler (make setup)")]


def tp(capsys, *args) -> tuple[int, str]:
    """Run the CLI in this process: (exit code, stdout (the summary table) + stderr (progress, the error))."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.fixture(scope="module", params=FORMS)
def form(request, converted, tmp_path_factory):
    """One input form with its own output folder (shared by its tests: conversion and codegen are cached)."""
    name = request.param
    if name == "kws.tflite":
        if not KWS.is_file():
            pytest.skip(f"MLPerf Tiny model {KWS} absent (../shared/models/mlperf-tiny is not beside this checkout)")
        model = KWS
    else:
        model = converted("example") / ("model_int8.tflite" if name.endswith(".tflite") else "model.onnx")
    return {"name": name, "model": model, "out": tmp_path_factory.mktemp(name.replace(".", "-")), "figures": {}}


def build(capsys, form, *options) -> tuple[int, str]:
    return tp(capsys, "build", form["model"], "--board", BOARD, "--no-sim", "--samples", 8, "--calib-samples", 40,
              "-o", form["out"], *options)


def summary(form, failed=False) -> dict:
    """summary.json of the last build; a failed build leaves OUT/BOARD as it was and keeps its attempt
    in OUT/BOARD.failed."""
    return json.loads((form["out"] / (BOARD + ".failed" if failed else BOARD) / "summary.json").read_text())


def figures(capsys, form) -> dict:
    """The int8 model's figures from codegen's own report (codegen.json), by a build stopped at --max-macs 1."""
    if not form["figures"]:
        code, err = build(capsys, form, "--max-macs", 1)
        assert code == OverBudgetError.exit_code, err[-2000:]
        cg = json.loads((form["out"] / f"{BOARD}.failed" / "codegen" / "codegen.json").read_text())
        form["figures"] = {"macs": cg["macs"], "ram_bytes": cg["arena_bytes"], "flash_bytes": cg["flash_bytes"]}
    return form["figures"]


@pytest.mark.parametrize("option", list(LIMITS))
def test_over_by_one_is_exit_3_before_cross_compiling(form, option, capsys):
    figure, label, unit = LIMITS[option]
    fig = figures(capsys, form)
    limit = fig[figure] - 1
    code, err = build(capsys, form, option, limit)
    assert code == OverBudgetError.exit_code, err[-2000:]
    assert "Traceback" not in err
    assert f"{label} {fig[figure]:,}{unit} > {limit:,}{unit} ({option}; over by 1{unit})" in err
    # the hint fits the input form: not `tinyprune prune` on this file, but on the PyTorch source
    assert "prune the PyTorch source instead" in err and "model.py:factory" in err and f"raise {option}" in err
    if form["name"].endswith(".onnx"):
        assert "ONNX models are not pruned by tinyprune" in err and "onnx2torch" in err and "torchvision" in err
    else:
        assert "tinyprune does not prune it" in err
    s = summary(form, failed=True)
    assert s["status"] == "over_budget"
    b = s["budget"]
    assert b["over"] == {figure: {"measured": fig[figure], "limit": limit, "over_by": 1, "limit_source": option}}
    assert b["limits"][figure] == limit and b["user"][option[2:].replace("-", "_")] == limit
    assert b["model"] == fig and b["fits"] is False and b["checked_at"] == "codegen"
    # nothing was cross-compiled: the check ran right after codegen
    assert b["firmware"] is None and "firmware" not in s["stage_status"]
    assert s["stage_status"]["codegen"] in ("done", "cached")
    # the report and summary.md show the figure against its limit
    md = (form["out"] / f"{BOARD}.failed" / "summary.md").read_text()
    assert f"limit {limit:,}{unit} ({option}): OVER by 1{unit}" in md


@pytest.mark.parametrize("_", [pytest.param(0, marks=needs_toolchain)])
def test_exactly_at_every_limit_builds_and_records_the_budget(form, capsys, _):
    fig = figures(capsys, form)
    code, err = build(capsys, form, "--max-flash", fig["flash_bytes"], "--max-ram", fig["ram_bytes"],
                      "--max-macs", fig["macs"])
    assert code == 0, err[-3000:]
    s = summary(form)
    assert s["status"] == "ok"
    b = s["budget"]
    assert b["user"] == {"max_flash": fig["flash_bytes"], "max_ram": fig["ram_bytes"], "max_macs": fig["macs"]}
    assert {k: b["limits"][k] for k in fig} == fig and b["model"] == fig
    assert b["limit_source"]["firmware_flash_bytes"] == f"{BOARD}'s flash"
    assert (b["limits"]["firmware_flash_bytes"], b["limits"]["firmware_ram_bytes"]) == (1024 * 1024, 320 * 1024)
    assert b["fits"] is True and b["over"] == {} and b["checked_at"] == "firmware"
    # measured in the linked image: the arena array is the planned arena, the weight arrays are at most the
    # padded figure codegen counted, the totals are the firmware stage's
    fw = json.loads((form["out"] / BOARD / "firmware" / "firmware.json").read_text())
    assert b["firmware"]["arena_bytes"] == fig["ram_bytes"]
    assert 0.9 * fig["flash_bytes"] < b["firmware"]["weight_bytes"] <= fig["flash_bytes"]
    assert (b["firmware"]["flash_used"], b["firmware"]["ram_used"]) == (fw["flash_used"], fw["ram_used"])
    md = (form["out"] / BOARD / "summary.md").read_text()
    assert f"| model constants (flash) | {fig['flash_bytes']:,} | limit {fig['flash_bytes']:,} B (--max-flash) |" in md
    assert f"| flash used | {fw['flash_used']:,} | of {1024 * 1024:,} B |" in md


@pytest.mark.parametrize("_", [pytest.param(0, marks=needs_toolchain)])
def test_image_over_the_board_flash_records_the_measured_figures(converted, tmp_path, capsys, _):
    """Constants that fit but an image that does not: the firmware stage's figures reach summary.json and
    the table shows them (was: `flash used - of - B`)."""
    toml = (Path(__file__).resolve().parents[1] / "boards" / f"{BOARD}.toml").read_text()
    toml = toml.replace('name = "nucleo-f746"', 'name = "tiny-f746"').replace("1048576", "20480")
    board = tmp_path / "tiny-f746.toml"
    board.write_text(toml)
    code, err = tp(capsys, "build", converted("example") / "model_int8.tflite", "--board", board, "--no-sim",
                   "-o", tmp_path / "o")
    assert code == OverBudgetError.exit_code, err[-2000:]
    m = re.search(r"flash: ([\d,]+) B used > 20,480 B available \(over by ([\d,]+) B\)", err)
    assert m, err[-2000:]
    used = int(m.group(1).replace(",", ""))
    s = json.loads((tmp_path / "o" / "tiny-f746.failed" / "summary.json").read_text())
    b = s["budget"]
    assert b["model"]["flash_bytes"] <= 20480            # the constants alone fit: the link decided
    assert b["over"]["firmware_flash_bytes"] == {"measured": used, "limit": 20480, "over_by": used - 20480,
                                                 "limit_source": "tiny-f746's flash"}
    assert b["fits"] is False and b["checked_at"] == "firmware"
    # the hint fits a .tflite (the firmware stage's own says `tinyprune prune`, which takes no .tflite)
    assert "tinyprune does not prune it" in err and "hint: prune the PyTorch source instead" in err
    assert "tinyprune does not prune it" in s["message"]
    assert re.search(rf"flash used\s+{m.group(1)}\s+of 20,480 B \(firmware not built\): OVER by {m.group(2)} B", err)


def test_onnx_and_tflite_cannot_be_asked_to_prune_and_limits_must_be_positive(converted, tmp_path, capsys):
    tflite = converted("example") / "model_int8.tflite"
    code, err = tp(capsys, "build", tflite, "--board", BOARD, "--prune", "always", "-o", tmp_path)
    assert code == UserInputError.exit_code and "--prune always: tflite models are not pruned" in err
    for bad in ("0", "-5"):
        code, err = tp(capsys, "build", tflite, "--board", BOARD, "--max-ram", bad, "-o", tmp_path)
        assert code == UserInputError.exit_code and f"--max-ram {bad}: expected a positive whole number" in err


def test_pytorch_over_budget_without_pruning_records_the_estimate(tmp_path, capsys):
    code, err = tp(capsys, "build", "example", "--board", BOARD, "--max-macs", 1000, "--no-prune", "--no-sim",
                   "-o", tmp_path)
    assert code == OverBudgetError.exit_code and "pruning is disabled (--prune never)" in err
    b = json.loads((tmp_path / f"{BOARD}.failed" / "summary.json").read_text())["budget"]
    macs = b["over"]["macs"]["measured"]
    assert f"macs: {macs:,} > 1,000 (over by {macs - 1000:,})" in err
    assert b["over"]["macs"] == {"measured": macs, "limit": 1000, "over_by": macs - 1000, "limit_source": "--max-macs"}
    assert b["fits"] is False and b["checked_at"] == "prune" and b["model"] is None
