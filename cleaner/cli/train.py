"""``cxclean train-detector`` and ``cxclean evaluate``: thin Click commands over ``detectors``."""
from __future__ import annotations

import json
from pathlib import Path

import click

from detectors.backbones import BACKBONES
from detectors.kinds import KINDS


@click.command(
    "train-detector",
    epilog="""\b
Examples:
  cxclean train-detector rotation --normals archive_sample/ --out detectors/rotation
  cxclean train-detector flip --normals normals.csv --out bundles/flip --backbone compact --weights none
  cxclean train-detector flip --normals normals/ --out bundles/flip_anatomy --no-glyph-reader
  cxclean train-detector inversion --normals normals/ --out bundles/inversion --weights ~/resnet50_notop.h5
  cxclean train-detector custom --name lateral --positives laterals/ --negatives frontals/ --out bundles/lateral
  cxclean train-detector custom --name not_chest --labels labels.csv --out bundles/not_chest
  cxclean train-detector custom --name non_frontal --positives laterals/ --negatives frontals/ --gate \\
      --nuisance rotation --nuisance inversion --nuisance flip --made-positives 0.5 --turned-positives \\
      --out bundles/non_frontal
  cxclean train-detector flip --normals normals/ --calibrate-on my_archive_uprights/ --out bundles/flip
\b
A CSV has a 'path' column (relative to the CSV's folder), optional 'patient_id' (the split keeps
each patient on one side) and, for custom, 'label' (1 = positive, 0 = negative).""",
)
@click.argument("kind", type=click.Choice(list(KINDS)))
@click.option("--normals", type=click.Path(exists=True), help="Folder or CSV of presumed-normal frontal images (synthetic kinds).")
@click.option("--positives", type=click.Path(exists=True), help="custom: folder or CSV of positive examples.")
@click.option("--negatives", type=click.Path(exists=True), help="custom: folder or CSV of negative examples.")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False), help="custom: CSV with path,label[,patient_id].")
@click.option("--name", help="Detector name, the prefix of its scan columns (<name>_score). Default: the kind.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Bundle folder to write.")
@click.option("--backbone", type=click.Choice(BACKBONES), default="resnet50", show_default=True)
@click.option("--weights", default="imagenet", show_default=True,
              help="imagenet (from Keras's cache, never downloaded), none (from scratch) or a weights file PATH.")
@click.option("--image-size", type=int, default=256, show_default=True, help="Square model input, pixels.")
@click.option("--epochs", type=int, default=30, show_default=True, help="Most epochs (early stopping on validation log loss).")
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--learning-rate", type=float, default=1e-3, show_default=True, help="Adam; fine-tuning uses a tenth.")
@click.option("--patience", type=int, default=6, show_default=True, help="Epochs without a lower validation loss before stopping.")
@click.option("--head-epochs", type=int, default=3, show_default=True,
              help="With pretrained weights: epochs training only the head before fine-tuning everything.")
@click.option("--copies", type=int, default=1, show_default=True, help="Augmented copies of each training image per epoch.")
@click.option("--members", type=click.IntRange(min=1), default=1, show_default=True,
              help="Backbones trained (seeds SEED, SEED+1, ...) whose log-odds are averaged: steadier on other archives.")
@click.option("--val-fraction", type=float, default=0.3, show_default=True, help="Share of images (by patient) held out.")
@click.option("--target-precision", type=float, default=0.999, show_default=True,
              help="Threshold = highest recall with at least this validation precision.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--workers", type=int, default=1, show_default=True, help="Decoding processes.")
@click.option("--glyph-reader/--no-glyph-reader", default=None,
              help="Also read burned-in text (side markers, labels) for whether it is mirror-reversed. "
                   "Default: on for flip, off otherwise.")
@click.option("--glyph-size", type=int, default=512, show_default=True,
              help="With the glyph reader: the model's input, pixels (a multiple of --image-size; the backbone sees it averaged down).")
@click.option("--glyph-patches", type=int, default=40000, show_default=True,
              help="With the glyph reader: synthetic letter patches it is trained on.")
@click.option("--glyph-bands", type=click.FloatRange(0, 0.5), default=0.2, show_default=True,
              help="With the glyph reader: the share of the film's width it reads at each side, where side markers "
                   "sit (0: the whole film, at about 2.5x the cost).")
