"""Opening the serial line to a device: a real port (``/dev/ttyACM0``), a pty standing in for a
board, or a pyserial URL (``socket://127.0.0.1:PORT`` for QEMU and the native host build).

A port is opened with an exclusive lock (pyserial's ``exclusive=True``, an ``flock`` on the
device), so a second ``tinyprune validate`` on the same port fails at once, naming the process
that holds it, instead of both runs stealing each other's replies. Every failure is a clear
error: a baud rate that is not a positive number is bad input (exit 2), as is a path that is not
a serial port (``/dev/null``, a file); a missing port, a permission problem (with the ``dialout``
hint) or a held lock is an environment problem (exit 5).

May import tinyprune.errors only (plus pyserial).
"""
from __future__ import annotations

import errno
import os
import stat
import time
from pathlib import Path

from tinyprune.errors import ToolError, UserInputError

SOCKET_CONNECT_TIMEOUT = 10.0  # QEMU and the host build need a moment to listen


def check_baud(baud) -> int:
    """The baud rate as a positive int; UserInputError otherwise (0 means 'hang up' to a tty)."""
    try:
        b = int(baud)
    except (TypeError, ValueError):
        raise UserInputError(f"baud rate {baud!r} is not a number", hint="e.g. --baud 115200") from None
    if b <= 0:
        what = "0 means 'hang up' to the serial driver" if b == 0 else "it must be a positive number"
        raise UserInputError(f"baud rate {baud}: {what}",
                             hint="use the rate the firmware's UART runs at (115200 for tinyprune firmware)")
    return b


def open_port(url: str, baud: int = 115200, *, poll: float = 0.01, connect_timeout: float | None = None):
    """A pyserial object for ``url``: a device path (locked exclusively) or a pyserial URL."""
    import serial

    baud = check_baud(baud)
    if "://" not in url:
        return _open_device(url, baud, poll)
    if connect_timeout is None:
        connect_timeout = SOCKET_CONNECT_TIMEOUT if url.startswith("socket://") else 0.0
    deadline = time.monotonic() + connect_timeout
    while True:
        try:
            return serial.serial_for_url(url, baudrate=baud, timeout=poll)
        except (serial.SerialException, OSError, ValueError) as e:
            if time.monotonic() > deadline:
                raise ToolError(f"cannot open serial link {url}: {e}",
                                hint="check the address and that QEMU or the host build is running") from None
            time.sleep(0.1)


def _open_device(path: str, baud: int, poll: float):
    import serial

    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ToolError(f"serial port {path} not found", hint=_ports_hint()) from None
    except OSError as e:
        raise ToolError(f"cannot open serial port {path}: {e.strerror}", hint=_ports_hint()) from None
    if not stat.S_ISCHR(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "a regular file" if stat.S_ISREG(st.st_mode) else \
            "not a character device"
        raise UserInputError(f"{path} is not a serial port ({kind})", hint=_ports_hint())
    try:
        port = serial.Serial(path, baudrate=baud, timeout=poll, exclusive=True)
    except serial.SerialException as e:
        raise _open_error(path, st, e) from None
    except (OSError, ValueError) as e:
        raise ToolError(f"cannot open serial port {path}: {e}") from None
    return port


def _open_error(path: str, st: os.stat_result, e: Exception) -> Exception:
    text = str(e)
    code = getattr(e, "errno", None)
    if code == errno.EACCES or "Permission denied" in text:
        group = _group_name(st.st_gid)
        if group == "root":
            hint = ("serial ports normally belong to the 'dialout' group: give this one to it (a udev rule with "
                    "GROUP=\"dialout\"), then sudo usermod -aG dialout $USER and log out and in")
        else:
            hint = (f"add yourself to that group (serial ports normally belong to 'dialout'): sudo usermod -aG "
                    f"{group} $USER, then log out and in (or: newgrp {group})")
        return ToolError(f"permission denied opening serial port {path} (owned by group '{group}')", hint=hint)
    if "exclusively lock" in text:
        holders = port_holders(path)
        who = ", ".join(f"pid {pid} ({cmd})" for pid, cmd in holders) if holders else \
            "another process (not visible here: try `fuser " + path + "`)"
        return ToolError(f"serial port {path} is in use by {who}",
                         hint="wait for that run to finish or stop it; two programs on one port steal each "
                              "other's replies")
    if code == errno.ENOTTY or "Inappropriate ioctl" in text:
        return UserInputError(f"{path} is not a serial port (the tty driver does not know it)", hint=_ports_hint())
    if code in (errno.EBUSY,):
        return ToolError(f"serial port {path} is busy: {text}", hint="another program (a terminal, ModemManager) "
                                                                   "holds it open")
    return ToolError(f"cannot open serial port {path}: {text}", hint=_ports_hint())


def port_holders(path: str) -> list[tuple[int, str]]:
    """(pid, command) of the processes that have ``path`` open (those /proc lets us see)."""
    try:
        target = os.path.realpath(path)
    except OSError:
        return []
    found = []
    me = os.getpid()
    for proc in Path("/proc").glob("[0-9]*"):
        pid = int(proc.name)
        try:
            fds = list((proc / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) == target:
                    if pid != me:
                        cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                        found.append((pid, cmd[:120] or "?"))
                    break
            except OSError:
                continue
    return found


def _group_name(gid: int) -> str:
    try:
        import grp

        return grp.getgrgid(gid).gr_name
    except (KeyError, ImportError):
        return str(gid)


def _ports_hint() -> str:
    ports = sorted(str(p) for pat in ("ttyACM*", "ttyUSB*") for p in Path("/dev").glob(pat))
    return ("serial ports here: " + ", ".join(ports)) if ports else \
        "no /dev/ttyACM* or /dev/ttyUSB* here: is the board plugged in (and its USB cable a data cable)?"
