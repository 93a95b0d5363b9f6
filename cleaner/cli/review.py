"""``cxclean review build``, ``cxclean review apply`` and ``cxclean report``: the steps after a scan."""
from __future__ import annotations


import click



@click.group(
    epilog="""\b
Examples:
  cxclean review build scan_out/                 write scan_out/review/index.html
  cxclean review apply scan_out/ --decisions ~/Downloads/decisions.csv
  cxclean review apply scan_out/ --confirm-rest   ticked/moved = kept, rest of a reviewed reason = confirmed""",
)
def review():
    """Check what a scan flagged: a review page with saliency overlays, and decisions read back."""


@review.command(
    "build",
    epilog="""\b
Examples:
  cxclean review build scan_out/
  cxclean review build scan_out/ --workers 4
  cxclean review build scan_out/ --no-saliency         faster, no detector needed
  cxclean review build scan_out/ --saliency occlusion  model-agnostic overlays (tens of passes per film)
  cxclean review build scan_out/ --rebuild            prepare every film again
After `cxclean scan ... --resume` a second build prepares only the new flagged films.
Open scan_out/review/index.html in any browser (works offline, no server).""",
)
@click.argument("scan_out", type=click.Path(exists=True, file_okay=False))
@click.option("--workers", type=int, default=None, help="Processes reading images [default: all cores].")
@click.option("--saliency", "saliency_method", type=click.Choice(["auto", "gradcam", "occlusion"]), default="auto",
              show_default=True, help="How overlays are made with the bundles in detectors.csv: auto = Grad-CAM "
              "(plus the side markers a glyph reader saw), occlusion only for a model without convolutions.")
@click.option("--saliency-method", "legacy_method", type=click.Choice(["auto", "gradcam", "occlusion"]), default=None,
              hidden=True, help="Old name of --saliency.")
@click.option("--no-saliency", is_flag=True, help="No overlays: thumbnails only, no detector needed.")
@click.option("--contact-sheets/--no-contact-sheets", default=True, show_default=True,
              help="Also write review/<reason>/contact_sheet_N.jpg (30 images per sheet).")
@click.option("--rebuild", is_flag=True,
              help="Prepare every flagged film again instead of reusing what the last build made.")
def review_build(scan_out, workers, saliency_method, legacy_method, no_saliency, contact_sheets, rebuild):
    """Build the review page SCAN_OUT/review/index.html from a scan output folder: one card per flagged
    (image, reason) with path, score, threshold, age and view, filters (reason, score, site, decision),
    keyboard review (keep, confirm, next, previous, overlay, full image), a saliency overlay per detector,
    and an 'export decisions' button.

    Images are not re-scored: scores come from scores.csv. A second build reuses what the first made and
    prepares only films that are new (a resumed or extended scan) or changed."""
    from cleaner.review.build import build_review

    if not no_saliency:  # overlays load the detectors: Keras's import, quietly, as every model command does
        from cleaner.io.quiet import import_keras_quietly

        import_keras_quietly()
    res = build_review(scan_out, workers=workers, saliency=not no_saliency, contact_sheets=contact_sheets,
                       saliency_method=legacy_method or saliency_method, rebuild=rebuild)
    parts = ", ".join(f"{r}: {n}" for r, n in res.sections.items()) or "nothing flagged"
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in res.stage_seconds.items())
    click.echo(f"{res.page}: {res.images} flagged image(s) ({parts}), {res.overlays} overlay(s), "
               f"{len(res.contact_sheets)} contact sheet(s), {len(res.warnings)} warning(s); "
               f"{res.prepared} film(s) prepared now ({res.images - res.prepared} reused), "
               f"{res.overlays_made} overlay(s) made; {res.seconds:.1f} s ({stages})")


@review.command(
    "apply",
    epilog="""\b
Examples:
  cxclean review apply scan_out/                              read review/<reason>/_keep/ folders
  cxclean review apply scan_out/ --decisions decisions.csv    the file the page exported
  cxclean review apply scan_out/ --confirm-reason rotation    everything still flagged for rotation is confirmed
Then: cxclean train-detector custom --labels scan_out/labels.csv ...""",
)
@click.argument("scan_out", type=click.Path(exists=True, file_okay=False))
@click.option("--decisions", "decisions", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Decisions exported by the review page (CSV path,reason,decision or JSON); repeatable.")
@click.option("--confirm-rest", is_flag=True,
              help="Confirm every unreviewed image of a reason for which at least one decision was made.")
@click.option("--confirm-reason", multiple=True, metavar="REASON",
              help="Confirm every image of REASON not marked keep (repeatable).")
def review_apply(scan_out, decisions, confirm_rest, confirm_reason):
    """Read the reviewer's decisions back and write SCAN_OUT/exclusions_final.csv (decision column:
    confirmed, overturned, unreviewed) and SCAN_OUT/labels.csv (path,label: 1 confirmed artefact,
    0 false positive) for training the next detector.

    \b
    Decisions come from:
      - files moved into review/<reason>/_keep/ (same relative path, or just the file name): overturned;
      - --decisions files: 'keep' = overturned, 'exclude' = confirmed;
      - --confirm-rest / --confirm-reason: confirmed.
    A file deleted from review/<reason>/ carries no decision: it stays unreviewed."""
    from cleaner.review.apply import apply_review

    res = apply_review(scan_out, decisions_files=list(decisions), confirm_rest=confirm_rest,
                       confirm_reasons=list(confirm_reason))
    for w in res.warnings:
        click.echo(f"warning: {w}", err=True)
    c = res.counts
    click.echo(f"{res.exclusions_final}: {c.get('confirmed', 0)} confirmed, {c.get('overturned', 0)} overturned, "
               f"{c.get('unreviewed', 0)} unreviewed; {res.labels} has {res.n_labels} label(s)")


@click.command(
    epilog="""\b
Examples:
  cxclean report scan_out/              writes scan_out/report.html, report/*.png, studies.csv
  cxclean report scan_out/ --no-charts  tables only""",
)
@click.argument("scan_out", type=click.Path(exists=True, file_okay=False))
@click.option("--charts/--no-charts", default=True, show_default=True, help="Draw the PNG charts.")
def report(scan_out, charts):
    """Bias report and study table for a scan output: exclusion rates per reason by age band, sex,
    view and site (top-level folder), with counts (report.html, report/*.csv, report/*.png), and
    studies.csv (per StudyInstanceUID, else PatientID: images, flagged images and reasons)."""
    from cleaner.reports.bias import write_report
    from cleaner.reports.studies import write_studies

    studies = write_studies(scan_out)
    res = write_report(scan_out, charts=charts)
    click.echo(f"{res.page}: {res.n_images} image(s) over {len(res.tables)} breakdowns, {len(res.charts)} chart(s); "
               f"{studies.path}: {studies.n_studies} stud(y/ies), {studies.n_without_key} image(s) without study or patient id")
