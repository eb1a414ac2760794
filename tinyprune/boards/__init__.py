"""The board catalog: one TOML file per board in ``boards/``, validated on load.

Public API (other stages code against these names)::

    load_board(name_or_path, boards_dir=None) -> Board
    list_boards(boards_dir=None) -> list[Board]        # sorted by name
    Board.model_ram_budget / .text_region / .data_region / .gcc_flags / .to_dict()

``name_or_path`` is a catalog name (``nucleo-f746``) or a path to a ``.toml`` file; ``boards_dir``
is a user folder searched before the catalog (its files may add boards or replace catalog ones).
A malformed file raises ``UserInputError`` naming the file and the field (see schema.py and
docs/boards.md). This module may import only the standard library and tinyprune.errors,
tinyprune._paths and tinyprune.boards.schema (``import tinyprune.boards`` must stay cheap).
"""
from __future__ import annotations

import difflib
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from tinyprune._paths import BOARDS_DIR
from tinyprune.boards.schema import display_path, parse_board
from tinyprune.errors import UserInputError

__all__ = ["Bank", "Region", "Core", "Memory", "Serial", "FlashInfo", "QemuInfo", "Board",
           "load_board", "list_boards", "catalog_dir", "SCHEMA_VERSION"]

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Bank:
    """A physical SRAM bank inside a region (e.g. DTCM inside the STM32F746's RAM)."""
    name: str
    origin: int
    length: int


@dataclass(frozen=True)
class Region:
    name: str            # linker MEMORY name, a C identifier ("FLASH", "RAM", "DTCM", ...)
    kind: str            # "flash" | "ram"
    origin: int
    length: int
    role: str            # "text" (code, rodata, weights) | "data" (data, bss, arena, stack) | "other"
    banks: tuple[Bank, ...] = ()

    @property
    def end(self) -> int:
        return self.origin + self.length


@dataclass(frozen=True)
class Core:
    cpu: str             # exactly the -mcpu value
    arch: str
    clock_hz: int
    dsp: bool
    fpu: str             # exactly the -mfpu value, or "none"
    float_abi: str       # hard | softfp | soft
    mve: bool


@dataclass(frozen=True)
class Memory:
    flash_bytes: int
    ram_bytes: int
    reserved_ram_bytes: int
    regions: tuple[Region, ...]


@dataclass(frozen=True)
class Serial:
    uart: str
    base_address: int
    tx_pin: str
    rx_pin: str
    baud: int
    host_interface: str
    usb_ids: tuple[str, ...]


@dataclass(frozen=True)
class FlashInfo:
    methods: tuple[str, ...]
    mass_storage_volume: str
    openocd_config: str
    pyocd_target: str


@dataclass(frozen=True)
class QemuInfo:
    machine: str
    cpu: str


@dataclass(frozen=True)
class Board:
    name: str
    vendor: str
    mcu: str
    description: str
    simulation: bool
    sim_twin: str
    core: Core
    memory: Memory
    serial: Serial
    flash: FlashInfo
    qemu: QemuInfo | None
    source_path: Path = field(compare=False)

    @property
    def model_ram_budget(self) -> int:
        """RAM left for the model's arena and firmware data: ram_bytes - reserved_ram_bytes."""
        return self.memory.ram_bytes - self.memory.reserved_ram_bytes

    @property
    def text_region(self) -> Region:
        return next(r for r in self.memory.regions if r.role == "text")

    @property
    def data_region(self) -> Region:
        return next(r for r in self.memory.regions if r.role == "data")

    @property
    def gcc_flags(self) -> list[str]:
        """Code-generation flags for arm-none-eabi-gcc (no optimisation or spec flags)."""
        flags = [f"-mcpu={self.core.cpu}", "-mthumb"]
        if self.core.fpu != "none":
            flags.append(f"-mfpu={self.core.fpu}")
        flags.append(f"-mfloat-abi={self.core.float_abi}")
        return flags

    @property
    def qemu_board(self) -> str | None:
        """Name of the board to run this board's core in QEMU: itself, its sim_twin, or None."""
        return self.name if self.simulation else (self.sim_twin or None)

    def to_dict(self) -> dict:
        """Stable JSON form (documented field by field in docs/boards.md)."""
        return {
            "schema_version": SCHEMA_VERSION,
            "name": self.name,
            "vendor": self.vendor,
            "mcu": self.mcu,
            "description": self.description,
            "simulation": self.simulation,
            "sim_twin": self.sim_twin,
            "core": {"cpu": self.core.cpu, "arch": self.core.arch, "clock_hz": self.core.clock_hz,
                     "dsp": self.core.dsp, "fpu": self.core.fpu, "float_abi": self.core.float_abi,
                     "mve": self.core.mve},
            "memory": {
                "flash_bytes": self.memory.flash_bytes,
                "ram_bytes": self.memory.ram_bytes,
                "reserved_ram_bytes": self.memory.reserved_ram_bytes,
                "model_ram_budget": self.model_ram_budget,
                "regions": [{"name": r.name, "kind": r.kind, "origin": r.origin, "length": r.length,
                             "role": r.role,
                             "banks": [{"name": b.name, "origin": b.origin, "length": b.length}
                                       for b in r.banks]}
                            for r in self.memory.regions],
            },
            "serial": {"uart": self.serial.uart, "base_address": self.serial.base_address,
                       "tx_pin": self.serial.tx_pin, "rx_pin": self.serial.rx_pin,
                       "baud": self.serial.baud, "host_interface": self.serial.host_interface,
                       "usb_ids": list(self.serial.usb_ids)},
            "flash": {"methods": list(self.flash.methods),
                      "mass_storage_volume": self.flash.mass_storage_volume,
                      "openocd_config": self.flash.openocd_config,
                      "pyocd_target": self.flash.pyocd_target},
            "qemu": None if self.qemu is None else {"machine": self.qemu.machine,
                                                    "cpu": self.qemu.cpu},
            "gcc_flags": self.gcc_flags,
            "source_path": str(self.source_path),
        }


