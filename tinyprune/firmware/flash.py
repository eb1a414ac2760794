"""Flash built firmware to a board: one small function per method behind a registry.

Methods (board file ``flash.methods`` lists which a board supports, in order of preference):
  mass-storage  copy firmware.bin to the board's USB drive (ST-LINK/V2-1 "NODE_F746ZG") and sync
  openocd       openocd -f <flash.openocd_config> -c "program firmware.elf verify reset exit"
  st-flash      st-flash --reset write firmware.bin <text region origin>
  pyocd         pyocd flash -t <flash.pyocd_target> firmware.hex
``auto`` tries the board's methods in order and uses the first one available (volume mounted or
tool on PATH). Nothing available -> ToolError listing what was tried and how to install it.

Mounted volumes are searched in /media/*/, /media/, /run/media/*/, /Volumes/, /mnt/, the
mount points lsblk reports for the label, and folders listed in $TINYPRUNE_MOUNT_ROOTS
(os.pathsep-separated, searched first) or passed as ``mount_roots``.
May import tinyprune.errors, tinyprune.boards and tinyprune.firmware modules only.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tinyprune.errors import ToolError, UserInputError

METHODS = ("mass-storage", "openocd", "st-flash", "pyocd")
INSTALL = {
    "mass-storage": "plug the board in over its ST-LINK USB port and let the OS mount its drive",
    "openocd": "sudo apt-get install openocd",
    "st-flash": "sudo apt-get install stlink-tools",
    "pyocd": "pip install pyocd (in another environment), then `pyocd pack install <target>`",
}
TOOL = {"openocd": "openocd", "st-flash": "st-flash", "pyocd": "pyocd"}


@dataclass
class FlashResult:
    method: str
    command: list[str] | None      # tool command line, or None for mass-storage
    target: str                    # volume path or tool name
    image: Path
    output: str = ""


@dataclass
class FirmwareFiles:
    folder: Path
    elf: Path
    bin: Path
    hex: Path
    board: str | None              # from firmware.json


def find_firmware(build_dir) -> FirmwareFiles:
    """Firmware folder itself, or a build folder with firmware/ in it."""
    d = Path(build_dir)
    for cand in (d, d / "firmware"):
        if (cand / "firmware.bin").is_file() and (cand / "firmware.elf").is_file():
            board = None
            meta = cand / "firmware.json"
            if meta.is_file():
                try:
                    board = json.loads(meta.read_text()).get("board")
                except ValueError:
                    board = None
            return FirmwareFiles(cand, cand / "firmware.elf", cand / "firmware.bin",
                                 cand / "firmware.hex", board)
    raise UserInputError(f"{d}: no built firmware (firmware.bin and firmware.elf) here or in {d}/firmware",
                         hint="build it first with `tinyprune firmware BUILD_DIR --board BOARD`")


def _lsblk_mounts(label: str) -> list[Path]:
    if shutil.which("lsblk") is None:
        return []
    try:
        r = subprocess.run(["lsblk", "-rno", "LABEL,MOUNTPOINT"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return []
    out = []
    for line in r.stdout.splitlines():
        parts = line.split(" ", 1)
        if len(parts) == 2 and parts[0].replace("\\x20", " ") == label and parts[1]:
            out.append(Path(parts[1].replace("\\x20", " ")))
    return out


def volume_candidates(label: str, mount_roots=()) -> list[Path]:
    """Every place a volume called ``label`` may be mounted, most specific first."""
    roots = [Path(r) for r in mount_roots]
    env = os.environ.get("TINYPRUNE_MOUNT_ROOTS", "")
    roots += [Path(r) for r in env.split(os.pathsep) if r]
    cands = [r / label for r in roots]
    for base in (Path("/media"), Path("/run/media")):
        if base.is_dir():
            try:
                cands += [p / label for p in sorted(base.iterdir()) if p.is_dir()]
            except OSError:
                pass
    cands += [Path("/media") / label, Path("/Volumes") / label, Path("/mnt") / label]
    cands += _lsblk_mounts(label)
    seen, out = set(), []
    for c in cands:
        if c not in seen:
            seen.add(c)
            out.append(c)
    return out


def find_volume(label: str, mount_roots=()) -> Path | None:
    for c in volume_candidates(label, mount_roots):
        if c.is_dir() and os.access(c, os.W_OK):
            return c
    return None


# --------------------------------------------------------------------------- methods

def _available(method: str, board, mount_roots) -> tuple[bool, str]:
    """(available, what was checked) for one method."""
    if method == "mass-storage":
        label = board.flash.mass_storage_volume
        vol = find_volume(label, mount_roots)
        return vol is not None, f"mass-storage: volume {label!r} " + (
            f"found at {vol}" if vol else "not mounted (looked in " +
            ", ".join(str(p) for p in volume_candidates(label, mount_roots)[:6]) + ", ...)")
    tool = TOOL[method]
    path = shutil.which(tool)
    return path is not None, f"{method}: {tool} " + (f"found at {path}" if path else "not on PATH")


def _flash_mass_storage(fw: FirmwareFiles, board, mount_roots) -> FlashResult:
    vol = find_volume(board.flash.mass_storage_volume, mount_roots)
    if vol is None:
        raise ToolError(f"volume {board.flash.mass_storage_volume!r} is not mounted",
                        hint=INSTALL["mass-storage"])
    dest = vol / fw.bin.name
    data = fw.bin.read_bytes()
    with open(dest, "wb") as f:   # one write + fsync: the ST-LINK programs when the file is complete
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    if shutil.which("sync"):
        subprocess.run(["sync"], check=False)
    return FlashResult("mass-storage", None, str(vol), fw.bin, f"copied {len(data):,} B to {dest}")


def tool_command(method: str, fw: FirmwareFiles, board) -> list[str]:
    """The command line run for a tool-based method."""
    if method == "openocd":
        return ["openocd", "-f", board.flash.openocd_config,
                "-c", f"program {fw.elf} verify reset exit"]
    if method == "st-flash":
        return ["st-flash", "--reset", "write", str(fw.bin), f"{board.text_region.origin:#010x}"]
    if method == "pyocd":
        return ["pyocd", "flash", "-t", board.flash.pyocd_target, str(fw.hex)]
    raise ValueError(method)


def _flash_tool(method: str) -> Callable:
    def run(fw: FirmwareFiles, board, mount_roots) -> FlashResult:
        cmd = tool_command(method, fw, board)
        if shutil.which(cmd[0]) is None:
            raise ToolError(f"{cmd[0]} not found on PATH", hint=INSTALL[method])
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            raise ToolError(f"{cmd[0]} did not finish within 300 s: {' '.join(cmd)}",
                            hint="check the USB connection and that no other debugger holds the probe") from None
        out = (r.stdout + r.stderr).strip()
        if r.returncode != 0:
            tail = "\n".join(out.splitlines()[-15:])
            raise ToolError(f"{' '.join(cmd)} failed with exit code {r.returncode}:\n{tail}",
                            hint="is the board connected and powered? is another program using the probe?")
        return FlashResult(method, cmd, cmd[0], fw.elf if method == "openocd" else
                           (fw.bin if method == "st-flash" else fw.hex), out)
    return run


FLASHERS: dict[str, Callable] = {
    "mass-storage": _flash_mass_storage,
    "openocd": _flash_tool("openocd"),
    "st-flash": _flash_tool("st-flash"),
    "pyocd": _flash_tool("pyocd"),
}


def flash(build_dir, board=None, method: str = "auto", *, mount_roots=()) -> FlashResult:
    """Flash the firmware in ``build_dir`` (a firmware folder or a build folder with firmware/).

    ``board``: Board, name or .toml path; default: the board recorded in firmware.json."""
    from tinyprune.firmware.build import resolve_board

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
    supported = [m for m in board.flash.methods if m in FLASHERS]
    if method != "auto":
        if method not in FLASHERS:
            raise UserInputError(f"unknown flash method {method!r}; known: auto, {', '.join(METHODS)}")
        if method not in board.flash.methods:
            raise UserInputError(f"{board.name} does not support flashing by {method} "
                                 f"(its methods: {', '.join(board.flash.methods)})")
        return FLASHERS[method](fw, board, mount_roots)
    tried = []
    for m in supported:
        ok, what = _available(m, board, mount_roots)
        tried.append(what)
        if ok:
            return FLASHERS[m](fw, board, mount_roots)
    how = "; ".join(f"{m}: {INSTALL[m]}" for m in supported)
    raise ToolError(f"no way to flash {board.name} is available. Tried:\n  " + "\n  ".join(tried),
                    hint=how)
