"""`tinyprune flash`: mass-storage copy to a (fake) drive that a fake probe thread programs and
re-enumerates (FAIL.TXT, read-only, no space, no probe), tool methods run with the right arguments
(fake tools record them), tool overrides ($TINYPRUNE_OPENOCD/STFLASH/PYOCD), auto trying every
method, a hanging tool stopped after the timeout, the openocd file name read back by Tcl, size-check
images refused, and clear errors with their exit codes."""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import threading
import time
from collections import namedtuple
from pathlib import Path

import pytest

from tinyprune.cli import main
from tinyprune.errors import ToolError, UserInputError
from tinyprune.firmware import flash_volume
from tinyprune.firmware.flash import flash, tcl_word, tool_env_var, volume_candidates

BIN = bytes(range(256)) * 9
FAIL_TEXT = "The interface firmware FAILED to reset/halt the target MCU"


@pytest.fixture
def firmware_dir(tmp_path):
    return make_firmware(tmp_path / "build" / "firmware")


def make_firmware(d: Path, **meta) -> Path:
    d.mkdir(parents=True)
    (d / "firmware.bin").write_bytes(BIN)
    (d / "firmware.elf").write_bytes(b"\x7fELF fake")
    (d / "firmware.hex").write_text(":00000001FF\n")
    (d / "firmware.json").write_text(json.dumps({"board": "nucleo-f746", **meta}))
    return d


