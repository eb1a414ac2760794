"""Firmware stage: cross-compiled selftest firmware run in QEMU (exact instruction counts),
nucleo-f746 image checks (vector table, entry, section placement, size figures), the standalone
Makefile, over-budget and missing-toolchain errors, and the `tinyprune firmware` CLI.

Needs arm-none-eabi-gcc (marker arm) and, for the run tests, qemu-system-arm (marker qemu)."""
from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from tinyprune.boards import load_board
from tinyprune.errors import OverBudgetError, ToolError, UserInputError
from tinyprune.firmware.build import build_firmware, measure
from tinyprune.firmware.elf import Elf
from tinyprune.firmware.linker import render_linker_script

HAVE_GCC = shutil.which("arm-none-eabi-gcc") is not None
HAVE_QEMU = shutil.which("qemu-system-arm") is not None
needs_gcc = pytest.mark.skipif(not HAVE_GCC, reason="arm-none-eabi-gcc not installed (make setup)")
needs_qemu = pytest.mark.skipif(not HAVE_QEMU, reason="qemu-system-arm not installed (make setup)")
pytestmark = [pytest.mark.arm, needs_gcc]

QEMU_BOARDS = ["mps2-an500", "mps2-an386", "mps3-an547"]
REPO = Path(__file__).resolve().parents[1]

# A hand-written stand-in for generated code (same API as codegen's model.h):
# out[k] = clamp(sum(in[4k..4k+3]) / 2 + k) -- simple enough to recompute here.
MODEL_H = """#ifndef MODEL_H
#define MODEL_H
#include <stdint.h>
#define MODEL_INPUT_BYTES 32
#define MODEL_OUTPUT_BYTES 8
#define MODEL_ARENA_BYTES 96
#define MODEL_NUM_LAYERS 1
#define MODEL_HASH "0123456789abcdef"
#define MODEL_KERNEL_BACKEND "portable"
int model_invoke(const int8_t *in, int8_t *out);
void model_set_layer_hook(void (*hook)(int layer, int is_end));
#endif
"""
MODEL_C = """#include "model.h"
static int8_t tp_arena[MODEL_ARENA_BYTES];
static void (*hook)(int, int);
void model_set_layer_hook(void (*h)(int, int)) { hook = h; }
int model_invoke(const int8_t *in, int8_t *out)
{
    if (hook) hook(0, 0);
    for (int k = 0; k < MODEL_OUTPUT_BYTES; k++) {
        int s = 0;
        for (int j = 0; j < 4; j++) s += in[4 * k + j];
        s = s / 2 + k;
        tp_arena[k] = (int8_t)(s < -128 ? -128 : s > 127 ? 127 : s);
    }
    for (int k = 0; k < MODEL_OUTPUT_BYTES; k++) out[k] = tp_arena[k];
    if (hook) hook(0, 1);
    return 0;
}
"""


def expected_model_sum() -> int:
    """What selftest_main.c prints as out_sum for MODEL_C (input[i] = (i * 7) & 0xFF as int8)."""
    x = [((i * 7) & 0xFF) - 256 if ((i * 7) & 0xFF) > 127 else (i * 7) & 0xFF for i in range(32)]
    out = []
    for k in range(8):
        s = sum(x[4 * k:4 * k + 4])
        s = int(s / 2) + k  # C division truncates toward zero
        out.append(max(-128, min(127, s)))
    h = 0
    for v in out:
        h = (h * 31 + (v & 0xFF)) & 0xFFFFFFFF
    return h


@pytest.fixture(scope="session")
def fake_codegen(tmp_path_factory):
    d = tmp_path_factory.mktemp("codegen")
    (d / "model.h").write_text(MODEL_H)
    (d / "model.c").write_text(MODEL_C)
    return d


@pytest.fixture(scope="session")
def selftests(tmp_path_factory):
    """Selftest firmware (no model) for every QEMU board and nucleo-f746."""
    root = tmp_path_factory.mktemp("fw")
    return {b: build_firmware(None, b, root / b, harness_dir="selftest")
            for b in QEMU_BOARDS + ["nucleo-f746"]}


