"""Render summary.json (see docs/build.md) into report.html and summary.md.

Only reads the summary dict: it may not import the pipeline stages (so a report can be
regenerated without TensorFlow or torch installed)."""
from __future__ import annotations

import json
from html import escape
from pathlib import Path

from tinyprune._fs import atomic_write_text
from tinyprune.errors import UserInputError
from tinyprune.report import svg

CSS = """
body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222;padding:0 1em}
h1{margin-bottom:0}.sub{color:#666;margin-top:.2em}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
.ok{color:#2a7d2a;font-weight:bold}.bad{color:#c0392b;font-weight:bold}
section{margin:2em 0}svg{max-width:100%;height:auto;display:block;margin:.5em 0}
"""


def _b(n) -> str:
    return "-" if n is None else f"{int(n):,}"


def _pct(x) -> str:
    return "-" if x is None else f"{100.0 * float(x):.2f}%"


NOT_MEASURED = "not measured"   # accuracy without labelled data for this model (pipeline/accuracy.py)


def _acc(x, measured: bool) -> str:
    return NOT_MEASURED if x is None and not measured else _pct(x)


def _budget_ctx(bud: dict, key: str, unit: str = " B") -> str:
    """'limit 100 B (--max-flash)', with ': OVER by 28,972 B' when over ('' without a limit)."""
    lim = (bud.get("limits") or {}).get(key)
    if lim is None:
        return ""
    src = (bud.get("limit_source") or {}).get(key)
    text = f"limit {_b(lim)}{unit}" + (f" ({src})" if src else "")
    over = (bud.get("over") or {}).get(key)
    if over:
        return text + f": OVER by {_b(over.get('over_by'))}{unit}"
    return text


def headline_rows(s: dict) -> list[tuple[str, str, str]]:
    """(figure, value, limit/context) rows shared by the HTML, Markdown and terminal summaries."""
    fw = s.get("firmware") or {}
    cg = s.get("codegen") or {}
    pr = s.get("pruning") or {}
    cv = s.get("conversion") or {}
    va = s.get("validation") or {}
    bud = s.get("budget") or {}
    model = bud.get("model") or {}
    lim = bud.get("limits") or {}
    over = bud.get("over") or {}
    acc = s.get("accuracy") or {}
    measured = acc.get("measured", True)   # summaries of older builds have no "accuracy" record

    def joined(*parts):
        return "; ".join(p for p in parts if p)

    def used(key: str, figure: str, limit_key: str):
        if fw:
            ctx = f"of {_b(fw.get(limit_key))} B"
        else:  # not linked: the over-budget figures if the link measured them, else the limit alone
            ctx = f"of {_b(lim.get(key))} B (firmware not built)"
        o = over.get(key)
        return (_b(fw.get(figure) if fw else (o or {}).get("measured")),
                ctx + (f": OVER by {_b(o['over_by'])} B" if o else ""))

    flash_used, flash_ctx = used("firmware_flash_bytes", "flash_used", "flash_limit")
    ram_used, ram_ctx = used("firmware_ram_bytes", "ram_used", "ram_limit")
    applied = pr.get("applied")
    red = pr.get("reduction") or {}
    est = pr.get("estimate_before") or {}

    def before(key: str, unit: str = "") -> str:
        # 'before pruning 11,229,752 B (11.24x)' for a pruned model whose figure changed ('' otherwise)
        if not applied or est.get(key) is None or est.get(key) == (pr.get("estimate_after") or {}).get(key):
            return ""
        return f"before pruning {_b(est[key])}{unit}" + (f" ({red[key]:g}x)" if red.get(key) else "")

    rows = [
        ("MACs", _b(pr.get("macs_after") or model.get("macs") or cg.get("macs")), joined(
         (before("macs") or f"before pruning {_b(pr.get('macs_before'))}") if applied else
         f"not pruned: {pr.get('reason', 'the prune stage did not run')}", _budget_ctx(bud, "macs", ""))),
        ("parameters", _b(pr.get("params_after") or pr.get("params_before")),
         (before("params") or f"before pruning {_b(pr.get('params_before'))}") if applied else ""),
        ("model constants (flash)", _b(model.get("flash_bytes") or cg.get("flash_bytes")),
         joined(before("flash_bytes", " B"), _budget_ctx(bud, "flash_bytes"))),
        ("arena (RAM)", _b(model.get("ram_bytes") or cg.get("arena_bytes")),
         joined(before("ram_bytes", " B"), _budget_ctx(bud, "ram_bytes"))),
        ("flash used", flash_used, flash_ctx +
         ("" if fw.get("runnable", True) else " (size-check image: no board support package yet)")),
        ("RAM used", ram_used, ram_ctx + (f" (arena {_b(cg.get('arena_bytes'))} B)" if fw else "")),
        ("float accuracy", _acc(cv.get("float_accuracy"), measured),
         _pruned_accuracy(pr) if measured else acc.get("reason", "")),
        ("int8 accuracy", _acc(cv.get("int8_accuracy"), measured), "no float model (int8 .tflite given)" if cv.get("skipped") else f"top-1 agreement {_pct(cv.get('agreement'))}"),
    ]
    if cv.get("int8_drop_points") is not None:
        rows.append(int8_loss_row(cv))
    if "min_agreement" in acc:
        rows.append(("int8 check", "FAILED" if acc.get("agreement_ok") is False else "ok", joined(
            f"agreement with float {_pct(acc.get('agreement'))}, minimum {_pct(acc.get('min_agreement'))}"
            if acc.get("agreement") is not None else "", "COLLAPSED: same output for every input"
            if acc.get("collapsed") else "outputs vary with the input")))
    lat = s.get("latency") or {}
    if lat:
        rows.append(("latency (estimate)", "-" if lat.get("ms") is None else f"~{lat['ms']:.3g} ms",
                     lat.get("reason") or f"at {lat['clock_hz'] / 1e6:g} MHz from {_b(lat.get('instructions'))} "
                                          f"instructions counted on {lat.get('measured_on')}, 1 cycle each "
                                          "(not measured on the board)"))
    for target in ("host", "sim", "device"):
        v = va.get(target)
        if v:
            bad = v.get("mismatched_samples", 0)
            exact = "bit-exact" if v.get("bit_exact") and not bad else f"{bad} samples differ from TFLite Micro"
            rows.append((f"{target} accuracy", _acc(v.get("accuracy"), measured),
                         f"{exact} on {v.get('samples')} {'' if measured else 'random '}samples"))
            if v.get("counter_per_inference"):
                rows.append((f"{v.get('counter_unit', 'cycles')} per inference ({target})",
                             _b(v.get("counter_per_inference")), v.get("board", "")))
    return rows


