"""`tinyprune firmware BUILD_DIR --board BOARD [-o OUT]`: thin CLI over tinyprune.firmware.build."""
from __future__ import annotations

import json
from pathlib import Path

import click

from tinyprune._cli import json_option, print_json, say

from tinyprune.errors import UserInputError


def _parse_defines(values) -> dict:
    out = {}
    for v in values:
        name, sep, value = v.partition("=")
        out[name] = value if sep else None
    return out


def default_out_dir(build_dir: Path) -> Path:
    """A build folder (with codegen/) gets BUILD_DIR/firmware; a codegen folder a sibling 'firmware'."""
    if (build_dir / "codegen").is_dir():
        return build_dir / "firmware"
    return build_dir.parent / "firmware"


def _board_from_codegen(build_dir: Path) -> str | None:
    for p in (build_dir / "codegen.json", build_dir / "codegen" / "codegen.json"):
        if p.is_file():
            try:
                b = json.loads(p.read_text()).get("board")
            except ValueError:
                return None
            return b if isinstance(b, str) and b else None
    return None


@click.command(name="firmware")
@click.argument("build_dirs", nargs=-1, required=True, metavar="BUILD_DIR...",
                type=click.Path(file_okay=False, path_type=Path))
@click.option("--board", "-b", default=None,
              help="Board name (boards/NAME.toml) or path to a board .toml file.")
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder (default: BUILD_DIR/firmware, or next to a codegen folder).")
@click.option("--harness", default="default", show_default=True,
              help="'default' (firmware/harness, the serial protocol), 'selftest' (prints a sentinel "
                   "and exits), or a folder of harness sources.")
@click.option("--opt", default="-O2", show_default=True, help="Optimisation flag for gcc.")
@click.option("-D", "--define", "defines", multiple=True, metavar="NAME[=VALUE]",
              help="Extra preprocessor define (repeatable).")
@json_option
def command(build_dirs, board, out, harness, opt, defines, as_json):
    """Cross-compile firmware for BOARD around the generated code in BUILD_DIR.

    BUILD_DIR is a `tinyprune codegen` output folder or a `tinyprune build` folder containing
    codegen/. Several BUILD_DIRs (models generated with different --prefix) are linked into one
    firmware with one copy of the kernels; they need --harness DIR (your main()).
    Writes firmware.elf/.bin/.hex/.map, a standalone Makefile with all sources, and
    firmware.json; prints flash and RAM use against the board's limits (exit code 3 when over)."""
    from tinyprune.firmware.build import build_firmware

    for build_dir in build_dirs:
        if not build_dir.is_dir():
            raise UserInputError(f"{build_dir}: no such folder",
                                 hint="pass the output folder of `tinyprune codegen` or `tinyprune build`")
    build_dir = build_dirs[0]
    if len(build_dirs) > 1 and out is None:
        raise UserInputError("several models: give the firmware's output folder with -o OUT")
    board = board or _board_from_codegen(build_dir)
    if not board:
        raise UserInputError("no board given", hint="pass --board NAME (see `tinyprune boards`)")
    harness_dir = None if harness == "default" else harness
    res = build_firmware(build_dir if len(build_dirs) == 1 else list(build_dirs), board,
                         out or default_out_dir(build_dir), harness_dir=harness_dir,
                         defines=_parse_defines(defines), opt=opt)
    harness_name = {"harness": "serial-protocol harness", "selftest": "selftest"}.get(res.harness, res.harness)
    if not res.runnable:
        click.echo(f"note: tinyprune has no board support package for {res.board} yet: this image is built for its "
                   "exact core and memory map to check flash/RAM, but it drives no clock or UART and is not "
                   "meant to run (validate on the board's QEMU twin; docs/firmware.md)", err=True)
    say(as_json, f"wrote {res.out_dir}/firmware.elf, .bin, .hex, .map, Makefile ({harness_name}; board {res.board})")
    say(as_json, f"flash: {res.flash_used:>10,} B used of {res.flash_limit:>10,} B  "
               f"({100.0 * res.flash_used / res.flash_limit:5.1f}%, {res.flash_headroom:,} B free)")
    say(as_json, f"RAM:   {res.ram_used:>10,} B used of {res.ram_limit:>10,} B  "
               f"({100.0 * res.ram_used / res.ram_limit:5.1f}%, {res.ram_headroom:,} B free; "
               f"stack {res.stack_bytes:,} B" +
               (f", arena {res.arena_bytes:,} B" if res.arena_bytes is not None else "") + ")")
    if as_json:
        print_json(res.to_dict())
