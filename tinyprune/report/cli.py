"""`tinyprune report BUILD_DIR`: regenerate report.html and summary.md from summary.json."""
import click

from tinyprune.report import write_reports


@click.command(name="report")
@click.argument("build_dir", type=click.Path(file_okay=False))
def command(build_dir):
    """Regenerate BUILD_DIR/report.html and BUILD_DIR/summary.md (for a CI job page)."""
    html_path, md_path = write_reports(build_dir)
    click.echo(f"wrote {html_path}")
    click.echo(f"wrote {md_path}")
