"""`tinyprune validate`: a thin layer over tinyprune.validate.validate."""
from __future__ import annotations

import click

from tinyprune._cli import json_option, print_json, say


@click.command(name="validate")
@click.argument("build_dir", type=click.Path(file_okay=False, path_type=str))
@click.option("--host", "target", flag_value="host", help="Run the harness natively (host C compiler).")
@click.option("--sim", "target", flag_value="sim", help="Run the firmware in QEMU (the board's simulation twin).")
@click.option("--port", default=None, metavar="PORT", help="Serial port of a real board (or a pyserial URL).")
@click.option("--baud", default=115200, show_default=True, type=int, help="Baud rate for --port.")
@click.option("--timeout", "infer_timeout", default=20.0, show_default=True, type=float, metavar="SECONDS",
              help="How long one inference may take on the device before the request is retried.")
@click.option("--board", default=None, help="Board name, when BUILD_DIR does not record it.")
@click.option("--data", default=None, metavar="D.npz|digits",
              help="Labelled data: .npz with float x (N, C, H, W) or (N, C, L) and labels y, or 'digits'.")
@click.option("--random", "random_n", default=None, type=click.IntRange(1), metavar="N",
              help="N random int8 inputs instead of data (bit-exactness only).")
@click.option("--samples", default=None, type=click.IntRange(1), metavar="N", help="Use at most N samples.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for --random.")
@click.option("--baseline", default=None, type=click.Path(dir_okay=False, path_type=str), metavar="REPORT.json",
              help="A previous validate.json to compare accuracy with.")
@click.option("--max-accuracy-drop", default=1.0, show_default=True, type=float, metavar="PCT",
              help="Allowed accuracy drop below the baseline, in percentage points.")
@click.option("--no-layers", is_flag=True, help="Do not collect per-layer counters.")
@click.option("--junit", default=None, type=click.Path(dir_okay=False, path_type=str), metavar="FILE",
              help="Also write a JUnit XML report.")
@click.option("-o", "--output", default=None, type=click.Path(dir_okay=False, path_type=str),
              help="Report path [default: BUILD_DIR/validate.json].")
@json_option
def command(build_dir, target, port, baud, infer_timeout, board, data, random_n, samples, seed, baseline, max_accuracy_drop,
            no_layers, junit, output, as_json):
    """Validate BUILD_DIR bit-exact against TFLite Micro on the host, in QEMU or on a board.

    Exactly one of --host, --sim, --port. Exit code 4 on any bit mismatch, an accuracy drop beyond
    --max-accuracy-drop below --baseline, or a device that runs another model."""
    from tinyprune.errors import UserInputError
    from tinyprune.validate.core import check, validate
    from tinyprune.validate.serialport import check_baud

    if port is not None:
        if target is not None:
            raise UserInputError("give exactly one of --host, --sim, --port")
        target = "port"
    if target is None:
        raise UserInputError("say where to validate: --host, --sim or --port PORT")
    if data is not None and random_n is not None:
        raise UserInputError("give either --data or --random, not both")
    if port is not None:
        check_baud(baud)
    if not infer_timeout > 0:
        raise UserInputError(f"--timeout {infer_timeout:g}: give the seconds one inference may take (> 0)")
    report = validate(build_dir, target, port=port, baud=baud, board=board, data=data, random=random_n,
                      samples=samples, seed=seed, baseline=baseline, max_accuracy_drop=max_accuracy_drop,
                      junit=junit, out=output, layers=not no_layers, link_kw={"infer_timeout": infer_timeout})
    say(as_json, report.summary())
    if as_json:
        print_json(report.to_dict())
    check(report)