@click.option("--calibrate-on", type=click.Path(exists=True), default=None,
              help="Real upright frontal films of your archive (folder or CSV): the threshold is chosen so that at most "
                   "--target-fpr of them are flagged (never below the validation threshold).")
@click.option("--target-fpr", type=float, default=0.001, show_default=True,
              help="With --calibrate-on: the share of real upright films the threshold may flag.")
@click.option("--nuisance", "nuisances", multiple=True, type=click.Choice([k for k, v in KINDS.items() if v.synthetic]),
              help="An artefact the detector must ignore, applied at random to both classes (repeatable; "
                   "default: the kind's own).")
@click.option("--gate", is_flag=True,
              help="When this detector flags a film, the other detectors' flags on it are not exclusion reasons "
                   "(e.g. a 'not a frontal chest film' detector: 'rotated' means nothing on a lateral).")
@click.option("--made-positives", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="custom: share of the positives added to balance the classes that are cut from negatives instead "
                   "(one side's strip or a coned window of a frontal film): a 'not a whole frontal chest' detector "
                   "then also finds kinds of film it was never shown. Only when positives are the smaller class "
                   "(training warns otherwise).")
@click.option("--turned-positives", is_flag=True,
              help="custom: every positive training example turned a random quarter turn and mirrored half the time "
                   "(negatives as they are): for a gate such as non_frontal, whose verdict on a leg or a knee must not "
                   "depend on which way the rotation detector turned it.")
def train_detector(kind, normals, positives, negatives, labels, name, out, backbone, weights, image_size, epochs,
                   batch_size, learning_rate, patience, head_epochs, copies, members, val_fraction, target_precision, seed, workers,
                   glyph_reader, glyph_size, glyph_patches, glyph_bands, calibrate_on, target_fpr, nuisances, gate,
                   made_positives, turned_positives):
    """Train a KIND detector and write a reusable bundle to --out.

    rotation, inversion and flip are synthesised from presumed-normal images (--normals): the
    artefact is applied to each decoded image, then the same preprocessing scanning uses. custom
    learns from labelled images (--positives/--negatives or --labels). flip also trains a reader of
    burned-in text (a mirror reverses every side marker) on synthetic letters over the training
    films, and adds its evidence to the backbone's. The bundle holds the model,
    detector.json (threshold, metrics, provenance), ROC and precision-recall plots and the
    training manifest."""
    from detectors.backbones import resolve_weights
    from detectors.config import TrainConfig

    config = TrainConfig(
        name=name, backbone=backbone, weights=weights, image_size=image_size, epochs=epochs, batch_size=batch_size,
        learning_rate=learning_rate, patience=patience, head_epochs=head_epochs, copies=copies, members=members,
        val_fraction=val_fraction, target_precision=target_precision, seed=seed, workers=workers,
        glyph_reader=glyph_reader, glyph_size=glyph_size, glyph_patches=glyph_patches, glyph_bands=glyph_bands or None,
        calibrate_on=calibrate_on,
        target_fpr=target_fpr, nuisances=tuple(nuisances) or None, gate=gate, made_positives=made_positives,
        turned_positives=turned_positives,
    )
    resolve_weights(backbone, weights)  # fail fast, before TensorFlow starts
    from detectors.training import train

    detector = train(kind, normals, out=out, positives=positives, negatives=negatives, labels=labels, config=config,
                     log=lambda m: click.echo(m, err=True))
    m = detector.info["metrics"]["validation"]
    click.echo(
        f"{detector.path}: {detector.version}  AUC {m['auc']:.4f}  threshold {detector.threshold:.4g}  "
        f"precision {m['precision']:.4f}  recall {m['recall']:.4f}"
        + ("" if detector.info["threshold_choice"]["met"] else "  (target precision NOT met)")
    )


