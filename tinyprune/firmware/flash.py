"""Flash built firmware to a board: one small function per method behind a registry.

Methods (board file ``flash.methods`` lists which a board supports, in order of preference):
  mass-storage  copy firmware.bin to the board's USB drive (e.g. ST-LINK/V2-1 "NODE_F746ZG"), then
                wait for the probe to program it and check FAIL.TXT (tinyprune.firmware.flash_volume)
  openocd       openocd -f <flash.openocd_config> -c "program <firmware.elf, Tcl-quoted> verify reset exit"
  st-flash      st-flash --reset write firmware.bin <text region origin>
  pyocd         pyocd flash --no-wait -t <flash.pyocd_target> firmware.hex
A tool is looked up as $TINYPRUNE_<METHOD> (TINYPRUNE_OPENOCD, TINYPRUNE_STFLASH, TINYPRUNE_PYOCD: a
path or a command name), else on PATH. Every tool run and every wait for a drive is bounded by a
timeout (``timeout``, else $TINYPRUNE_FLASH_TIMEOUT, else DEFAULT_TIMEOUT_S); a tool still running
then is stopped with its whole process group.

``auto`` tries each of the board's available methods in order (volume mounted, tool found) until one
succeeds; the failures of earlier ones are kept in FlashResult.failed. All failing -> one ToolError
with each method's failure; nothing available -> ToolError listing what was tried and how to get it.
A size-check image (built with bsp_sizeonly.c, firmware.json "runnable": false) is refused.
May import tinyprune.errors, tinyprune.boards and tinyprune.firmware modules only.
"""
from __future__ import annotations

import json
import math
import os
import shlex
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tinyprune.errors import ToolError, UserInputError
from tinyprune.firmware.flash_volume import (copy_image, find_volume, not_mounted_message,  # noqa: F401
                                             volume_candidates)

METHODS = ("mass-storage", "openocd", "st-flash", "pyocd")
TOOL = {"openocd": "openocd", "st-flash": "st-flash", "pyocd": "pyocd"}
INSTALL = {
    "openocd": "sudo apt-get install openocd",
    "st-flash": "sudo apt-get install stlink-tools",
    "pyocd": "pip install pyocd (any environment; point $TINYPRUNE_PYOCD at its bin/pyocd), "
             "then `pyocd pack install <target>`",
}
DEFAULT_TIMEOUT_S = 120.0
TIMEOUT_ENV = "TINYPRUNE_FLASH_TIMEOUT"
KILL_GRACE_S = 2.0     # SIGTERM, then SIGKILL after this long
REBUILD = "rebuild it with `tinyprune firmware BUILD_DIR --board BOARD`"


@dataclass(frozen=True)
class Probe:
    name: str              # the on-board debug probe
    port: str              # which USB port to plug in


PROBES = {  # board file ``vendor`` -> its boards' on-board probe
    "STMicroelectronics": Probe("ST-LINK", "its ST-LINK USB port"),
    "Nordic Semiconductor": Probe("J-Link OB", "its J-Link (interface MCU) USB port, not the nRF USB port"),
    "Raspberry Pi": Probe("Debug Probe", "a Raspberry Pi Debug Probe (CMSIS-DAP) on its SWD header"),
}
GENERIC_PROBE = Probe("debug probe", "its debug probe's USB port")


def probe_for(board) -> Probe:
    return PROBES.get(board.vendor, GENERIC_PROBE)


def tool_env_var(method: str) -> str:
    """TINYPRUNE_OPENOCD, TINYPRUNE_STFLASH, TINYPRUNE_PYOCD."""
    return "TINYPRUNE_" + method.upper().replace("-", "")


@dataclass
class FlashResult:
    method: str
    command: list[str] | None      # tool command line, or None for mass-storage
    target: str                    # volume path or tool path
    image: Path
    output: str = ""
    failed: list[str] = field(default_factory=list)    # auto: methods tried before, and why they failed
    warnings: list[str] = field(default_factory=list)


@dataclass
class FirmwareFiles:
    folder: Path
    elf: Path
    bin: Path
    hex: Path
    board: str | None              # from firmware.json
    runnable: bool = True          # firmware.json "runnable" (False: bsp_sizeonly.c size check)
    bsp: str = ""


@dataclass(frozen=True)
class FlashOptions:
    timeout: float = DEFAULT_TIMEOUT_S
    mount_roots: tuple = ()
    progress: Callable[[str], None] = lambda s: None


