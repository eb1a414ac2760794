"""Board catalog: every board file loads and matches its datasheet; malformed files give errors
that name the file and the field; --boards-dir, paths, CLI and JSON output behave as documented."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tinyprune._paths import BOARDS_DIR
from tinyprune.boards import Board, list_boards, load_board
from tinyprune.cli import cli
from tinyprune.errors import UserInputError

KB, MB = 1024, 1024 * 1024

EXPECTED_BOARDS = {"nucleo-f746", "nucleo-h743zi", "nucleo-l4r5zi", "nucleo-f401re", "disco-l475-iot01a",
                   "nrf52840-dk", "rpi-pico", "mps2-an500", "mps2-an386", "mps3-an547"}

# name -> (flash bytes, total SRAM bytes over all RAM regions, clock Hz, source of the figures)
DATASHEET = {
    "nucleo-f746": (1 * MB, 320 * KB + 16 * KB, 216_000_000,
                    "DS10916 STM32F746xx: 1024 KB flash, 320 KB SRAM + 16 KB ITCM-RAM, 216 MHz"),
    "nucleo-h743zi": (2 * MB, 192 * KB + 864 * KB, 480_000_000,
                      "DS12110 STM32H743xI: 2 MB flash, 192 KB TCM + 864 KB user SRAM, 480 MHz"),
    "nucleo-l4r5zi": (2 * MB, 640 * KB, 120_000_000, "DS12023 STM32L4R5xI: 2 MB flash, 640 KB SRAM, 120 MHz"),
    "nucleo-f401re": (512 * KB, 96 * KB, 84_000_000, "DS10086 STM32F401xE: 512 KB flash, 96 KB SRAM, 84 MHz"),
    "disco-l475-iot01a": (1 * MB, 128 * KB, 80_000_000,
                          "DS10969 STM32L475xG: 1 MB flash, 128 KB SRAM (96 KB SRAM1 + 32 KB SRAM2), 80 MHz"),
    "nrf52840-dk": (1 * MB, 256 * KB, 64_000_000, "nRF52840 Product Specification: 1 MB flash, 256 KB RAM, 64 MHz"),
    "rpi-pico": (2 * MB, 264 * KB, 133_000_000,
                 "RP2040 Datasheet: 264 KB SRAM, 133 MHz; Pico Datasheet: 2 MB QSPI flash"),
    # QEMU 7.2 hw/arm/mps2.c and mps2-tz.c (and `info mtree` on QEMU 7.2.22)
    "mps2-an500": (4 * MB, 4 * MB + 4 * MB + 16 * MB, 25_000_000, "QEMU mps2.c: SSRAM1, SSRAM2&3, PSRAM; 25 MHz"),
    "mps2-an386": (4 * MB, 4 * MB + 16 * KB + 4 * MB + 16 * MB, 25_000_000,
                   "QEMU mps2.c: SSRAM1, block RAM, SSRAM2&3, PSRAM; 25 MHz"),
    "mps3-an547": (512 * KB, 512 * KB + 2 * MB + 512 * KB + 4 * MB, 32_000_000,
                   "QEMU mps2-tz.c an547_raminfo: ITCM, SRAM, DTCM, SRAM 2; 32 MHz"),
}

# Exact memory maps (name, origin, length, role) that linker scripts are generated from.
REGIONS = {
    # RM0385 memory map: flash on AXIM 0x08000000; DTCM 0x20000000 64 KB, SRAM1 0x20010000 240 KB,
    # SRAM2 0x2004C000 16 KB (contiguous); ITCM-RAM 16 KB at 0x0
    "nucleo-f746": [("FLASH", 0x08000000, 1 * MB, "text"), ("RAM", 0x20000000, 320 * KB, "data"),
                    ("ITCM", 0x00000000, 16 * KB, "other")],
    # RM0433: AXI SRAM 0x24000000 512 KB; ITCM 64 KB; DTCM 128 KB; SRAM1-3 0x30000000; SRAM4 0x38000000
    "nucleo-h743zi": [("FLASH", 0x08000000, 2 * MB, "text"), ("AXI_SRAM", 0x24000000, 512 * KB, "data"),
                      ("ITCM", 0, 64 * KB, "other"), ("DTCM", 0x20000000, 128 * KB, "other"),
                      ("SRAM123", 0x30000000, 288 * KB, "other"), ("SRAM4", 0x38000000, 64 * KB, "other")],
    "mps2-an500": [("SSRAM1", 0, 4 * MB, "text"), ("SSRAM23", 0x20000000, 4 * MB, "data"),
                   ("PSRAM", 0x60000000, 16 * MB, "other")],
    "mps3-an547": [("ITCM", 0, 512 * KB, "text"), ("SRAM", 0x01000000, 2 * MB, "other"),
                   ("DTCM", 0x20000000, 512 * KB, "data"), ("SRAM2", 0x21000000, 4 * MB, "other")],
}

SERIAL = {  # name -> (uart, base address, tx, rx): UM1974, UM2179, UM1724, UM2153, nRF52840 DK guide, RP2040/QEMU
    "nucleo-f746": ("USART3", 0x40004800, "PD8", "PD9"),
    "nucleo-h743zi": ("USART3", 0x40004800, "PD8", "PD9"),
    "nucleo-l4r5zi": ("LPUART1", 0x40008000, "PG7", "PG8"),
    "nucleo-f401re": ("USART2", 0x40004400, "PA2", "PA3"),
    "disco-l475-iot01a": ("USART1", 0x40013800, "PB6", "PB7"),
    "nrf52840-dk": ("UARTE0", 0x40002000, "P0.06", "P0.08"),
    "rpi-pico": ("UART0", 0x40034000, "GP0", "GP1"),
    "mps2-an500": ("UART0", 0x40004000, "", ""),
    "mps2-an386": ("UART0", 0x40004000, "", ""),
    "mps3-an547": ("UART0", 0x49303000, "", ""),
}


@pytest.fixture(scope="session")
def boards() -> dict[str, Board]:
    return {b.name: b for b in list_boards()}


def test_catalog_has_every_board_sorted(boards):
    assert EXPECTED_BOARDS <= set(boards)
    assert [b.name for b in list_boards()] == sorted(boards)
    for b in boards.values():
        assert b.source_path == BOARDS_DIR / f"{b.name}.toml"
        assert load_board(b.name) == b


@pytest.mark.parametrize("name", sorted(DATASHEET))
def test_sizes_and_clock_match_datasheet(boards, name):
    flash, total_ram, clock, source = DATASHEET[name]
    b = boards[name]
    assert b.memory.flash_bytes == flash, source
    assert sum(r.length for r in b.memory.regions if r.kind == "ram") == total_ram, source
    assert b.core.clock_hz == clock, source
    assert b.memory.ram_bytes <= b.data_region.length
    assert b.memory.flash_bytes <= b.text_region.length
    assert b.model_ram_budget == b.memory.ram_bytes - b.memory.reserved_ram_bytes > 0


def test_f746_facts(boards):
    b = boards["nucleo-f746"]  # DS10916 / RM0385 / UM1974
    assert (b.mcu, b.core.cpu, b.core.arch, b.core.fpu, b.core.float_abi) == \
        ("STM32F746ZG", "cortex-m7", "armv7e-m", "fpv5-sp-d16", "hard")
    assert b.core.dsp and not b.core.mve
    assert b.memory.ram_bytes == 327680 and b.model_ram_budget == 327680 - 16384
    banks = [(k.name, k.origin, k.length) for k in b.data_region.banks]
    assert banks == [("DTCM", 0x20000000, 64 * KB), ("SRAM1", 0x20010000, 240 * KB),
                     ("SRAM2", 0x2004C000, 16 * KB)]
    assert (b.serial.baud, b.serial.usb_ids) == (115200, ("0483:374b",))
    assert b.flash.mass_storage_volume == "NODE_F746ZG"
    assert b.sim_twin == "mps2-an500" and b.qemu_board == "mps2-an500"
    assert b.gcc_flags == ["-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-sp-d16", "-mfloat-abi=hard"]


def test_pico_and_m55(boards):
    p = boards["rpi-pico"]  # RP2040 Datasheet: Cortex-M0+, no DSP, no FPU, SRAM0-3 striped + SRAM4 + SRAM5
    assert (p.core.cpu, p.core.arch, p.core.dsp, p.core.fpu, p.core.float_abi) == \
        ("cortex-m0plus", "armv6-m", False, "none", "soft")
    assert p.gcc_flags == ["-mcpu=cortex-m0plus", "-mthumb", "-mfloat-abi=soft"]
    assert [(k.origin, k.length) for k in p.data_region.banks] == \
        [(0x20000000, 256 * KB), (0x20040000, 4 * KB), (0x20041000, 4 * KB)]
    assert (p.text_region.origin, p.sim_twin, p.qemu_board) == (0x10000000, "", None)
    m = boards["mps3-an547"]
    assert m.core.mve and m.core.arch == "armv8.1-m.main" and m.qemu.machine == "mps3-an547"


@pytest.mark.parametrize("name", sorted(REGIONS))
def test_regions_exact(boards, name):
    got = [(r.name, r.origin, r.length, r.role) for r in boards[name].memory.regions]
    assert got == REGIONS[name]


@pytest.mark.parametrize("name", sorted(SERIAL))
def test_serial_facts(boards, name):
    s = boards[name].serial
    assert (s.uart, s.base_address, s.tx_pin, s.rx_pin) == SERIAL[name]


def test_twins_share_the_core(boards):
    for b in boards.values():
        if b.simulation:
            assert b.qemu.cpu == b.core.cpu and b.flash.methods == ("qemu",) and b.serial.usb_ids == ()
        elif b.sim_twin:
            twin = boards[b.sim_twin]
            assert twin.simulation and twin.core.cpu == b.core.cpu


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="arm-none-eabi-gcc not installed")
def test_gcc_flags_give_the_declared_features(boards):
    """The compiler, given each board's flags, predefines exactly the features the board declares."""
    for b in boards.values():
        out = subprocess.run(["arm-none-eabi-gcc", *b.gcc_flags, "-dM", "-E", "-x", "c", "-"], input="",
                             capture_output=True, text=True, check=True).stdout
        macros = dict(line.split(" ", 2)[1:] if line.count(" ") >= 2 else (line.split(" ")[1], "")
                      for line in out.splitlines() if line.startswith("#define "))
        assert ("__ARM_FEATURE_DSP" in macros) == b.core.dsp, b.name
        assert ("__ARM_FEATURE_MVE" in macros) == b.core.mve, b.name
        assert ("__ARM_FP" in macros) == (b.core.fpu != "none"), b.name
        if b.core.fpu != "none":
            double = bool(int(macros["__ARM_FP"]) & 8)
            assert double == (b.core.fpu in ("fpv5-d16", "auto")), b.name
        assert macros["__ARM_ARCH_PROFILE"] == "77", b.name  # 'M'


