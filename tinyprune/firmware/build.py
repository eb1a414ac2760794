"""Cross-compile firmware for a board around generated model code.

``build_firmware(codegen_dir, board, out_dir, *, harness_dir=None, defines=None, opt="-O2")``
copies every source into ``out_dir/src/`` (bsp/, harness/, model/), writes the linker script
(``firmware.ld``, from the board file) and a standalone ``Makefile`` that repeats exactly the
commands run here, compiles with arm-none-eabi-gcc, links, writes firmware.elf/.bin/.hex/.map and
``firmware.json``, then reads the exact sizes from the ELF section headers (tinyprune.firmware.elf)
and compares them with the board's limits (OverBudgetError, with the figures, when over).

Harness: ``harness_dir=None`` uses firmware/harness (all .c but bsp_host.c) when it is there,
``"selftest"`` uses firmware/bsp/selftest_main.c (no serial protocol; prints TP_SELFTEST_OK), any
other value is a folder of harness sources. ``codegen_dir=None`` builds without a model (selftest only).

May import tinyprune.errors, tinyprune._fs, tinyprune._paths, tinyprune.boards and the
tinyprune.firmware modules; nothing from other stages.
"""
from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tinyprune import _paths
from tinyprune._fs import atomic_output_dir, write_json
from tinyprune.errors import OverBudgetError, ToolError, UserInputError
from tinyprune.firmware.elf import Elf
from tinyprune.firmware.linker import layout_for_board, render_linker_script
from tinyprune.firmware.models import (collect, copy_models, find_codegen_dir, model_prefix, source_dir,
                                       static_arenas)

CROSS = "arm-none-eabi-"
ICOUNT_SHIFT = 7   # QEMU `-icount shift=7`: 128 ns of virtual time per instruction (bsp_mps2.c, bsp_mps3.c)
SIZE_SOURCE = "ELF section headers (tinyprune.firmware.elf)"
INSTALL_HINT = ("run `make setup` (it installs the ARM toolchain), or "
                "`sudo apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi`")


@dataclass(frozen=True)
class BspSpec:
    source: str            # file in firmware/bsp
    defines: tuple[str, ...]
    num_irqs: int
    runnable: bool = True  # False: bsp_sizeonly.c, exact flash/RAM figures but no clock/UART driver
    extra: tuple[str, ...] = ()  # further files of firmware/bsp the BSP needs


QEMU_CMSDK = ("bsp_qemu_cmsdk.h", "bsp_qemu_cmsdk.c")  # CMSDK UART + semihosting exit of the QEMU boards


def bsp_for_board(board) -> BspSpec:
    """Which BSP source drives ``board`` (by QEMU machine for simulation boards, else by MCU)."""
    machine = board.qemu.machine if getattr(board, "qemu", None) else ""
    uart = f"-DTP_UART_BASE={board.serial.base_address:#x}u"
    shift = f"-DTP_ICOUNT_SHIFT={ICOUNT_SHIFT}"
    if machine in ("mps2-an500", "mps2-an386", "mps2-an385", "mps2-an511"):
        return BspSpec("bsp_mps2.c", (uart, shift), 32, extra=QEMU_CMSDK)
    if machine == "mps3-an547":
        return BspSpec("bsp_mps3.c", (uart, shift), 96, extra=QEMU_CMSDK)
    if board.mcu.upper().startswith(("STM32F74", "STM32F75")):
        return BspSpec("bsp_stm32f7.c", (), 98)
    if machine:
        raise UserInputError(
            f"board {board.name}: no board support package for QEMU machine {machine!r}",
            hint="simulation firmware can be built for mps2-an500, mps2-an386 and mps3-an547")
    # A catalog board without a BSP: link everything for its core and memory map so that the
    # flash/RAM check is exact, with a BSP that drives nothing (the image is not runnable).
    return BspSpec("bsp_sizeonly.c", (), 16, runnable=False)


