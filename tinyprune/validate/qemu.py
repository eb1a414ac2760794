"""Run firmware in QEMU with its UART on a loopback TCP port (``tinyprune validate --sim``).

``qemu_session(elf, machine, cpu)`` starts::

    qemu-system-arm -M MACHINE -cpu CPU -icount shift=N -display none -monitor none
        -semihosting-config enable=on,target=native
        -serial tcp:127.0.0.1:PORT,server=on,wait=on,nodelay=on -kernel firmware.elf

on a free port, connects a Link, and always kills QEMU on the way out; QEMU's stderr is kept
in a temporary file and quoted in error messages. ``-icount`` makes the instruction counter
exact and repeatable (see ../shared/notes/qemu-and-arm-toolchain.md). The ELF is checked first
(``tinyprune.firmware.elf.check_firmware``: a 32-bit ARM executable with tinyprune's serial harness),
so a wrong or damaged file is a bad-input error (exit code 2) before QEMU starts.

May import tinyprune.errors, tinyprune.firmware.elf (standard library only) and tinyprune.validate.link.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tinyprune.errors import ToolError
from tinyprune.firmware.elf import check_firmware
from tinyprune.validate.link import Link

QEMU = "qemu-system-arm"
DEFAULT_ICOUNT_SHIFT = 7  # the mps2/mps3 BSPs' TP_ICOUNT_SHIFT default


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def qemu_command(elf, machine: str, cpu: str | None, port: int, icount_shift: int | None) -> list[str]:
    cmd = [os.environ.get("TINYPRUNE_QEMU", QEMU), "-M", machine]
    if cpu:
        cmd += ["-cpu", cpu]
    if icount_shift is not None:
        cmd += ["-icount", f"shift={icount_shift}"]
    cmd += ["-display", "none", "-monitor", "none", "-semihosting-config", "enable=on,target=native",
            "-serial", f"tcp:127.0.0.1:{port},server=on,wait=on,nodelay=on", "-kernel", str(elf)]
    return cmd


class QemuProcess:
    """A running QEMU; ``stderr_text()`` returns what it printed so far."""

    def __init__(self, cmd: list[str]):
        self.cmd = cmd
        self._err = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._err, stderr=self._err)
        except OSError as e:
            self._err.close()
            raise ToolError(f"cannot start {cmd[0]}: {e}",
                            hint="install QEMU (apt-get install qemu-system-arm) or set TINYPRUNE_QEMU") from None

    def stderr_text(self) -> str:
        self._err.flush()
        self._err.seek(0)
        return self._err.read().decode(errors="replace").strip()

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:  # pragma: no cover
                pass
        return self.proc.returncode

    def close(self) -> None:
        self.stop()
        self._err.close()


def require_qemu() -> None:
    """ToolError when QEMU ($TINYPRUNE_QEMU or qemu-system-arm) is not there."""
    if shutil.which(os.environ.get("TINYPRUNE_QEMU", QEMU)) is None:
        raise ToolError(f"{QEMU} not found", hint="install QEMU: apt-get install qemu-system-arm")


@contextlib.contextmanager
def qemu_session(elf: str | os.PathLike, machine: str, cpu: str | None = None, *,
                 icount_shift: int | None = DEFAULT_ICOUNT_SHIFT, start_timeout: float = 20.0, proxy=None,
                 **link_kw):
    """Yield a Link to firmware running in QEMU; QEMU is always killed afterwards.
    A ToolError raised inside carries QEMU's stderr when QEMU died."""
    elf = Path(elf)
    if not elf.is_file():
        raise ToolError(f"firmware not found: {elf}", hint="build it first: tinyprune firmware BUILD_DIR --board BOARD")
    check_firmware(elf)
    require_qemu()
    last_err = None
    for _ in range(3):  # the free port may be taken between probing and QEMU binding it
        port = free_port()
        q = QemuProcess(qemu_command(elf, machine, cpu, port, icount_shift))
        try:
            # QEMU with wait=on accepts exactly one connection, so no probe: retry the real one.
            host, lport = proxy("127.0.0.1", port) if proxy is not None else ("127.0.0.1", port)
            link = _open_link(q, host, lport, start_timeout, link_kw)
        except ToolError as e:
            last_err = e
            q.close()
            if "Address already in use" in str(e):
                continue
            raise
        break
    else:
        raise last_err  # type: ignore[misc]
    try:
        yield link
    except ToolError as e:
        try:  # a lost link usually means QEMU is dying: give it a moment to say why
            q.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass
        if q.proc.poll() is not None:
            raise ToolError(f"{e.message}; QEMU exited with status {q.proc.returncode}: "
                            f"{q.stderr_text() or '(no output)'}", e.hint) from None
        raise
    finally:
        link.close()
        q.close()


def _open_link(q: QemuProcess, host: str, port: int, timeout: float, link_kw: dict) -> Link:
    import serial

    deadline = time.monotonic() + timeout
    while True:
        if q.proc.poll() is not None:
            raise ToolError(f"QEMU exited with status {q.proc.returncode} before the serial link opened: "
                            f"{q.stderr_text() or '(no output)'}", hint=f"command: {' '.join(q.cmd)}")
        try:
            s = serial.serial_for_url(f"socket://{host}:{port}", timeout=link_kw.get("poll", 0.01))
            return Link(s, name=f"QEMU {q.cmd[2]}", **link_kw)
        except (serial.SerialException, OSError):
            if time.monotonic() > deadline:
                raise ToolError(f"QEMU did not open its serial port within {timeout:g} s: "
                                f"{q.stderr_text()}") from None
            time.sleep(0.05)