def run_qemu(board_name: str, elf: Path) -> tuple[int, str]:
    board = load_board(board_name)
    cmd = ["qemu-system-arm", "-M", board.qemu.machine, "-display", "none", "-serial", "stdio",
           "-monitor", "none", "-semihosting-config", "enable=on,target=native",
           "-icount", "shift=7", "-kernel", str(elf)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout


# ----------------------------------------------------------------------------- QEMU runs

@needs_qemu
@pytest.mark.qemu
@pytest.mark.parametrize("board", QEMU_BOARDS)
def test_selftest_runs_in_qemu_with_exact_counts(selftests, board):
    res = selftests[board]
    runs = [run_qemu(board, res.elf) for _ in range(2)]
    for rc, out in runs:
        assert rc == 0, out
        assert f"TP_SELFTEST board={board} unit=instructions" in out
        assert "TP_DATA ok" in out
        assert out.rstrip().endswith("TP_SELFTEST_OK")
    counts = [tuple(map(int, re.search(r"loop1000=(\d+) loop3000=(\d+)", out).groups())) for _, out in runs]
    d1, d3 = counts[0]
    # subs+bne = 2 instructions per iteration: 2000 more iterations = exactly 4000 instructions
    assert d3 - d1 == 4000
    assert 2000 <= d1 <= 2100          # 2000 loop instructions plus a few of call/counter overhead
    assert counts[0] == counts[1]      # identical across runs


@needs_qemu
@pytest.mark.qemu
def test_fault_is_reported_and_exits_with_exception_number(tmp_path):
    harness = tmp_path / "h"
    harness.mkdir()
    (harness / "main.c").write_text(
        '#include "bsp.h"\nint main(void) { bsp_init(); return *(volatile int *)0x70000000; }\n')
    cg = tmp_path / "cg"
    cg.mkdir()
    (cg / "model.h").write_text(MODEL_H)
    (cg / "model.c").write_text(MODEL_C)
    res = build_firmware(cg, "mps2-an500", tmp_path / "fw", harness_dir=harness)
    rc, out = run_qemu("mps2-an500", res.elf)
    assert "TP_FAULT exc=0x00000003" in out       # escalated to HardFault (no MemManage/BusFault enabled)
    assert rc == 0x80 | 3


@needs_qemu
@pytest.mark.qemu
def test_selftest_with_model_computes_expected_output(fake_codegen, tmp_path):
    res = build_firmware(fake_codegen, "mps2-an500", tmp_path / "fw", harness_dir="selftest")
    assert res.arena_bytes == 96                   # from the tp_arena symbol's size
    rc, out = run_qemu("mps2-an500", res.elf)
    assert rc == 0, out
    m = re.search(r"TP_MODEL hash=(\w+) out_sum=(\d+) count=(\d+)", out)
    assert m and m.group(1) == "0123456789abcdef"
    assert int(m.group(2)) == expected_model_sum()
    assert int(m.group(3)) > 8 * 4                 # at least one instruction per MAC
    assert run_qemu("mps2-an500", res.elf)[1] == out   # byte-identical output, counts included


# ----------------------------------------------------------------------------- nucleo-f746 image

def test_nucleo_vector_table_and_entry(selftests):
    res = selftests["nucleo-f746"]
    elf = Elf(res.elf)
    syms = elf.symbols
    vt = struct.unpack("<16I", elf.read(0x08000000, 64))
    assert elf.section(".isr_vector").addr == 0x08000000
    assert vt[0] == 0x20000000 + 327680 == syms["_estack"].value          # top of RAM = stack top
    reset = syms["Reset_Handler"].value
    assert vt[1] == reset and vt[1] & 1                                     # Thumb bit set
    assert elf.entry == reset
    text = elf.section(".text")
    for i in (1, 2, 3, 4, 5, 6, 7, 11, 12, 14, 15):
        assert vt[i] & 1, i
        assert text.addr <= (vt[i] & ~1) < text.addr + text.size, i
    assert [vt[i] for i in (8, 9, 10, 13)] == [0, 0, 0, 0]                 # reserved slots
    n_irq = (elf.section(".isr_vector").size - 64) // 4
    assert n_irq == 98                                                      # STM32F746 IRQ count
    assert syms["Default_Handler"].value in struct.unpack(f"<{n_irq}I", elf.read(0x08000040, 4 * n_irq))


def test_nucleo_sections_in_board_regions(selftests):
    res = selftests["nucleo-f746"]
    elf = Elf(res.elf)
    flash = (0x08000000, 0x08000000 + 1048576)
    ram = (0x20000000, 0x20000000 + 327680)

    def inside(addr, size, span):
        return span[0] <= addr and addr + size <= span[1]

    for name in (".isr_vector", ".text", ".rodata"):
        s = elf.section(name)
        assert inside(s.addr, s.size, flash), name
    data = elf.section(".data")
    assert inside(data.addr, data.size, ram)
    assert inside(elf.load_address(data), data.size, flash)                 # load image in flash
    assert elf.load_address(data) == elf.symbols["_sidata"].value
    for name in (".bss", ".stack"):
        s = elf.section(name)
        assert s.nobits and inside(s.addr, s.size, ram), name
    stack = elf.section(".stack")
    assert stack.size == 16384 and stack.addr + stack.size == ram[1]        # reserved_ram_bytes at the top
    for s in elf.alloc_sections:
        assert res.sections[s.name].region in ("FLASH", "RAM")


def test_size_figures_equal_section_sums(selftests):
    res = selftests["nucleo-f746"]
    # independent reading: arm-none-eabi-size -A
    out = subprocess.run(["arm-none-eabi-size", "-A", str(res.elf)], capture_output=True, text=True,
                         check=True).stdout
    sizes = {m.group(1): (int(m.group(2)), int(m.group(3)))
             for m in re.finditer(r"^(\.\S+)\s+(\d+)\s+(\d+)", out, re.M)}
    flash_secs = [n for n, (sz, addr) in sizes.items() if 0x08000000 <= addr < 0x08100000 and sz]
    assert sorted(flash_secs) == [".isr_vector", ".rodata", ".text"]
    assert res.flash_used == sum(sizes[n][0] for n in flash_secs) + sizes[".data"][0]
    assert res.ram_used == sizes[".data"][0] + sizes[".bss"][0] + sizes[".stack"][0]
    assert res.flash_limit == 1048576 and res.ram_limit == 327680
    assert res.flash_headroom == 1048576 - res.flash_used
    # the .bin spans the flash image from 0x08000000 to the end of .data's load image
    elf = Elf(res.elf)
    data = elf.section(".data")
    assert res.bin.stat().st_size == elf.load_address(data) + data.size - 0x08000000 == res.bin_bytes
    assert 0 <= res.bin_bytes - res.flash_used < 4 * 64                     # only alignment padding
    assert res.bin.read_bytes()[:8] == elf.read(0x08000000, 8)
    hex_lines = res.hex.read_text().splitlines()
    assert hex_lines[0].startswith(":02000004") and hex_lines[-1] == ":00000001FF"
    assert ihex_image(hex_lines, 0x08000000, res.bin_bytes) == res.bin.read_bytes()
    meta = __import__("json").loads((res.out_dir / "firmware.json").read_text())
    assert meta["flash_used"] == res.flash_used and meta["board"] == "nucleo-f746"


def ihex_image(lines: list[str], base: int, size: int) -> bytes:
    """Decode Intel HEX records (types 00, 01, 04, 05) into the bytes [base, base + size)."""
    img = bytearray(size)  # objcopy -O binary fills gaps with 0
    upper = 0
    for line in lines:
        raw = bytes.fromhex(line[1:])
        assert sum(raw) & 0xFF == 0                                        # record checksum
        n, addr, kind, data = raw[0], int.from_bytes(raw[1:3], "big"), raw[3], raw[4:4 + raw[0]]
        if kind == 0:
            a = upper + addr - base
            img[a:a + n] = data
        elif kind == 4:
            upper = int.from_bytes(data, "big") << 16
    return bytes(img)


def test_build_flags_follow_the_board_core(selftests):
    f746 = selftests["nucleo-f746"].cflags
    assert {"-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-sp-d16", "-mfloat-abi=hard",
            "-DTP_USE_ARM_DSP=1"} <= set(f746)
    an547 = selftests["mps3-an547"].cflags
    assert {"-mcpu=cortex-m55", "-DTP_USE_ARM_MVE=1", "-DTP_UART_BASE=0x49303000u",
            "-DTP_ICOUNT_SHIFT=7"} <= set(an547)
    an386 = selftests["mps2-an386"].cflags
    assert "-mcpu=cortex-m4" in an386
    # the ELF attributes agree: hard-float build for the M7
    assert Elf(selftests["nucleo-f746"].elf).eflags & 0x400       # EF_ARM_ABI_FLOAT_HARD


def test_linker_script_from_board_regions():
    text = render_linker_script(load_board("nucleo-f746"))
    assert "FLASH (rx)  : ORIGIN = 0x08000000, LENGTH = 0x100000" in text
    assert "RAM (rwx) : ORIGIN = 0x20000000, LENGTH = 0x50000" in text
    assert "_stack_size = 0x4000;" in text
    an547 = render_linker_script(load_board("mps3-an547"))
    assert "ITCM (rx)  : ORIGIN = 0x00000000, LENGTH = 0x80000" in an547
    assert "DTCM (rwx) : ORIGIN = 0x20000000, LENGTH = 0x80000" in an547


# ----------------------------------------------------------------------------- standalone make

def test_standalone_makefile_rebuilds_identical_bin(fake_codegen, tmp_path):
    res = build_firmware(fake_codegen, "nucleo-f746", tmp_path / "fw", harness_dir="selftest")
    copy = tmp_path / "copy"
    shutil.copytree(res.out_dir, copy)
    for f in ("firmware.elf", "firmware.bin", "firmware.hex", "firmware.map"):
        (copy / f).unlink()
    r = subprocess.run(["make", "-s"], cwd=copy, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (copy / "firmware.bin").read_bytes() == res.bin.read_bytes()
    assert (copy / "firmware.hex").read_text() == res.hex.read_text()
    assert (copy / "src/model/model.c").read_text() == MODEL_C


def test_harness_build_around_model(fake_codegen, tmp_path):
    if not (REPO / "firmware/harness/main.c").is_file():
        pytest.skip("firmware/harness not present")
    res = build_firmware(fake_codegen, "mps2-an500", tmp_path / "fw")
    assert res.harness == "harness"
    names = {p.name for p in (res.out_dir / "src/harness").iterdir()}
    assert "main.c" in names and "bsp_host.c" not in names
    elf = Elf(res.elf)
    assert "model_invoke" in elf.symbols and "main" in elf.symbols
    assert b"0123456789abcdef" in res.bin.read_bytes()


# ----------------------------------------------------------------------------- errors

def _tiny_board(tmp_path: Path, name: str, flash: int, ram: int) -> Path:
    text = (REPO / "boards/nucleo-f746.toml").read_text()
    text = text.replace('name = "nucleo-f746"', f'name = "{name}"')
    text = text.replace('sim_twin = "mps2-an500"', 'sim_twin = ""')
    text = text.replace("flash_bytes = 1048576", f"flash_bytes = {flash}")
    text = re.sub(r"ram_bytes = 327680", f"ram_bytes = {ram}", text)
    text = text.replace("origin = 0x08000000                     # RM0385 §2.2.2 / §3.3.2: flash on AXIM "
                        "at 0x0800 0000 (ITCM alias 0x0020 0000)\nlength = 1048576",
                        f"origin = 0x08000000\nlength = {flash}")
    text = re.sub(r"length = 327680\nrole = \"data\"\nbanks = \[.*?\n\]", f'length = {ram}\nrole = "data"',
                  text, flags=re.S)
    p = tmp_path / f"{name}.toml"
    p.write_text(text)
    return p


def test_over_budget_flash_reports_exact_figures(selftests, tmp_path):
    board = _tiny_board(tmp_path, "tiny-f746", 2048, 327680)
    out = tmp_path / "fw"
    with pytest.raises(OverBudgetError) as e:
        build_firmware(None, str(board), out, harness_dir="selftest")
    m = re.search(r"flash: ([\d,]+) B used > ([\d,]+) B available \(over by ([\d,]+) B\)", str(e.value))
    assert m, str(e.value)
    used, avail, over = (int(g.replace(",", "")) for g in m.groups())
    assert avail == 2048 and used - avail == over
    # same program as the nucleo-f746 selftest but with a 2-byte shorter board name string
    assert abs(used - selftests["nucleo-f746"].flash_used) <= 4
    assert e.value.exit_code == 3
    assert e.value.figures == {"firmware_flash_bytes": (used, 2048)}   # what `tinyprune build` records
    assert not out.exists()                       # nothing written


def test_over_budget_ram_counts_the_stack(selftests, tmp_path):
    ram = 16384 + 8
    board = _tiny_board(tmp_path, "tinyram-f746", 1048576, ram)
    with pytest.raises(OverBudgetError) as e:
        build_firmware(None, str(board), tmp_path / "fw", harness_dir="selftest")
    ref = selftests["nucleo-f746"].ram_used
    assert (f"RAM: {ref:,} B used (including the 16,384 B stack) > {ram:,} B available "
            f"(over by {ref - ram:,} B)") in str(e.value)
    assert e.value.figures == {"firmware_ram_bytes": (ref, ram)}


def test_over_budget_cli_exit_code_3(tmp_path, fake_codegen):
    board = _tiny_board(tmp_path, "tiny-f746", 2048, 327680)
    r = subprocess.run([str(REPO / ".venv/bin/tinyprune"), "firmware", str(fake_codegen), "--board",
                        str(board), "-o", str(tmp_path / "o"), "--harness", "selftest"],
                       capture_output=True, text=True)
    assert r.returncode == 3, r.stderr
    assert "over by" in r.stderr and "Traceback" not in r.stderr


def test_missing_toolchain_is_a_tool_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolError) as e:
        build_firmware(None, "mps2-an500", tmp_path / "fw", harness_dir="selftest")
    assert "arm-none-eabi-gcc not found" in str(e.value)
    assert "make setup" in str(e.value) and "apt-get install gcc-arm-none-eabi" in str(e.value)
    assert e.value.exit_code == 5


def test_bad_folder(tmp_path):
    with pytest.raises(UserInputError, match="not a codegen output folder"):
        build_firmware(tmp_path, "mps2-an500", tmp_path / "fw", harness_dir="selftest")


def test_cli_builds_and_prints_figures(fake_codegen, tmp_path, capsys):
    from tinyprune.cli import main
    build = tmp_path / "build"
    shutil.copytree(fake_codegen, build / "codegen")
    assert main(["firmware", str(build), "--board", "mps2-an386", "--harness", "selftest",
                 "-D", "TP_X=3"]) == 0
    fw = build / "firmware"
    assert (fw / "firmware.elf").is_file() and (fw / "Makefile").is_file()
    assert "-DTP_X=3" in (fw / "Makefile").read_text()
    flash, ram, _, _ = measure(fw / "firmware.elf", load_board("mps2-an386"))
    assert ram == 16384 + sum(s.size for s in Elf(fw / "firmware.elf").alloc_sections
                              if s.name in (".data", ".bss"))
    out = capsys.readouterr().out
    assert f"flash: {flash:>10,} B used of  4,194,304 B" in out
    assert f"RAM:   {ram:>10,} B used of  4,194,304 B" in out and "arena 96 B" in out


def test_board_without_bsp_builds_size_check_image(fake_codegen, tmp_path):
    """Catalog boards without a BSP (here the Cortex-M0+ rpi-pico and the M4 nucleo-f401re) still get
    exact flash/RAM figures from a real link for their core and memory map, marked not runnable."""
    import json

    from tinyprune.firmware.elf import Elf
    for board in ("rpi-pico", "nucleo-f401re"):
        b = load_board(board)
        res = build_firmware(fake_codegen, board, tmp_path / board)
        assert res.runnable is False and res.bsp == "bsp_sizeonly.c"
        elf = Elf(res.elf)
        text = next(s for s in elf.sections if s.name == ".text")
        assert b.text_region.origin <= text.addr < b.text_region.origin + b.text_region.length
        assert res.flash_limit == b.memory.flash_bytes and 0 < res.flash_used < res.flash_limit
        data = json.loads((tmp_path / board / "firmware.json").read_text())
        assert data["runnable"] is False and data["flash_used"] == res.flash_used


@needs_gcc
def test_build_id_names_model_board_and_options(fake_codegen, tmp_path):
    """The firmware embeds TP_BUILD_ID (reported by the harness's `info`, compared by validate):
    the same inputs give the same id, another board or option another one."""
    a = build_firmware(fake_codegen, "mps2-an500", tmp_path / "a", harness_dir="selftest")
    again = build_firmware(fake_codegen, "mps2-an500", tmp_path / "again", harness_dir="selftest")
    other_board = build_firmware(fake_codegen, "mps2-an386", tmp_path / "b", harness_dir="selftest")
    other_opt = build_firmware(fake_codegen, "mps2-an500", tmp_path / "c", harness_dir="selftest",
                               defines={"TP_X": 3})
    assert len(a.build_id) == 16 and a.build_id == again.build_id
    assert len({a.build_id, other_board.build_id, other_opt.build_id}) == 3
    assert f'-DTP_BUILD_ID="{a.build_id}"' in a.cflags
    assert json.loads((tmp_path / "a" / "firmware.json").read_text())["build_id"] == a.build_id
