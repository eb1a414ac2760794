"""``tinyprune bench MODEL.tflite``: thin CLI over tinyprune.bench.bench."""
from __future__ import annotations

import json

import click

from tinyprune._cli import json_option, print_json


@click.command(name="bench")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--board", default="mps2-an500", show_default=True, help="Simulation board to run in QEMU.")
@click.option("--kernels", type=click.Choice(["portable", "cmsis-nn"]), default="portable", show_default=True)
@click.option("--dsp/--no-dsp", default=True, show_default=True,
              help="Use the Cortex-M DSP kernel variants when the core has them (--no-dsp: reference C).")
@click.option("--fast-weights", is_flag=True,
              help="Convolution filters pre-expanded to int16 at generation time: fewer instructions, "
                   "about twice the weights' flash (DSP cores).")
@click.option("--runs", type=int, default=2, show_default=True, help="QEMU runs; counts must be identical.")
@json_option
@click.option("-o", "--out", type=click.Path(), default=None, help="Also write the JSON result to this file.")
def command(model, board, kernels, dsp, fast_weights, runs, as_json, out):
    """Instructions per inference (total and per layer), MACs/instruction, arena, scratch and
    firmware sizes of MODEL's generated code, measured in QEMU with -icount (deterministic)."""
    from tinyprune._fs import atomic_write_text, check_output_file
    from tinyprune.bench import bench, to_json

    if out:
        check_output_file(out)  # before minutes of QEMU runs
    res = bench(model, board, kernels, runs=runs, dsp=dsp, fast_weights=fast_weights)
    text = to_json(res)
    if out:
        atomic_write_text(out, text + "\n")
    if as_json:
        print_json(json.loads(text))
    else:
        click.echo(res.render())
