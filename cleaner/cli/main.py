"""The ``cxclean`` command group: one error handler for every command, and the commands put together.

Each command lives in its own module as a plain Click command; this module only assembles them, so the
command modules never import it (no cycle) and each stays a thin layer over the Python API.
"""
from __future__ import annotations

import os
import sys

import click

# TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notes) is noise to a user; errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from cleaner import __version__  # noqa: E402
from cleaner.cli import demo as demo_cmds  # noqa: E402
from cleaner.cli import inspect as inspect_cmds  # noqa: E402
from cleaner.cli import review as review_cmds  # noqa: E402
from cleaner.cli import scan as scan_cmds  # noqa: E402
from cleaner.cli import train as train_cmds  # noqa: E402
from cleaner.io.errors import CxcleanError  # noqa: E402

#: the exit status of every error a user can act on (a bad file, setting or folder); Click's usage errors share it
USER_ERROR = 2
#: commands that load Keras (its import, ~6 s, is done up front, quietly); ``review build`` does it itself unless
#: ``--no-saliency``, so that the review commands that need no model (apply, a page without overlays) start at once
MODEL_COMMANDS = {"scan", "train-detector", "evaluate", "calibrate", "demo"}


class CxcleanGroup(click.Group):
    """Every ``CxcleanError`` ends the command with ``error: <message>`` and status 2, whichever command raised it."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except CxcleanError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(USER_ERROR)


@click.group(
    cls=CxcleanGroup,
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


for command in (inspect_cmds.inspect, train_cmds.train_detector, train_cmds.evaluate, train_cmds.calibrate, scan_cmds.scan,
                review_cmds.review, review_cmds.report, demo_cmds.demo, demo_cmds.evaluate_archive_cmd):
    main.add_command(command)

if __name__ == "__main__":  # pragma: no cover
    main()
