"""``cxclean scan``: the Click layer over ``cleaner.scan.scan_archive``."""
from __future__ import annotations

import sys

import click

from cleaner.scan.config import ENGINES, UNKNOWN_AGE_CHOICES


@click.command(
    epilog="""\b
Examples:
  cxclean scan archive/ --out scan_out/                  the bundled default detectors
  cxclean scan archive/ --out scan_out/ --review-page    then the review page, scan_out/review/index.html
  cxclean scan /data/pacs_export --detectors detectors/ --out scan_out/ --min-age 10
  cxclean scan archive/ --detector bundles/rotation --detector bundles/inversion --out scan_out/
  cxclean scan archive/ --out ages_out/ --no-default-detectors --min-age 18 --metadata Data_Entry_2017.csv \\
      --id-column "Image Index" --age-column "Patient Age" --unknown-age exclude
  cxclean scan archive/ --detectors detectors/ --out scan_out/ --resume      after a crash or Ctrl-C
  cxclean scan archive/ --detectors detectors/ --out scan_out/ --threshold rotation=0.8 --overwrite
  cxclean scan list.csv --detectors detectors/ --out scan_out/     paths from the CSV's 'path' column
  cxclean scan archive/ --dry-run                                  list what would be scanned
  cxclean scan archive/ --out scan_out/ --engine ray               Ray on this machine (started, then stopped)
  cxclean scan /nfs/pacs --out /nfs/scan_out/ --engine ray --ray-address 10.0.0.1:6379     join a cluster
  RAY_ADDRESS=auto cxclean scan /nfs/pacs --out /nfs/scan_out/ --engine ray --ray-actors 4""",
)
@click.argument("archive", type=click.Path(exists=True, path_type=str))
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=str),
              help="Output folder (scores.csv, exclusions.csv, errors.csv, detectors.csv, summary.json, review/).")
@click.option("--detectors", "detector_dirs", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="Use every detector bundle at or below this folder (repeatable).")
@click.option("--detector", "detector_paths", multiple=True, type=click.Path(exists=True),
              help="Use this detector bundle (repeatable).")
@click.option("--threshold", "thresholds", multiple=True, metavar="NAME=VALUE",
              help="Override a detector's threshold, e.g. rotation=0.8 (repeatable).")
@click.option("--min-age", type=float, default=None, help="Exclude patients younger than this many years.")
@click.option("--unknown-age", type=click.Choice(UNKNOWN_AGE_CHOICES), default="keep", show_default=True,
              help="What --min-age does with images whose age is unknown (they are counted either way).")
@click.option("--metadata", type=click.Path(exists=True, dir_okay=False), default=None,
              help="CSV with patient ages, joined on relative path or file name (used when DICOM has no age).")
@click.option("--id-column", default=None, help="--metadata column naming the file (default: path, Image Index, ...).")
@click.option("--age-column", default=None, help="--metadata column with the age (default: age_years, Patient Age, ...).")
@click.option("--workers", type=int, default=None, help="Decoding processes, --engine local [default: all cores].")
@click.option("--batch-size", type=int, default=32, show_default=True,
              help="Images per inference batch (on a CPU each model runs at most 8 films of 512 px at a time, for "
                   "memory; larger batches help on a GPU).")
@click.option("--engine", type=click.Choice(ENGINES), default="local", show_default=True,
              help="Where the work runs: this machine's cores, or a Ray cluster (pip install \"cxclean[ray]\"; "
                   "files and bundles must be at the same paths on every node).")
@click.option("--ray-address", default=None, metavar="ADDRESS",
              help="--engine ray: the cluster to join (host:port, or auto) [default: $RAY_ADDRESS, else a local "
                   "Ray started for this scan].")
@click.option("--ray-actors", type=int, default=None,
              help="--engine ray: scoring actors, each loading the detectors once [default: one per GPU, else one "
                   "per node].")
@click.option("--resume", is_flag=True, help="Continue an interrupted scan in --out (same settings).")
@click.option("--overwrite", is_flag=True, help="Replace the results of an earlier scan in --out.")
@click.option("--no-review", is_flag=True, help="Do not copy flagged images into review/.")
@click.option("--review-page", is_flag=True,
              help="Then build the review page (review/index.html, as 'cxclean review build' does) in this "
                   "process, with the detectors the scan loaded.")
@click.option("--no-default-detectors", is_flag=True,
              help="With no --detectors/--detector, do not fall back to the bundled defaults (e.g. an age-only scan).")
@click.option("--dry-run", is_flag=True, help="List the files that would be scanned and the detectors; read nothing.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def scan(archive, out, detector_dirs, detector_paths, thresholds, min_age, unknown_age, metadata, id_column,
         age_column, workers, batch_size, engine, ray_address, ray_actors, resume, overwrite, no_review, review_page,
         no_default_detectors, dry_run, quiet):
    """Score every image in ARCHIVE (a folder, an image, or a CSV whose 'path' column lists files)
    with every detector in one pass; write per-file scores, exclusions, errors and review copies.

    Each file is decoded once in parallel workers; the archive is never modified. After a crash or
    Ctrl-C, run the same command with --resume: it continues where it stopped."""
    from cleaner.scan import (ScanConfig, default_detector_dirs, format_summary, parse_threshold_overrides, plan,
                              resolve_bundle_paths, scan_archive)

    if dry_run:
        if not (detector_dirs or detector_paths or no_default_detectors):
            detector_dirs = default_detector_dirs()
        _dry_run(archive, detector_dirs, detector_paths, plan, resolve_bundle_paths)
        return
    if not out:
        raise click.UsageError("--out is required (except with --dry-run)")
    config = ScanConfig(
        detectors=detector_paths, detector_dirs=detector_dirs, default_detectors=not no_default_detectors,
        thresholds=parse_threshold_overrides(thresholds), min_age=min_age, unknown_age=unknown_age, metadata=metadata,
        id_column=id_column, age_column=age_column, review=not no_review, review_page=review_page, workers=workers,
        batch_size=batch_size, engine=engine, ray_address=ray_address, ray_actors=ray_actors,
    )
    try:
        summary = scan_archive(archive, out, config=config, resume=resume, overwrite=overwrite, progress=not quiet)
    except KeyboardInterrupt:
        click.echo(f"\nInterrupted. Results so far are journalled in {out}; run the same command with --resume "
                   "to continue.", err=True)
        sys.exit(130)
    click.echo(format_summary(summary))
    if summary.get("review_page"):
        click.echo(f"Review page: {summary['review_page']} (built in {summary['review_page_seconds']:.1f} s)")


def _dry_run(archive, detector_dirs, detector_paths, plan, resolve_bundle_paths):
    paths, stats = plan(archive)
    n = 0
    for rel in paths:
        click.echo(rel)
        n += 1
    click.echo(f"{n} file(s) would be scanned; not candidates: {stats.describe()}", err=True)
    for folder, reason in stats.folder_errors:
        click.echo(f"unreadable folder {folder}: {reason}", err=True)
    if detector_dirs or detector_paths:
        from detectors.bundle import read_info

        for bundle in resolve_bundle_paths(detector_dirs, detector_paths):
            info = read_info(bundle)
            click.echo(f"detector {info.get('name')} ({info.get('kind')}, {info.get('version')}, "
                       f"threshold {info.get('threshold')}) from {bundle}", err=True)