def find_firmware(build_dir) -> FirmwareFiles:
    """Firmware folder itself, or a build folder with firmware/ in it."""
    d = Path(build_dir)
    for cand in (d, d / "firmware"):
        if (cand / "firmware.bin").is_file() and (cand / "firmware.elf").is_file():
            meta, path = {}, cand / "firmware.json"
            if path.is_file():
                try:
                    meta = json.loads(path.read_text())
                except (ValueError, OSError) as e:
                    raise UserInputError(f"{path}: unreadable ({e})", hint=REBUILD) from None
                if not isinstance(meta, dict):
                    raise UserInputError(f"{path}: not a firmware.json (expected an object)", hint=REBUILD)
            return FirmwareFiles(cand, cand / "firmware.elf", cand / "firmware.bin", cand / "firmware.hex",
                                 meta.get("board"), meta.get("runnable", True) is not False,
                                 str(meta.get("bsp", "")))
    raise UserInputError(f"{d}: no built firmware (firmware.bin and firmware.elf) here or in {d}/firmware",
                         hint="build it first with `tinyprune firmware BUILD_DIR --board BOARD`")


def flash_timeout(timeout: float | None = None) -> float:
    """``timeout``, else $TINYPRUNE_FLASH_TIMEOUT, else DEFAULT_TIMEOUT_S (seconds, > 0)."""
    if timeout is None:
        raw = os.environ.get(TIMEOUT_ENV, "").strip()
        if not raw:
            return DEFAULT_TIMEOUT_S
        try:
            timeout = float(raw)
        except ValueError:
            timeout = -1.0
        if not 0 < timeout < math.inf:
            raise UserInputError(f"${TIMEOUT_ENV}={raw!r} is not a positive number of seconds",
                                 hint=f"e.g. {TIMEOUT_ENV}=300, or unset it (default {DEFAULT_TIMEOUT_S:g} s)")
        return timeout
    if not 0 < timeout < math.inf:
        raise UserInputError(f"flash timeout {timeout!r} is not a positive number of seconds")
    return float(timeout)


# --------------------------------------------------------------------------- tools

def find_tool(method: str) -> tuple[str | None, str]:
    """(executable or None, what was checked). A set but unusable $TINYPRUNE_<METHOD> is an error."""
    var, tool = tool_env_var(method), TOOL[method]
    override = os.environ.get(var, "")
    if override:
        path = shutil.which(override)
        if path is None:
            raise ToolError(f"${var}={override!r} is not an executable file (nor a command on PATH)",
                            hint=f"point {var} at the {tool} executable, or unset it to use {tool} from PATH")
        return path, f"{method}: {path} (from ${var})"
    path = shutil.which(tool)
    return path, f"{method}: {tool} " + (f"found at {path}" if path else f"not on PATH (nor set in ${var})")


_TCL_PLAIN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/._-+,:=@%~")
_TCL_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def tcl_word(s: str) -> str:
    """``s`` as one Tcl (and Jim Tcl, OpenOCD's) word read back unchanged: every character but
    letters, digits, non-ASCII and ``/._-+,:=@%~`` backslash-escaped, control characters as \\uXXXX."""
    out = []
    for ch in s:
        if ch in _TCL_PLAIN or ord(ch) > 127:
            out.append(ch)
        elif ch in _TCL_ESCAPES:
            out.append(_TCL_ESCAPES[ch])
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append("\\" + ch)
    return "".join(out) or "{}"


def _brace_safe(s: str) -> bool:
    """OpenOCD's `program` re-reads its file name as ``{NAME}`` (startup.tcl): that gives NAME back
    only when it holds no brace, backslash or newline."""
    return not any(c in s for c in "{}\\\n")


def tool_command(method: str, fw: FirmwareFiles, board, exe: str | None = None) -> tuple[list[str], Path | None]:
    """(command line, working folder or None) run for a tool-based method."""
    exe = exe or TOOL[method]
    if method == "openocd":
        elf, cwd, cfg = str(fw.elf), None, board.flash.openocd_config
        if not _brace_safe(elf):   # run in the firmware folder and name the file relatively
            elf, cwd = fw.elf.name, fw.folder
            if Path(cfg).is_file():
                cfg = str(Path(cfg).resolve())
        return [exe, "-f", cfg, "-c", f"program {tcl_word(elf)} verify reset exit"], cwd
    if method == "st-flash":
        return [exe, "--reset", "write", str(fw.bin), f"{board.text_region.origin:#010x}"], None
    if method == "pyocd":   # --no-wait: fail at once when no probe is connected (else it waits forever)
        return [exe, "flash", "--no-wait", "-t", board.flash.pyocd_target, str(fw.hex)], None
    raise ValueError(method)


