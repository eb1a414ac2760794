"""The ``tinyprune`` command line: a thin layer over the stage APIs.

Each subcommand lives in its stage's ``cli.py`` as a click command named ``command`` and is
imported only when used (so ``tinyprune boards`` does not pay for importing TensorFlow).
Errors derived from TinypruneError are printed as one short message and mapped to the
documented exit codes; ``--debug`` shows the full traceback.
"""
from __future__ import annotations

import importlib
import os
import sys
import traceback

import click

from tinyprune import __version__
from tinyprune.errors import TinypruneError

# name -> (module, help line). The module defines ``command``.
SUBCOMMANDS = {
    "boards": ("tinyprune.boards.cli", "List and show the supported boards."),
    "convert": ("tinyprune.convert.cli", "PyTorch/ONNX model -> int8 TFLite, calibrated on your data."),
    "prune": ("tinyprune.prune.cli", "Structured pruning until the model fits a board's budget."),
    "codegen": ("tinyprune.codegen.cli", "int8 TFLite -> self-contained C module (weights, memory plan, kernels)."),
    "firmware": ("tinyprune.firmware.cli", "Cross-compile firmware for a board around generated code."),
    "validate": ("tinyprune.validate.cli", "Validate a build on the host, in QEMU or on a board over serial."),
    "flash": ("tinyprune.firmware.flash_cli", "Flash built firmware to a board."),
    "build": ("tinyprune.pipeline.cli", "Model -> pruned -> int8 -> C -> firmware -> validated, with a report."),
    "report": ("tinyprune.report.cli", "Regenerate report.html and a Markdown summary for a build."),
    "bench": ("tinyprune.bench.cli", "Instruction counts, arena and flash of generated code in QEMU."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return list(SUBCOMMANDS)

    def get_command(self, ctx, name):
        if name not in SUBCOMMANDS:
            return None
        module_name, help_line = SUBCOMMANDS[name]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name and module_name.startswith(e.name):
                return _unavailable(name, help_line)
            raise
        return module.command

    def format_commands(self, ctx, formatter):  # help without importing every stage
        rows = [(name, help_line) for name, (_, help_line) in SUBCOMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _unavailable(name, help_line):
    @click.command(name=name, help=help_line, context_settings={"ignore_unknown_options": True})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def cmd(args):
        raise TinypruneError(f"`tinyprune {name}` is not available in this version")
    return cmd


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tinyprune")
@click.option("--debug", is_flag=True, envvar="TINYPRUNE_DEBUG",
              help="Show full tracebacks on errors.")
@click.pass_context
def cli(ctx, debug):
    """tinyprune: fit a neural network into a microcontroller and prove it still works."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def _json_error(as_json: bool, message: str, hint: str | None, exit_code: int) -> None:
    """Under --json a failed command still prints one JSON object on stdout (unless it printed its result)."""
    from tinyprune._cli import error_json, json_printed
    if as_json and not json_printed():
        click.echo(error_json(message, hint, exit_code))


def main(argv=None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    debug = "--debug" in args or bool(os.environ.get("TINYPRUNE_DEBUG"))
    as_json = "--json" in args
    from tinyprune._cli import reset
    reset()
    try:
        cli.main(args=argv, prog_name="tinyprune", standalone_mode=False)
    except TinypruneError as e:
        if debug:
            traceback.print_exc()
        click.echo(f"error: {e}", err=True)
        _json_error(as_json, e.message, e.hint, e.exit_code)
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        _json_error(as_json, e.format_message(), None, 2)
        sys.exit(2)  # usage errors are bad input
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as e:  # noqa: BLE001 - last resort: a bug in tinyprune
        if debug:
            traceback.print_exc()
        click.echo(f"internal error: {type(e).__name__}: {e}\n  (re-run with --debug for the traceback and "
                   "please report it)", err=True)
        _json_error(as_json, f"internal error: {type(e).__name__}: {e}", "re-run with --debug and report it", 1)
        sys.exit(1)
    return 0


if __name__ == "__main__":
    main()
