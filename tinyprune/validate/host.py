"""Native host build of the firmware harness (``tinyprune validate --host``): the same
``firmware/harness`` sources and generated model, compiled with the host C compiler against
``bsp_host.c`` and run as a local process that serves the protocol on a loopback TCP port.

May import tinyprune.errors, tinyprune._fs, tinyprune._paths and tinyprune.validate.link.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

from tinyprune._fs import atomic_output_dir
from tinyprune._paths import BSP_DIR, HARNESS_DIR, KERNELS_DIR
from tinyprune.errors import ToolError, UserInputError
from tinyprune.validate.link import Link

HOST_CFLAGS = ["-std=c99", "-O2", "-Wall", "-Wno-unused-function", "-fno-strict-aliasing"]
BINARY = "tinyprune_host"


def harness_sources(harness_dir: Path = HARNESS_DIR, *, host: bool) -> list[Path]:
    """The harness's C files: bsp_host.c only in the host build."""
    files = sorted(Path(harness_dir).glob("*.c"))
    return [f for f in files if host or f.name != "bsp_host.c"]


def model_sources(codegen_dir: Path) -> list[Path]:
    """The generated model's C files (any folder depth, e.g. kernels/)."""
    return sorted(p for p in Path(codegen_dir).rglob("*.c") if p.name != "main.c")


def build_host(codegen_dir: str | os.PathLike, out_dir: str | os.PathLike, *, cc: str | None = None,
               extra_cflags: list[str] | None = None) -> Path:
    """Compile harness + bsp_host.c + the generated model into ``out_dir/tinyprune_host``.
    Rebuilds only when a source or flag changed. Returns the executable's path."""
    codegen_dir = Path(codegen_dir)
    if not (codegen_dir / "model.h").is_file():
        raise UserInputError(f"{codegen_dir} has no model.h: it is not a tinyprune codegen output folder",
                             hint="run `tinyprune codegen MODEL.tflite -o DIR` (or `tinyprune build`) first")
    cc = cc or os.environ.get("CC") or "cc"
    if shutil.which(cc) is None:
        raise ToolError(f"host C compiler '{cc}' not found",
                        hint="install gcc (apt-get install gcc) or set CC")
    sources = harness_sources(host=True) + model_sources(codegen_dir)
    include = [HARNESS_DIR, BSP_DIR, codegen_dir]
    include += sorted({p.parent for p in codegen_dir.rglob("*.h")} - {codegen_dir})
    if KERNELS_DIR.is_dir():
        include.append(KERNELS_DIR)
    flags = HOST_CFLAGS + (extra_cflags or [])
    cmd = [cc, *flags, *[f"-I{d}" for d in include], *map(str, sources), "-o"]
    # the folder's own path left out: the same build moved (tinyprune build swaps its work folder in)
    # is the same build; the sources' bytes are hashed below
    h = hashlib.sha256(" ".join(cmd).replace(str(codegen_dir), "<codegen>").encode())
    for f in sources + sorted(p for d in include for p in Path(d).glob("*.h")):
        h.update(f.read_bytes())
    stamp = h.hexdigest()
    cmd[1:1] = [f'-DTP_BUILD_ID="{stamp[:16]}"']  # what `info` reports: host_build_id(exe)
    out_dir = Path(out_dir)
    exe = out_dir / BINARY
    if exe.is_file() and (out_dir / f"{BINARY}.stamp").is_file() and \
            (out_dir / f"{BINARY}.stamp").read_text().strip() == stamp:
        return exe
    with atomic_output_dir(out_dir, f"{BINARY}.stamp") as tmp:
        r = subprocess.run(cmd + [str(Path(tmp) / BINARY)], capture_output=True, text=True)
        if r.returncode != 0:
            raise ToolError(f"host build of the harness failed ({cc} exit {r.returncode}):\n{r.stderr[-4000:]}",
                            hint="the generated C must compile with the host compiler; report this with the "
                                 "codegen folder attached")
        (Path(tmp) / f"{BINARY}.stamp").write_text(stamp + "\n")
    return exe


def host_build_id(exe: str | os.PathLike) -> str | None:
    """The build id the native harness ``exe`` reports in `info` (None when it has no stamp)."""
    stamp = Path(exe).with_name(f"{BINARY}.stamp")
    return stamp.read_text().strip()[:16] if stamp.is_file() else None


@contextlib.contextmanager
def host_session(exe: str | os.PathLike, *, start_timeout: float = 10.0, proxy=None, **link_kw):
    """Start the native harness on a free loopback port and yield a connected Link; the process
    is always stopped afterwards. ``proxy`` (tests): maps the device's (host, port) to the
    address to connect to instead."""
    env = dict(os.environ, TP_HOST_PORT="0")
    proc = subprocess.Popen([str(exe)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    link = None
    try:
        host, port = "127.0.0.1", _read_port(proc, start_timeout)
        if proxy is not None:
            host, port = proxy(host, port)
        link = Link.open_url(f"socket://{host}:{port}", name="host build", **link_kw)
        yield link
    finally:
        if link is not None:
            link.close()
        _stop(proc)


def _read_port(proc: subprocess.Popen, timeout: float) -> int:
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    line = b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not sel.select(left):
            break
        b = proc.stdout.read1(256) if hasattr(proc.stdout, "read1") else proc.stdout.read(1)
        if not b:
            break
        line += b
    sel.close()
    parts = line.decode(errors="replace").split()
    if len(parts) != 2 or parts[0] != "TINYPRUNE_HOST_PORT":
        _stop(proc, close=False)
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        _stop(proc)
        raise ToolError(f"the host build did not start (exit {proc.returncode}): {line!r} {err.strip()}")
    return int(parts[1])


def _stop(proc: subprocess.Popen, close: bool = True) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for s in (proc.stdout, proc.stderr) if close else ():
        if s:
            s.close()