@click.command(
    epilog="""\b
Examples:
  cxclean evaluate bundles/rotation --normals other_hospital/          synthetic artefacts
  cxclean evaluate bundles/lateral --labels labelled.csv --out eval/   real labelled images
  cxclean evaluate bundles/lateral --positives laterals/ --negatives frontals/ --json""",
)
@click.argument("bundle", type=click.Path(exists=True))
@click.option("--normals", type=click.Path(exists=True), help="Presumed-normal images: the bundle's artefact is synthesised.")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False), help="CSV path,label of real labelled images.")
@click.option("--positives", type=click.Path(exists=True), help="Folder or CSV of real positives.")
@click.option("--negatives", type=click.Path(exists=True), help="Folder or CSV of real negatives.")
@click.option("--out", type=click.Path(file_okay=False), help="Write scores.csv, metrics.json and ROC/PR plots here.")
@click.option("--workers", type=int, default=1, show_default=True, help="Decoding processes.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
def evaluate(bundle, normals, labels, positives, negatives, out, workers, as_json):
    """Measure a detector BUNDLE on other images at its own threshold: AUC, accuracy, precision,
    recall, confusion matrix. With --normals the artefact is synthesised as in validation; with
    --labels or --positives/--negatives real labelled images are scored as they are."""
    if normals is None and labels is None and positives is None and negatives is None:
        raise click.UsageError("give --normals, --labels, or --positives and --negatives")
    from detectors.evaluation import evaluate as run_evaluation

    m = run_evaluation(bundle, normals, labels=labels, positives=positives, negatives=negatives, out=out,
                       workers=workers, log=lambda msg: click.echo(msg, err=True))
    if as_json:
        click.echo(json.dumps(m, indent=2))
        return
    cm = m["confusion_matrix"]
    auc = "n/a (one class)" if m["auc"] is None else f"{m['auc']:.4f}"
    click.echo(
        f"{m['detector']} on {m['images']} image(s) ({m['mode']}, {m['positives']} positive / {m['negatives']} negative "
        f"examples, {m['unreadable']} unreadable)\n"
        f"  AUC {auc}  threshold {m['threshold']:.4g}  accuracy {m['accuracy']:.4f}  "
        f"precision {m['precision']:.4f}  recall {m['recall']:.4f}\n"
        f"  confusion: tn {cm['tn']}  fp {cm['fp']}  fn {cm['fn']}  tp {cm['tp']}"
        + ("\n  recall by artefact: " + ", ".join(f"{k} {v:.3f}" for k, v in m["recall_by_variant"].items())
           if "recall_by_variant" in m else "")
        + (f"\n  details in {out}" if out else "")
    )


@click.command(
    epilog="""\b
Examples:
  cxclean calibrate bundles/flip --uprights my_archive_uprights/ --out bundles/flip_calibrated
  cxclean calibrate bundles/rotation --uprights uprights.csv --target-fpr 0.002    in place
A CSV has a 'path' column and may have a 'site' column (else a film's site is its folder).""",
)
@click.argument("bundle", type=click.Path(exists=True, file_okay=False))
@click.option("--uprights", required=True, type=click.Path(exists=True),
              help="Real upright frontal chest films (folder or CSV), ideally from the archive to be scanned.")
@click.option("--target-fpr", type=float, default=0.001, show_default=True,
              help="The share of those films the threshold may flag.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Write a calibrated copy of the bundle here (default: change the bundle in place).")
@click.option("--workers", type=int, default=1, show_default=True, help="Decoding processes.")
def calibrate(bundle, uprights, target_fpr, out, workers):
    """Choose BUNDLE's threshold on real upright films: the lowest that flags at most --target-fpr of them, never
    below its validation threshold. detector.json records the films, their sites, the rate they show and the
    rate they can support (0 of n flagged only bounds the rate below about 3/n)."""
    from detectors.bundle import default_bundles_dir
    from detectors.calibration import calibrate_bundle

    defaults = default_bundles_dir()
    if out is None and defaults is not None and Path(bundle).resolve().is_relative_to(defaults.resolve()):
        raise click.UsageError("the bundled defaults are not changed in place: give --out for a calibrated copy")
    cal = calibrate_bundle(bundle, uprights, target_fpr, out=out, workers=workers,
                           log=lambda m: click.echo(m, err=True))
    click.echo(f"{out or bundle}: threshold {cal.threshold:.6g} ({cal.false_positives}/{cal.films} upright films "
               f"flagged; 95 % upper bound of the false-positive rate {cal.fpr_upper_95:.2%})")