# ---------------------------------------------------------------------------------------------
# malformed files

F746 = (BOARDS_DIR / "nucleo-f746.toml").read_text()


def _write(tmp_path: Path, text: str, stem: str = "nucleo-f746") -> Path:
    p = tmp_path / f"{stem}.toml"
    p.write_text(text)
    return p


def _error(path: Path) -> str:
    with pytest.raises(UserInputError) as e:
        load_board(str(path))
    return str(e.value)


def _sub(old: str, new: str, text: str = F746) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


@pytest.mark.parametrize("old,new,field,problem", [
    ("flash_bytes = 1048576 ", "flash_bytes = \"1M\" ", "memory.flash_bytes",
     'expected a positive integer, got "1M"'),
    ("clock_hz = 216000000", "", "core.clock_hz", "missing required field"),
    ("dsp = true ", "dsp = \"yes\" ", "core.dsp", 'expected true or false, got "yes"'),
    ("baud = 115200", "baud = 115200\nbuad = 9600", "serial.buad", "unknown key"),
    ("fpu = \"fpv5-sp-d16\"", "fpu = \"fpv5-sp\"", "core.fpu", "expected one of"),
    ("fpu = \"fpv5-sp-d16\"", "fpu = \"fpv4-sp-d16\"", "core.fpu", "does not fit cortex-m7"),
    ("arch = \"armv7e-m\"", "arch = \"armv7-m\"", "core.arch", "cortex-m7 implements armv7e-m"),
    ("origin = 0x00000000 ", "origin = 0x08000000 ", "memory.regions", "overlap"),
    ("role = \"data\"", "role = \"other\"", "memory.regions", 'exactly one region must have role = "data"'),
    ("role = \"text\"", "role = \"other\"", "memory.regions", 'exactly one region must have role = "text"'),
    ("name = \"ITCM\"", "name = \"RAM\"", "memory.regions[2].name", "duplicate region name"),
    ("length = 245760", "length = 245000", "memory.regions[1].banks[2].origin", "without gaps"),
    ("ram_bytes = 327680", "ram_bytes = 400000", "memory.ram_bytes", "larger than the data region RAM"),
    ("reserved_ram_bytes = 16384", "reserved_ram_bytes = 327680", "memory.reserved_ram_bytes",
     "leaves no RAM"),
    ("usb_ids = [\"0483:374b\"]", "usb_ids = [\"0483:374B\"]", "serial.usb_ids", "lower-case hex"),
    ("\"pyocd\"]", "\"jtag\"]", "flash.methods", 'unknown method "jtag"'),
    ("pyocd_target = \"stm32f746zgtx\"", "pyocd_target = \"\"", "flash.pyocd_target", "required by method pyocd"),
    ("sim_twin = \"mps2-an500\"", "sim_twin = \"mps2-an386\"", "sim_twin", "runs a cortex-m4"),
    ("sim_twin = \"mps2-an500\"", "sim_twin = \"mps9\"", "sim_twin", "no board named 'mps9'"),
    ("[serial]", "[qemu]\nmachine = \"x\"\ncpu = \"cortex-m7\"\n\n[serial]", "qemu",
     "only simulation boards"),
])
def test_malformed_field_is_named(tmp_path, old, new, field, problem):
    msg = _error(_write(tmp_path, _sub(old, new)))
    assert msg.startswith(f"{tmp_path / 'nucleo-f746.toml'}: {field}: "), msg
    assert problem in msg, msg


