"""Firmware around a real generated model (MLPerf Tiny KWS DS-CNN): the selftest firmware runs one
inference in QEMU and its output equals TFLite Micro's bit for bit, with an instruction count that is
identical across runs; the serial-harness firmware for nucleo-f746 builds, with the static arena in
RAM and the weights in flash."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tinyprune.firmware.build import build_firmware
from tinyprune.firmware.elf import Elf

REPO = Path(__file__).resolve().parents[1]
KWS = REPO.parent / "shared/models/mlperf-tiny/kws_dscnn_int8.tflite"

pytestmark = [
    pytest.mark.arm, pytest.mark.slow,
    pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="arm-none-eabi-gcc not installed"),
    pytest.mark.skipif(not KWS.is_file(), reason=f"{KWS} not present (../shared/models)"),
    pytest.mark.skipif(not (REPO / "tinyprune/codegen/emit.py").is_file(), reason="code generator not present"),
]


@pytest.fixture(scope="module")
def kws_codegen(tmp_path_factory):
    out = tmp_path_factory.mktemp("kws") / "codegen"
    r = subprocess.run([str(REPO / ".venv/bin/tinyprune"), "codegen", str(KWS), "-o", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return out


def tflm_out_sum(model: Path) -> int:
    """The hash selftest_main.c prints for input[i] = (i * 7) & 0xFF, computed with TFLite Micro."""
    from tflite_micro.python.tflite_micro import runtime
    it = runtime.Interpreter.from_bytes(model.read_bytes())
    d = it.get_input_details(0)
    n = int(np.prod(d["shape"]))
    x = ((np.arange(n) * 7) & 0xFF).astype(np.uint8).view(np.int8).reshape(d["shape"])
    it.set_input(x, 0)
    it.invoke()
    h = 0
    for v in it.get_output(0).reshape(-1).view(np.uint8):
        h = (h * 31 + int(v)) & 0xFFFFFFFF
    return h


@pytest.mark.qemu
@pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="qemu-system-arm not installed")
def test_kws_selftest_bit_exact_with_tflite_micro_in_qemu(kws_codegen, tmp_path):
    res = build_firmware(kws_codegen, "mps2-an500", tmp_path / "fw", harness_dir="selftest")
    meta = json.loads((kws_codegen / "codegen.json").read_text())
    assert res.arena_bytes == meta["arena_bytes"]
    cmd = ["qemu-system-arm", "-M", "mps2-an500", "-display", "none", "-serial", "stdio", "-monitor", "none",
           "-semihosting-config", "enable=on,target=native", "-icount", "shift=7", "-kernel", str(res.elf)]
    outs = []
    for _ in range(2):
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout
        outs.append(r.stdout)
    m = re.search(r"TP_MODEL hash=(\w+) out_sum=(\d+) count=(\d+)", outs[0])
    assert m, outs[0]
    header = (kws_codegen / "model.h").read_text()
    assert f'"{m.group(1)}"' in header                     # MODEL_HASH of this model
    assert int(m.group(2)) == tflm_out_sum(KWS)            # bit-exact with TFLite Micro
    assert int(m.group(3)) > meta["macs"]                  # > 1 instruction per MAC
    assert outs[0] == outs[1]                              # identical instruction count across runs


def test_kws_harness_firmware_for_nucleo(kws_codegen, tmp_path):
    if not (REPO / "firmware/harness/main.c").is_file():
        pytest.skip("firmware/harness not present")
    res = build_firmware(kws_codegen, "nucleo-f746", tmp_path / "fw")
    meta = json.loads((kws_codegen / "codegen.json").read_text())
    elf = Elf(res.elf)
    arena = elf.symbols["model_static_arena"]
    assert arena.size == meta["arena_bytes"]
    assert 0x20000000 <= arena.value < 0x20000000 + 327680 and arena.value % 16 == 0
    rodata = elf.section(".rodata")
    assert 0x08000000 <= rodata.addr and rodata.size >= meta["emitted_weight_bytes"]
    assert res.flash_used <= res.flash_limit and res.ram_used == sum(
        elf.section(n).size for n in (".data", ".bss", ".stack"))
    assert {"-mcpu=cortex-m7", "-DTP_USE_ARM_DSP=1"} <= set(res.cflags)