def resolve_board(board):
    """A Board object, a catalog name or a path to a board .toml file -> Board."""
    if hasattr(board, "memory") and hasattr(board, "core"):
        return board
    from tinyprune.boards import load_board
    return load_board(board)


@dataclass
class SectionInfo:
    name: str
    addr: int
    load_addr: int
    size: int
    region: str           # region holding the section's run address
    load_region: str      # region holding its load image ("" for NOLOAD sections)
    nobits: bool


@dataclass
class FirmwareResult:
    board: str
    out_dir: Path
    elf: Path
    bin: Path
    hex: Path
    map: Path
    makefile: Path
    linker_script: Path
    harness: str
    flash_used: int
    ram_used: int
    flash_limit: int
    ram_limit: int
    stack_bytes: int
    arena_bytes: int | None
    entry: int
    bin_bytes: int = 0     # size of firmware.bin: flash_used plus alignment padding between sections
    sections: dict[str, SectionInfo] = field(default_factory=dict)
    cflags: list[str] = field(default_factory=list)
    size_source: str = SIZE_SOURCE
    bsp: str = ""                 # BSP source used
    runnable: bool = True         # False when built with bsp_sizeonly.c (flash/RAM check only)
    build_id: str = ""            # TP_BUILD_ID embedded in the firmware, reported by its `info` (_build_id)
    models: list[str] = field(default_factory=list)   # prefixes of the models linked in

    @property
    def flash_headroom(self) -> int:
        return self.flash_limit - self.flash_used

    @property
    def ram_headroom(self) -> int:
        return self.ram_limit - self.ram_used

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("out_dir", "elf", "bin", "hex", "map", "makefile", "linker_script"):
            d[k] = Path(d[k]).name  # file names: the folder can move (tinyprune build swaps it in)
        d["flash_headroom"] = self.flash_headroom
        d["ram_headroom"] = self.ram_headroom
        return d

    def summary(self) -> str:
        return (("SIZE CHECK ONLY (no board support package: not runnable) - " if not self.runnable else "") +
                f"firmware for {self.board}: flash {self.flash_used:,} / {self.flash_limit:,} B "
                f"({100.0 * self.flash_used / self.flash_limit:.1f}%, {self.flash_headroom:,} B free), "
                f"RAM {self.ram_used:,} / {self.ram_limit:,} B "
                f"({100.0 * self.ram_used / self.ram_limit:.1f}%, {self.ram_headroom:,} B free; "
                f"stack {self.stack_bytes:,} B" +
                (f", arena {self.arena_bytes:,} B" if self.arena_bytes is not None else "") + ")")


# ----------------------------------------------------------------------------- sources

def _harness_choice(harness_dir) -> tuple[str, Path | None]:
    """-> (label, folder or None for selftest)."""
    if harness_dir is None:
        h = _paths.HARNESS_DIR
        if (h / "main.c").is_file():
            return "harness", h
        return "selftest", None
    if str(harness_dir) == "selftest":
        return "selftest", None
    h = Path(harness_dir)
    if not h.is_dir() or not any(h.glob("*.c")):
        raise UserInputError(f"harness folder {h}: no .c files",
                             hint="pass a folder with the harness sources, or `selftest`")
    return str(h), h


# ----------------------------------------------------------------------------- commands

@dataclass
class BuildPlan:
    cflags: list[str]
    ldflags: list[str]
    libs: list[str]
    includes: list[str]
    sources: list[str]      # relative to the firmware folder, e.g. src/bsp/startup_cm.c

    def obj(self, src: str) -> str:
        return "obj/" + src[:-2] + ".o"


