"""Mass-storage flashing: find the board's USB drive, copy the image, wait for the probe to program it.

An ST-LINK/V2-1, DAPLink or J-Link OB probe programs the target once a complete image file has been
written to its drive, then re-enumerates: the drive goes away and comes back without the file, with
FAIL.TXT on it when programming failed. ``copy_image`` writes the file, then polls (bounded by
``timeout``) until the drive has come back (or the file has gone from it) or FAIL.TXT appears, and
reports FAIL.TXT's text as the failure. Errors say which case it is: not mounted, mounted read-only,
no space, FAIL.TXT, or the drive not taking the file.

Volumes are searched in the folders of $TINYPRUNE_MOUNT_ROOTS (os.pathsep-separated) and
``mount_roots`` first, then /media/*/, /run/media/*/, /media/, /Volumes/, /mnt/ and the mount points
lsblk reports for the label.
May import tinyprune.errors only.
"""
from __future__ import annotations

import errno
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tinyprune.errors import ToolError

FAIL_FILE = "FAIL.TXT"
POLL_S = 0.1          # how often the drive is looked at while the probe programs
FAIL_TEXT_MAX = 600   # characters of FAIL.TXT quoted in the error


@dataclass
class CopyOutcome:
    volume: Path
    dest: Path
    output: str
    warnings: list[str] = field(default_factory=list)


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
    """The first candidate folder that exists (writable or not: see ``read_only``)."""
    for c in volume_candidates(label, mount_roots):
        if c.is_dir():
            return c
    return None


def not_mounted_message(label: str, mount_roots=()) -> str:
    return (f"volume {label!r} not mounted (looked in " +
            ", ".join(str(p) for p in volume_candidates(label, mount_roots)[:6]) + ", ...)")


def read_only(vol: Path) -> bool:
    """Mounted read-only, or not writable by this user (statvfs flag, then access(2))."""
    try:
        if os.statvfs(vol).f_flag & os.ST_RDONLY:
            return True
    except (OSError, AttributeError):
        pass
    return not os.access(vol, os.W_OK)


def _listing(vol: Path | None) -> set[str] | None:
    """Names on ``vol``, or None when it is not there or not readable (a drive being removed)."""
    if vol is None:
        return None
    try:
        return set(os.listdir(vol))
    except OSError:
        return None


def _fail_state(vol: Path, names: set[str] | None) -> tuple[Path, str, int] | None:
    """(path, text, mtime in ns) of FAIL.TXT on ``vol`` (any case), or None when there is none."""
    for name in sorted(names or ()):
        if name.upper() == FAIL_FILE:
            p = vol / name
            try:
                return p, p.read_text(errors="replace").strip(), p.stat().st_mtime_ns
            except OSError:
                return None
    return None


def _write_error(e: OSError, label: str, vol: Path, name: str, size: int) -> ToolError:
    if e.errno == errno.EROFS:
        return ToolError(f"volume {label!r} at {vol} is read-only: cannot copy {name} to it",
                         hint=READ_ONLY_HINT)
    if e.errno in (errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return ToolError(f"volume {label!r} at {vol} ran out of space while copying {name} ({size:,} B)",
                         hint=NO_SPACE_HINT)
    if e.errno in (errno.ENOENT, errno.ENODEV, errno.EIO, errno.ENXIO):
        return ToolError(f"volume {label!r} at {vol} went away while copying {name}: {e.strerror}",
                         hint="was the board reset or unplugged? plug it in again and retry")
    return ToolError(f"copying {name} to volume {label!r} at {vol} failed: {e.strerror or e}",
                     hint="check the drive's permissions and that the board is still connected")


READ_ONLY_HINT = ("remount it read-write, or unplug and replug the board (Linux mounts a FAT drive "
                  "read-only after errors on it: see `dmesg`)")
NO_SPACE_HINT = ("delete other files from the drive, or flash with one of the board's tool methods "
                 "(--method openocd / st-flash / pyocd)")


def copy_image(image: Path, label: str, *, mount_roots=(), timeout: float, hint: str,
               fail_hint: str, progress: Callable[[str], None] = lambda s: None) -> CopyOutcome:
    """Copy ``image`` to the drive ``label`` and wait (at most ``timeout`` s) for the probe to take it.

    ``hint``: what to do when the drive is not mounted; ``fail_hint``: when the probe reports FAIL.TXT."""
    vol = find_volume(label, mount_roots)
    if vol is None:
        raise ToolError(not_mounted_message(label, mount_roots), hint=hint)
    if read_only(vol):
        raise ToolError(f"volume {label!r} at {vol} is mounted read-only: cannot copy {image.name} to it",
                        hint=READ_ONLY_HINT)
    data = image.read_bytes()
    dest = vol / image.name
    try:
        free = shutil.disk_usage(vol).free + (dest.stat().st_size if dest.is_file() else 0)
    except OSError:
        free = None
    if free is not None and free < len(data):
        raise ToolError(f"volume {label!r} at {vol} has no space for {image.name}: {free:,} B free, "
                        f"the image is {len(data):,} B", hint=NO_SPACE_HINT)
    fail_before = _fail_state(vol, _listing(vol))
    progress(f"copying {image.name} ({len(data):,} B) to {vol}, then waiting up to {timeout:g} s "
             "for the board to program it")
    try:
        with open(dest, "wb") as f:   # one write + fsync: the probe programs once the file is complete
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise _write_error(e, label, vol, image.name, len(data)) from None
    if hasattr(os, "sync"):
        os.sync()
    return _wait_for_probe(vol, label, mount_roots, dest, len(data), fail_before, timeout, fail_hint)


def _wait_for_probe(vol: Path, label: str, mount_roots, dest: Path, size: int, fail_before,
                    timeout: float, fail_hint: str) -> CopyOutcome:
    """Poll until the drive re-enumerated (went away and came back with files on it, or the image
    is gone from it) or FAIL.TXT appeared; FAIL.TXT -> ToolError with its text."""
    deadline = time.monotonic() + timeout
    gone = False
    while True:
        cur = vol if vol.is_dir() else find_volume(label, mount_roots)
        names = _listing(cur)
        if names is None:
            gone = True
        elif names or not gone:   # a mount point that came back empty is still being mounted
            fail = _fail_state(cur, names)
            if fail is not None and (gone or fail != fail_before):
                text = fail[1][:FAIL_TEXT_MAX] or "(empty)"
                raise ToolError(f"the board's probe did not program {dest.name}: {fail[0]} says: {text}",
                                hint=fail_hint)
            if gone or dest.name.upper() not in {n.upper() for n in names}:   # FAT: any case
                return CopyOutcome(cur, dest, f"copied {size:,} B to {dest}; the board took it and "
                                              f"its drive came back without {FAIL_FILE}")
        if time.monotonic() >= deadline:
            break
        time.sleep(POLL_S)
    if gone:
        return CopyOutcome(vol, dest, f"copied {size:,} B to {dest}", [
            f"the drive {label!r} went away after the copy and did not come back within {timeout:g} s, "
            f"so {FAIL_FILE} could not be checked: mount it again and look for {FAIL_FILE} "
            "(or check the board with `tinyprune validate BUILD_DIR --port PORT`)"])
    where = "" if os.path.ismount(vol) else f" ({vol} is not a mount point)"
    raise ToolError(f"{dest.name} is still on {vol} {timeout:g} s after the copy and the drive did not "
                    f"re-enumerate: nothing programmed the board{where}",
                    hint=f"is {vol} the board's drive? unplug and replug the board; if programming takes "
                         "longer, raise --timeout (or $TINYPRUNE_FLASH_TIMEOUT)")
