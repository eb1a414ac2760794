"""Reports for a build: ``report.html`` (one self-contained file with SVG plots) and
``summary.md`` (a short Markdown table for CI job pages), both rendered from the build's
``summary.json`` (written by ``tinyprune build``; schema in docs/build.md).

``write_reports(build_dir) -> (html_path, md_path)`` regenerates both.
"""
from tinyprune.report.render import render_html, render_markdown, write_reports

__all__ = ["render_html", "render_markdown", "write_reports"]
