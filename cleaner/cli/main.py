"""The ``cxclean`` command line: a thin Click layer over the Python API."""
from __future__ import annotations

import os
import sys

import click

# TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notes) is noise to a user; errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from cleaner import __version__


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="""\b
Examples:
  cxclean inspect archive/                      how every image reads, or why not
  cxclean train-detector rotation --normals normals/ --out bundles/rotation
  cxclean scan archive/ --out scan_out/ --min-age 10
Run 'cxclean COMMAND --help' for a command's options and examples.""",
)
@click.version_option(__version__, prog_name="cxclean")
@click.pass_context
def main(ctx):
    """cxclean: find rotated, inverted, mirrored and other unwanted films in chest X-ray archives."""
    if ctx.invoked_subcommand in MODEL_COMMANDS and "--help" not in sys.argv and "-h" not in sys.argv:
        from cleaner.io.quiet import import_keras_quietly

        import_keras_quietly()


#: commands that load Keras (its import is done up front, quietly)
MODEL_COMMANDS = {"scan", "train-detector", "evaluate", "review", "demo"}


@main.command(
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


# Each command group lives in its own module and registers itself on ``main``.
from cleaner.cli import train  # noqa: E402,F401
from cleaner.cli import scan  # noqa: E402,F401
from cleaner.cli import review  # noqa: E402,F401
from cleaner.cli import demo  # noqa: E402,F401

if __name__ == "__main__":  # pragma: no cover
    main()
