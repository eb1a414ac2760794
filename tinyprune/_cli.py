"""What every subcommand shares on the command line: ``--json`` and how results are printed.

With ``--json`` a command prints exactly one JSON object on stdout -- the content of the JSON file it
writes (convert.json, prune.json, codegen.json, firmware.json, validate.json, summary.json) -- and its
human-readable lines go to stderr. When the command fails, ``tinyprune.cli.main`` prints
``{"error": ..., "hint": ..., "exit_code": N}`` on stdout instead (unless a result was printed already,
e.g. the summary of a build that failed validation).

May import: click, json, tinyprune.errors.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click

json_option = click.option(
    "--json", "as_json", is_flag=True,
    help="Print the result as one JSON object on stdout (the content of the JSON file the command writes); "
         "messages go to stderr.")

_printed = {"json": False}


def _default(o):
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return dataclasses.asdict(o)
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "tolist"):           # numpy scalars and arrays
        return o.tolist()
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    return str(o)


def dumps(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=_default)


def print_json(obj) -> None:
    """The command's result on stdout, once."""
    click.echo(dumps(obj))
    _printed["json"] = True


def reset() -> None:
    """A new command starts (``tinyprune.cli.main`` may run several in one process, e.g. tests)."""
    _printed["json"] = False


def json_printed() -> bool:
    return _printed["json"]


def say(as_json: bool, text: str) -> None:
    """A human-readable line: stdout normally, stderr under --json (stdout stays one JSON object)."""
    click.echo(text, err=as_json)


def error_json(message: str, hint: str | None, exit_code: int) -> str:
    return dumps({"error": message, "hint": hint, "exit_code": exit_code})
