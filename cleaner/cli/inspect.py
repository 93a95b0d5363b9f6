"""``cxclean inspect``: how each file reads, or why it does not."""
from __future__ import annotations

import sys

import click


@click.command(
    epilog="""\b
Examples:
  cxclean inspect scan.dcm
  cxclean inspect archive/ --csv inspect.csv
  cxclean inspect archive/ --workers 4 --strict     exit 1 if any file fails""",
)
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, writable=True), help="Also write the table as CSV.")
@click.option("--workers", type=int, default=1, show_default=True, help="Decoding processes.")
@click.option("--strict", is_flag=True, help="Exit with status 1 when any file cannot be read.")
@click.option("--quiet", "-q", is_flag=True, help="Print failures and the summary only.")
def inspect(paths, csv_path, workers, strict, quiet):
    """Show how each image in PATHS (files or folders) is read: format, transfer syntax,
    photometric interpretation, bits, size, age and view, or why it could not be read.

    Unreadable files are reported with their reason and do not stop the run."""
    from cleaner.io.inspect import COLUMNS, format_row, inspect_paths

    def show(row):
        if not quiet or row["status"] != "ok":
            click.echo(format_row(row))

    result = inspect_paths(paths, workers=workers, on_row=show)
    if csv_path:
        import pandas as pd

        pd.DataFrame(result.rows, columns=COLUMNS).to_csv(csv_path, index=False)
    n = len(result.rows)
    click.echo(
        f"{n} file(s): {n - result.failed} read, {result.failed} failed; "
        f"skipped (not candidates): {result.stats.describe()}" + (f"; table in {csv_path}" if csv_path else ""),
        err=True,
    )
    if strict and result.failed:
        sys.exit(1)
