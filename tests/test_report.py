"""Report rendering: valid HTML containing every plot, Markdown summary, CLI errors."""
import json
from html.parser import HTMLParser

import pytest

from tinyprune.report import render_html, render_markdown, write_reports

SUMMARY = {
    "tinyprune_version": "0.1.0", "status": "ok", "model": {"name": "example"}, "board": {"name": "nucleo-f746"},
    "pruning": {"applied": True, "macs_before": 1000, "macs_after": 480, "params_before": 900, "params_after": 400,
                "layers": [{"name": "conv1", "macs_before": 600, "macs_after": 300, "params_before": 500,
                            "params_after": 250, "channels_before": 16, "channels_after": 8},
                           {"name": "fc", "macs_before": 400, "macs_after": 180, "params_before": 400,
                            "params_after": 150, "channels_before": 10, "channels_after": 10}]},
    "codegen": {"arena_bytes": 4096, "steps": 3, "macs": 480,
                "tensors": [{"name": "a", "offset": 0, "size": 1024, "first": 0, "last": 1},
                            {"name": "b", "offset": 1024, "size": 2048, "first": 1, "last": 2}],
                "layers": [{"name": "conv1", "kind": "CONV_2D", "macs": 300, "output_bytes": 1024}]},
    "firmware": {"flash_used": 50000, "flash_limit": 1048576, "ram_used": 20000, "ram_limit": 327680},
    "conversion": {"float_accuracy": 0.97, "int8_accuracy": 0.965, "agreement": 0.99},
    "validation": {"sim": {"accuracy": 0.965, "samples": 20, "mismatched_samples": 0, "bit_exact": True,
                           "confusion": [[3, 1], [0, 4]], "classes": [0, 1],
                           "counter_per_inference": 123456, "counter_unit": "instructions"}},
    "timings": {"convert": 12.5}, "stage_status": {"convert": "done"},
}


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.stack, self.charts, self.errors = [], [], []
        self.void = {"meta", "br", "img", "hr", "input", "link"}
        self.svg_void = {"rect", "line", "polyline", "text", "title"}

    def handle_starttag(self, tag, attrs):
        if tag == "svg":
            self.charts.append(dict(attrs).get("data-chart"))
        if tag not in self.void:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        pass

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unbalanced </{tag}> (open: {self.stack[-3:]})")
        else:
            self.stack.pop()


def test_html_is_well_formed_and_contains_every_plot():
    html = render_html(SUMMARY)
    p = _Collector()
    p.feed(html)
    assert p.errors == []
    assert p.stack == []
    assert set(p.charts) == {"layer-macs", "layer-params", "channels-kept", "arena", "int8-layer-macs",
                             "flash-ram", "accuracy", "confusion"}
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")  # self-contained
    assert "https://" not in html
    assert "50,000 / 1,048,576 B (4.8%)" in html


def test_markdown_summary_has_the_headline_figures():
    md = render_markdown(SUMMARY)
    assert "**ok**" in md
    assert "| MACs | 480 | before pruning 1,000 |" in md
    assert "| sim accuracy | 96.50% | bit-exact on 20 samples |" in md
    assert "| instructions per inference (sim) | 123,456 |" in md


def test_write_reports_and_missing_summary(tmp_path):
    from tinyprune.errors import UserInputError
    with pytest.raises(UserInputError, match="no summary.json"):
        write_reports(tmp_path)
    (tmp_path / "summary.json").write_text(json.dumps(SUMMARY))
    html, md = write_reports(tmp_path)
    assert html.read_text().startswith("<!DOCTYPE html>")
    assert md.read_text().startswith("### tinyprune: example on nucleo-f746")


def test_pruned_build_says_how_far_it_pruned():
    """A pruned model's rows carry the int8 figures before pruning with the ratio, and the float
    accuracy unpruned / right after pruning / after fine-tuning; an unpruned one carries none."""
    before = {"macs": 37_016_576, "params": 11_181_642, "flash_bytes": 11_229_752, "ram_bytes": 65_032}
    s = json.loads(json.dumps(SUMMARY))
    s["pruning"].update(estimate_before=before, epochs=3, reduction={"macs": 7.22, "params": 11.36,
                        "flash_bytes": 11.24, "ram_bytes": 3.02},
                        accuracy={"before": 0.8711, "after_pruning": 0.1022, "after_finetuning": 0.9556})
    s["codegen"].update(flash_bytes=999_396)
    md = render_markdown(s)
    assert "| MACs | 480 | before pruning 37,016,576 (7.22x) |" in md
    assert "| parameters | 400 | before pruning 11,181,642 (11.36x) |" in md
    assert "| model constants (flash) | 999,396 | before pruning 11,229,752 B (11.24x) |" in md
    assert "| arena (RAM) | 4,096 | before pruning 65,032 B (3.02x) |" in md
    assert "unpruned 87.11%, right after pruning 10.22%, after 3 fine-tuning epoch(s) 95.56%" in md
    assert "right after pruning 10.22%" in render_html(s)
    s["pruning"].update(estimate_after=dict(before, macs=480))    # pruned to a budget it already met
    md = render_markdown(s)
    assert "| model constants (flash) | 999,396 |  |" in md and "| arena (RAM) | 4,096 |  |" in md
    s["pruning"] = {"applied": False, "reason": "fits the budget without pruning", "estimate_before": before}
    md = render_markdown(s)
    assert "before pruning" not in md and "not pruned: fits the budget without pruning" in md