def _plan(board, spec: BspSpec, copied: list[str], include_dirs: list[str], *, opt: str,
          defines: dict | None, have_model: bool) -> BuildPlan:
    cpu = list(board.gcc_flags)
    cflags = cpu + [opt, "-g", "-std=gnu11", "-Wall", "-ffunction-sections", "-fdata-sections",
                    "-fno-common", "-fno-exceptions"]
    defs = [f'-DTP_BOARD_NAME="{board.name}"', f"-DTP_NUM_IRQS={spec.num_irqs}",
            f"-DTP_BOARD_CLOCK_HZ={board.core.clock_hz}u", *spec.defines]
    if board.core.dsp:
        defs.append("-DTP_USE_ARM_DSP=1")
    if board.core.mve:
        defs.append("-DTP_USE_ARM_MVE=1")
    if have_model:
        defs.append("-DTP_HAVE_MODEL=1")
    for k, v in sorted((defines or {}).items()):
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", str(k)):
            raise UserInputError(f"define {k!r}: not a C identifier")
        defs.append(f"-D{k}" if v is None else f"-D{k}={v}")
    ldflags = cpu + ["-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs",
                     "-Wl,--gc-sections", "-Wl,-Map=firmware.map", "-Wl,--no-warn-rwx-segments",
                     "-Tfirmware.ld"]
    sources = [s for s in copied if s.endswith(".c")]
    return BuildPlan(cflags + defs, ldflags, ["-lm"], [f"-I{d}" for d in include_dirs], sources)


def _build_id(tmp: Path, plan: BuildPlan) -> str:
    """The firmware's identity: a digest of every source (model, kernels, harness, BSP), the flags
    and the linker script, so firmware for another board, kernel set or option has another id.
    The harness reports it in `info`; validation compares it with firmware.json's."""
    h = hashlib.sha256()
    for rel in sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file()):
        h.update(rel.encode() + b"\0" + (tmp / rel).read_bytes() + b"\0")
    for part in (plan.cflags, plan.ldflags, plan.libs, plan.includes):
        h.update("\0".join(part).encode() + b"\1")
    return h.hexdigest()[:16]


def _run(cmd: list[str], cwd: Path, what: str) -> subprocess.CompletedProcess:
    try:
        r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise ToolError(f"{cmd[0]} not found on PATH", hint=INSTALL_HINT) from None
    return r


def _check_tools() -> None:
    for tool in ("gcc", "objcopy"):
        if shutil.which(CROSS + tool) is None:
            raise ToolError(f"{CROSS}{tool} not found on PATH (needed to build firmware)", hint=INSTALL_HINT)


def _compile_all(plan: BuildPlan, cwd: Path) -> None:
    def one(src: str):
        obj = cwd / plan.obj(src)
        obj.parent.mkdir(parents=True, exist_ok=True)
        cmd = [CROSS + "gcc", *plan.cflags, *plan.includes, "-c", src, "-o", plan.obj(src)]
        return src, _run(cmd, cwd, "compile")

    with ThreadPoolExecutor(max_workers=2) as ex:
        results = list(ex.map(one, plan.sources))
    for src, r in results:
        if r.returncode != 0:
            raise ToolError(f"arm-none-eabi-gcc failed to compile {src}:\n{_tail(r.stderr)}",
                            hint="the generated C or the board flags are wrong; re-run with --debug "
                                 "and report it")


def _link(plan: BuildPlan, cwd: Path) -> subprocess.CompletedProcess:
    cmd = [CROSS + "gcc", *plan.ldflags, *[plan.obj(s) for s in plan.sources], "-o", "firmware.elf",
           *plan.libs]
    return _run(cmd, cwd, "link")


def _tail(text: str, n: int = 30) -> str:
    lines = text.strip().splitlines()
    return "\n".join(lines[-n:])


_OVERFLOW_RE = re.compile(r"region `([^']+)' overflowed by (\d+) bytes|RAM overflow|will not fit in region")


# ----------------------------------------------------------------------------- Makefile

