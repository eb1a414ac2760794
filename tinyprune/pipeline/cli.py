"""`tinyprune build`: parse options, call tinyprune.pipeline.build, print the summary table."""
from __future__ import annotations

import json
import sys

import click

from tinyprune._cli import json_option, print_json

from tinyprune.pipeline.accuracy import DEFAULT_MIN_AGREEMENT
from tinyprune.pipeline.build import BuildConfig
from tinyprune.prune.budget import FINETUNE_EPOCHS


def _print_table(summary: dict, build_dir) -> None:
    from tinyprune.report.render import headline_rows
    rows = headline_rows(summary)
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    click.echo("")
    click.echo(f"{summary['model']['name']} on {summary['board']['name']}: {summary['status'].upper()}"
               + (f" - {summary['message']}" if summary.get("message") else ""))
    for a, b, c in rows:
        click.echo(f"  {a:<{w0}}  {b:>{w1}}  {c}")
    click.echo(f"  report: {build_dir}/report.html")


@click.command(name="build")
@click.argument("model", default="example")
@click.option("--board", required=True, help="board name (see `tinyprune boards`) or a board .toml")
@click.option("--boards-dir", default=None, help="extra folder of board .toml files")
@click.option("--data", default=None, help="digits or a .npz with x, y (docs/data.md); without it, only the bundled example "
                   "measures accuracy (on digits); other models validate on random inputs (not measured)")
@click.option("--weights", default=None, help="state_dict .pt for a file.py:factory model")
@click.option("--input-shape", default=None, help="1,C,H,W when the model does not declare it")
@click.option("--prune", "prune_mode", type=click.Choice(["auto", "always", "never"]), default="auto",
              show_default=True, help="auto: prune only when over the board's budget or a --max-* limit")
@click.option("--no-prune", is_flag=True, help="same as --prune never")
@click.option("--criterion", default="l1", show_default=True, help="pruning criterion (see `tinyprune prune -h`)")
@click.option("--when", default="trained", show_default=True, type=click.Choice(["trained", "init", "gradual"]))
@click.option("--max-macs", type=int, default=None, help="limit on multiply-accumulates per inference (convolutions and fully-connected layers "
                                                          "of the int8 graph; docs/pruning.md#macs)")
@click.option("--max-ram", type=int, default=None, help="int8 arena limit, bytes")
@click.option("--max-flash", type=int, default=None, help="model constants limit, bytes")
@click.option("--epochs", type=int, default=FINETUNE_EPOCHS, show_default=True, help="fine-tuning epochs after pruning")
@click.option("--round-to", type=click.Choice(["1", "4", "8"]), default="1", show_default=True)
@click.option("--calib-samples", type=int, default=200, show_default=True)
@click.option("--max-int8-drop", type=float, default=1.0, show_default=True,
              help="points of accuracy (of top-1 agreement without --data) int8 may lose before the layers that "
                   "lose most are measured and shown (0: always); it does not fail the build (--min-agreement does)")
@click.option("--equalize", is_flag=True, help="cross-layer equalization of the PyTorch model before int8 conversion")
@click.option("--bias-correction", is_flag=True, help="correct biases for the mean error of int8 weight rounding")
@click.option("--kernels", type=click.Choice(["portable", "cmsis-nn"]), default="portable", show_default=True)
@click.option("--cmsis-nn", "cmsis_nn", default=None, envvar="CMSIS_NN_PATH", help="CMSIS-NN checkout")
@click.option("--fast-weights", is_flag=True,
              help="conv filters pre-expanded to int16 for the DSP kernels: fewer instructions, about twice "
                   "the weights' flash (pruning budgets count it)")
@click.option("--samples", type=int, default=100, show_default=True, help="host validation samples")
@click.option("--min-agreement", type=float, default=DEFAULT_MIN_AGREEMENT, show_default=True,
              help="fail (exit 4) when the int8 model's top-1 agreement with the float model is below it")
@click.option("--sim/--no-sim", default=True, show_default=True, help="validate on the board's QEMU twin")
@click.option("--sim-samples", type=int, default=20, show_default=True)
@click.option("--force", is_flag=True, help="re-run every stage (ignore the cache)")
@json_option
@click.option("-o", "--out", default="build", show_default=True, help="output folder (artifacts in OUT/BOARD/)")
@click.pass_context
def command(ctx, model, board, boards_dir, data, weights, input_shape, prune_mode, no_prune, criterion, when, max_macs,
            max_ram, max_flash, epochs, round_to, calib_samples, max_int8_drop, equalize, bias_correction, kernels, cmsis_nn, fast_weights, samples,
            min_agreement, sim,
            sim_samples, force, as_json, out):
    """Model -> pruned -> int8 -> C -> firmware -> validated, with a report.

    MODEL is `example` (default), path/file.py:factory, pkg.module:factory, an .onnx, a Keras .keras/.h5,
    a TensorFlow SavedModel directory, or a .tflite (int8, or float: quantized on --data).
    Exit codes: 0 ok, 2 bad input, 3 over budget, 4 validation failed, 5 missing tool."""
    from tinyprune.errors import TinypruneError
    from tinyprune.pipeline.build import build
    cfg = BuildConfig(model=model, board=board, out=out, data=data, weights=weights, input_shape=input_shape,
                      boards_dir=boards_dir, prune="never" if no_prune else prune_mode, criterion=criterion,
                      when=when, max_macs=max_macs, max_ram=max_ram, max_flash=max_flash, epochs=epochs,
                      round_to=int(round_to), calib_samples=calib_samples, max_int8_drop=max_int8_drop,
                      equalize=equalize, bias_correction=bias_correction, kernels=kernels, cmsis_nn=cmsis_nn,
                      fast_weights=fast_weights,
                      samples=samples, min_agreement=min_agreement, sim=sim, sim_samples=sim_samples, force=force,
                      debug=bool((ctx.obj or {}).get("debug")))
    try:
        result = build(config=cfg, progress=True)
        summary, build_dir = result.summary, result.build_dir
    except TinypruneError as e:
        build_dir = getattr(e, "build_dir", None)
        if build_dir is not None and (build_dir / "summary.json").exists():
            summary = json.loads((build_dir / "summary.json").read_text())
            if as_json:
                print_json(summary)
            else:
                _print_table(summary, build_dir)
        raise
    if as_json:
        print_json(summary)
    else:
        _print_table(summary, build_dir)
    sys.stdout.flush()
