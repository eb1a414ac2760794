"""Schema of a board file (boards/*.toml) and its validation.

``parse_board(data, path)`` turns the dict read by tomllib into plain keyword arguments for the
dataclasses in ``tinyprune.boards`` after checking every field. Any problem raises
``UserInputError("<file>: <dotted.field>: <what is wrong>")``; keys the schema does not know are
errors too, so a typo in a board file never goes unnoticed.

The field-by-field description lives in docs/boards.md; keep the two in step.
This module may import only the standard library and tinyprune.errors.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tinyprune.errors import UserInputError

# -mcpu value -> architecture (-march family) of that core.
CPU_ARCH = {
    "cortex-m0": "armv6-m",
    "cortex-m0plus": "armv6-m",
    "cortex-m3": "armv7-m",
    "cortex-m4": "armv7e-m",
    "cortex-m7": "armv7e-m",
    "cortex-m33": "armv8-m.main",
    "cortex-m55": "armv8.1-m.main",
    "cortex-m85": "armv8.1-m.main",
}
ARCHES = ("armv6-m", "armv7-m", "armv7e-m", "armv8-m.main", "armv8.1-m.main")
# Cores that always have / never have the DSP extension (M33 has it as an option).
DSP_ALWAYS = {"cortex-m4", "cortex-m7", "cortex-m55", "cortex-m85"}
DSP_NEVER = {"cortex-m0", "cortex-m0plus", "cortex-m3"}
MVE_CORES = {"cortex-m55", "cortex-m85"}
# -mfpu values accepted (GCC 12); "none" means no FPU; "auto" lets -mcpu decide (M55/M85).
FPUS = ("none", "auto", "fpv4-sp-d16", "fpv5-sp-d16", "fpv5-d16")
FPU_CORES = {
    "fpv4-sp-d16": {"cortex-m4"},
    "fpv5-sp-d16": {"cortex-m7", "cortex-m33"},
    "fpv5-d16": {"cortex-m7"},
    "auto": {"cortex-m55", "cortex-m85"},
}
FLOAT_ABIS = ("hard", "softfp", "soft")
REGION_KINDS = ("flash", "ram")
REGION_ROLES = ("text", "data", "other")
FLASH_METHODS = ("mass-storage", "openocd", "st-flash", "pyocd", "nrfjprog", "uf2", "qemu")

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
USB_ID_RE = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{4}$")
ADDRESS_LIMIT = 1 << 32


def _show(value: Any) -> str:
    """A value as the user wrote it in TOML (strings quoted, true/false lower case)."""
    try:
        return json.dumps(value)
    except TypeError:
        return repr(value)


class _Ctx:
    """Where we are in the file, for error messages."""

    def __init__(self, file: str):
        self.file = file

    def fail(self, field: str, problem: str):
        raise UserInputError(f"{self.file}: {field}: {problem}",
                             hint="see docs/boards.md for the board file schema")

    def table(self, data: Any, field: str, keys: dict[str, bool]) -> dict:
        """Check ``data`` is a table whose keys are among ``keys`` (name -> required)."""
        if not isinstance(data, dict):
            self.fail(field, f"expected a table, got {_show(data)}")
        prefix = f"{field}." if field else ""
        for key in data:
            if key not in keys:
                known = ", ".join(keys)
                self.fail(f"{prefix}{key}", f"unknown key (known keys here: {known})")
        for key, required in keys.items():
            if required and key not in data:
                self.fail(f"{prefix}{key}", "missing required field")
        return data

    def str_(self, data: dict, field: str, key: str, *, empty_ok: bool = True,
             choices: tuple[str, ...] | None = None, pattern: re.Pattern | None = None) -> str:
        v = data[key]
        where = f"{field}.{key}" if field else key
        if not isinstance(v, str):
            self.fail(where, f"expected a string, got {_show(v)}")
        if not empty_ok and not v:
            self.fail(where, "must not be empty")
        if choices is not None and v not in choices:
            self.fail(where, f"expected one of {', '.join(choices)}, got {_show(v)}")
        if pattern is not None and v and not pattern.match(v):
            self.fail(where, f"{_show(v)} does not match {pattern.pattern}")
        return v

    def bool_(self, data: dict, field: str, key: str) -> bool:
        v = data[key]
        where = f"{field}.{key}" if field else key
        if not isinstance(v, bool):
            self.fail(where, f"expected true or false, got {_show(v)}")
        return v

    def int_(self, data: dict, field: str, key: str, *, minimum: int = 1) -> int:
        v = data[key]
        where = f"{field}.{key}" if field else key
        what = "a positive integer" if minimum >= 1 else "a non-negative integer"
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            self.fail(where, f"expected {what}, got {_show(v)}")
        return v

    def str_list(self, data: dict, field: str, key: str) -> list[str]:
        v = data[key]
        where = f"{field}.{key}"
        if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
            self.fail(where, f"expected a list of strings, got {_show(v)}")
        if len(set(v)) != len(v):
            self.fail(where, f"duplicate entries in {_show(v)}")
        return v


def display_path(path: Path) -> str:
    """``boards/x.toml`` for catalog files, the path as given otherwise."""
    from tinyprune._paths import ROOT
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def parse_board(data: dict, path: Path) -> dict:
    """Validate one board file's content; return a dict of plain values ready for the dataclasses."""
    c = _Ctx(display_path(path))
    c.table(data, "", {"name": True, "vendor": True, "mcu": True, "description": True,
                       "simulation": True, "sim_twin": True, "core": True, "memory": True,
                       "serial": True, "flash": True, "qemu": False})
    name = c.str_(data, "", "name", empty_ok=False, pattern=NAME_RE)
    if name != path.stem:
        c.fail("name", f"{_show(name)} must equal the file name without .toml ({_show(path.stem)}); "
                       f"rename the file or fix the name")
    out: dict[str, Any] = {"name": name}
    for key in ("vendor", "mcu", "description"):
        out[key] = c.str_(data, "", key, empty_ok=False)
    simulation = out["simulation"] = c.bool_(data, "", "simulation")
    out["sim_twin"] = c.str_(data, "", "sim_twin", pattern=NAME_RE)
    if simulation and out["sim_twin"]:
        c.fail("sim_twin", "a simulation board has no sim_twin; use \"\"")

    out["core"] = _parse_core(c, data["core"])
    out["memory"] = _parse_memory(c, data["memory"])
    out["serial"] = _parse_serial(c, data["serial"], simulation)
    out["flash"] = _parse_flash(c, data["flash"], simulation)
    if simulation:
        if "qemu" not in data:
            c.fail("qemu", "missing required table for a simulation board (machine, cpu)")
        q = c.table(data["qemu"], "qemu", {"machine": True, "cpu": True})
        out["qemu"] = {"machine": c.str_(q, "qemu", "machine", empty_ok=False, pattern=NAME_RE),
                       "cpu": c.str_(q, "qemu", "cpu", empty_ok=False)}
        if out["qemu"]["cpu"] != out["core"]["cpu"]:
            c.fail("qemu.cpu", f"{_show(out['qemu']['cpu'])} differs from core.cpu "
                               f"{_show(out['core']['cpu'])}")
    else:
        if "qemu" in data:
            c.fail("qemu", "only simulation boards (simulation = true) have a [qemu] table")
        out["qemu"] = None
    return out