def _short(name: str) -> str:
    return name if len(name) <= 60 else name[:28] + "..." + name[-28:]


def _layers_section(layers: list[dict], lat: dict) -> str:
    """Per int8 layer: what it costs in time (instructions counted in QEMU, est. ms), flash (weights)
    and RAM (activations), and which kernel variant runs it."""
    per = {l["index"]: l for l in lat.get("layers") or []}
    total = sum(l["instructions"] or 0 for l in per.values()) or None
    names = [f"{i} {l.get('kind', '?')}" for i, l in enumerate(layers)]
    out = ["<section id=\"layers\"><h2>Layers of the int8 model: time, flash, RAM</h2>"]
    if per:
        out.append(svg.grouped_bars("int8-layer-instructions", f"Instructions per int8 layer ({lat.get('measured_on')})",
                                    names, {"instructions": [(per.get(i) or {}).get("instructions") or 0
                                                             for i in range(len(layers))]}))
    out.append(svg.grouped_bars("int8-layer-macs", "MACs per int8 layer", names,
                                {"MACs": [l.get("macs") or 0 for l in layers]}))
    variants = any("variant" in l for l in layers)
    out.append("<table><tr><th>#</th><th>layer</th><th>op</th><th>MACs</th><th>weights+biases (flash) B</th>"
               "<th>output (RAM) B</th><th>instructions</th><th>share</th><th>est. ms</th>"
               + ("<th>kernel variant</th>" if variants else "") + "</tr>")
    for i, l in enumerate(layers):
        p = per.get(i) or {}
        ins = p.get("instructions")
        share = "-" if ins is None or not total else f"{100.0 * ins / total:.1f}%"
        est = "-" if p.get("ms") is None else f"{p['ms']:.3g}"
        full = str(l.get("name", ""))
        out.append(f"<tr><td>{i}</td><td title=\"{escape(full)}\">{escape(_short(full))}</td>"
                   f"<td>{escape(str(l.get('kind', '')))}</td><td>{_b(l.get('macs'))}</td>"
                   f"<td>{_b(l.get('weight_bytes'))}</td><td>{_b(l.get('output_bytes'))}</td>"
                   f"<td>{_b(None if ins is None else round(ins))}</td><td>{share}</td><td>{est}</td>"
                   + (_variant_cell(l) if variants else "") + "</tr>")
    out.append("</table>")
    if per:
        out.append(f"<p>{escape(lat.get('basis') or '')}</p>")
    else:
        out.append("<p>instructions per layer: not measured (the simulation did not run)</p>")
    out.append("</section>")
    return "\n".join(out)