def catalog_dir() -> Path:
    """The bundled catalog folder (``boards/`` of the checkout)."""
    return BOARDS_DIR


def _read_board_file(path: Path) -> Board:
    shown = display_path(path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise UserInputError(f"{shown}: board file not found") from None
    except IsADirectoryError:
        raise UserInputError(f"{shown}: is a directory, not a board .toml file") from None
    except tomllib.TOMLDecodeError as e:
        raise UserInputError(f"{shown}: not valid TOML: {e}",
                             hint="see docs/boards.md for the board file format") from None
    except UnicodeDecodeError as e:
        raise UserInputError(f"{shown}: not a UTF-8 text file ({e.reason})") from None
    v = parse_board(data, path)
    m = v["memory"]
    regions = tuple(Region(name=r["name"], kind=r["kind"], origin=r["origin"], length=r["length"],
                           role=r["role"], banks=tuple(Bank(**b) for b in r["banks"]))
                    for r in m["regions"])
    return Board(
        name=v["name"], vendor=v["vendor"], mcu=v["mcu"], description=v["description"],
        simulation=v["simulation"], sim_twin=v["sim_twin"], core=Core(**v["core"]),
        memory=Memory(flash_bytes=m["flash_bytes"], ram_bytes=m["ram_bytes"],
                      reserved_ram_bytes=m["reserved_ram_bytes"], regions=regions),
        serial=Serial(**{**v["serial"], "usb_ids": tuple(v["serial"]["usb_ids"])}),
        flash=FlashInfo(**{**v["flash"], "methods": tuple(v["flash"]["methods"])}),
        qemu=QemuInfo(**v["qemu"]) if v["qemu"] else None,
        source_path=path,
    )


def _search_dirs(boards_dir) -> list[Path]:
    dirs = []
    if boards_dir is not None:
        d = Path(boards_dir)
        if not d.is_dir():
            raise UserInputError(f"--boards-dir {boards_dir}: not a directory",
                                 hint="pass a folder that contains NAME.toml board files")
        dirs.append(d)
    dirs.append(BOARDS_DIR)
    return dirs


def _catalog_files(boards_dir) -> dict[str, Path]:
    """name -> file; the user folder wins over the bundled catalog."""
    files: dict[str, Path] = {}
    for d in reversed(_search_dirs(boards_dir)):
        if d.is_dir():
            for p in sorted(d.glob("*.toml")):
                files[p.stem] = p
    return files


def _looks_like_path(s: str) -> bool:
    return s.endswith(".toml") or os.sep in s or (os.altsep is not None and os.altsep in s)


def _check_twin(board: Board, files: dict[str, Path]) -> None:
    if not board.sim_twin:
        return
    shown = display_path(board.source_path)
    if board.sim_twin not in files:
        raise UserInputError(f"{shown}: sim_twin: no board named {board.sim_twin!r} "
                             f"(known: {', '.join(sorted(files))})")
    twin = _read_board_file(files[board.sim_twin])
    if not twin.simulation:
        raise UserInputError(f"{shown}: sim_twin: {twin.name} is not a simulation board")
    if twin.core.cpu != board.core.cpu:
        raise UserInputError(f"{shown}: sim_twin: {twin.name} runs a {twin.core.cpu}, "
                             f"this board a {board.core.cpu}; name a twin with the same core or \"\"")


def load_board(name_or_path: str | os.PathLike, boards_dir: str | os.PathLike | None = None) -> Board:
    """Load and validate one board by catalog name or by path to a ``.toml`` file."""
    files = _catalog_files(boards_dir)
    s = os.fspath(name_or_path)
    if _looks_like_path(s) or (s not in files and Path(s).is_file()):
        path = Path(s)
        if not path.is_file():
            raise UserInputError(f"{s}: board file not found",
                                 hint=f"known boards: {', '.join(sorted(files))}")
        board = _read_board_file(path)
        # a board file may name a twin next to it or in the catalog
        _check_twin(board, {**files, **{p.stem: p for p in sorted(path.parent.glob('*.toml'))}})
        return board
    if s not in files:
        close = difflib.get_close_matches(s, list(files), n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}? " if close else ""
        hint += "add your own board with --boards-dir DIR or pass a path to a .toml file"
        raise UserInputError(f"unknown board {s!r}; known boards: {', '.join(sorted(files))}",
                             hint=hint)
    board = _read_board_file(files[s])
    _check_twin(board, files)
    return board


def list_boards(boards_dir: str | os.PathLike | None = None) -> list[Board]:
    """All boards of the catalog (and of ``boards_dir``), validated, sorted by name."""
    files = _catalog_files(boards_dir)
    boards = [_read_board_file(files[n]) for n in sorted(files)]
    by_name = {b.name: b for b in boards}
    for b in boards:
        if b.sim_twin:
            twin = by_name.get(b.sim_twin)
            if twin is None or not twin.simulation or twin.core.cpu != b.core.cpu:
                _check_twin(b, files)  # raises the precise error
    return boards