def _parse_core(c: _Ctx, data: Any) -> dict:
    f = "core"
    c.table(data, f, {"cpu": True, "arch": True, "clock_hz": True, "dsp": True, "fpu": True,
                      "float_abi": True, "mve": True})
    cpu = c.str_(data, f, "cpu", choices=tuple(CPU_ARCH))
    arch = c.str_(data, f, "arch", choices=ARCHES)
    if CPU_ARCH[cpu] != arch:
        c.fail("core.arch", f"{cpu} implements {CPU_ARCH[cpu]}, not {arch}")
    clock = c.int_(data, f, "clock_hz")
    dsp = c.bool_(data, f, "dsp")
    if cpu in DSP_ALWAYS and not dsp:
        c.fail("core.dsp", f"{cpu} always has the DSP extension; set dsp = true")
    if cpu in DSP_NEVER and dsp:
        c.fail("core.dsp", f"{cpu} has no DSP extension; set dsp = false")
    fpu = c.str_(data, f, "fpu", choices=FPUS)
    if fpu != "none" and cpu not in FPU_CORES[fpu]:
        c.fail("core.fpu", f"-mfpu={fpu} does not fit {cpu} (use one of: "
                           f"{', '.join(k for k, v in FPU_CORES.items() if cpu in v) or 'none'})")
    abi = c.str_(data, f, "float_abi", choices=FLOAT_ABIS)
    if fpu == "none" and abi != "soft":
        c.fail("core.float_abi", f"{_show(abi)} needs an FPU; with fpu = \"none\" use \"soft\"")
    if fpu != "none" and abi == "soft":
        c.fail("core.float_abi", "\"soft\" ignores the FPU; use \"hard\" (or \"softfp\")")
    mve = c.bool_(data, f, "mve")
    if mve and cpu not in MVE_CORES:
        c.fail("core.mve", f"{cpu} has no MVE (Helium); set mve = false")
    return {"cpu": cpu, "arch": arch, "clock_hz": clock, "dsp": dsp, "fpu": fpu,
            "float_abi": abi, "mve": mve}