def render_makefile(board, plan: BuildPlan) -> str:
    def wrap(items):
        return " \\\n\t".join(items)
    import shlex
    cflags = [shlex.quote(f) for f in plan.cflags]
    return f"""# Generated by tinyprune for board {board.name}: builds this firmware on its own.
#   make            -> firmware.elf, firmware.bin, firmware.hex, firmware.map
#   make CROSS=/opt/arm/bin/arm-none-eabi-   to use another toolchain
# The commands are exactly those `tinyprune firmware` ran, so the .bin is byte-identical.
CROSS ?= {CROSS}
CC := $(CROSS)gcc
OBJCOPY := $(CROSS)objcopy

CFLAGS := {wrap(cflags)}
INCLUDES := {wrap(plan.includes)}
LDFLAGS := {wrap(plan.ldflags)}
LIBS := {' '.join(plan.libs)}

SRCS := {wrap(plan.sources)}
OBJS := $(patsubst %.c,obj/%.o,$(SRCS))

.PHONY: all clean
all: firmware.elf firmware.bin firmware.hex

obj/%.o: %.c
\t@mkdir -p $(dir $@)
\t$(CC) $(CFLAGS) $(INCLUDES) -c $< -o $@

firmware.elf: $(OBJS) firmware.ld
\t$(CC) $(LDFLAGS) $(OBJS) -o $@ $(LIBS)

firmware.bin: firmware.elf
\t$(OBJCOPY) -O binary $< $@

firmware.hex: firmware.elf
\t$(OBJCOPY) -O ihex $< $@

clean:
\trm -rf obj firmware.elf firmware.bin firmware.hex firmware.map
"""


# ----------------------------------------------------------------------------- sizes

@dataclass(frozen=True)
class _Span:
    origin: int
    length: int


def _region_of(board, addr: int) -> str:
    for r in board.memory.regions:
        if r.origin <= addr < r.origin + r.length:
            return r.name
    return ""


def measure(elf_path: Path, board, *, relaxed: bool = False) -> tuple[int, int, dict[str, SectionInfo], int]:
    """(flash_used, ram_used, sections, entry) from the ELF section headers.

    flash_used: bytes of every allocated, loaded (PROGBITS) section whose load address is in the
    text region; ram_used: bytes of every allocated section whose run address is in the data region.
    ``relaxed``: the ELF was linked with the relaxed script (regions as large as the address space)."""
    elf = Elf(elf_path)
    lay = layout_for_board(board, relaxed=relaxed)
    t = _Span(lay.text_origin, lay.text_length)
    d = _Span(lay.data_origin, lay.data_length)
    flash = ram = 0
    sections: dict[str, SectionInfo] = {}
    for s in elf.alloc_sections:
        lma = elf.load_address(s)
        info = SectionInfo(s.name, s.addr, lma, s.size, _region_of(board, s.addr),
                           "" if s.nobits else _region_of(board, lma), s.nobits)
        sections[s.name] = info
        if not s.nobits and t.origin <= lma < t.origin + t.length:
            flash += s.size
        if d.origin <= s.addr < d.origin + d.length:
            ram += s.size
    return flash, ram, sections, elf.entry


def _arena_bytes(codegen_dir: Path | None, elf_path: Path) -> int | None:
    if codegen_dir is not None and (codegen_dir / "codegen.json").is_file():
        import json
        try:
            meta = json.loads((codegen_dir / "codegen.json").read_text())
        except ValueError:
            meta = {}
        for key in ("arena_bytes", "arena_size"):
            if isinstance(meta.get(key), int):
                return meta[key]
        mem = meta.get("memory") or meta.get("plan") or {}
        if isinstance(mem, dict) and isinstance(mem.get("arena_bytes"), int):
            return mem["arena_bytes"]
    syms = Elf(elf_path).symbols
    sizes = [s.size for n, s in syms.items() if "arena" in n.lower() and (s.info & 0xF) == 1]
    return max(sizes) if sizes else None


def _single_model(cg: Path | None) -> list[str]:
    """[prefix] of a one-model firmware; [] without a model or a readable codegen.json (older folders)."""
    if cg is None:
        return []
    try:
        return [model_prefix(cg)]
    except UserInputError:
        return []


