"""``tinyprune convert``: a thin layer over tinyprune.convert.convert()."""
from __future__ import annotations

import click

from tinyprune._cli import json_option, print_json, say


@click.command(name="convert")
@click.argument("model")
@click.option("--weights", type=click.Path(dir_okay=False), default=None,
              help="state_dict (.pt) for a PyTorch factory.")
@click.option("--data", default="digits", show_default=True,
              help="Calibration/evaluation data: 'digits' or an .npz with x (N,C,H,W | N,C,L) and y (N,).")
@click.option("--input-shape", default=None, help="Model input with batch 1, e.g. 1,1,16,16 (PyTorch layout).")
@click.option("--calib-samples", type=int, default=200, show_default=True,
              help="Representative samples used to calibrate int8 ranges.")
@click.option("--max-int8-drop", type=float, default=1.0, show_default=True,
              help="Points of accuracy (of top-1 agreement without labels) int8 may lose before the per-layer "
                   "float-vs-int8 error is measured and shown; 0: always.")
@click.option("--equalize", is_flag=True, help="Cross-layer equalization of the PyTorch model before export.")
@click.option("--bias-correction", is_flag=True,
              help="Correct the biases for the mean error of int8 weight rounding (on the calibration samples).")
@click.option("-o", "--out", "out", required=True, type=click.Path(file_okay=False),
              help="Output directory (model_int8.tflite, convert.json; model.onnx for PyTorch/ONNX).")
@json_option
@click.pass_context
def command(ctx, model, weights, data, input_shape, calib_samples, max_int8_drop, equalize, bias_correction,
            out, as_json):
    """Convert MODEL to a full-integer int8 TFLite model calibrated on your data.

    MODEL is `example`, path/to/file.py:factory, pkg.module:factory, a .onnx file, a Keras model
    (.keras, .h5), a TensorFlow SavedModel directory or a float .tflite.
    The int8 model takes channels-last input: the PyTorch tensor permuted (0, 2, 3, 1); --data
    samples are in PyTorch layout (N, C, H, W) for every input form (docs/data.md)."""
    from tinyprune.convert.core import convert

    debug = bool((ctx.obj or {}).get("debug"))
    res = convert(model, out, data=data, weights=weights, input_shape=input_shape,
                  calib_samples=calib_samples, max_int8_drop=max_int8_drop, equalize=equalize,
                  bias_correction=bias_correction, debug=debug)
    r = res.report
    ev, inp, outp = r["evaluation"], r["input"], r["output"]
    written = ", ".join(p.name for p in (res.onnx_path, res.report_path) if p is not None)
    say(as_json, f"wrote {res.tflite_path} ({r['tflite']['bytes']} bytes, {len(r['tflite']['operators'])} ops), {written}")
    if r.get("tf"):
        say(as_json, f"from {r['tf']['format']} {r['source']['model']} (loaded with {r['tf']['loaded_with']}, input "
                     f"{tuple(r['tf']['input_shape'])} channels-last), quantized by {r['tf']['converter']}")
    say(as_json, f"input  {inp['shape']} int8 ({inp['layout']}), scale {inp['scale']:.6g}, "
               f"zero point {inp['zero_point']}")
    say(as_json, f"output {outp['shape']} int8, scale {outp['scale']:.6g}, zero point {outp['zero_point']}")
    if ev["float_accuracy"] is None:   # a dense output (e.g. per-pixel classes): labels per sample don't score it
        say(as_json, f"accuracy: not measured (the output is not one class score vector per sample); "
                   f"top-1 agreement per position on {ev['samples']} held-out samples {ev['top1_agreement']:.4f}")
    else:
        say(as_json, f"accuracy on all {ev['samples']} held-out samples: float {ev['float_accuracy']:.4f}, "
                     f"int8 {ev['int8_accuracy']:.4f} (TFLite Micro), top-1 agreement {ev['top1_agreement']:.4f}")
    for line in int8_lines(r):
        say(as_json, line)
    if as_json:
        print_json(r)


def int8_lines(r: dict) -> list[str]:
    """What the CLI says about int8 loss, fixes and the layers that lose most (convert and build)."""
    ev, lines = r["evaluation"], []
    data = r.get("data") or {}
    if data.get("calibration_samples") is not None:
        lines.append(f"calibrated on {data['calibration_samples']} of {data.get('train_samples')} training samples "
                     "(--calib-samples)")
    for name, f in (r.get("fixes") or {}).items():
        if f.get("asked"):
            what = (f"{len(f.get('pairs', []))} layer pairs equalized" if name == "equalize"
                    else f"{f.get('layers', 0)} biases corrected on {f.get('samples')} samples")
            lines.append(f"{name.replace('_', ' ')}: {what if f.get('applied') else 'nothing to change'}")
    if "int8_drop_points" not in ev:
        return lines
    d = r.get("diagnostics") or {}
    lines.append(f"int8 loses {ev['int8_drop_points']:.2f} points of {ev['int8_drop_basis']} "
                 f"(--max-int8-drop {ev['max_int8_drop']:g})" + ("" if d.get("run") else ": layers not diagnosed" +
                                                             (f" ({d['reason']})" if d.get("failed") else "")))
    if d.get("run"):
        lines.append(f"layers losing most (float vs int8 on {d['samples']} held-out samples; SNR drop = dB lost "
                     "by the layer itself):")
        for L in d["worst"]:
            lines.append(f"  {L['layer']:<28} {L['tflite_op']:<16} SNR {L['snr_db']:6.1f} dB  "
                         f"drop {L['snr_drop_db']:5.1f} dB  cosine {L['cosine']:.4f}" +
                         (f"  ({L['note']})" if L.get("note") else ""))
        lines.append("fixes: " + "; ".join(d["advice"]))
    return lines
