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
    if "min_agreement" in acc:
        rows.append(("int8 check", "FAILED" if acc.get("agreement_ok") is False else "ok", joined(
            f"agreement with float {_pct(acc.get('agreement'))}, minimum {_pct(acc.get('min_agreement'))}"
            if acc.get("agreement") is not None else "", "COLLAPSED: same output for every input"
            if acc.get("collapsed") else "outputs vary with the input")))
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
        names = [f"{i} {l.get('kind', '?')}" for i, l in enumerate(cg["layers"])]
        parts.append("<section id=\"layers\"><h2>Layers of the int8 model</h2>")
        parts.append(svg.grouped_bars("int8-layer-macs", "MACs per int8 layer", names,
                                      {"MACs": [l.get("macs", 0) for l in cg["layers"]]}))
        parts.append("<table><tr><th>#</th><th>layer</th><th>op</th><th>MACs</th><th>output bytes</th></tr>")
        for i, l in enumerate(cg["layers"]):
            full = str(l.get("name", ""))
            short = full if len(full) <= 60 else full[:28] + "..." + full[-28:]
            parts.append(f"<tr><td>{i}</td><td title=\"{escape(full)}\">{escape(short)}</td><td>{escape(str(l.get('kind', '')))}"
                         f"</td><td>{_b(l.get('macs'))}</td><td>{_b(l.get('output_bytes'))}</td></tr>")
        parts.append("</table></section>")

    fw = s.get("firmware") or {}
    if fw.get("flash_limit"):
        parts.append("<section id=\"fit\"><h2>Flash and RAM against the board's limits</h2>")
        parts.append(svg.usage_bars("flash-ram", f"{board.get('name', '')}: flash and RAM",
                                    [("flash", fw.get("flash_used", 0), fw.get("flash_limit", 0)),
                                     ("RAM", fw.get("ram_used", 0), fw.get("ram_limit", 0))]))
        parts.append("</section>")

    cv = s.get("conversion") or {}
    va = s.get("validation") or {}
    acc = [("float", cv.get("float_accuracy")), ("int8 (TFLM)", cv.get("int8_accuracy"))]
    acc += [(f"{t}", (va.get(t) or {}).get("accuracy")) for t in ("host", "sim", "device") if va.get(t)]
    acc = [(k, v) for k, v in acc if v is not None]
    rec = s.get("accuracy") or {}
    if rec.get("measured") is False:
        parts.append(f"<section id=\"accuracy\"><h2>Accuracy</h2><p>{NOT_MEASURED}: "
                     f"{escape(str(rec.get('reason', '')))}</p></section>")
    elif acc:
        parts.append("<section id=\"accuracy\"><h2>Accuracy</h2>")
        parts.append(svg.grouped_bars("accuracy", "Top-1 accuracy: float, int8 and on the device", [k for k, _ in acc],
                                      {"accuracy %": [100.0 * float(v) for _, v in acc]}, unit="%"))
        with_conf = [t for t in ("device", "sim", "host") if va.get(t) and va[t].get("confusion")]
        if with_conf:
            t = max(with_conf, key=lambda k: va[k].get("samples") or 0)   # the largest sample wins
            conf_src = va[t]
            labels = [str(c) for c in conf_src.get("classes") or range(len(conf_src["confusion"]))]
            parts.append(svg.heatmap("confusion", f"Confusion matrix ({t}, {conf_src.get('samples')} samples)",
                                     conf_src["confusion"], labels))
        parts.append("</section>")

    timings = s.get("timings") or {}
    if timings:
        parts.append("<section id=\"stages\"><h2>Stages</h2><table><tr><th>stage</th><th>status</th><th>seconds</th></tr>")
        order = s.get("stage_order") or list(timings)
        for name in order:
            t = timings.get(name, 0.0)
            parts.append(f"<tr><td>{escape(name)}</td><td>{escape(str((s.get('stage_status') or {}).get(name, '')))}</td>"
                         f"<td>{float(t):.1f}</td></tr>")
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
