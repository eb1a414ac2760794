"""`tinyprune build` end to end: the example to validated firmware for nucleo-f746 (QEMU twin),
caching, summary/artifact agreement, the report, and each documented exit code."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tinyprune.errors import OverBudgetError, ToolError, UserInputError, ValidationFailed

TP = [sys.executable, "-m", "tinyprune.cli"]
pytestmark = pytest.mark.slow


def run(*args, env=None, cwd=None):
    return subprocess.run(TP + list(args), capture_output=True, text=True, env=env, cwd=cwd, timeout=1200)


@pytest.fixture(scope="module")
def example_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("build")
    r = run("build", "--board", "nucleo-f746", "--samples", "60", "--sim-samples", "10", "--json", "-o", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    return out / "nucleo-f746", json.loads(r.stdout), r


def test_example_builds_fits_and_validates(example_build):
    d, s, r = example_build
    assert s["status"] == "ok"
    assert s["pruning"]["applied"] is False            # the example fits nucleo-f746 as it is
    fw = s["firmware"]
    assert 0 < fw["flash_used"] <= fw["flash_limit"] == 1024 * 1024
    assert 0 < fw["ram_used"] <= fw["ram_limit"] == 320 * 1024
    for target in ("host", "sim"):
        v = s["validation"][target]
        assert v["passed"] and v["bit_exact"] and v["mismatched_samples"] == 0
        assert v["accuracy"] >= 0.9
    assert s["validation"]["sim"]["board"] == "mps2-an500"
    assert s["validation"]["sim"]["counter_unit"] == "instructions"
    assert s["validation"]["sim"]["counter_per_inference"] > s["codegen"]["macs"] / 4
    # latency: the instructions counted in QEMU at the board's clock, per model and per layer
    lat = s["latency"]
    instr = s["validation"]["sim"]["counter_per_inference"]
    assert lat["instructions"] == instr and lat["ms"] == round(1e3 * instr / 216e6, 4)
    assert len(lat["layers"]) == len(s["codegen"]["layers"])
    assert 0.8 * instr < sum(l["instructions"] for l in lat["layers"]) <= instr
    assert f"latency: ~{lat['ms']:.3g} ms per inference on nucleo-f746 at 216 MHz" in r.stderr
    f401 = next(b for b in lat["boards"] if b["board"] == "nucleo-f401re")
    assert f401["ms"] == round(1e3 * instr / 84e6, 4) and f401["fits_flash"] and f401["fits_ram"]
    # per-layer constants (weights, biases): at least the weight arrays, at most all model data in flash
    per_layer = sum(l["weight_bytes"] for l in s["codegen"]["layers"])
    assert s["codegen"]["weight_bytes"] < per_layer <= s["codegen"]["flash_bytes"]
    # the terminal summary goes to stderr, progress lines are plain (not a terminal)
    assert "[1/7] prune" in r.stderr and "validate-sim" in r.stderr


def test_summary_matches_the_artifacts(example_build):
    d, s, _ = example_build
    assert json.loads((d / "summary.json").read_text()) == s
    fw = json.loads((d / "firmware" / "firmware.json").read_text())
    assert (s["firmware"]["flash_used"], s["firmware"]["ram_used"]) == (fw["flash_used"], fw["ram_used"])
    cg = json.loads((d / "codegen" / "codegen.json").read_text())
    assert s["codegen"]["arena_bytes"] == cg["arena_bytes"]
    assert s["codegen"]["macs"] == cg["macs"]
    cv = json.loads((d / "convert" / "convert.json").read_text())
    assert s["conversion"]["int8_accuracy"] == cv["evaluation"]["int8_accuracy"]
    for target in ("host", "sim"):
        v = json.loads((d / f"validate-{target}.json").read_text())
        assert s["validation"][target]["accuracy"] == v["accuracy"]
        assert s["validation"][target]["samples"] == v["samples"]
    assert (d / "model_int8.tflite").read_bytes() == (d / "convert" / "model_int8.tflite").read_bytes()
    for f in ("firmware/firmware.elf", "firmware/firmware.bin", "firmware/firmware.hex", "firmware-sim/firmware.elf",
              "report.html", "summary.md"):
        assert (d / f).is_file(), f


def test_report_has_every_plot(example_build):
    from html.parser import HTMLParser
    d, s, _ = example_build

    class P(HTMLParser):
        charts = []

        def handle_starttag(self, tag, attrs):
            if tag == "svg":
                self.charts.append(dict(attrs)["data-chart"])
    p = P()
    p.feed((d / "report.html").read_text())
    # not pruned -> no before/after plots; everything else must be there
    assert {"arena", "int8-layer-macs", "flash-ram", "accuracy", "confusion"} <= set(p.charts)
    md = (d / "summary.md").read_text()
    assert "**ok**" in md and "sim accuracy" in md
    r = run("report", str(d))
    assert r.returncode == 0 and "report.html" in r.stdout


def test_second_run_is_fully_cached(example_build):
    d, s, _ = example_build
    r = run("build", "--board", "nucleo-f746", "--samples", "60", "--sim-samples", "10", "--json",
            "-o", str(d.parent))
    assert r.returncode == 0, r.stderr[-2000:]
    s2 = json.loads(r.stdout)
    assert set(s2["stage_status"].values()) == {"cached"}, s2["stage_status"]
    assert s2["timings_when_run"] == s["timings"]      # a cached run still says how long each stage took
    assert s2["firmware"] == s["firmware"] and s2["validation"]["sim"]["accuracy"] == s["validation"]["sim"]["accuracy"]
    # changing a validation option re-runs validation only
    r = run("build", "--board", "nucleo-f746", "--samples", "50", "--sim-samples", "10", "--no-sim", "--json",
            "-o", str(d.parent))
    st = json.loads(r.stdout)["stage_status"]
    assert st["validate-host"] == "done"
    assert all(st[k] == "cached" for k in ("prune", "convert", "codegen", "firmware")), st


def test_tflite_model_and_missing_toolchain_exit_5(example_build, tmp_path):
    d, _, _ = example_build
    env = dict(os.environ)
    # a PATH with python but without arm-none-eabi-gcc
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("gcc", "cc", "ar", "make"):
        w = shutil.which(tool)
        if w:
            (bindir / tool).symlink_to(w)
    env["PATH"] = f"{Path(sys.executable).parent}:{bindir}"
    r = run("build", str(d / "model_int8.tflite"), "--board", "nucleo-f746", "--no-sim", "-o", str(tmp_path / "o"),
            env=env)
    assert r.returncode == ToolError.exit_code, r.stderr[-2000:]
    assert "arm-none-eabi-gcc" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o" / "nucleo-f746").exists()     # a failed build is no build folder
    s = json.loads((tmp_path / "o" / "nucleo-f746.failed" / "summary.json").read_text())
    assert s["model"]["kind"] == "tflite" and s["stage_status"]["codegen"] == "done"
    assert s["stage_status"]["firmware"] == "failed"


def test_unknown_board_exit_2(tmp_path):
    r = run("build", "--board", "nucleo-f74", "-o", str(tmp_path))
    assert r.returncode == UserInputError.exit_code
    assert "nucleo-f746" in r.stderr and "Traceback" not in r.stderr


def test_validation_failure_exit_4(example_build, tmp_path, monkeypatch):
    """A generated model whose weights were corrupted must fail validation (exit code 4)."""
    import tinyprune.codegen.generate as gen
    from tinyprune.pipeline import build
    d, _, _ = example_build
    real = gen.generate

    def corrupt(*a, **kw):
        res = real(*a, **kw)
        out = Path(a[1])
        w = out / "model_weights.c"
        text = w.read_text()
        i = text.index("= {") + 3
        j = text.index(",", i)
        w.write_text(text[:i] + " 77" + text[j:] if text[i:j].strip() != "77" else text[:i] + " -77" + text[j:])
        return res
    monkeypatch.setattr(gen, "generate", corrupt)
    with pytest.raises(ValidationFailed) as e:
        build(str(d / "model_int8.tflite"), "nucleo-f746", out=str(tmp_path), sim=False, samples=30,
              progress=False)
    assert e.value.exit_code == 4
    s = json.loads((tmp_path / "nucleo-f746.failed" / "summary.json").read_text())
    assert s["status"] == "validation_failed"
    assert s["validation"]["host"]["passed"] is False
    assert (tmp_path / "nucleo-f746.failed" / "report.html").is_file()


def test_over_budget_without_pruning_fails_and_with_pruning_fits(example_build, tmp_path):
    d, s, _ = example_build
    limit = s["codegen"]["macs"] // 2
    r = run("build", "--board", "nucleo-f746", "--max-macs", str(limit), "--no-prune", "--no-sim",
            "-o", str(tmp_path / "a"))
    assert r.returncode == OverBudgetError.exit_code, r.stderr[-2000:]
    assert f"{s['codegen']['macs']:,} > {limit:,}" in r.stderr and "Traceback" not in r.stderr
    r = run("build", "--board", "nucleo-f746", "--max-macs", str(limit), "--no-sim", "--epochs", "2",
            "--samples", "100", "--json", "-o", str(tmp_path / "b"))
    assert r.returncode == 0, r.stderr[-3000:]
    s2 = json.loads(r.stdout)
    assert s2["pruning"]["applied"] is True
    assert s2["pruning"]["macs_after"] <= limit
    assert s2["codegen"]["macs"] <= limit           # the int8 model that runs meets it too
    # the pruning stage's int8 estimate is the code generator's own figure for the converted model
    est = s2["pruning"]["estimate_after"]
    assert (est["ram_bytes"], est["flash_bytes"], est["macs"]) == \
        (s2["codegen"]["arena_bytes"], s2["codegen"]["flash_bytes"], s2["codegen"]["macs"])
    assert [l["channels_after"] for l in s2["pruning"]["layers"]] != [l["channels_before"] for l in s2["pruning"]["layers"]]
    assert s2["validation"]["host"]["passed"]
    assert s2["validation"]["host"]["accuracy"] >= 0.85


def test_fast_weights_build_validates_bit_exact_and_counts_the_flash(example_build, tmp_path):
    d, summary, _ = example_build
    r = run("build", str(d / "model_int8.tflite"), "--board", "nucleo-f746", "--fast-weights", "--samples", "20",
            "--sim-samples", "5", "--json", "-o", str(tmp_path / "o"))
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads(r.stdout)
    assert s["codegen"]["fast_weights"] is True and summary["codegen"]["fast_weights"] is False
    # the int16 conv filters are counted, and validated bit-exact on the host and in the simulator
    assert s["codegen"]["flash_bytes"] > summary["codegen"]["flash_bytes"]
    cg = json.loads((tmp_path / "o" / "nucleo-f746" / "codegen" / "codegen.json").read_text())
    assert cg["emitted_weight_bytes"] == cg["flash_bytes"] == s["codegen"]["flash_bytes"]
    assert "tp_conv_s8_x16(" in (tmp_path / "o" / "nucleo-f746" / "codegen" / "model.c").read_text()
    assert s["status"] == "ok"
    # a core without the DSP extension: refused before any work, exit 2, no traceback
    r = run("build", str(d / "model_int8.tflite"), "--board", "rpi-pico", "--fast-weights", "-o", str(tmp_path / "p"))
    assert r.returncode == UserInputError.exit_code and "DSP extension" in r.stderr and "Traceback" not in r.stderr
