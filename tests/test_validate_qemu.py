"""`tinyprune validate --sim`: firmware built for mps2-an500 (Cortex-M7) runs in QEMU and talks
the serial protocol over an emulated UART on a loopback TCP port. Bit-exact against TFLite Micro,
instruction counts identical across runs, wrong firmware refused."""
from __future__ import annotations

import contextlib
import json
import shutil
import sys
import xml.etree.ElementTree as ET
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
    rep = json.loads((tmp_path / "v.json").read_text())  # a failed report
    assert rep["passed"] is False and rep["identity"]["model_hash"] == have and rep["error"]["exit_code"] == 4


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


def test_qemu_serial_socket_has_nodelay():
    """Without nodelay=on QEMU's TCP serial waits on Nagle's algorithm: 200 samples took 21.7 s
    instead of 6.3 s."""
    from tinyprune.validate.qemu import qemu_command

    cmd = qemu_command("fw.elf", "mps2-an500", None, 1234, 7)
    assert cmd[cmd.index("-serial") + 1] == "tcp:127.0.0.1:1234,server=on,wait=on,nodelay=on"


@contextlib.contextmanager
def qemu_on_pty(elf: Path):
    """QEMU running ``elf`` with its UART on a pseudo-terminal, as a board's port: yields its path."""
    import re
    import subprocess
    import time

    from tinyprune.validate.qemu import qemu_command

    cmd = qemu_command(elf, "mps2-an500", None, 0, 7)
    cmd[cmd.index("-serial") + 1] = "pty"
    q = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, line = time.monotonic() + 20, ""
        while "char device redirected to" not in line and time.monotonic() < deadline:
            line = q.stdout.readline()
        m = re.search(r"redirected to (/dev/pts/\d+)", line)
        assert m, f"QEMU did not open a pty: {line!r}"
        yield m.group(1)
    finally:
        q.kill()
        q.wait(timeout=10)


def test_firmware_for_another_board_through_a_tty_is_wrong_firmware(fake_sim, tmp_path, capsys):
    """Item 7 (issue 13): a device reporting mps2-an500 validated a nucleo-f746 build of the same
    model, because only the model hash was compared. The firmware build id (model, board,
    kernels, options) now differs, and the run stops with exit 4 and a failed report."""
    from tinyprune.firmware import build_firmware

    nucleo = fake_model.make_build(tmp_path / "nucleo", seed=0)  # the same model as fake_sim
    build_firmware(nucleo / "codegen", "nucleo-f746", nucleo / "firmware")
    fw = json.loads((nucleo / "firmware" / "firmware.json").read_text())
    sim_fw = json.loads((fake_sim / "firmware" / "firmware.json").read_text())
    assert fw["build_id"] != sim_fw["build_id"]
    out, junit = tmp_path / "v.json", tmp_path / "v.xml"
    with qemu_on_pty(fake_sim / "firmware" / "firmware.elf") as tty:
        # the right firmware through the tty: bit-exact
        assert run_cli([fake_sim, "--port", tty, "--random", "3", "-o", out, "--junit", junit]) == 0
        assert json.loads(out.read_text())["identity"]["build_id"] == sim_fw["build_id"]
        code = run_cli([nucleo, "--port", tty, "--random", "3", "-o", out, "--junit", junit])
    assert code == ValidationFailed.exit_code
    err = capsys.readouterr().err
    assert (f"device runs firmware build {sim_fw['build_id']} (board mps2-an500, kernels portable), the build "
            f"folder's firmware is {fw['build_id']} (nucleo-f746 firmware in") in err
    rep = json.loads(out.read_text())
    assert rep["passed"] is False and rep["identity"]["ok"] is False and rep["error"]["exit_code"] == 4
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("failures") == "1"
    (case,) = [tc for tc in suite.iter("testcase") if tc.get("name") == "model_hash"]
    assert "firmware build" in case.find("failure").get("message")


from test_validate_port import run_cli  # noqa: E402  (`tinyprune validate ARGS` -> exit code)
