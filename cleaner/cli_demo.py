"""``cxclean demo``: the whole job on the bundled demo sample."""
from __future__ import annotations

import click

from .cli import main


@main.command(
    epilog="""\b
Examples:
  cxclean demo                          writes demo_out/ in the current folder
  cxclean demo --out /tmp/demo --overwrite
  cxclean demo --data my_normals/       plant artefacts into your own films instead""",
)
@click.option("--out", default="demo_out", show_default=True, type=click.Path(file_okay=False),
              help="Where the demo archive, scan output and review page go.")
@click.option("--data", default=None, type=click.Path(exists=True, file_okay=False),
              help="Folder of upright frontal films to plant artefacts into [default: the bundled demo/nih].")
@click.option("--workers", type=int, default=None, help="Decoding processes [default: all cores].")
@click.option("--overwrite", is_flag=True, help="Replace an earlier demo in --out.")
def demo(out, data, workers, overwrite):
    """Build a small archive from the demo films with planted rotations, inversions, mirrored films and
    corrupt files; scan it with the bundled default detectors (and --min-age 10); build the review page;
    and compare what was flagged with what was planted."""
    from .evaluate_archive import format_report
    from .scan import ScanError, format_summary

    try:
        result = run(out, data, workers, overwrite)
    except (ScanError, FileExistsError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(format_summary(result["summary"]))
    click.echo("\nAgainst the planted truth:\n" + format_report(result["evaluation"]))
    click.echo(f"""
Demo archive ({result['planted']} planted artefacts): {result['archive']}
Truth table:      {result['truth']}
Scan output:      {result['scan']}  (scores.csv, exclusions.csv, errors.csv, summary.json)
Review folders:   {result['scan'] / 'review'}
Review page:      {result['page']}
Next: open the review page, tick false positives, export decisions, then
      cxclean review apply {result['scan']} --decisions decisions.csv""")


def run(out, data, workers, overwrite):
    from .demo import run_demo

    return run_demo(out, data=data, workers=workers, overwrite=overwrite)