def _variant_cell(layer: dict) -> str:
    var = str(layer.get("variant") or "-")
    if layer.get("variant_reason"):
        var += f" ({layer['variant_reason']})"
    cls = " class=\"bad\"" if var.startswith("reference/") else ""
    return f"<td{cls}>{escape(var)}</td>"


def _boards_section(lat: dict, this_board: str) -> str:
    """Every physical catalog board: does this build fit it, and how fast would it be."""
    def yes(v):
        return "-" if v is None else ("yes" if v else "<span class=\"bad\">no</span>")
    out = ["<section id=\"boards\"><h2>On other boards</h2><table><tr><th>board</th><th>core</th><th>MHz</th>"
           "<th>fits flash</th><th>fits RAM</th><th>est. ms</th><th>note</th></tr>"]
    for r in lat["boards"]:
        name = escape(r["board"]) + (" (this build)" if r["board"] == this_board else "")
        est = "-" if r.get("ms") is None else f"~{r['ms']:.3g}"
        out.append(f"<tr><td>{name}</td><td>{escape(r['core'])}</td><td>{r['clock_hz'] / 1e6:g}</td>"
                   f"<td>{yes(r.get('fits_flash'))}</td><td>{yes(r.get('fits_ram'))}</td><td>{est}</td>"
                   f"<td>{escape(r.get('reason', ''))}</td></tr>")
    out.append("</table><p>Fit uses this build's firmware size (another board's support code differs by a few KB); "
               f"{escape(lat.get('basis') or '')}</p></section>")
    return "\n".join(out)


def int8_loss_row(cv: dict) -> tuple[str, str, str]:
    """The "int8 loss" figure: points lost, on what and how many held-out samples, the fixes applied and, when
    the loss exceeds --max-int8-drop, the layers that lose most."""
    d = cv.get("diagnostics") or {}
    fixes = [k.replace("_", " ") for k, v in (cv.get("fixes") or {}).items() if v.get("applied")]
    ctx = [f"of {cv.get('int8_drop_basis')} on all {cv.get('held_out_samples')} held-out samples "
           f"(--max-int8-drop {cv.get('max_int8_drop'):g})"]
    if fixes:
        ctx.append("fixes applied: " + ", ".join(fixes))
    if d.get("failed"):
        ctx.append(str(d.get("reason")))
    if d.get("run"):
        worst = d.get("worst") or []
        ctx.append("layers losing most: " + (", ".join(f"{w['layer']} ({w['snr_drop_db']:.1f} dB)" for w in worst[:3])
                                            or "none found"))
    return ("int8 loss", f"{cv['int8_drop_points']:.2f} points", "; ".join(ctx))


def int8_layers_html(cv: dict) -> str:
    """The per-layer float-vs-int8 table, when the layers were diagnosed."""
    d = cv.get("diagnostics") or {}
    if not d.get("run"):
        return ""
    rows = ["<section id=\"int8-layers\"><h2>Int8 accuracy: layers losing most</h2>",
            f"<p>int8 loses {cv['int8_drop_points']:.2f} points of {escape(str(cv.get('int8_drop_basis')))}, more than "
            f"--max-int8-drop {cv.get('max_int8_drop'):g}. Float vs dequantised int8 activations on {d.get('samples')} "
            "held-out samples; SNR drop is the signal-to-noise the layer itself loses against its best input "
            "(convert/convert.json has every layer).</p>",
            "<table><tr><th>layer</th><th>int8 op</th><th>SNR dB</th><th>SNR drop dB</th><th>cosine</th>"
            "<th>note</th></tr>"]
    for w in d.get("worst") or []:
        rows.append(f"<tr><td>{escape(str(w['layer']))}</td><td>{escape(w['tflite_op'])}</td><td>{w['snr_db']:.1f}</td>"
                    f"<td>{w['snr_drop_db']:.1f}</td><td>{w['cosine']:.4f}</td><td>{escape(w.get('note') or '')}</td></tr>")
    rows.append("</table><p>Fixes: " + "; ".join(escape(a) for a in d.get("advice") or []) + "</p></section>")
    return "".join(rows)


