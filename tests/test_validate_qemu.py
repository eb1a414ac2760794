"""`tinyprune validate --sim`: firmware built for mps2-an500 (Cortex-M7) runs in QEMU and talks
the serial protocol over an emulated UART on a loopback TCP port. Bit-exact against TFLite Micro,
instruction counts identical across runs, wrong firmware refused."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from tinyprune.cli import main
from tinyprune.errors import ToolError, ValidationFailed
from tinyprune.validate import validate

sys.path.insert(0, str(Path(__file__).resolve().parent / "data" / "fake_model"))
import fake_model  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared/models/mlperf-tiny"
pytestmark = [pytest.mark.qemu, pytest.mark.arm,
              pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="qemu-system-arm not installed"),
              pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="arm-none-eabi-gcc not installed")]


def firmware_build(root: Path, **kw) -> Path:
    from tinyprune.firmware import build_firmware

    build = fake_model.make_build(root, **kw)
    build_firmware(build / "codegen", "mps2-an500", build / "firmware")
    return build


@pytest.fixture(scope="module")
def fake_sim(tmp_path_factory):
    return firmware_build(tmp_path_factory.mktemp("sim-fake"), seed=0)


def test_fake_model_in_qemu_is_bit_exact_with_identical_instruction_counts(fake_sim, tmp_path):
    runs = [validate(fake_sim, "sim", random=20, seed=5, out=tmp_path / f"v{i}.json") for i in range(2)]
    for r in runs:
        assert r.passed and r.bit_exact and len(r.samples) == 20
        assert r.device["board"] == "mps2-an500" and r.device["counter_unit"] == "instructions"
        assert r.selftest["ok"]
    a, b = (r.counters["per_inference"] for r in runs)
    assert a == b and min(a) > 100  # exact, repeatable instruction counts (QEMU -icount)
    assert [x["mean"] for x in runs[0].layers] == [x["mean"] for x in runs[1].layers]
    assert runs[0].counters["selftest"] == runs[1].counters["selftest"]


def test_wrong_firmware_is_refused_with_both_hashes(fake_sim, tmp_path, capsys):
    other = fake_model.make_build(tmp_path / "other", seed=1)
    shutil.copytree(fake_sim / "firmware", other / "firmware")
    (other / "board.txt").write_text("mps2-an500\n")
    try:
        main(["validate", str(other), "--sim", "--random", "3", "-o", str(tmp_path / "v.json")])
        code = 0
    except SystemExit as e:
        code = e.code
    assert code == ValidationFailed.exit_code
    err = capsys.readouterr().err
    device = json.loads((fake_sim / "firmware" / "firmware.json").read_text()).get("board")
    assert device == "mps2-an500"
    assert "wrong firmware on the board: device runs model " in err
    want = (other / "codegen" / "model.h").read_text().split('MODEL_HASH "')[1][:64]
    have = (fake_sim / "codegen" / "model.h").read_text().split('MODEL_HASH "')[1][:64]
    assert f"device runs model {have}, build is {want}" in err
    assert not (tmp_path / "v.json").exists()


def test_qemu_that_cannot_run_the_firmware_gives_a_clear_error(fake_sim):
    """A QEMU that dies (here: a machine it does not know) is a ToolError quoting QEMU. A firmware file
    that is not tinyprune firmware never gets this far: see test_bad_inputs.py (exit code 2)."""
    from tinyprune.validate.qemu import qemu_session

    with pytest.raises(ToolError, match="QEMU exited with status 1 before the serial link opened: .*unsupported "
                                         "machine type"), qemu_session(fake_sim / "firmware" / "firmware.elf",
                                                                       "no-such-machine"):
        pass


@pytest.mark.slow
def test_mlperf_kws_validates_bit_exact_in_qemu_with_repeatable_counts(tmp_path):
    model = SHARED / "kws_dscnn_int8.tflite"
    if not model.exists():
        pytest.skip(f"MLPerf Tiny models not found at {SHARED}")
    from tinyprune.codegen.generate import generate
    from tinyprune.firmware import build_firmware

    build = tmp_path / "kws"
    build.mkdir()
    shutil.copyfile(model, build / "model_int8.tflite")
    generate(build / "model_int8.tflite", build / "codegen")
    build_firmware(build / "codegen", "mps2-an500", build / "firmware")
    full = validate(build, "sim", random=20, seed=11, out=tmp_path / "kws.json")
    assert full.passed and full.bit_exact and len(full.samples) == 20
    assert full.device["input_bytes"] == 490 and full.device["output_bytes"] == 12
    assert len(full.layers) == full.device["num_layers"] > 0
    assert sum(x["mean"] for x in full.layers) <= full.counters["mean"]
    # a second run over the first samples (same seed, same inputs): identical instruction counts
    again = validate(build, "sim", random=5, seed=11, out=tmp_path / "kws2.json")
    assert again.counters["per_inference"] == full.counters["per_inference"][:5]
    assert [x["mean"] for x in again.layers] != [] and again.selftest == full.selftest


def test_board_without_qemu_machine_runs_on_its_simulation_twin(tmp_path):
    build = fake_model.make_build(tmp_path / "nucleo", seed=0)
    (build / "board.txt").write_text("nucleo-f746\n")
    r = validate(build, "sim", random=3, out=tmp_path / "v.json")
    assert r.passed and r.device["board"] == "mps2-an500"  # the Cortex-M7 twin of the STM32F746
    fw = json.loads((build / "firmware-sim" / "firmware.json").read_text())
    assert fw["board"] == "mps2-an500"


@pytest.mark.slow
def test_mlperf_ic_validates_bit_exact_in_qemu_with_repeatable_counts(tmp_path):
    model = SHARED / "ic_resnet8_int8.tflite"
    if not model.exists():
        pytest.skip(f"MLPerf Tiny models not found at {SHARED}")
    from tinyprune.codegen.generate import generate
    from tinyprune.firmware import build_firmware

    build = tmp_path / "ic"
    build.mkdir()
    shutil.copyfile(model, build / "model_int8.tflite")
    generate(build / "model_int8.tflite", build / "codegen")
    build_firmware(build / "codegen", "mps2-an500", build / "firmware")
    full = validate(build, "sim", random=20, seed=4, out=tmp_path / "ic.json", layers=False)
    assert full.passed and full.bit_exact and len(full.samples) == 20
    assert full.device["input_bytes"] == 32 * 32 * 3 and full.device["output_bytes"] == 10
    # a second run over the first samples (same seed, same inputs): identical instruction counts
    again = validate(build, "sim", random=3, seed=4, out=tmp_path / "ic2.json", layers=False)
    assert again.counters["per_inference"] == full.counters["per_inference"][:3]
