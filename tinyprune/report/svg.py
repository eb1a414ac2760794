"""Small, dependency-free SVG charts for the self-contained HTML report (no network, no JS).

Every chart returns an ``<svg>`` string with a ``data-chart`` attribute naming it, so tests
can find each plot by parsing the HTML. May not import tinyprune modules.
"""
from __future__ import annotations

from html import escape

PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f"]
FONT = 'font-family="sans-serif" font-size="11"'


def _fmt(v: float) -> str:
    v = float(v)
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3g}{suffix}"
    return f"{v:.3g}" if v != int(v) else str(int(v))


def _open(chart: str, width: int, height: int, title: str) -> list[str]:
    return [f'<svg xmlns="http://www.w3.org/2000/svg" data-chart="{escape(chart)}" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
            f'<title>{escape(title)}</title>',
            f'<text x="{width / 2}" y="16" text-anchor="middle" font-family="sans-serif" font-size="13" '
            f'font-weight="bold">{escape(title)}</text>']


LABEL_CHARS = 28          # x labels are cut to this many characters
CHAR_W = 6.2              # width of one 11 px sans-serif character, generously


def grouped_bars(chart: str, title: str, labels: list[str], series: dict[str, list[float]], unit: str = "",
                 vmax: float | None = None) -> str:
    """Vertical grouped bars: one group per label, one bar per series, each bar's value written above it
    (when there is room). ``vmax`` fixes the top of the axis (e.g. 100 for percentages), else the largest
    value. The x labels are rotated 45 degrees; the canvas is widened and heightened by their extent so
    that the last label is never clipped."""
    n, k = max(len(labels), 1), max(len(series), 1)
    group_w = max(18 * k + 8, 36)
    left, top, plot_h = 60, 40, 180
    label_extent = 0.71 * CHAR_W * max([len(l[:LABEL_CHARS]) for l in labels] + [1])   # rotated 45 degrees
    width = max(int(left + n * group_w + label_extent + 20), 420)
    height = int(top + plot_h + label_extent + 40)
    top_value = vmax if vmax is not None else max([max(v) for v in series.values() if v] + [0])
    top_value = top_value if top_value > 0 else 1
    out = _open(chart, width, height, title)
    for frac in (0, 0.25, 0.5, 0.75, 1.0):
        y = top + plot_h - frac * plot_h
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + n * group_w}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" {FONT}>{_fmt(frac * top_value)}</text>')
    bar_w = (group_w - 8) / k
    write_values = n * k <= 40
    for si, (name, values) in enumerate(series.items()):
        for i, v in enumerate(values):
            h = plot_h * min(float(v) / top_value, 1.0)
            x = left + i * group_w + 4 + si * bar_w
            out.append(f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                       f'fill="{PALETTE[si % len(PALETTE)]}"><title>{escape(labels[i])} {escape(name)}: '
                       f'{_fmt(v)}{escape(unit)}</title></rect>')
            if write_values:
                out.append(f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h - h - 3:.1f}" text-anchor="middle" '
                           f'font-family="sans-serif" font-size="9">{_fmt(v)}{escape(unit)}</text>')
    for i, label in enumerate(labels):
        x = left + i * group_w + group_w / 2
        y = top + plot_h + 10
        out.append(f'<text x="{x:.1f}" y="{y}" transform="rotate(45 {x:.1f} {y})" {FONT}>'
                   f'{escape(label[:LABEL_CHARS])}</text>')
    for si, name in enumerate(series):
        out.append(f'<rect x="{left + si * 120}" y="{height - 14}" width="10" height="10" fill="{PALETTE[si % len(PALETTE)]}"/>'
                   f'<text x="{left + si * 120 + 14}" y="{height - 5}" {FONT}>{escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def usage_bars(chart: str, title: str, items: list[tuple[str, float, float]]) -> str:
    """Horizontal bars of ``used`` against ``limit`` per item (label, used, limit); red when over."""
    width, left, bar_h = 640, 120, 22
    height = 40 + len(items) * (bar_h + 18) + 10
    out = _open(chart, width, height, title)
    plot_w = width - left - 150
    for i, (label, used, limit) in enumerate(items):
        y = 36 + i * (bar_h + 18)
        scale = max(used, limit, 1)
        lw = plot_w * limit / scale
        uw = plot_w * used / scale
        color = "#e15759" if used > limit else "#59a14f"
        out.append(f'<text x="{left - 6}" y="{y + 15}" text-anchor="end" {FONT}>{escape(label)}</text>')
        out.append(f'<rect x="{left}" y="{y}" width="{lw:.1f}" height="{bar_h}" fill="#eee" stroke="#999"/>')
        out.append(f'<rect x="{left}" y="{y + 4}" width="{uw:.1f}" height="{bar_h - 8}" fill="{color}">'
                   f'<title>{escape(label)}: {used:,.0f} of {limit:,.0f} bytes</title></rect>')
        pct = 100.0 * used / limit if limit else 0.0
        out.append(f'<text x="{left + max(lw, uw) + 6:.1f}" y="{y + 15}" {FONT}>{used:,.0f} / {limit:,.0f} B '
                   f'({pct:.1f}%)</text>')
    out.append("</svg>")
    return "\n".join(out)


def arena_timeline(chart: str, title: str, tensors: list[dict], steps: int, arena_bytes: int,
                   step_labels: list[str] | None = None) -> str:
    """Memory plan over the op schedule: x = step, y = arena offset; one rectangle per tensor
    (``name``, ``offset``, ``size``, ``first``, ``last``); the per-step live total is drawn as a line."""
    left, top, plot_w, plot_h = 70, 40, 560, 260
    width, height = left + plot_w + 20, top + plot_h + 60
    steps = max(steps, 1)
    arena = max(arena_bytes, 1)
    sx = plot_w / steps
    sy = plot_h / arena
    out = _open(chart, width, height, title)
    out.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#999"/>')
    spans: list[list[tuple[int, int]]] = [[] for _ in range(steps)]   # occupied byte ranges per step
    for i, t in enumerate(tensors):
        first, last = int(t["first"]), int(t["last"])
        for s in range(max(first, 0), min(last, steps - 1) + 1):
            spans[s].append((int(t["offset"]), int(t["offset"]) + int(t["size"])))
        x = left + first * sx
        w = max((last - first + 1) * sx, 1)
        y = top + plot_h - (int(t["offset"]) + int(t["size"])) * sy
        out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{max(int(t["size"]) * sy, 0.5):.1f}" '
                   f'fill="{PALETTE[i % len(PALETTE)]}" fill-opacity="0.75" stroke="#333" stroke-width="0.3">'
                   f'<title>{escape(str(t["name"]))}: {int(t["size"]):,} B at offset {int(t["offset"]):,}, '
                   f'steps {first}-{last}</title></rect>')
    # bytes in use per step = the union of the live ranges: an in-place op's input and output, an alias
    # (reshape) and a window op writing over its dying input share bytes and are counted once, so the
    # line never rises above the arena
    live = [_union_bytes(sp) for sp in spans]
    pts = " ".join(f"{left + (s + 0.5) * sx:.1f},{top + plot_h - v * sy:.1f}" for s, v in enumerate(live))
    out.append(f'<polyline points="{pts}" fill="none" stroke="#000" stroke-width="1.5" stroke-dasharray="4 2"/>')
    peak = max(live) if live else 0
    out.append(f'<text x="{left + plot_w}" y="{top - 6}" text-anchor="end" {FONT}>arena {arena_bytes:,} B; '
               f'dashed: bytes in use per step (peak {peak:,} B; shared bytes counted once)</text>')
    out.append(f'<text x="{left - 4}" y="{top + 4}" text-anchor="end" {FONT}>{_fmt(arena_bytes)}</text>')
    out.append(f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end" {FONT}>0</text>')
    out.append(f'<text x="{left + plot_w / 2}" y="{height - 10}" text-anchor="middle" {FONT}>op schedule step '
               f'(0-{steps - 1})</text>')
    out.append("</svg>")
    return "\n".join(out)


def _union_bytes(spans: list[tuple[int, int]]) -> int:
    total, end = 0, None
    for a, b in sorted(spans):
        if end is None or a >= end:
            total += b - a
            end = b
        elif b > end:
            total += b - end
            end = b
    return total


def heatmap(chart: str, title: str, matrix: list[list[int]], labels: list[str]) -> str:
    """Confusion matrix: rows = true class, columns = predicted class."""
    n = max(len(matrix), 1)
    cell = max(18, min(36, 360 // n))
    left, top = 50, 46
    width, height = left + n * cell + 20, top + n * cell + 30
    vmax = max([max(r) for r in matrix if r] + [1])
    out = _open(chart, width, height, title)
    for i, row in enumerate(matrix):
        for j, v in enumerate(row):
            a = v / vmax
            fill = f"rgb({int(255 - 200 * a)},{int(255 - 130 * a)},{int(255 - 60 * a)})"
            out.append(f'<rect x="{left + j * cell}" y="{top + i * cell}" width="{cell}" height="{cell}" fill="{fill}" '
                       f'stroke="#fff"><title>true {escape(labels[i])}, predicted {escape(labels[j])}: {v}</title></rect>')
            if v:
                out.append(f'<text x="{left + j * cell + cell / 2}" y="{top + i * cell + cell / 2 + 4}" '
                           f'text-anchor="middle" {FONT}>{v}</text>')
    for i, label in enumerate(labels[:n]):
        out.append(f'<text x="{left - 4}" y="{top + i * cell + cell / 2 + 4}" text-anchor="end" {FONT}>{escape(label)}</text>')
        out.append(f'<text x="{left + i * cell + cell / 2}" y="{top - 4}" text-anchor="middle" {FONT}>{escape(label)}</text>')
    out.append(f'<text x="{left + n * cell / 2}" y="{height - 8}" text-anchor="middle" {FONT}>predicted (columns) / '
               f'true (rows)</text>')
    out.append("</svg>")
    return "\n".join(out)