def _over_budget_figures(board, flash: int, ram: int) -> dict:
    """{figure: (used, limit)} over the board's limits, for OverBudgetError.figures."""
    fl, rl = board.memory.flash_bytes, board.memory.ram_bytes
    return {k: (v, lim) for k, v, lim in (("firmware_flash_bytes", flash, fl), ("firmware_ram_bytes", ram, rl))
            if v > lim}


def _over_budget_message(board, flash: int, ram: int, stack: int) -> str | None:
    parts = []
    fl, rl = board.memory.flash_bytes, board.memory.ram_bytes
    if flash > fl:
        parts.append(f"flash: {flash:,} B used > {fl:,} B available (over by {flash - fl:,} B)")
    if ram > rl:
        parts.append(f"RAM: {ram:,} B used (including the {stack:,} B stack) > {rl:,} B available "
                     f"(over by {ram - rl:,} B)")
    if not parts:
        return None
    return f"firmware does not fit {board.name}: " + "; ".join(parts)


# ----------------------------------------------------------------------------- entry point

def build_firmware(codegen_dir, board, out_dir, *, harness_dir=None, defines: dict | None = None,
                   opt: str = "-O2") -> FirmwareResult:
    """Build firmware.elf/.bin/.hex/.map (+ Makefile, sources, firmware.json) into ``out_dir``.

    ``codegen_dir``: a codegen output folder (or a build folder containing ``codegen/``), or None
    for a model-less selftest. ``board``: Board, catalog name or .toml path. Raises ToolError
    (no toolchain / compiler error), UserInputError (bad folder, unsupported board) and
    OverBudgetError (flash or RAM over the board's limits; nothing is written then)."""
    board = resolve_board(board)
    spec = bsp_for_board(board)
    if opt not in ("-O0", "-O1", "-O2", "-O3", "-Os", "-Og", "-Ofast", "-Oz"):
        raise UserInputError(f"optimisation level {opt!r}: expected one of -O0 -O1 -O2 -O3 -Os -Og")
    dirs = list(codegen_dir) if isinstance(codegen_dir, (list, tuple)) else \
        ([] if codegen_dir is None else [codegen_dir])
    label, hdir = _harness_choice(harness_dir)
    multi = [find_codegen_dir(Path(d), any_prefix=True) for d in dirs] if len(dirs) > 1 else []
    cg = find_codegen_dir(Path(dirs[0])) if len(dirs) == 1 else None
    if multi and (hdir is None or hdir == _paths.HARNESS_DIR):
        which = "selftest" if hdir is None else "serial-protocol harness"
        raise UserInputError(f"{len(multi)} models in one firmware need a harness of your own: the {which} "
                             "runs one model, the one named `model`",
                             hint="pass --harness DIR, a folder with your main() calling each model's "
                                  "PREFIX_invoke (docs/firmware.md, several models)")
    if hdir is not None and cg is None and not multi:
        raise UserInputError("the serial harness needs a model: pass a codegen folder, or use the "
                             "selftest harness (--harness selftest)")
    _check_tools()
    bsp_dir = _paths.require(_paths.BSP_DIR)

    out_dir = Path(out_dir)
    with atomic_output_dir(out_dir, "firmware.json") as tmp:
        copied: list[str] = []
        include_dirs = ["src/bsp"]
        for name in ("bsp.h", "startup_cm.c", spec.source, *spec.extra):
            dst = tmp / "src/bsp" / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(bsp_dir / name, dst)
            if name.endswith(".c"):
                copied.append(f"src/bsp/{name}")
        if hdir is None:
            shutil.copyfile(bsp_dir / "selftest_main.c", tmp / "src/bsp/selftest_main.c")
            copied.append("src/bsp/selftest_main.c")
        else:
            for rel in collect(hdir, exclude={"bsp_host.c", "bsp.h"}):
                dst = tmp / "src/harness" / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(hdir / rel, dst)
                copied.append(f"src/harness/{rel.as_posix()}")
            include_dirs.append("src/harness")
        prefixes = []
        if multi:
            dirs_inc, prefixes = copy_models(multi, tmp, copied)
            include_dirs.extend(dirs_inc)
        if cg is not None:
            src = source_dir(cg)
            model_files = collect(src, skip_mains=True)
            hdr_dirs = set()
            for rel in model_files:
                dst = tmp / "src/model" / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src / rel, dst)
                copied.append(f"src/model/{rel.as_posix()}")
                if rel.suffix == ".h":
                    hdr_dirs.add(("src/model" / rel.parent).as_posix())
            include_dirs.extend(sorted(hdr_dirs | {"src/model"}))

        plan = _plan(board, spec, copied, include_dirs, opt=opt, defines=defines,
                     have_model=cg is not None or bool(multi))
        (tmp / "firmware.ld").write_text(render_linker_script(board))
        build_id = _build_id(tmp, plan)
        plan.cflags.append(f'-DTP_BUILD_ID="{build_id}"')
        (tmp / "Makefile").write_text(render_makefile(board, plan))

        _compile_all(plan, tmp)
        r = _link(plan, tmp)
        stack = layout_for_board(board).stack_bytes
        if r.returncode != 0:
            if not _OVERFLOW_RE.search(r.stderr):
                raise ToolError(f"linking firmware for {board.name} failed:\n{_tail(r.stderr)}",
                                hint="re-run with --debug and report it")
            # measure the image with regions large enough to hold it, to report exact figures
            (tmp / "relaxed.ld").write_text(render_linker_script(board, relaxed=True))
            plan_relaxed = BuildPlan(plan.cflags, [f if f != "-Tfirmware.ld" else "-Trelaxed.ld"
                                                   for f in plan.ldflags], plan.libs, plan.includes,
                                     plan.sources)
            r2 = _link(plan_relaxed, tmp)
            if r2.returncode != 0:
                raise OverBudgetError(f"firmware does not fit {board.name}:\n{_tail(r.stderr)}")
            flash, ram, _, _ = measure(tmp / "firmware.elf", board, relaxed=True)
            msg = _over_budget_message(board, flash, ram, stack)
            raise OverBudgetError(msg or f"firmware does not fit {board.name}:\n{_tail(r.stderr)}",
                                  hint="prune the model further (tinyprune prune), or pick a board "
                                       "with more memory", figures=_over_budget_figures(board, flash, ram))
        for fmt, name in (("binary", "firmware.bin"), ("ihex", "firmware.hex")):
            r = _run([CROSS + "objcopy", "-O", fmt, "firmware.elf", name], tmp, "objcopy")
            if r.returncode != 0:
                raise ToolError(f"arm-none-eabi-objcopy -O {fmt} failed:\n{_tail(r.stderr)}")
        flash, ram, sections, entry = measure(tmp / "firmware.elf", board)
        msg = _over_budget_message(board, flash, ram, stack)
        if msg:
            raise OverBudgetError(msg, hint="prune the model further, or pick a board with more memory",
                                  figures=_over_budget_figures(board, flash, ram))
        shutil.rmtree(tmp / "obj", ignore_errors=True)
        result = FirmwareResult(
            board=board.name, out_dir=out_dir, elf=out_dir / "firmware.elf", bin=out_dir / "firmware.bin",
            hex=out_dir / "firmware.hex", map=out_dir / "firmware.map", makefile=out_dir / "Makefile",
            linker_script=out_dir / "firmware.ld", harness=label, flash_used=flash, ram_used=ram,
            flash_limit=board.memory.flash_bytes, ram_limit=board.memory.ram_bytes, stack_bytes=stack,
            arena_bytes=(static_arenas(prefixes, tmp / "firmware.elf") if multi
                         else _arena_bytes(cg, tmp / "firmware.elf")), entry=entry,
            bin_bytes=(tmp / "firmware.bin").stat().st_size, sections=sections,
            cflags=plan.cflags, bsp=spec.source, runnable=spec.runnable, build_id=build_id,
            models=prefixes or _single_model(cg))
        write_json(tmp / "firmware.json", result.to_dict())
    return result
