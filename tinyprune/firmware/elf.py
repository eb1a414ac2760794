"""A small reader for 32-bit little-endian ARM ELF files (what arm-none-eabi-gcc links).

Reads the header (entry point, machine), the section headers (name, type, flags, address, size,
file offset) and the symbol table, and returns the bytes at a virtual address. Sizes reported by
tinyprune come from here (section headers), not from arm-none-eabi-size.

``check_firmware(path)`` is the gate before a firmware file is run (QEMU): a 32-bit ARM executable
built by tinyprune with the serial harness, else UserInputError (exit code 2) naming the file and
what it is instead (not an ELF, 64-bit, another CPU, an object file, stripped, the selftest harness).

This module may import only the standard library and tinyprune.errors.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from tinyprune.errors import UserInputError

SHT_PROGBITS = 1
SHT_SYMTAB = 2
SHT_STRTAB = 3
SHT_NOBITS = 8
SHF_WRITE = 0x1
SHF_ALLOC = 0x2
SHF_EXECINSTR = 0x4
EM_ARM = 40
ET_REL, ET_EXEC = 1, 2
ELF32_HEADER_BYTES = 52
MACHINES = {3: "x86", 8: "MIPS", 20: "PowerPC", 40: "ARM (32-bit)", 62: "x86-64", 183: "AArch64 (64-bit ARM)",
            243: "RISC-V", 94: "Xtensa"}
# Defined by every firmware built with firmware/harness (protocol.c) on tinyprune's startup code: what
# `validate --sim` and `bench` need to talk to it.
STARTUP_SYMBOL = "tp_vector_table"
PROTOCOL_SYMBOLS = ("tp_frame_parse", "tp_rx_push")
FIRMWARE_HINT = "build it with `tinyprune firmware BUILD_DIR --board BOARD` (or `tinyprune build`)"


@dataclass(frozen=True)
class Section:
    name: str
    type: int
    flags: int
    addr: int
    offset: int
    size: int

    @property
    def alloc(self) -> bool:
        return bool(self.flags & SHF_ALLOC)

    @property
    def nobits(self) -> bool:
        return self.type == SHT_NOBITS


@dataclass(frozen=True)
class Symbol:
    name: str
    value: int
    size: int
    info: int
    shndx: int


@dataclass(frozen=True)
class Segment:
    type: int
    offset: int
    vaddr: int
    paddr: int
    filesz: int
    memsz: int
    flags: int


class Elf:
    """An ELF32 little-endian file held in memory."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.data = self.path.read_bytes()
        d = self.data
        if len(d) < ELF32_HEADER_BYTES or d[:4] != b"\x7fELF":
            start = d[:4].hex(" ") or "nothing"
            raise UserInputError(f"{self.path}: not an ELF file ({len(d)} bytes, starting with {start})",
                                 hint=FIRMWARE_HINT)
        if d[4] != 1:
            raise UserInputError(f"{self.path}: a {'64' if d[4] == 2 else '?'}-bit ELF file; Cortex-M firmware is a "
                                 "32-bit ELF", hint=FIRMWARE_HINT)
        if d[5] != 1:
            raise UserInputError(f"{self.path}: a big-endian ELF file; Cortex-M firmware is little-endian",
                                 hint=FIRMWARE_HINT)
        try:
            self._parse(d)
        except (struct.error, IndexError, ValueError) as e:
            why = (f"its headers point past the end of its {len(d)} bytes" if isinstance(e, struct.error)
                   else f"{type(e).__name__}: {e}")
            raise UserInputError(f"{self.path}: a corrupt or truncated ELF file ({why})", hint=FIRMWARE_HINT) from None

    def _parse(self, d: bytes) -> None:
        (self.type, self.machine, _version, self.entry, phoff, shoff, self.eflags, _ehsize,
         phentsize, phnum, shentsize, shnum, shstrndx) = struct.unpack_from("<HHIIIIIHHHHHH", d, 16)
        raw = [struct.unpack_from("<IIIIIIIIII", d, shoff + i * shentsize) for i in range(shnum)]
        strtab = raw[shstrndx] if raw else None   # IndexError for a bad index: corrupt
        self.sections: list[Section] = [
            Section(self._str(strtab[4], r[0]), r[1], r[2], r[3], r[4], r[5]) for r in raw]
        self.segments: list[Segment] = []
        for i in range(phnum):
            p_type, p_off, p_vaddr, p_paddr, p_filesz, p_memsz, p_flags, _align = struct.unpack_from(
                "<IIIIIIII", d, phoff + i * phentsize)
            self.segments.append(Segment(p_type, p_off, p_vaddr, p_paddr, p_filesz, p_memsz, p_flags))
        self._symbols: dict[str, Symbol] | None = None
        self._raw = raw

    def _str(self, table_offset: int, index: int) -> str:
        end = self.data.index(b"\0", table_offset + index)
        return self.data[table_offset + index:end].decode("ascii", "replace")

    def section(self, name: str) -> Section | None:
        return next((s for s in self.sections if s.name == name), None)

    @property
    def alloc_sections(self) -> list[Section]:
        return [s for s in self.sections if s.alloc and s.size > 0]

    @property
    def symbols(self) -> dict[str, Symbol]:
        if self._symbols is None:
            try:
                self._symbols = self._read_symbols()
            except (struct.error, IndexError, ValueError) as e:
                raise UserInputError(f"{self.path}: a corrupt ELF symbol table ({type(e).__name__}: {e})",
                                     hint=FIRMWARE_HINT) from None
        return self._symbols

    def _read_symbols(self) -> dict[str, Symbol]:
        syms: dict[str, Symbol] = {}
        for i, s in enumerate(self.sections):
            if s.type != SHT_SYMTAB:
                continue
            link = self._raw[i][6]
            entsize = self._raw[i][9] or 16
            str_off = self.sections[link].offset
            for k in range(s.size // entsize):
                name_i, value, size, info, _other, shndx = struct.unpack_from(
                    "<IIIBBH", self.data, s.offset + k * entsize)
                if name_i:
                    name = self._str(str_off, name_i)
                    syms.setdefault(name, Symbol(name, value, size, info, shndx))
        return syms

    def read(self, addr: int, n: int) -> bytes:
        """``n`` bytes at virtual address ``addr`` from the section that contains them."""
        for s in self.sections:
            if s.alloc and not s.nobits and s.addr <= addr and addr + n <= s.addr + s.size:
                o = s.offset + addr - s.addr
                return self.data[o:o + n]
        raise KeyError(f"no loaded section holds [{addr:#x}, {addr + n:#x})")

    def load_address(self, section: Section) -> int:
        """LMA of a section (where it lives in flash): from the program header containing it."""
        for p in self.segments:
            if p.type == 1 and p.offset <= section.offset < p.offset + max(p.filesz, 1) \
                    and p.vaddr <= section.addr < p.vaddr + max(p.memsz, 1):
                return p.paddr + (section.addr - p.vaddr)
        return section.addr


def check_firmware(path: str | Path) -> Elf:
    """The firmware at ``path`` if it is what tinyprune runs (a 32-bit little-endian ARM executable
    with tinyprune's startup code and the serial harness), else UserInputError naming the file and
    what it is instead. Nothing is started."""
    elf = Elf(path)
    p = elf.path
    if elf.machine != EM_ARM:
        what = MACHINES.get(elf.machine, f"machine {elf.machine}")
        raise UserInputError(f"{p}: an ELF file for {what}, not for ARM Cortex-M", hint=FIRMWARE_HINT)
    if elf.type != ET_EXEC:
        kind = "a relocatable object file (.o)" if elf.type == ET_REL else f"ELF type {elf.type}"
        raise UserInputError(f"{p}: {kind}, not linked firmware (an executable)", hint=FIRMWARE_HINT)
    if not any(s.type == SHT_SYMTAB for s in elf.sections):
        raise UserInputError(f"{p}: has no symbol table (stripped?), so it cannot be checked as tinyprune "
                             "firmware", hint="use the firmware.elf that `tinyprune firmware` wrote, unstripped")
    syms = elf.symbols
    if STARTUP_SYMBOL not in syms:
        raise UserInputError(f"{p}: an ARM executable, but not built by tinyprune (no {STARTUP_SYMBOL})",
                             hint=FIRMWARE_HINT)
    missing = [n for n in PROTOCOL_SYMBOLS if n not in syms]
    if missing:
        raise UserInputError(f"{p}: tinyprune firmware without the serial harness (no {', '.join(missing)}); "
                             "the selftest harness cannot be validated or benchmarked",
                             hint="build it with the default harness: tinyprune firmware BUILD_DIR --board BOARD")
    return elf