def _stop(p: subprocess.Popen) -> None:
    """SIGTERM the tool's process group, SIGKILL it if it is still there after KILL_GRACE_S."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(p.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            p.wait(KILL_GRACE_S)
            return
        except subprocess.TimeoutExpired:
            continue


def run_tool(cmd: list[str], timeout: float, cwd: Path | None = None) -> tuple[int, str]:
    """Run ``cmd`` (stdin closed, own process group); (exit code, stdout+stderr). On timeout the group
    is stopped and ToolError says so, with the tool's last output."""
    shown = shlex.join(cmd)
    try:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, errors="replace", cwd=cwd, start_new_session=True)
    except OSError as e:
        raise ToolError(f"cannot run {cmd[0]}: {e.strerror or e}",
                        hint=f"check that {cmd[0]} is an executable program") from None
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop(p)
        try:
            out, _ = p.communicate(timeout=KILL_GRACE_S)
        except subprocess.TimeoutExpired:   # a child left the group and holds the pipe
            out = ""
        tail = _tail(out)
        raise ToolError(f"{shown} did not finish within {timeout:g} s and was stopped" +
                        (f"; its last output:\n{tail}" if tail else " (it printed nothing)"),
                        hint=f"check the board's USB connection; if flashing takes longer, raise "
                             f"--timeout (or ${TIMEOUT_ENV})") from None
    except BaseException:
        _stop(p)
        raise
    return p.returncode, out.strip()


def _tail(out: str, n: int = 15) -> str:
    return "\n".join((out or "").strip().splitlines()[-n:])


# --------------------------------------------------------------------------- methods

def _available(method: str, board, opts: FlashOptions) -> tuple[bool, str]:
    """(available, what was checked) for one method."""
    if method == "mass-storage":
        label = board.flash.mass_storage_volume
        vol = find_volume(label, opts.mount_roots)
        return vol is not None, (f"mass-storage: volume {label!r} found at {vol}" if vol else
                                 "mass-storage: " + not_mounted_message(label, opts.mount_roots))
    path, what = find_tool(method)
    return path is not None, what


def _mass_storage_hint(board) -> str:
    return (f"plug the board in over {probe_for(board).port} and let the OS mount its drive "
            f"{board.flash.mass_storage_volume!r} (or pass --mount-root DIR / set TINYPRUNE_MOUNT_ROOTS)")


def _connection_hint(board) -> str:
    probe = probe_for(board)
    return (f"is the board connected over {probe.port} and powered? "
            f"is another program using the {probe.name}?")


def _flash_mass_storage(fw: FirmwareFiles, board, opts: FlashOptions) -> FlashResult:
    tools = [m for m in board.flash.methods if m in TOOL]
    out = copy_image(fw.bin, board.flash.mass_storage_volume, mount_roots=opts.mount_roots,
                     timeout=opts.timeout, hint=_mass_storage_hint(board), progress=opts.progress,
                     fail_hint="unplug and replug the board and retry; if it fails again, flash with a tool "
                               "that prints the probe's log" +
                               (f" (--method {' / '.join(tools)})" if tools else ""))
    return FlashResult("mass-storage", None, str(out.volume), fw.bin, out.output, warnings=out.warnings)


IMAGE = {"openocd": "elf", "st-flash": "bin", "pyocd": "hex"}


def _flash_tool(method: str) -> Callable:
    def run(fw: FirmwareFiles, board, opts: FlashOptions) -> FlashResult:
        image = getattr(fw, IMAGE[method])
        if not image.is_file():
            raise UserInputError(f"{fw.folder}: no {image.name} ({method} flashes that file)", hint=REBUILD)
        exe, what = find_tool(method)
        if exe is None:
            raise ToolError(f"{what}", hint=f"{INSTALL[method]}, or set ${tool_env_var(method)} "
                                            f"to the {TOOL[method]} executable")
        cmd, cwd = tool_command(method, fw, board, exe)
        opts.progress(f"running {shlex.join(cmd)}" + (f" in {cwd}" if cwd else "") +
                      f" (stopped after {opts.timeout:g} s)")
        rc, out = run_tool(cmd, opts.timeout, cwd)
        if rc != 0:
            raise ToolError(f"{shlex.join(cmd)} failed with exit code {rc}:\n{_tail(out) or '(no output)'}",
                            hint=_connection_hint(board))
        return FlashResult(method, cmd, exe, image, out)
    return run


