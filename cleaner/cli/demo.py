"""``cxclean demo``: the whole job on the bundled demo sample."""
from __future__ import annotations

import click



@click.command(
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
    from cleaner.reports.evaluate_archive import format_report
    from cleaner.scan import format_summary

    from cleaner.demo.run import run_demo

    result = run_demo(out, data=data, workers=workers, overwrite=overwrite)
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


@click.command(
    "evaluate-archive",
    epilog="""\b
Examples:
  python benchmarks/build_dev_archive.py --out /tmp/cxdev/archive
  cxclean scan /tmp/cxdev/archive --out /tmp/cxdev/scan
  cxclean evaluate-archive /tmp/cxdev/scan /tmp/cxdev/archive_truth.csv --json /tmp/cxdev/eval.json
  cxclean evaluate-archive scan_out/ truth.csv --target lateral_v2=lateral""",
)
@click.argument("scan_out", type=click.Path(exists=True, file_okay=False))
@click.argument("truth_csv", type=click.Path(exists=True, dir_okay=False))
@click.option("--target", "targets", multiple=True, metavar="DETECTOR=TRUTH[,TRUTH]",
              help="Which truth labels a custom detector is meant to find (default: from its kind or name).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the full result as JSON.")
def evaluate_archive_cmd(scan_out, truth_csv, targets, json_path):
    """Judge a finished scan against a truth table (path,truth[,source,role]): precision, recall and AUC per
    detector, flag rates per truth label, false positives by source folder, upright films flagged, corrupt
    files reported. Reads the scan's own scores.csv; nothing is re-scored."""
    from cleaner.reports.evaluate_archive import evaluate, format_report, write_report

    overrides = {}
    for item in targets:
        name, sep, labels = item.partition("=")
        if not sep or not labels:
            raise click.BadParameter(f"{item!r}: expected DETECTOR=TRUTH[,TRUTH]", param_hint="--target")
        overrides[name.strip()] = [t.strip() for t in labels.split(",") if t.strip()]
    result = evaluate(scan_out, truth_csv, overrides)
    click.echo(format_report(result))
    if json_path:
        write_report(result, json_path)
        click.echo(f"\nfull result: {json_path}")