def test_name_must_equal_stem(tmp_path):
    msg = _error(_write(tmp_path, F746, stem="my-f746"))
    assert msg.startswith(f"{tmp_path / 'my-f746.toml'}: name: ") and "must equal the file name" in msg


def test_simulation_board_needs_qemu_table(tmp_path):
    text = (BOARDS_DIR / "mps2-an500.toml").read_text()
    msg = _error(_write(tmp_path, text.split("[qemu]")[0], stem="mps2-an500"))
    assert msg.startswith(f"{tmp_path / 'mps2-an500.toml'}: qemu: missing required table")


def test_invalid_toml_and_missing_file(tmp_path):
    msg = _error(_write(tmp_path, F746 + "\n[core\n"))
    assert msg.startswith(f"{tmp_path / 'nucleo-f746.toml'}: not valid TOML")
    msg = _error(tmp_path / "absent.toml")
    assert "absent.toml: board file not found" in msg


def test_catalog_errors_name_the_catalog_file(tmp_path, monkeypatch):
    import tinyprune.boards as tb
    import tinyprune._paths as tp
    fake = tmp_path / "boards"
    fake.mkdir()
    (fake / "nucleo-f746.toml").write_text(_sub("mve = false", "mve = true"))
    monkeypatch.setattr(tp, "ROOT", tmp_path)
    monkeypatch.setattr(tb, "BOARDS_DIR", fake)
    with pytest.raises(UserInputError, match=r"^boards/nucleo-f746\.toml: core\.mve: cortex-m7 has no MVE"):
        load_board("nucleo-f746")


