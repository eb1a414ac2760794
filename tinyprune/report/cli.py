"""`tinyprune report BUILD_DIR`: regenerate report.html and summary.md from summary.json."""
import json
from pathlib import Path

import click

from tinyprune._cli import json_option, print_json, say
from tinyprune.report import write_reports


@click.command(name="report")
@click.argument("build_dir", type=click.Path(file_okay=False))
@json_option
def command(build_dir, as_json):
    """Regenerate BUILD_DIR/report.html and BUILD_DIR/summary.md (for a CI job page)."""
    html_path, md_path = write_reports(build_dir)
    say(as_json, f"wrote {html_path}")
    say(as_json, f"wrote {md_path}")
    if as_json:   # the summary the report was made from, and where the two files are
        summary = json.loads((Path(build_dir) / "summary.json").read_text())
        print_json({**summary, "report_html": str(html_path), "report_markdown": str(md_path)})
