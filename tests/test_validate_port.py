"""`tinyprune validate --port` against a pseudo-terminal standing in for a board's serial port:
bad port names and baud rates, permission and lock errors, and a line that answers with silence,
an echo or a text banner instead of tinyprune frames. No compiler needed (the other end of the
pty is a Python thread, or nothing)."""
from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tinyprune.cli import main
from tinyprune.errors import ToolError, UserInputError
from tinyprune.validate.link import Link

sys.path.insert(0, str(Path(__file__).resolve().parent / "data" / "fake_model"))
import fake_model  # noqa: E402


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    return fake_model.make_build(tmp_path_factory.mktemp("port"), seed=0)


@pytest.fixture
def pty():
    """(path of the slave end, master fd); both ends closed afterwards."""
    master, slave = os.openpty()
    yield os.ttyname(slave), master
    os.close(master)
    os.close(slave)


def run_cli(args) -> int:
    try:
        main(["validate", *map(str, args)])
    except SystemExit as e:
        return e.code
    return 0


@pytest.mark.parametrize("baud,gist", [("-5", "it must be a positive number"), ("0", "0 means 'hang up'")])
def test_bad_baud_rate_is_bad_input(build, pty, capsys, baud, gist):
    assert run_cli([build, "--port", pty[0], "--baud", baud, "--random", "1"]) == UserInputError.exit_code
    assert f"baud rate {baud}: {gist}" in capsys.readouterr().err


@pytest.mark.parametrize("path,gist", [("/dev/null", "is not a serial port (the tty driver does not know it)"),
                                       ("FILE", "is not a serial port (a regular file)")])
def test_a_path_that_is_not_a_serial_port_is_bad_input(build, tmp_path, capsys, path, gist):
    if path == "FILE":
        path = tmp_path / "notes.txt"
        path.write_text("hello\n")
    assert run_cli([build, "--port", path, "--random", "1", "-o", tmp_path / "v.json"]) == UserInputError.exit_code
    err = capsys.readouterr().err
    assert f"{path} {gist}" in err and "Inappropriate ioctl" not in err


def test_permission_denied_names_the_group_to_join(pty, monkeypatch):
    import grp

    import serial

    def denied(*a, **kw):
        raise serial.SerialException(errno.EACCES, f"could not open port {pty[0]}: [Errno 13] Permission denied")
    monkeypatch.setattr(serial, "Serial", denied)
    group = grp.getgrgid(os.stat(pty[0]).st_gid).gr_name
    with pytest.raises(ToolError, match=f"permission denied opening serial port {pty[0]} .owned by group '{group}'") as e:
        Link.open_url(pty[0])
    assert "sudo usermod -aG " + ("dialout" if group == "root" else group) + " $USER" in str(e.value)
    assert "'dialout' group" in str(e.value) or "belong to 'dialout'" in str(e.value)
    assert e.value.exit_code == 5


def test_a_port_in_use_is_refused_naming_the_process_that_holds_it(pty):
    holder = subprocess.Popen([sys.executable, "-c", "import serial, sys, time\n"
                               f"s = serial.Serial({pty[0]!r}, exclusive=True)\nprint('locked', flush=True)\n"
                               "sys.stdin.read()"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ToolError, match=f"serial port {pty[0]} is in use by pid {holder.pid} ") as e:
            Link.open_url(pty[0])
        assert "steal each other's replies" in str(e.value)
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)
    Link.open_url(pty[0]).close()  # free again once the holder is gone


def test_one_link_holds_the_port_exclusively(pty):
    with Link.open_url(pty[0]):
        with pytest.raises(ToolError, match=f"serial port {pty[0]} is in use"):
            Link.open_url(pty[0])


def _answer(master: int, reply) -> threading.Thread:
    def run():
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:
                return
            if not data:
                return
            out = reply(data)
            if out:
                os.write(master, out)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("reply,gist", [
    (None, r"nothing came back"),
    (lambda data: data, r"the line echoed the request back \(\d+ bytes\): a loopback, or a terminal program"),
    (lambda data: b"U-Boot 2023.01 ready\r\n=> ",
     r"text came back instead of tinyprune frames: 'U-Boot 2023.01 ready\\r\\n=> .*' \(another program on the "
     r"board, or a wrong baud rate\?\)"),
    (lambda data: bytes([0xF0, 0x81, 0xC3, 0xFE]) * 3, r"bytes came back that are not tinyprune frames: f0 81 c3 fe"),
])
def test_no_answer_says_what_came_back(pty, reply, gist):
    if reply is not None:
        _answer(pty[1], reply)
    with Link.open_url(pty[0], timeout=0.1, retries=1, noise_retries=0) as link:
        with pytest.raises(ToolError, match=r"no valid reply from .* to 'info' after 2 attempts \(timed out after "
                                            r"0\.1 s; " + gist):
            link.info()