# ---------------------------------------------------------------------------------------------
# user boards: --boards-dir and paths

def _user_dir(tmp_path: Path) -> Path:
    d = tmp_path / "myboards"
    d.mkdir()
    (d / "my-f746.toml").write_text(_sub('name = "nucleo-f746"', 'name = "my-f746"',
                                         _sub("reserved_ram_bytes = 16384", "reserved_ram_bytes = 65536")))
    # a user file with a catalog name replaces the catalog board
    (d / "nucleo-f401re.toml").write_text(
        (BOARDS_DIR / "nucleo-f401re.toml").read_text().replace("reserved_ram_bytes = 16384",
                                                                "reserved_ram_bytes = 8192"))
    return d


def test_boards_dir_adds_and_overrides(tmp_path, boards):
    d = _user_dir(tmp_path)
    listed = {b.name: b for b in list_boards(d)}
    assert set(listed) == set(boards) | {"my-f746"}
    assert listed["my-f746"].model_ram_budget == 327680 - 65536
    assert listed["nucleo-f401re"].model_ram_budget == 98304 - 8192
    assert load_board("my-f746", boards_dir=d).source_path == d / "my-f746.toml"
    assert load_board("nucleo-f401re").model_ram_budget == 98304 - 16384  # catalog unchanged
    by_path = load_board(str(d / "my-f746.toml"))
    assert by_path == listed["my-f746"]
    with pytest.raises(UserInputError, match="not a directory"):
        list_boards(tmp_path / "nope")