@pytest.fixture
def fake_path(tmp_path, monkeypatch):
    """An empty PATH (plus tools the test adds), no extra mount roots, no tool overrides, and a
    2 s flash timeout (so that a bug cannot make a test wait the default 120 s)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    monkeypatch.setenv("PATH", str(bindir))
    for var in ("TINYPRUNE_MOUNT_ROOTS", "TINYPRUNE_OPENOCD", "TINYPRUNE_STFLASH", "TINYPRUNE_PYOCD"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TINYPRUNE_FLASH_TIMEOUT", "2")
    return bindir


def add_tool(bindir: Path, name: str, rc: int = 0, body: str = "") -> Path:
    """A fake flasher that writes its arguments, one per line, to <name>.args."""
    log = bindir / f"{name}.args"
    script = bindir / name
    script.write_text(f'#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done > "{log}"\n'
                      f'echo "fake {name} output"\n{body}\nexit {rc}\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return log


class FakeProbe(threading.Thread):
    """Plays an ST-LINK drive: waits until firmware.bin is complete on ``vol``, keeps its bytes, then
    (``reenumerate``) swaps in a fresh drive with DETAILS.TXT (+ FAIL.TXT with ``fail``) after the
    folder has been away for 0.3 s (``come_back=False``: it stays away), or writes FAIL.TXT in place."""

    def __init__(self, vol: Path, fail: str | None = None, reenumerate=True, come_back=True):
        super().__init__(daemon=True)
        self.vol, self.fail, self.reenumerate, self.come_back = vol, fail, reenumerate, come_back
        self.got = None

    def run(self):
        dest, deadline = self.vol / "firmware.bin", time.monotonic() + 10
        while not (dest.is_file() and dest.stat().st_size == len(BIN)):
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)
        self.got = dest.read_bytes()
        if not self.reenumerate:
            (self.vol / "FAIL.TXT").write_text(self.fail + "\r\n")
            return
        fresh = self.vol.parent / ".fresh"
        fresh.mkdir()
        (fresh / "DETAILS.TXT").write_text("Version: 0221\r\n")
        if self.fail:
            (fresh / "FAIL.TXT").write_text(self.fail + "\r\n")
        gone = self.vol.parent / ".gone"        # the drive disappears at once, as an unmounted volume does
        os.rename(self.vol, gone)               # (an rmtree in place shows a drive without the image first)
        shutil.rmtree(gone)
        time.sleep(0.3)
        if self.come_back:
            os.rename(fresh, self.vol)


@pytest.fixture
def drive(tmp_path):
    vol = tmp_path / "media" / "user" / "NODE_F746ZG"
    vol.mkdir(parents=True)
    (vol / "MBED.HTM").write_text("<html></html>")
    return vol


# --------------------------------------------------------------------------- mass storage

@pytest.mark.parametrize("stale_fail", [False, True])
def test_mass_storage_copies_and_waits_for_the_board(firmware_dir, fake_path, drive, stale_fail):
    if stale_fail:   # left from an earlier failure: the re-enumerated drive no longer has it
        (drive / "FAIL.TXT").write_text("old failure")
    probe = FakeProbe(drive)
    probe.start()
    res = flash(firmware_dir.parent, method="auto", mount_roots=[drive.parent])
    probe.join()
    assert probe.got == BIN
    assert res.method == "mass-storage" and res.target == str(drive)
    assert "came back without FAIL.TXT" in res.output and res.warnings == [] and res.failed == []


def test_mass_storage_found_through_env_roots(firmware_dir, fake_path, tmp_path, monkeypatch, capsys):
    root = tmp_path / "mnt"
    (root / "NODE_F746ZG").mkdir(parents=True)
    monkeypatch.setenv("TINYPRUNE_MOUNT_ROOTS", str(root))
    assert volume_candidates("NODE_F746ZG")[0] == root / "NODE_F746ZG"
    probe = FakeProbe(root / "NODE_F746ZG")
    probe.start()
    assert main(["flash", str(firmware_dir), "--method", "mass-storage"]) == 0
    probe.join()
    assert probe.got == BIN
    cap = capsys.readouterr()
    assert "waiting up to 2 s for the board to program it" in cap.err
    assert f"flashed {firmware_dir / 'firmware.bin'} by copying it to {root / 'NODE_F746ZG'}" in cap.out


@pytest.mark.parametrize("reenumerate", [True, False])
def test_mass_storage_reports_fail_txt(firmware_dir, fake_path, drive, reenumerate, capsys):
    probe = FakeProbe(drive, fail=FAIL_TEXT, reenumerate=reenumerate)
    probe.start()
    with pytest.raises(SystemExit) as ex:
        main(["flash", str(firmware_dir), "--method", "mass-storage", "--mount-root", str(drive.parent)])
    probe.join()
    assert ex.value.code == 5
    err = capsys.readouterr().err
    assert f"{drive / 'FAIL.TXT'} says: {FAIL_TEXT}" in err
    assert "--method openocd / st-flash / pyocd" in err


def test_mass_storage_without_a_probe_taking_the_file(firmware_dir, fake_path, drive):
    with pytest.raises(ToolError) as e:
        flash(firmware_dir, method="mass-storage", mount_roots=[drive.parent], timeout=0.5)
    assert (f"firmware.bin is still on {drive} 0.5 s after the copy and the drive did not re-enumerate: "
            f"nothing programmed the board ({drive} is not a mount point)") in str(e.value)
    assert "raise --timeout" in str(e.value)


def test_mass_storage_drive_that_does_not_come_back_is_a_warning(firmware_dir, fake_path, drive, capsys):
    probe = FakeProbe(drive, come_back=False)
    probe.start()
    assert main(["flash", str(firmware_dir), "--method", "mass-storage", "--mount-root", str(drive.parent),
                 "--timeout", "1"]) == 0
    probe.join()
    assert probe.got == BIN
    assert ("warning: the drive 'NODE_F746ZG' went away after the copy and did not come back within 1 s, "
            "so FAIL.TXT could not be checked") in capsys.readouterr().err


def test_mass_storage_read_only_drive(firmware_dir, fake_path, drive, monkeypatch):
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if (Path(p) == drive and mode & os.W_OK)
                        else real_access(p, mode, **kw))
    with pytest.raises(ToolError) as e:
        flash(firmware_dir, method="mass-storage", mount_roots=[drive.parent])
    assert f"volume 'NODE_F746ZG' at {drive} is mounted read-only: cannot copy firmware.bin" in str(e.value)
    assert "not mounted" not in str(e.value)
    assert not (drive / "firmware.bin").exists()


def test_mass_storage_no_space(firmware_dir, fake_path, drive, monkeypatch):
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(flash_volume.shutil, "disk_usage", lambda p: Usage(1000, 900, 100))
    with pytest.raises(ToolError) as e:
        flash(firmware_dir, method="mass-storage", mount_roots=[drive.parent])
    assert (f"volume 'NODE_F746ZG' at {drive} has no space for firmware.bin: 100 B free, "
            f"the image is 2,304 B") in str(e.value)
    assert not (drive / "firmware.bin").exists()


def test_mass_storage_drive_gone_while_writing(firmware_dir, fake_path, drive, monkeypatch):
    def gone(*a, **kw):
        raise OSError(19, "No such device")
    monkeypatch.setattr(flash_volume.os, "fsync", gone)
    with pytest.raises(ToolError, match=r"went away while copying firmware.bin: No such device"):
        flash(firmware_dir, method="mass-storage", mount_roots=[drive.parent])


# --------------------------------------------------------------------------- tools

def test_auto_falls_back_to_first_available_tool(firmware_dir, fake_path):
    # methods of nucleo-f746: mass-storage, openocd, st-flash, pyocd -> no volume, so openocd
    log_o = add_tool(fake_path, "openocd")
    log_s = add_tool(fake_path, "st-flash")
    res = flash(firmware_dir)
    assert res.method == "openocd"
    assert log_o.read_text().splitlines() == [
        "-f", "board/st_nucleo_f7.cfg", "-c", f"program {firmware_dir / 'firmware.elf'} verify reset exit"]
    assert not log_s.exists()


def test_auto_tries_the_next_method_when_one_fails(firmware_dir, fake_path, capsys):
    log_o = add_tool(fake_path, "openocd", rc=1, body='echo "Error: open failed" >&2')
    log_s = add_tool(fake_path, "st-flash")
    assert main(["flash", str(firmware_dir)]) == 0
    assert log_o.exists() and log_s.exists()
    cap = capsys.readouterr()
    assert "openocd failed; trying the next method" in cap.err
    assert "warning: openocd: " in cap.err and "failed with exit code 1:" in cap.err
    assert "Error: open failed" in cap.err
    assert "flashed " in cap.out and "with st-flash" in cap.out


def test_auto_all_failing_reports_each_failure(firmware_dir, fake_path, drive, capsys):
    for i, tool in enumerate(("openocd", "st-flash", "pyocd")):
        add_tool(fake_path, tool, rc=i + 1)
    with pytest.raises(SystemExit) as ex:
        main(["flash", str(firmware_dir), "--mount-root", str(drive.parent), "--timeout", "0.3"])
    assert ex.value.code == 5
    err = capsys.readouterr().err
    assert "could not flash nucleo-f746: every available method failed:" in err
    assert "mass-storage: firmware.bin is still on" in err
    for i, tool in enumerate(("openocd", "st-flash", "pyocd")):
        assert f"exit code {i + 1}:\n      fake {tool} output" in err
    assert "is another program using the ST-LINK?" in err


@pytest.mark.parametrize("method,expected", [
    ("st-flash", lambda d: ["--reset", "write", str(d / "firmware.bin"), "0x08000000"]),
    ("pyocd", lambda d: ["flash", "--no-wait", "-t", "stm32f746zgtx", str(d / "firmware.hex")]),
])
def test_named_tool_methods(firmware_dir, fake_path, method, expected):
    log = add_tool(fake_path, method)
    assert main(["flash", str(firmware_dir), "--method", method, "--board", "nucleo-f746"]) == 0
    assert log.read_text().splitlines() == expected(firmware_dir)


@pytest.mark.parametrize("method,var", [("openocd", "TINYPRUNE_OPENOCD"), ("st-flash", "TINYPRUNE_STFLASH"),
                                        ("pyocd", "TINYPRUNE_PYOCD")])
def test_tool_override_variables(firmware_dir, fake_path, tmp_path, monkeypatch, method, var, capsys):
    assert tool_env_var(method) == var
    other_env = tmp_path / "other env" / "bin"   # not on PATH
    other_env.mkdir(parents=True)
    log = add_tool(other_env, method)
    monkeypatch.setenv(var, str(other_env / method))
    res = flash(firmware_dir)   # auto: no drive, only this tool
    assert res.method == method and res.command[0] == str(other_env / method) and log.exists()
    monkeypatch.setenv(var, str(tmp_path / "nowhere" / method))
    with pytest.raises(SystemExit) as ex:
        main(["flash", str(firmware_dir), "--method", method])
    assert ex.value.code == 5
    assert f"${var}='{tmp_path / 'nowhere' / method}' is not an executable file" in capsys.readouterr().err


def test_hanging_tool_is_stopped_after_the_timeout(firmware_dir, fake_path, capsys):
    pids = fake_path / "pids"
    sleep = shutil.which("sleep", path="/usr/bin:/bin")   # PATH is the fake one
    add_tool(fake_path, "pyocd", body=f'{sleep} 60 &\necho $$ $! > "{pids}"\nwait')
    with pytest.raises(SystemExit) as ex:
        main(["flash", str(firmware_dir), "--method", "pyocd", "--timeout", "1"])
    assert ex.value.code == 5
    err = capsys.readouterr().err
    assert "(stopped after 1 s)" in err   # said before it ran
    assert "did not finish within 1 s and was stopped; its last output:\nfake pyocd output" in err
    assert "raise --timeout (or $TINYPRUNE_FLASH_TIMEOUT)" in err
    for pid in map(int, pids.read_text().split()):   # the tool and its child: both gone
        for _ in range(50):
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                state = "gone"
            if state in ("gone", "Z"):
                break
            time.sleep(0.05)
        assert state in ("gone", "Z"), (pid, state)


def test_tcl_word_escapes():
    assert tcl_word("/a b/$x[y]{z}\\;\"") == "/a\\ b/\\$x\\[y\\]\\{z\\}\\\\\\;\\\""
    assert tcl_word("t\tn\nc\x01") == "t\\tn\\nc\\u0001"
    assert tcl_word("") == "{}"


# A fake openocd in Tcl: runs its -c command with a `program` proc that re-reads the file name the
# way OpenOCD's startup.tcl does (wrapped in braces, then eval), and records the file it got.
FAKE_OPENOCD_TCL = r"""
proc write_image {name} {
    if {![file isfile $name]} { puts "no such file: $name"; exit 1 }
    set f [open $::env(FAKE_OPENOCD_GOT) w]
    puts -nonewline $f [file normalize $name]
    close $f
}
proc program {filename args} {
    set filename \{$filename\}
    eval write_image $filename
}
eval [lindex $argv 3]
"""


@pytest.mark.skipif(shutil.which("tclsh", path="/usr/bin:/bin:/usr/local/bin") is None, reason="no tclsh")
@pytest.mark.parametrize("name", ["my build", "a[exit 3]$HOME;x", 'q"uo te', "br{ac}es", "un{balanced",
                                  "un}balanced", "back\\slash", "end\\", "tab\there", "new\nline", "#hash"])
def test_openocd_file_name_survives_tcl(tmp_path, fake_path, monkeypatch, name):
    fw = make_firmware(tmp_path / name / "firmware")
    tclsh = shutil.which("tclsh", path="/usr/bin:/bin:/usr/local/bin")
    (fake_path / "openocd").write_text(f"#!{tclsh}\n{FAKE_OPENOCD_TCL}")
    (fake_path / "openocd").chmod(0o755)
    monkeypatch.setenv("FAKE_OPENOCD_GOT", str(tmp_path / "got"))
    res = flash(fw, method="openocd")
    assert (tmp_path / "got").read_text() == os.path.realpath(fw / "firmware.elf"), res.command


# --------------------------------------------------------------------------- refusals and errors

def test_size_check_image_is_refused(tmp_path, fake_path, capsys):
    fw = make_firmware(tmp_path / "f401", board="nucleo-f401re", runnable=False, bsp="bsp_sizeonly.c")
    log = add_tool(fake_path, "openocd")
    with pytest.raises(SystemExit) as ex:
        main(["flash", str(fw)])
    assert ex.value.code == 2
    err = capsys.readouterr().err
    assert (f"{fw} holds a size-check image for nucleo-f401re (built with bsp_sizeonly.c: no clock or "
            "UART driver, it would not run), so it is not flashed; tinyprune builds runnable firmware "
            "for nucleo-f746 only") in err
    assert not log.exists()


def test_nothing_available_lists_what_was_tried(firmware_dir, fake_path, capsys):
    with pytest.raises(ToolError) as e:
        flash(firmware_dir)
    msg = str(e.value)
    for what in ("mass-storage: volume 'NODE_F746ZG' not mounted", "openocd: openocd not on PATH",
                 "st-flash: st-flash not on PATH", "pyocd: pyocd not on PATH (nor set in $TINYPRUNE_PYOCD)",
                 "apt-get install openocd", "stlink-tools", "over its ST-LINK USB port"):
        assert what in msg
    with pytest.raises(SystemExit) as ex:
        main(["flash", str(firmware_dir)])
    assert ex.value.code == 5
    assert "no way to flash nucleo-f746" in capsys.readouterr().err


def test_probe_hints_follow_the_vendor(tmp_path, fake_path):
    fw = make_firmware(tmp_path / "nrf", board="nrf52840-dk")   # as if it had a BSP
    with pytest.raises(ToolError) as e:
        flash(fw)
    msg = str(e.value)
    assert "volume 'JLINK' not mounted" in msg
    assert "over its J-Link (interface MCU) USB port, not the nRF USB port" in msg and "ST-LINK" not in msg


def test_failing_tool_reports_its_output(firmware_dir, fake_path):
    add_tool(fake_path, "st-flash", rc=2)
    with pytest.raises(ToolError, match=r"exit code 2:\nfake st-flash output"):
        flash(firmware_dir, method="st-flash")


def test_bad_requests(firmware_dir, fake_path, tmp_path, monkeypatch, capsys):
    with pytest.raises(UserInputError, match="QEMU board"):
        (firmware_dir / "firmware.json").write_text(json.dumps({"board": "mps2-an500"}))
        flash(firmware_dir)
    with pytest.raises(UserInputError, match="built for mps2-an500, not nucleo-f746"):
        flash(firmware_dir, "nucleo-f746")
    with pytest.raises(UserInputError, match="no built firmware"):
        flash(tmp_path / "nowhere", "nucleo-f746")
    (firmware_dir / "firmware.json").write_text("{not json")
    with pytest.raises(UserInputError, match=r"firmware.json: unreadable"):
        flash(firmware_dir)
    (firmware_dir / "firmware.json").write_text(json.dumps({"board": "nucleo-f746"}))
    with pytest.raises(UserInputError, match="does not support flashing by uf2|unknown flash method"):
        flash(firmware_dir, method="uf2")
    (firmware_dir / "firmware.hex").unlink()
    add_tool(fake_path, "pyocd")
    with pytest.raises(UserInputError, match=r"no firmware.hex \(pyocd flashes that file\)"):
        flash(firmware_dir, method="pyocd")
    monkeypatch.setenv("TINYPRUNE_FLASH_TIMEOUT", "soon")
    with pytest.raises(SystemExit) as ex:
        main(["flash", str(firmware_dir)])
    assert ex.value.code == 2
    assert "$TINYPRUNE_FLASH_TIMEOUT='soon' is not a positive number of seconds" in capsys.readouterr().err
    with pytest.raises(SystemExit) as ex:
        main(["flash", str(firmware_dir), "--timeout", "0"])
    assert ex.value.code == 2
    assert os.environ["PATH"] == str(fake_path)
