"""``tinyprune codegen``: a thin layer over ``codegen.generate.generate`` and ``codegen.check.check``."""
from __future__ import annotations

import os

import click

from tinyprune._cli import json_option, print_json, say


@click.command(name="codegen")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-o", "--out", "out", required=True, type=click.Path(file_okay=False),
              help="Output directory (NAME.h, NAME.c, NAME_weights.c/.h, kernels/, build files, codegen.json).")
@click.option("--board", default=None, help="Board name (boards/*.toml); a DSP core reserves the DSP kernels' scratch.")
@click.option("--kernels", type=click.Choice(["portable", "cmsis-nn"]), default="portable", show_default=True,
              help="Kernel library the generated code calls.")
@click.option("--cmsis-nn", "cmsis_nn", default=None, type=click.Path(file_okay=False),
              help="CMSIS-NN checkout for --kernels cmsis-nn (default: $CMSIS_NN_PATH).")
@click.option("--prefix", default="model", show_default=True,
              help="C symbol prefix (NAME) of everything model-specific: give each model of one firmware its own.")
@click.option("--layout", type=click.Choice(["standard", "arduino"]), default="standard", show_default=True,
              help="standard: sources at the top with a Makefile, CMakeLists.txt, PlatformIO library.json and "
                   "Zephyr module; arduino: an Arduino library (library.properties, sources under src/).")
@click.option("--overlap/--no-overlap", default=None,
              help="Let window ops write over their dying input (smaller arena). Default: on, except with "
                   "--kernels cmsis-nn.")
@click.option("--fast-weights", is_flag=True,
              help="Emit convolution filters pre-expanded to int16 for the DSP kernels: fewer instructions "
                   "per MAC, about twice the weights' flash (cores with the DSP extension).")
@click.option("--check", "do_check", is_flag=True,
              help="Compile on the host (-Werror, and with sanitizers) and compare with TFLite Micro.")
@click.option("--data", default=None, type=click.Path(dir_okay=False),
              help="With --check: .npz with x (int8 NHWC in the model's input layout, or float NCHW/NHWC).")
@click.option("--random", "random_n", default=None, type=int, help="With --check: N seeded random int8 inputs (default 10).")
@click.option("--seed", default=0, show_default=True, help="Seed of --random.")
@json_option
def command(model, out, board, kernels, cmsis_nn, prefix, layout, overlap, fast_weights, do_check, data, random_n, seed,
            as_json):
    """Generate a self-contained C99 module from an int8 TFLite MODEL."""
    from tinyprune.codegen.generate import generate
    from tinyprune.errors import UserInputError
    if (data or random_n) and not do_check:
        raise UserInputError("--data/--random only apply with --check")
    if data and random_n:
        raise UserInputError("give either --data or --random, not both")
    if not os.path.exists(model):
        raise UserInputError(f"model file {model} does not exist")
    checked = []
    if do_check:  # inputs read before anything is generated; OUT is replaced only when the check passed
        from tinyprune.codegen.check import check, load_inputs
        from tinyprune.codegen.tflite_reader import read_model
        x = load_inputs(read_model(model), data=data, random=random_n, seed=seed)

    def check_new_folder(folder):
        checked.append(check(folder, model, x))
    r = generate(model, out, prefix=prefix, kernels=kernels, cmsis_nn=cmsis_nn, board=board, overlap=overlap,
                 fast_weights=fast_weights, layout=layout, verify=check_new_folder if do_check else None)
    tflm = f" (TFLite Micro: {r.tflm_arena_bytes} B)" if r.tflm_arena_bytes else ""
    say(as_json, f"wrote {out}: arena {r.arena_bytes} B{tflm}, flash data {r.flash_bytes} B, {r.macs} MACs, "
               f"{len(r.report['layers'])} layers")
    for note in r.report.get("notes", []):
        click.echo(f"note: {note}")
    if checked:
        res = checked[0]
        say(as_json, f"check: bit-exact with TFLite Micro on {res.samples} inputs "
                   f"({res.elements} output elements, builds: {', '.join(res.builds)})")
    if as_json:
        out_json = dict(r.report)
        if checked:
            out_json["check"] = checked[0]
        print_json(out_json)