def _parse_memory(c: _Ctx, data: Any) -> dict:
    f = "memory"
    c.table(data, f, {"flash_bytes": True, "ram_bytes": True, "reserved_ram_bytes": True,
                      "regions": True})
    flash = c.int_(data, f, "flash_bytes")
    ram = c.int_(data, f, "ram_bytes")
    reserved = c.int_(data, f, "reserved_ram_bytes", minimum=0)
    if reserved >= ram:
        c.fail("memory.reserved_ram_bytes", f"{reserved} leaves no RAM for the model "
                                            f"(ram_bytes is {ram})")
    raw = data["regions"]
    if not isinstance(raw, list) or not raw:
        c.fail("memory.regions", f"expected a non-empty array of tables ([[memory.regions]]), "
                                 f"got {_show(raw)}")
    regions = [_parse_region(c, r, i) for i, r in enumerate(raw)]
    names = [r["name"] for r in regions]
    for i, n in enumerate(names):
        if n in names[:i]:
            c.fail(f"memory.regions[{i}].name", f"duplicate region name {_show(n)}")
    spans = sorted(regions, key=lambda r: r["origin"])
    for a, b in zip(spans, spans[1:]):
        if a["origin"] + a["length"] > b["origin"]:
            c.fail("memory.regions", f"regions {a['name']} [{a['origin']:#010x}, "
                                     f"{a['origin'] + a['length']:#010x}) and {b['name']} "
                                     f"[{b['origin']:#010x}, ...) overlap")
    for role in ("text", "data"):
        with_role = [r for r in regions if r["role"] == role]
        if len(with_role) != 1:
            c.fail("memory.regions", f"exactly one region must have role = \"{role}\", found "
                                     f"{len(with_role)} ({', '.join(r['name'] for r in with_role) or 'none'})")
    text = next(r for r in regions if r["role"] == "text")
    dat = next(r for r in regions if r["role"] == "data")
    if dat["kind"] != "ram":
        c.fail("memory.regions", f"the data region {dat['name']} must be kind = \"ram\"")
    if flash > text["length"]:
        c.fail("memory.flash_bytes", f"{flash} is larger than the text region {text['name']} "
                                     f"({text['length']} bytes)")
    if ram > dat["length"]:
        c.fail("memory.ram_bytes", f"{ram} is larger than the data region {dat['name']} "
                                   f"({dat['length']} bytes)")
    return {"flash_bytes": flash, "ram_bytes": ram, "reserved_ram_bytes": reserved,
            "regions": regions}


