"""Output helpers: every command writes its outputs atomically, so that a failure never leaves
half-written files behind and never touches the previous good output, and every output path
problem (a file where a folder should be, no permission, a read-only file system) is a bad-input
error naming the path.

    atomic_output_dir(out, marker)    a command's own output folder, replaced as a whole on success
    atomic_write_text/_bytes(path, x) one output file, replaced on success (write_json uses it)
    check_output_file(path)           fail early (before the work) when ``path`` cannot be written
    output_path_error(path, exc)      the one-line UserInputError for an OSError on an output path
    check_replaceable, sibling_tmp_dir, replace_dir
                                      the steps of atomic_output_dir, for a caller that keeps its
                                      work folder itself (pipeline/workdir.py: `tinyprune build`)

Use these for every output a command writes; never write into an existing output in place.

May not import tinyprune modules other than errors."""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from tinyprune.errors import UserInputError


def output_path_error(path: str | os.PathLike, exc: OSError) -> UserInputError:
    """The error for an output ``path`` that cannot be written (exit 2, one line naming the path)."""
    path = Path(path)
    if exc.errno == errno.ENOTDIR or (exc.errno == errno.EEXIST and not path.is_dir()):
        blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
        problem = "it is a file" if blocker in (None, path) else f"{blocker} is a file, not a folder"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        problem = "permission denied"
    elif exc.errno == errno.EROFS:
        problem = "read-only file system"
    elif exc.errno == errno.ENOENT:
        problem = f"cannot create files in {path.parent}"
    elif exc.errno == errno.EISDIR:
        problem = "it is a folder"
    else:
        problem = exc.strerror or str(exc)
    return UserInputError(f"cannot write to {path}: {problem}")


def _mkdirs(folder: Path, target: Path | None = None) -> list[Path]:
    """mkdir -p that returns the folders it created, with errors naming ``target`` (default: folder)."""
    target = target or folder
    missing = []
    p = folder
    while not p.exists() and not p.is_symlink() and p != p.parent:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir()
        except FileExistsError:
            if not d.is_dir():
                remove_created(missing)
                raise output_path_error(target, OSError(errno.ENOTDIR, "not a folder")) from None
        except OSError as e:
            remove_created(missing)
            raise output_path_error(target, e) from None
    return missing


def remove_created(created: list[Path]) -> None:
    """Remove folders _mkdirs created, deepest first, where still empty."""
    for d in sorted(created, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            d.rmdir()


def _read_umask() -> int:
    mask = os.umask(0)   # the only portable way to read it; done once, at import
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def _umask() -> int:
    return _UMASK


@contextlib.contextmanager
def atomic_output_dir(out: str | os.PathLike, marker: str):
    """Yield an empty temporary folder beside ``out``; when the block succeeds it *replaces*
    ``out`` as a whole (no file of a previous run survives beside the new ones); on any
    exception (or Ctrl-C) it is removed and ``out`` is left exactly as it was (folders that did
    not exist before are not left behind).

    ``marker``: a file every complete output of this command contains (e.g. ``codegen.json``).
    An existing ``out`` that is neither empty nor holds ``marker`` is not this command's output:
    it is refused (UserInputError) before any work, never deleted. Output path problems (a file
    in the way, no permission, read-only) are UserInputErrors naming the path."""
    out = check_replaceable(out, marker)
    tmp, created = sibling_tmp_dir(out)
    try:
        yield tmp
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        remove_created(created)
        raise


def check_replaceable(out: str | os.PathLike, marker: str) -> Path:
    """The folder to replace for ``out`` (a symlinked folder: its target). UserInputError unless
    ``out`` is missing, an empty folder, or a folder holding ``marker`` (this command's earlier
    output): never a file, the current folder or one containing it, or a folder of other files."""
    out = Path(out)
    if out.name in ("", ".", "..") or (out.is_symlink() and out.is_dir()):
        out = out.resolve()        # a symlink: replace the folder it points to, keep the link
    if out.exists() and not out.is_dir():
        raise output_path_error(out, OSError(errno.EEXIST, "exists"))
    if not out.is_dir():
        return out
    try:
        foreign = next(out.iterdir(), None) is not None and not (out / marker).exists()
    except OSError as e:
        raise output_path_error(out, e) from None
    if foreign:
        raise UserInputError(f"cannot write to {out}: it is a folder with other files (no {marker}, so not "
                             "an output of this command); refusing to replace it",
                             hint="pass a new or empty folder with -o")
    cwd = Path.cwd()
    if out.resolve() == cwd or out.resolve() in cwd.parents:
        raise UserInputError(f"cannot write to {out}: it is the current folder or contains it",
                             hint="pass another folder with -o")
    return out


def sibling_tmp_dir(out: str | os.PathLike) -> tuple[Path, list[Path]]:
    """A new empty folder ``.OUT.tmp-XXXX`` beside ``out`` (with the mode mkdir would give it), and
    the missing parent folders made for it (for ``remove_created`` on failure). Output path
    problems are UserInputErrors naming ``out``."""
    out = Path(out)
    created = _mkdirs(out.parent, out)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
        tmp.chmod(0o777 & ~_umask())
    except OSError as e:
        remove_created(created)
        raise output_path_error(out, e) from None
    return tmp, created


def replace_dir(new: str | os.PathLike, out: str | os.PathLike) -> None:
    """Move the folder ``new`` to ``out`` (a sibling), replacing an existing ``out`` as a whole:
    two renames, the old folder is deleted only once the new one is in place."""
    new, out = Path(new), Path(out)
    old = None
    try:
        if out.exists() or out.is_symlink():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old)          # onto the empty folder mkdtemp made
        try:
            os.replace(new, out)
        except OSError:
            if old is not None:
                os.replace(old, out)
                old = None
            raise
    except OSError as e:
        raise output_path_error(out, e) from None
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def check_output_file(path: str | os.PathLike) -> Path:
    """Fail now (UserInputError naming the path) when the output file ``path`` cannot be written:
    run this before the work whose result goes there. Creates nothing that is not removed again."""
    path = Path(path)
    if path.is_dir():
        raise output_path_error(path, OSError(errno.EISDIR, "is a folder"))
    created = _mkdirs(path.parent, path)
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.probe-", dir=path.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise output_path_error(path, e) from None
    finally:
        remove_created(created)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``path`` through a temporary file beside it and os.replace: readers see the old or the
    new content, never a part; a failure leaves the old file. Output path errors as UserInputError."""
    path = Path(path)
    if path.is_dir():
        raise output_path_error(path, OSError(errno.EISDIR, "is a folder"))
    created = _mkdirs(path.parent, path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        remove_created(created)
        raise output_path_error(path, e) from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def write_json(path: str | os.PathLike, obj) -> None:
    """Deterministic JSON (sorted keys, 2-space indent, trailing newline), written atomically."""
    atomic_write_text(path, json_text(obj))


def json_text(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n"


def _json_default(o):
    try:
        import numpy as np
        if isinstance(o, np.integer):
            return int(o)
        if isinstance(o, np.floating):
            return float(o)
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
