"""What a user reads in the report: estimated milliseconds (per model, per layer, per catalog board),
which layers cost most, and charts that stay inside their canvas."""
from __future__ import annotations

import copy
import re

import pytest

from tinyprune.boards import list_boards, load_board
from tinyprune.pipeline import latency
from tinyprune.report import render_html, render_markdown, svg

SIM = {"counter_per_inference": 2_160_000, "counter_unit": "instructions",
       "layers": [{"index": 0, "name": "0:CONV_2D:a", "mean": 1_620_000.0},
                  {"index": 1, "name": "1:FULLY_CONNECTED:b", "mean": 540_000.0}]}
FIRMWARE = {"flash_used": 300_000, "ram_used": 100_000}


@pytest.fixture(scope="module")
def rec():
    return latency.summarise(load_board("nucleo-f746"), load_board("mps2-an500"), SIM, FIRMWARE, list_boards())


def test_milliseconds_are_instructions_over_the_clock(rec):
    assert rec["ms"] == 10.0                          # 2.16 M instructions at 216 MHz, one cycle each
    assert rec["measured_on"] == "mps2-an500" and "QEMU -icount" in rec["basis"] and "estimate" in rec["basis"]
    assert [l["ms"] for l in rec["layers"]] == [7.5, 2.5]


def test_every_physical_board_gets_a_fit_and_an_estimate_or_a_reason(rec):
    rows = {r["board"]: r for r in rec["boards"]}
    physical = {b.name for b in list_boards() if not b.simulation}
    assert set(rows) == physical and "mps2-an500" not in rows
    # Cortex-M4F (armv7e-m with DSP, same instructions) at 84 MHz: 2.16 M / 84 MHz
    assert rows["nucleo-f401re"]["ms"] == pytest.approx(1e3 * 2_160_000 / 84e6, abs=1e-4)
    # 300 KB of firmware does not fit 256 KB... (nrf52840 has 1 MB flash, 256 KB RAM: fits)
    f401 = load_board("nucleo-f401re")
    assert rows["nucleo-f401re"]["fits_flash"] == (300_000 <= f401.memory.flash_bytes)
    assert rows["nucleo-f401re"]["fits_ram"] == (100_000 <= f401.memory.ram_bytes)
    # a Cortex-M0+ runs other instructions (no DSP, armv6-m): no estimate, and the reason says what to do
    pico = rows["rpi-pico"]
    assert pico["ms"] is None and "tinyprune build --board rpi-pico" in pico["reason"]
    assert rows["nucleo-f746"]["this_build"] and rows["nucleo-f746"]["ms"] == 10.0


def test_without_simulation_latency_is_not_estimated_and_says_why():
    rec = latency.summarise(load_board("nucleo-f746"), load_board("mps2-an500"), None, FIRMWARE, list_boards())
    assert rec["ms"] is None and "no instruction count" in rec["reason"]
    assert all(r["ms"] is None and r["reason"] for r in rec["boards"])
    assert latency.line(rec, "nucleo-f746").startswith("latency: not estimated")


def _summary(rec):
    from test_report import SUMMARY
    s = copy.deepcopy(SUMMARY)
    s["latency"] = rec
    s["codegen"]["layers"] = [{"name": "conv", "kind": "CONV_2D", "macs": 300, "weight_bytes": 1200,
                               "output_bytes": 1024},
                              {"name": "fc", "kind": "FULLY_CONNECTED", "macs": 180, "weight_bytes": 1840,
                               "output_bytes": 10}]
    s["timings"] = {"convert": 0.01}
    s["stage_status"] = {"convert": "cached"}
    s["timings_when_run"] = {"convert": 42.5}
    return s


def test_report_answers_how_fast_and_which_layers_cost_most(rec):
    html = render_html(_summary(rec))
    layers = html[html.index('id="layers"'):html.index("</section>", html.index('id="layers"'))]
    # per layer: MACs, weight bytes, output bytes, instructions, share of the total, est. ms
    assert ('<td title="conv">conv</td><td>CONV_2D</td><td>300</td><td>1,200</td><td>1,024</td>'
            "<td>1,620,000</td><td>75.0%</td><td>7.5</td>") in layers
    assert 'data-chart="int8-layer-instructions"' in layers
    boards = html[html.index('id="boards"'):]
    assert "nucleo-f401re" in boards and "~25.7" in boards and "rpi-pico" in boards
    md = render_markdown(_summary(rec))
    assert "| latency (estimate) | ~10 ms | at 216 MHz from 2,160,000 instructions counted on mps2-an500" in md


def test_cached_stage_shows_how_long_it_took_when_it_ran(rec):
    html = render_html(_summary(rec))
    assert "<td>convert</td><td>cached</td><td>0.0</td><td>42.5</td>" in html


def _text_extent(svg_text: str) -> float:
    """Rightmost x reached by a 45-degree rotated label: x + 0.71 * its width."""
    right = 0.0
    for x, label in re.findall(r'<text x="([\d.]+)" y="[\d.]+" transform="rotate\(45[^"]*\)"[^>]*>([^<]*)</text>',
                               svg_text):
        right = max(right, float(x) + 0.71 * 6.0 * len(label))
    return right


@pytest.mark.parametrize("n", [1, 3, 12, 40])
def test_rotated_labels_stay_inside_the_canvas(n):
    labels = [f"{i} DEPTHWISE_CONV_2D_layer_with_a_long_name" for i in range(n)]
    out = svg.grouped_bars("c", "t", labels, {"a": list(range(n))})
    width = float(re.search(r'width="(\d+)"', out).group(1))
    height = float(re.search(r'height="(\d+)"', out).group(1))
    assert _text_extent(out) <= width
    assert 40 + 180 + 10 + 0.71 * 6.0 * 28 <= height     # the labels' drop below the plot fits too


def test_percent_axis_stays_0_to_100_and_values_are_written():
    out = svg.grouped_bars("acc", "t", ["float", "int8"], {"accuracy %": [0.0, 0.0]}, unit="%", vmax=100.0)
    ticks = re.findall(r'text-anchor="end" font-family="sans-serif" font-size="11">([^<]+)</text>', out)
    assert ticks[-1] == "100" and ticks[0] == "0"
    out = svg.grouped_bars("acc", "t", ["float", "int8"], {"accuracy %": [97.5, 96.0]}, unit="%", vmax=100.0)
    assert ">97.5%</text>" in out and ">96%</text>" in out


def test_arena_line_never_rises_above_the_arena():
    # an in-place op: input and output share bytes [0, 1024) at step 1; summed they would be 2048 > arena
    tensors = [{"name": "x", "offset": 0, "size": 1024, "first": 0, "last": 1},
               {"name": "y", "offset": 0, "size": 1024, "first": 1, "last": 2}]
    out = svg.arena_timeline("arena", "t", tensors, 3, 1024)
    top = 40
    ys = [float(p.split(",")[1]) for p in re.search(r'polyline points="([^"]+)"', out).group(1).split()]
    assert min(ys) >= top - 1e-6
    assert "peak 1,024 B" in out
