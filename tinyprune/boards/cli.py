"""``tinyprune boards [--json] [--boards-dir DIR]`` and ``tinyprune boards show BOARD|PATH``.

Thin layer over tinyprune.boards: parses options, prints a table or stable JSON (sorted keys).
"""
from __future__ import annotations

import json

import click

from tinyprune.boards import Board, list_boards, load_board

_boards_dir_option = click.option(
    "--boards-dir", type=click.Path(file_okay=False), default=None,
    help="Folder with your own NAME.toml board files (searched before the catalog).")
_json_option = click.option("--json", "as_json", is_flag=True, help="Print stable JSON (sorted keys).")


def _size(n: int) -> str:
    if n % (1 << 20) == 0:
        return f"{n >> 20} MB"
    if n % 1024 == 0:
        return f"{n >> 10} KB"
    return f"{n} B"


def _features(b: Board) -> str:
    parts = ["DSP" if b.core.dsp else "no DSP", "no FPU" if b.core.fpu == "none" else b.core.fpu]
    if b.core.mve:
        parts.append("MVE")
    return ", ".join(parts)


def _firmware(b: Board) -> str:
    """What `tinyprune firmware` builds for the board: "runnable" (a BSP drives its clock, UART and
    cycle counter, so validate/flash work) or "size-check" (linked for its core and memory map to
    check flash/RAM exactly, but not runnable). The BSP list lives in the firmware stage; imported
    here lazily so that listing boards stays light."""
    from tinyprune.errors import UserInputError
    from tinyprune.firmware.build import bsp_for_board
    try:
        return "runnable" if bsp_for_board(b).runnable else "size-check"
    except UserInputError:
        return "none"


_FIRMWARE_TEXT = {
    "runnable": "runnable (validate --port and flash work)",
    "size-check": "size check only: linked for the core and memory map to check flash/RAM, not runnable "
                  "(no board support package yet); validate in QEMU on its sim twin",
    "none": "none (no board support package for this QEMU machine)",
}


def _dump(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=True)


@click.group(name="boards", invoke_without_command=True)
@_json_option
@_boards_dir_option
@click.pass_context
def command(ctx, as_json, boards_dir):
    """List the supported boards (or `show` one)."""
    if ctx.invoked_subcommand is not None:
        ctx.ensure_object(dict)
        ctx.obj["boards_dir"] = boards_dir
        ctx.obj["boards_json"] = as_json
        return
    boards = list_boards(boards_dir)
    if as_json:
        click.echo(_dump([b.to_dict() | {"firmware": _firmware(b)} for b in boards]))
        return
    header = ("name", "core", "clock", "flash", "RAM", "model RAM", "DSP/FPU", "sim twin", "firmware")
    rows = [(b.name + (" (QEMU)" if b.simulation else ""), b.core.cpu,
             f"{b.core.clock_hz / 1e6:g} MHz", _size(b.memory.flash_bytes), _size(b.memory.ram_bytes),
             _size(b.model_ram_budget), _features(b), b.sim_twin or "-", _firmware(b)) for b in boards]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


@command.command(name="show")
@click.argument("board")
@_json_option
@_boards_dir_option
@click.pass_context
def show(ctx, board, as_json, boards_dir):
    """Show one board (a catalog name or a path to a .toml file)."""
    parent = ctx.obj or {}
    boards_dir = boards_dir or parent.get("boards_dir")
    as_json = as_json or parent.get("boards_json", False)
    b = load_board(board, boards_dir)
    if as_json:
        click.echo(_dump(b.to_dict() | {"firmware": _firmware(b)}))
        return
    m, s, f = b.memory, b.serial, b.flash
    lines = [
        f"{b.name}: {b.description}",
        f"  vendor / MCU     {b.vendor} / {b.mcu}",
        f"  core             {b.core.cpu} ({b.core.arch}) at {b.core.clock_hz / 1e6:g} MHz, {_features(b)}",
        f"  gcc flags        {' '.join(b.gcc_flags)}",
        f"  flash            {_size(m.flash_bytes)} ({m.flash_bytes} bytes)",
        f"  RAM              {_size(m.ram_bytes)} ({m.ram_bytes} bytes), reserved {m.reserved_ram_bytes}, "
        f"model budget {b.model_ram_budget} bytes",
        "  regions:",
    ]
    for r in m.regions:
        lines.append(f"    {r.name:<10} {r.kind:<5} {r.origin:#010x}-{r.end - 1:#010x} "
                     f"{_size(r.length):>7}  {r.role}")
        for k in r.banks:
            lines.append(f"      {k.name:<8} {k.origin:#010x}-{k.origin + k.length - 1:#010x} {_size(k.length):>7}")
    pins = f" TX {s.tx_pin} / RX {s.rx_pin}" if s.tx_pin else ""
    lines += [
        f"  serial           {s.uart} at {s.base_address:#010x},{pins} {s.baud} baud, {s.host_interface}"
        + (f" [{', '.join(s.usb_ids)}]" if s.usb_ids else ""),
        f"  flash methods    {', '.join(f.methods)}"
        + (f"; volume {f.mass_storage_volume}" if f.mass_storage_volume else "")
        + (f"; openocd -f {f.openocd_config}" if f.openocd_config else "")
        + (f"; pyocd -t {f.pyocd_target}" if f.pyocd_target else ""),
    ]
    if b.qemu:
        lines.append(f"  QEMU             qemu-system-arm -M {b.qemu.machine} (cpu {b.qemu.cpu})")
    else:
        lines.append(f"  sim twin         {b.sim_twin or '-'}")
    lines.append(f"  firmware         {_FIRMWARE_TEXT[_firmware(b)]}")
    lines.append(f"  file             {b.source_path}")
    click.echo("\n".join(lines))
