"""A small reader for 32-bit little-endian ARM ELF files (what arm-none-eabi-gcc links).

Reads the header (entry point, machine), the section headers (name, type, flags, address, size,
file offset) and the symbol table, and returns the bytes at a virtual address. Sizes reported by
tinyprune come from here (section headers), not from arm-none-eabi-size.

This module may import only the standard library and tinyprune.errors.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from tinyprune.errors import ToolError

SHT_PROGBITS = 1
SHT_SYMTAB = 2
SHT_STRTAB = 3
SHT_NOBITS = 8
SHF_WRITE = 0x1
SHF_ALLOC = 0x2
SHF_EXECINSTR = 0x4
EM_ARM = 40


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
        if d[:4] != b"\x7fELF" or d[4] != 1 or d[5] != 1:
            raise ToolError(f"{self.path}: not a 32-bit little-endian ELF file")
        (self.type, self.machine, _version, self.entry, phoff, shoff, self.eflags, _ehsize,
         phentsize, phnum, shentsize, shnum, shstrndx) = struct.unpack_from("<HHIIIIIHHHHHH", d, 16)
        raw = [struct.unpack_from("<IIIIIIIIII", d, shoff + i * shentsize) for i in range(shnum)]
        strtab = raw[shstrndx]
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
            self._symbols = syms
        return self._symbols

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
