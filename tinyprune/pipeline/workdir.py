"""The build folder's life cycle for ``tinyprune build``: ``OUT/BOARD/`` is replaced only by a build
that succeeded.

A build works in a temporary sibling ``OUT/.BOARD.tmp-XXXX/``, seeded with a copy of the previous
``OUT/BOARD/`` so that the stage cache still serves unchanged stages (the cache records output
paths relative to the build folder and content hashes, nothing absolute). A copy, not hard links:
a stage that rewrote a seeded file in place would otherwise write into the good folder too.

- success: the work folder replaces ``OUT/BOARD/`` as a whole (``_fs.replace_dir``), and an
  ``OUT/BOARD.failed/`` of an earlier attempt, now stale, is removed;
- failure (any exception): ``OUT/BOARD/`` is left exactly as it was; the attempt, with its
  summary.json and report.html, becomes ``OUT/BOARD.failed/`` (replacing an older one) for
  diagnosis; an interrupted build (Ctrl-C) leaves nothing.

May import only tinyprune._fs and tinyprune.errors.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from tinyprune import _fs

FAILED_SUFFIX = ".failed"
MARKER = "summary.json"      # every build folder has one: a folder without it is not replaced


@dataclass
class BuildFolders:
    final: Path     # OUT/BOARD: the last good build
    work: Path      # OUT/.BOARD.tmp-XXXX: this attempt

    @property
    def failed(self) -> Path:
        return failed_dir(self.final)


def failed_dir(final: str | Path) -> Path:
    final = Path(final)
    return final.with_name(final.name + FAILED_SUFFIX)


def start(final: str | Path) -> BuildFolders:
    """Create the work folder beside ``final``, seeded with a copy of ``final`` when there is one.
    UserInputError naming the path when it cannot be written, or ``final`` is a folder that is not a
    build (no summary.json: it is never replaced)."""
    final = _fs.check_replaceable(final, MARKER)
    work, _ = _fs.sibling_tmp_dir(final)
    try:
        if final.is_dir():
            shutil.copytree(final, work, symlinks=True, dirs_exist_ok=True)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return BuildFolders(final, work)


def as_failed(f: BuildFolders, text: str | None) -> str | None:
    """``text`` (an error message) with the work folder's path replaced by the failed attempt's."""
    return text.replace(str(f.work), str(f.failed)) if text else text


def commit(f: BuildFolders) -> None:
    """The attempt succeeded: it becomes ``final``; a stale ``final.failed`` goes."""
    _fs.replace_dir(f.work, f.final)
    shutil.rmtree(f.failed, ignore_errors=True)


def keep_failed(f: BuildFolders) -> Path:
    """The attempt failed: keep it as ``final.failed`` (``final`` is not touched). Returns that path."""
    try:
        _fs.replace_dir(f.work, f.failed)
    except Exception:  # noqa: BLE001 - diagnosis only; the build's own error is what the user needs
        discard(f)
    return f.failed


def discard(f: BuildFolders) -> None:
    shutil.rmtree(f.work, ignore_errors=True)