FLASHERS: dict[str, Callable] = {
    "mass-storage": _flash_mass_storage,
    "openocd": _flash_tool("openocd"),
    "st-flash": _flash_tool("st-flash"),
    "pyocd": _flash_tool("pyocd"),
}


def _refuse_size_only(fw: FirmwareFiles, board) -> None:
    if fw.runnable:
        return
    from tinyprune.boards import list_boards
    from tinyprune.firmware.build import bsp_for_board
    runnable = [b.name for b in list_boards() if not b.simulation and bsp_for_board(b).runnable]
    raise UserInputError(
        f"{fw.folder} holds a size-check image for {board.name} (built with {fw.bsp or 'bsp_sizeonly.c'}: "
        f"no clock or UART driver, it would not run), so it is not flashed; tinyprune builds runnable "
        f"firmware for {', '.join(runnable) or 'no physical board'} only",
        hint="its flash/RAM figures in firmware.json are exact; validate the model on the board's QEMU twin "
             "(`tinyprune validate BUILD_DIR --sim`), or add a board support package (docs/firmware.md, "
             "'Adding a board family')")


def _indent(text: str) -> str:
    return text.replace("\n", "\n      ")


def flash(build_dir, board=None, method: str = "auto", *, mount_roots=(), timeout: float | None = None,
          progress: Callable[[str], None] | None = None) -> FlashResult:
    """Flash the firmware in ``build_dir`` (a firmware folder or a build folder with firmware/).

    ``board``: Board, name or .toml path; default: the board recorded in firmware.json.
    ``timeout``: seconds for each tool run / drive wait (default $TINYPRUNE_FLASH_TIMEOUT or 120).
    ``progress``: called with a line before each attempt (the CLI prints them to stderr)."""
    from tinyprune.firmware.build import resolve_board

    opts = FlashOptions(flash_timeout(timeout), tuple(mount_roots), progress or (lambda s: None))
    fw = find_firmware(build_dir)
    board = board or fw.board
    if not board:
        raise UserInputError("no board given and none recorded in firmware.json", hint="pass --board NAME")
    board = resolve_board(board)
    if fw.board and fw.board != board.name:
        raise UserInputError(f"{fw.folder} holds firmware built for {fw.board}, not {board.name}",
                             hint=f"rebuild with `tinyprune firmware ... --board {board.name}`")
    if board.simulation:
        raise UserInputError(f"{board.name} is a QEMU board: there is nothing to flash",
                             hint="run it with `tinyprune validate BUILD_DIR --sim`")
    _refuse_size_only(fw, board)
    supported = [m for m in board.flash.methods if m in FLASHERS]
    if method != "auto":
        if method not in FLASHERS:
            raise UserInputError(f"unknown flash method {method!r}; known: auto, {', '.join(METHODS)}")
        if method not in board.flash.methods:
            raise UserInputError(f"{board.name} does not support flashing by {method} "
                                 f"(its methods: {', '.join(board.flash.methods)})")
        return FLASHERS[method](fw, board, opts)
    if not supported:
        raise UserInputError(f"tinyprune cannot flash {board.name}: its methods "
                             f"({', '.join(board.flash.methods)}) are none of {', '.join(METHODS)}")
    unavailable, failed = [], []
    for m in supported:
        ok, what = _available(m, board, opts)
        if not ok:
            unavailable.append(what)
            continue
        try:
            res = FLASHERS[m](fw, board, opts)
        except ToolError as e:
            failed.append(f"{m}: {_indent(e.message)}")
            opts.progress(f"{m} failed; trying the next method" if m != supported[-1] else f"{m} failed")
            continue
        res.failed = failed
        return res
    if failed:
        raise ToolError(f"could not flash {board.name}: every available method failed:\n  " +
                        "\n  ".join(failed) +
                        ("\n  not available: " + "; ".join(unavailable) if unavailable else ""),
                        hint=_connection_hint(board))
    how = "; ".join(f"{m}: {_mass_storage_hint(board) if m == 'mass-storage' else INSTALL[m]}"
                    for m in supported)
    raise ToolError(f"no way to flash {board.name} is available. Tried:\n  " + "\n  ".join(unavailable),
                    hint=how)