def _parse_region(c: _Ctx, data: Any, i: int) -> dict:
    f = f"memory.regions[{i}]"
    c.table(data, f, {"name": True, "kind": True, "origin": True, "length": True, "role": True,
                      "banks": False})
    name = c.str_(data, f, "name", empty_ok=False, pattern=IDENT_RE)
    kind = c.str_(data, f, "kind", choices=REGION_KINDS)
    origin = c.int_(data, f, "origin", minimum=0)
    length = c.int_(data, f, "length")
    if origin + length > ADDRESS_LIMIT:
        c.fail(f"{f}.length", f"region {name} ends past the 4 GiB address space")
    role = c.str_(data, f, "role", choices=REGION_ROLES)
    banks = []
    if "banks" in data:
        raw = data["banks"]
        if not isinstance(raw, list) or not raw:
            c.fail(f"{f}.banks", f"expected a non-empty array of {{name, origin, length}} tables, "
                                 f"got {_show(raw)}")
        at = origin
        for j, b in enumerate(raw):
            bf = f"{f}.banks[{j}]"
            c.table(b, bf, {"name": True, "origin": True, "length": True})
            bank = {"name": c.str_(b, bf, "name", empty_ok=False, pattern=IDENT_RE),
                    "origin": c.int_(b, bf, "origin", minimum=0),
                    "length": c.int_(b, bf, "length")}
            if bank["origin"] != at:
                c.fail(f"{bf}.origin", f"banks must tile region {name} in address order without "
                                       f"gaps: expected {at:#010x}, got {bank['origin']:#010x}")
            at += bank["length"]
            banks.append(bank)
        if at != origin + length:
            c.fail(f"{f}.banks", f"banks cover {at - origin} bytes but region {name} is "
                                 f"{length} bytes long")
    return {"name": name, "kind": kind, "origin": origin, "length": length, "role": role,
            "banks": banks}


def _parse_serial(c: _Ctx, data: Any, simulation: bool) -> dict:
    f = "serial"
    c.table(data, f, {"uart": True, "base_address": True, "tx_pin": True, "rx_pin": True,
                      "baud": True, "host_interface": True, "usb_ids": True})
    out = {"uart": c.str_(data, f, "uart", empty_ok=False),
           "base_address": c.int_(data, f, "base_address", minimum=0),
           "tx_pin": c.str_(data, f, "tx_pin"),
           "rx_pin": c.str_(data, f, "rx_pin"),
           "baud": c.int_(data, f, "baud"),
           "host_interface": c.str_(data, f, "host_interface", empty_ok=False),
           "usb_ids": c.str_list(data, f, "usb_ids")}
    if out["base_address"] >= ADDRESS_LIMIT:
        c.fail("serial.base_address", f"{out['base_address']:#x} is outside the 32-bit address space")
    for u in out["usb_ids"]:
        if not USB_ID_RE.match(u):
            c.fail("serial.usb_ids", f"{_show(u)} is not a lower-case hex VID:PID like \"0483:374b\"")
    if simulation:
        for key in ("tx_pin", "rx_pin"):
            if out[key]:
                c.fail(f"serial.{key}", "a simulation board has no pins; use \"\"")
        if out["usb_ids"]:
            c.fail("serial.usb_ids", "a simulation board has no USB device; use []")
    elif not out["tx_pin"] or not out["rx_pin"]:
        c.fail("serial.tx_pin" if not out["tx_pin"] else "serial.rx_pin",
               "a real board needs the UART's pins")
    return out


def _parse_flash(c: _Ctx, data: Any, simulation: bool) -> dict:
    f = "flash"
    c.table(data, f, {"methods": True, "mass_storage_volume": True, "openocd_config": True,
                      "pyocd_target": True})
    methods = c.str_list(data, f, "methods")
    if not methods:
        c.fail("flash.methods", "list at least one method")
    for m in methods:
        if m not in FLASH_METHODS:
            c.fail("flash.methods", f"unknown method {_show(m)} (known: {', '.join(FLASH_METHODS)})")
    if simulation != ("qemu" in methods):
        c.fail("flash.methods", "\"qemu\" is the method of simulation boards and only of them")
    out = {"methods": methods}
    needs = {"mass_storage_volume": {"mass-storage", "uf2"}, "openocd_config": {"openocd"},
             "pyocd_target": {"pyocd"}}
    for key, users in needs.items():
        v = out[key] = c.str_(data, f, key)
        used = bool(users & set(methods))
        if used and not v:
            c.fail(f"flash.{key}", f"required by method {' / '.join(sorted(users & set(methods)))}")
        if v and not used:
            c.fail(f"flash.{key}", f"set but no method uses it ({' / '.join(sorted(users))} "
                                   f"is not in flash.methods); use \"\"")
    return out