def test_unknown_board_lists_known_and_suggests():
    with pytest.raises(UserInputError) as e:
        load_board("nucleo-f764")
    msg = str(e.value)
    assert "unknown board 'nucleo-f764'" in msg and "nucleo-f746" in msg and "did you mean 'nucleo-f746'" in msg


# ---------------------------------------------------------------------------------------------
# CLI

def test_cli_list_and_show(tmp_path):
    r = CliRunner().invoke(cli, ["boards"])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0].split()[:3] == ["name", "core", "clock"]
    f746 = next(line for line in lines if line.startswith("nucleo-f746 "))
    assert f746.split() == ["nucleo-f746", "cortex-m7", "216", "MHz", "1", "MB", "320", "KB", "304", "KB",
                            "DSP,", "fpv5-sp-d16", "mps2-an500", "runnable"]
    assert lines[0].split()[-1] == "firmware"
    assert next(line for line in lines if line.startswith("nucleo-f401re ")).split()[-1] == "size-check"
    assert next(line for line in lines if line.startswith("mps2-an500 ")).split()[-1] == "runnable"
    r = CliRunner().invoke(cli, ["boards", "show", "nucleo-f746"])
    assert r.exit_code == 0 and "USART3 at 0x40004800, TX PD8 / RX PD9 115200 baud" in r.output
    d = _user_dir(tmp_path)
    r = CliRunner().invoke(cli, ["boards", "--boards-dir", str(d)])
    assert r.exit_code == 0 and "\nmy-f746 " in r.output
    r = CliRunner().invoke(cli, ["boards", "show", "my-f746", "--boards-dir", str(d), "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["memory"]["model_ram_budget"] == 327680 - 65536
    r = CliRunner().invoke(cli, ["boards", "show", str(d / "my-f746.toml")])
    assert r.exit_code == 0 and r.output.startswith("my-f746: ")


def test_cli_json_stable_and_documented():
    runs = [CliRunner().invoke(cli, ["boards", "--json"]) for _ in range(2)]
    assert all(r.exit_code == 0 for r in runs) and runs[0].output == runs[1].output
    data = json.loads(runs[0].output)
    assert [d["name"] for d in data] == sorted(d["name"] for d in data)
    assert runs[0].output == json.dumps(data, indent=2, sort_keys=True) + "\n"
    f746 = next(d for d in data if d["name"] == "nucleo-f746")
    assert f746["memory"]["regions"][1]["banks"][1] == {"name": "SRAM1", "origin": 0x20010000,
                                                         "length": 240 * KB}
    assert f746["gcc_flags"][0] == "-mcpu=cortex-m7" and f746["qemu"] is None
    # which boards get runnable firmware (the BSPs of tinyprune/firmware/build.py); the rest a size check
    assert {d["name"] for d in data if d["firmware"] == "runnable"} == {
        "nucleo-f746", "mps2-an500", "mps2-an386", "mps3-an547"}
    assert all(d["firmware"] == "size-check" for d in data if not d["simulation"] and d["name"] != "nucleo-f746")
    # every key of the JSON form is documented in docs/boards.md
    doc = (BOARDS_DIR.parent / "docs" / "boards.md").read_text()

    def keys(obj, path=""):
        if isinstance(obj, dict):
            for k, v in obj.items():
                yield f"{path}.{k}" if path else k
                yield from keys(v, f"{path}.{k}" if path else k)
        elif isinstance(obj, list):
            for item in obj:
                yield from keys(item, f"{path}[]")
    for b in data:
        for k in keys(b):
            assert f"`{k}`" in doc, f"docs/boards.md does not document `{k}`"


def test_cli_unknown_board_exit_code_2_without_traceback():
    p = subprocess.run([sys.executable, "-m", "tinyprune.cli", "boards", "show", "nucleo-f74"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr and "unknown board 'nucleo-f74'" in p.stderr
    assert "did you mean 'nucleo-f746'" in p.stderr and p.stdout == ""


def test_main_malformed_file_exit_2(tmp_path, capsys):
    from tinyprune.cli import main
    bad = _write(tmp_path, _sub("clock_hz = 216000000", "clock_hz = -1"))
    with pytest.raises(SystemExit) as e:
        main(["boards", "show", str(bad)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad}: core.clock_hz: expected a positive integer, got -1")
    assert "Traceback" not in err