def _pruned_accuracy(pr: dict) -> str:
    """'unpruned 87.11%, right after pruning 10.22%, after 3 fine-tuning epoch(s) 95.56%' (float, held out)."""
    a = pr.get("accuracy") or {}
    if not pr.get("applied") or a.get("before") is None:
        return ""
    return (f"unpruned {_pct(a.get('before'))}, right after pruning {_pct(a.get('after_pruning'))}, "
            f"after {pr.get('epochs', '?')} fine-tuning epoch(s) {_pct(a.get('after_finetuning'))}")


def render_html(s: dict) -> str:
    board = s.get("board", {})
    status = s.get("status", "unknown")
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>tinyprune report: "
             f"{escape(str(s.get('model', {}).get('name', 'model')))} on {escape(board.get('name', '?'))}</title>"
             f"<style>{CSS}</style></head><body>",
             f"<h1>{escape(str(s.get('model', {}).get('name', 'model')))} on {escape(board.get('name', '?'))}</h1>",
             f"<p class=\"sub\">tinyprune {escape(s.get('tinyprune_version', ''))} - status: "
             f"<span class=\"{'ok' if status == 'ok' else 'bad'}\">{escape(status)}</span>"
             f"{' - ' + escape(s['message']) if s.get('message') else ''}</p>",
             "<section id=\"summary\"><h2>Summary</h2><table><tr><th>figure</th><th>value</th><th>context</th></tr>"]
    for name, value, ctx in headline_rows(s):
        parts.append(f"<tr><td>{escape(name)}</td><td>{escape(value)}</td><td>{escape(ctx)}</td></tr>")
    parts.append("</table></section>")

    pr = s.get("pruning") or {}
    layers = pr.get("layers") or []
    if layers:
        names = [l["name"] for l in layers]
        parts.append("<section id=\"pruning\"><h2>Pruning</h2>")
        parts.append(svg.grouped_bars("layer-macs", "MACs per layer, before and after pruning", names,
                                      {"before": [l.get("macs_before", 0) for l in layers],
                                       "after": [l.get("macs_after", 0) for l in layers]}))
        parts.append(svg.grouped_bars("layer-params", "Parameters per layer, before and after pruning", names,
                                      {"before": [l.get("params_before", 0) for l in layers],
                                       "after": [l.get("params_after", 0) for l in layers]}))
        parts.append(svg.grouped_bars("channels-kept", "Output channels kept per layer", names,
                                      {"before": [l.get("channels_before", 0) for l in layers],
                                       "after": [l.get("channels_after", 0) for l in layers]}))
        parts.append("</section>")

    cg = s.get("codegen") or {}
    if cg.get("tensors"):
        parts.append("<section id=\"memory\"><h2>Activation arena over the op schedule</h2>")
        parts.append(svg.arena_timeline("arena", "Live tensors in the arena per op", cg["tensors"],
                                        int(cg.get("steps", 1)), int(cg.get("arena_bytes", 0))))
        parts.append("</section>")
    if cg.get("layers"):
        parts.append(_layers_section(cg["layers"], s.get("latency") or {}))
        for note in cg.get("notes") or []:   # e.g. grouped convs running the reference kernel
            parts.append(f"<p class=\"note\">Note: {escape(str(note))}</p>")
        for w in cg.get("warnings") or []:   # layers that fall back to the reference on a DSP core
            parts.append(f"<p class=\"bad\">warning: {escape(w)}</p>")
    if (s.get("latency") or {}).get("boards"):
        parts.append(_boards_section(s["latency"], board.get("name", "")))

    fw = s.get("firmware") or {}
    if fw.get("flash_limit"):
        parts.append("<section id=\"fit\"><h2>Flash and RAM against the board's limits</h2>")
        parts.append(svg.usage_bars("flash-ram", f"{board.get('name', '')}: flash and RAM",
                                    [("flash", fw.get("flash_used", 0), fw.get("flash_limit", 0)),
                                     ("RAM", fw.get("ram_used", 0), fw.get("ram_limit", 0))]))
        parts.append("</section>")

    cv = s.get("conversion") or {}
    va = s.get("validation") or {}
    n_conv = cv.get("samples")
    acc = [(f"float ({n_conv} samples)", cv.get("float_accuracy")), (f"int8 TFLM ({n_conv} samples)",
                                                                     cv.get("int8_accuracy"))]
    acc += [(f"{t} ({(va.get(t) or {}).get('samples')} samples)", (va.get(t) or {}).get("accuracy"))
            for t in ("host", "sim", "device") if va.get(t)]
    acc = [(k, v) for k, v in acc if v is not None]
    rec = s.get("accuracy") or {}
    if rec.get("measured") is False:
        parts.append(f"<section id=\"accuracy\"><h2>Accuracy</h2><p>{NOT_MEASURED}: "
                     f"{escape(str(rec.get('reason', '')))}</p></section>")
    elif acc:
        parts.append("<section id=\"accuracy\"><h2>Accuracy</h2>")
        parts.append(svg.grouped_bars("accuracy", "Top-1 accuracy: float, int8 and on the device (sample counts "
                                      "differ: a small sample's accuracy is less certain)", [k for k, _ in acc],
                                      {"accuracy %": [100.0 * float(v) for _, v in acc]}, unit="%", vmax=100.0))
        with_conf = [t for t in ("device", "sim", "host") if va.get(t) and va[t].get("confusion")]
        if with_conf:
            t = max(with_conf, key=lambda k: va[k].get("samples") or 0)   # the largest sample wins
            conf_src = va[t]
            labels = [str(c) for c in conf_src.get("classes") or range(len(conf_src["confusion"]))]
            parts.append(svg.heatmap("confusion", f"Confusion matrix ({t}, {conf_src.get('samples')} samples)",
                                     conf_src["confusion"], labels))
        parts.append("</section>")

    layers_html = int8_layers_html(cv)
    if layers_html:
        parts.append(layers_html)
    timings = s.get("timings") or {}
    if timings:
        parts.append("<section id=\"stages\"><h2>Stages</h2><table><tr><th>stage</th><th>status</th>"
                     "<th>seconds (this run)</th><th>seconds when it ran</th></tr>")
        order = s.get("stage_order") or list(timings)
        when_run = s.get("timings_when_run") or {}
        for name in order:
            t = timings.get(name, 0.0)
            ran = when_run.get(name)
            parts.append(f"<tr><td>{escape(name)}</td><td>{escape(str((s.get('stage_status') or {}).get(name, '')))}</td>"
                         f"<td>{float(t):.1f}</td><td>{'-' if ran is None else f'{float(ran):.1f}'}</td></tr>")
        parts.append("</table></section>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def render_markdown(s: dict) -> str:
    board = s.get("board", {})
    lines = [f"### tinyprune: {s.get('model', {}).get('name', 'model')} on {board.get('name', '?')} - "
             f"**{s.get('status', 'unknown')}**", ""]
    if s.get("message"):
        lines += [s["message"], ""]
    lines += ["| figure | value | context |", "|---|---:|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in headline_rows(s)]
    notes = (s.get("codegen") or {}).get("notes") or []
    if notes:
        lines += [""] + [f"Note: {n}" for n in notes]
    return "\n".join(lines) + "\n"


def write_reports(build_dir) -> tuple[Path, Path]:
    build_dir = Path(build_dir)
    src = build_dir / "summary.json"
    if not src.exists():
        raise UserInputError(f"{build_dir}: no summary.json here",
                             hint="pass the board folder of a build, e.g. build/nucleo-f746 (run `tinyprune build` first)")
    try:
        s = json.loads(src.read_text())
    except ValueError as e:
        raise UserInputError(f"{src}: not valid JSON ({e})", hint="re-run `tinyprune build`") from None
    html_path, md_path = build_dir / "report.html", build_dir / "summary.md"
    html, md = render_html(s), render_markdown(s)  # both rendered before either is written
    atomic_write_text(html_path, html)
    atomic_write_text(md_path, md)
    return html_path, md_path
