"""`tinyprune flash BUILD_DIR [--method ...] [--board B] [--timeout S]`: thin CLI over tinyprune.firmware.flash."""
from __future__ import annotations

import shlex
from pathlib import Path

import click

from tinyprune._cli import json_option, print_json, say


@click.command(name="flash")
@click.argument("build_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--method", type=click.Choice(["auto", "mass-storage", "openocd", "st-flash", "pyocd"]),
              default="auto", show_default=True,
              help="How to program the board; auto = each of the board's available methods in order "
                   "until one succeeds.")
@click.option("--board", "-b", default=None,
              help="Board name or .toml path (default: the board the firmware was built for).")
@click.option("--mount-root", "mount_roots", multiple=True, type=click.Path(path_type=Path),
              help="Extra folder to look for the board's USB drive in (repeatable; also "
                   "$TINYPRUNE_MOUNT_ROOTS).")
@click.option("--timeout", type=click.FloatRange(min=0, max=1e6, min_open=True), default=None,
              help="Seconds each flashing tool may run, and to wait for the board's drive after a copy "
                   "(default: $TINYPRUNE_FLASH_TIMEOUT, else 120).")
@json_option
def command(build_dir, method, board, mount_roots, timeout, as_json):
    """Flash the firmware built in BUILD_DIR (a firmware folder or a build folder with firmware/).

    Tools are taken from $TINYPRUNE_OPENOCD, $TINYPRUNE_STFLASH, $TINYPRUNE_PYOCD when set, else PATH."""
    from tinyprune.firmware.flash import flash

    res = flash(build_dir, board, method, mount_roots=mount_roots, timeout=timeout,
                progress=lambda line: click.echo(line, err=True))
    for f in res.failed:
        click.echo(f"warning: {f}", err=True)
    for w in res.warnings:
        click.echo(f"warning: {w}", err=True)
    if res.command:
        say(as_json, f"flashed {res.image} with {res.method}: {shlex.join(res.command)}")
    else:
        say(as_json, f"flashed {res.image} by copying it to {res.target} ({res.output})")
    if as_json:
        print_json(res)
