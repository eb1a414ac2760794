"""`tinyprune flash`: mass-storage copy to a (fake) mounted volume, tool methods run with the right
arguments (fake tools on PATH record them), auto selection order, and clear errors."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tinyprune.cli import main
from tinyprune.errors import ToolError, UserInputError
from tinyprune.firmware.flash import flash, volume_candidates


@pytest.fixture
def firmware_dir(tmp_path):
    d = tmp_path / "build" / "firmware"
    d.mkdir(parents=True)
    (d / "firmware.bin").write_bytes(bytes(range(256)) * 9)
    (d / "firmware.elf").write_bytes(b"\x7fELF fake")
    (d / "firmware.hex").write_text(":00000001FF\n")
    (d / "firmware.json").write_text(json.dumps({"board": "nucleo-f746"}))
    return d


@pytest.fixture
def fake_path(tmp_path, monkeypatch):
    """An empty PATH (plus tools the test adds) and no extra mount roots."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    monkeypatch.setenv("PATH", str(bindir))
    monkeypatch.delenv("TINYPRUNE_MOUNT_ROOTS", raising=False)
    return bindir


def add_tool(bindir: Path, name: str, rc: int = 0) -> Path:
    """A fake flasher that writes its arguments, one per line, to <name>.args."""
    log = bindir / f"{name}.args"
    script = bindir / name
    script.write_text(f'#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done > "{log}"\n'
                      f'echo "fake {name} output"\nexit {rc}\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return log


def test_mass_storage_copies_bin_to_volume(firmware_dir, fake_path, tmp_path):
    media = tmp_path / "media" / "user"
    vol = media / "NODE_F746ZG"
    vol.mkdir(parents=True)
    res = flash(firmware_dir.parent, method="auto", mount_roots=[media])
    assert res.method == "mass-storage" and res.target == str(vol)
    assert (vol / "firmware.bin").read_bytes() == (firmware_dir / "firmware.bin").read_bytes()


def test_mass_storage_found_through_env_roots(firmware_dir, fake_path, tmp_path, monkeypatch):
    root = tmp_path / "mnt"
    (root / "NODE_F746ZG").mkdir(parents=True)
    monkeypatch.setenv("TINYPRUNE_MOUNT_ROOTS", str(root))
    assert volume_candidates("NODE_F746ZG")[0] == root / "NODE_F746ZG"
    assert main(["flash", str(firmware_dir), "--method", "mass-storage"]) == 0
    assert (root / "NODE_F746ZG/firmware.bin").stat().st_size == 256 * 9


def test_auto_falls_back_to_first_available_tool(firmware_dir, fake_path):
    # methods of nucleo-f746: mass-storage, openocd, st-flash, pyocd -> no volume, so openocd
    log_o = add_tool(fake_path, "openocd")
    log_s = add_tool(fake_path, "st-flash")
    res = flash(firmware_dir)
    assert res.method == "openocd"
    assert log_o.read_text().splitlines() == [
        "-f", "board/st_nucleo_f7.cfg", "-c", f"program {firmware_dir / 'firmware.elf'} verify reset exit"]
    assert not log_s.exists()


@pytest.mark.parametrize("method,expected", [
    ("st-flash", lambda d: ["--reset", "write", str(d / "firmware.bin"), "0x08000000"]),
    ("pyocd", lambda d: ["flash", "-t", "stm32f746zgtx", str(d / "firmware.hex")]),
])
def test_named_tool_methods(firmware_dir, fake_path, method, expected):
    log = add_tool(fake_path, method)
    assert main(["flash", str(firmware_dir), "--method", method, "--board", "nucleo-f746"]) == 0
    assert log.read_text().splitlines() == expected(firmware_dir)


def test_nothing_available_lists_what_was_tried(firmware_dir, fake_path, capsys):
    with pytest.raises(ToolError) as e:
        flash(firmware_dir)
    msg = str(e.value)
    for what in ("mass-storage: volume 'NODE_F746ZG' not mounted", "openocd: openocd not on PATH",
                 "st-flash: st-flash not on PATH", "pyocd: pyocd not on PATH",
                 "apt-get install openocd", "stlink-tools"):
        assert what in msg
    with pytest.raises(SystemExit) as ex:
        main(["flash", str(firmware_dir)])
    assert ex.value.code == 5
    assert "no way to flash nucleo-f746" in capsys.readouterr().err


def test_failing_tool_reports_its_output(firmware_dir, fake_path):
    add_tool(fake_path, "st-flash", rc=2)
    with pytest.raises(ToolError, match=r"exit code 2:\nfake st-flash output"):
        flash(firmware_dir, method="st-flash")


def test_bad_requests(firmware_dir, fake_path, tmp_path):
    with pytest.raises(UserInputError, match="QEMU board"):
        (firmware_dir / "firmware.json").write_text(json.dumps({"board": "mps2-an500"}))
        flash(firmware_dir)
    with pytest.raises(UserInputError, match="built for mps2-an500, not nucleo-f746"):
        flash(firmware_dir, "nucleo-f746")
    with pytest.raises(UserInputError, match="no built firmware"):
        flash(tmp_path / "nowhere", "nucleo-f746")
    (firmware_dir / "firmware.json").write_text(json.dumps({"board": "nucleo-f746"}))
    with pytest.raises(UserInputError, match="does not support flashing by uf2|unknown flash method"):
        flash(firmware_dir, method="uf2")
    assert os.environ["PATH"] == str(fake_path)
