"""Training a detector: images -> leak-free split -> synthesised examples -> backbone(s) -> threshold -> bundle.

``train`` runs the steps in order; each step is a function here (or in ``fitting.py`` for the epochs), so a
step can be read, tested and changed on its own. Every setting is a ``TrainConfig`` field.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from cleaner.io.errors import UserInputError
from cleaner.io.manifests import file_sha256
from cleaner.io.preprocess import InputSpec, preprocess

from . import backbones, glyphs, synthesis
from .bundle import INFO_FILE, Detector, library_versions, save_bundle
from .calibration import calibrate_bundle, recall_curve, supported_fpr_note
from .config import TrainConfig
from .data import TrainingImage, decode_sources, list_sources, shrink_to, split_sources, training_set_sha256, write_manifest
from .fitting import average_logits, fit_member, use_gpu_if_available
from .inference import predict
from .kinds import NUISANCE_PROBABILITY, Kind, get_kind
from .metrics import binary_metrics, choose_threshold, is_suspect_normal, recall_by_variant, save_curves
from .synthesis import build_eval_set

MANIFEST_FILE = "training_manifest.csv"

__all__ = ["MANIFEST_FILE", "TrainConfig", "average_logits", "gather_sources", "train"]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def gather_sources(kind: Kind, normals=None, positives=None, negatives=None, labels=None) -> list[TrainingImage]:
    """The images a kind learns from: normals for synthetic kinds; labelled examples for ``custom``."""
    if kind.synthetic:
        if normals is None:
            raise UserInputError(f"a {kind.name} detector is synthesised from presumed-normal images: give --normals")
        if any(v is not None for v in (positives, negatives, labels)):
            raise UserInputError(f"a {kind.name} detector is synthesised: --positives/--negatives/--labels are for custom")
        return list_sources(normals)
    if labels is not None:
        if positives is not None or negatives is not None:
            raise UserInputError("give either --labels CSV or --positives/--negatives, not both")
        return list_sources(labels, need_label=True)
    if positives is None or negatives is None:
        raise UserInputError("a custom detector learns from labelled images: give --positives DIR --negatives DIR, "
                             "or --labels CSV")
    return list_sources(positives, label=1) + list_sources(negatives, label=0)


@dataclass
class Recipe:
    """What a kind and a config make of the model's input: its spec, the glyph reader's pooling, decode sizes."""

    kind: Kind
    config: TrainConfig
    reads_glyphs: bool
    pool: int
    spec: InputSpec
    max_side: int
    decode_side: int

    @classmethod
    def of(cls, kind: Kind, config: TrainConfig) -> "Recipe":
        if config.nuisances is not None:
            for other in config.nuisances:
                if not get_kind(other).synthetic:
                    raise UserInputError(f"--nuisance {other}: only a synthesised artefact can be a nuisance")
            kind = replace(kind, nuisances=tuple(config.nuisances))
        labelled_only = {"made_positives": config.made_positives, "turned_positives": config.turned_positives}
        for option, value in labelled_only.items():
            if value and kind.synthetic:
                raise UserInputError(f"{option.replace('_', ' ')} are for detectors trained from labelled films")
        kind = replace(kind, **{k: v for k, v in labelled_only.items() if v})
        reads_glyphs = kind.reads_glyphs if config.glyph_reader is None else bool(config.glyph_reader)
        pool = _input_pool(config.image_size, config.glyph_size) if reads_glyphs else 1
        spec = InputSpec(size=config.image_size * pool, low_pct=kind.percentiles[0], high_pct=kind.percentiles[1])
        max_side = config.max_side or 2 * config.image_size
        # the glyph reader needs the films' fine detail; the backbone's augmented examples use max_side
        decode_side = max(max_side, spec.size) if reads_glyphs else max_side
        return cls(kind, config, reads_glyphs, pool, spec, max_side, decode_side)


@dataclass
class TrainingData:
    """The decoded images split by patient, and the fixed validation examples every member is judged on."""

    sources: list
    train: list
    val: list
    bad: list
    val_x: np.ndarray
    val_y: np.ndarray
    val_idx: np.ndarray
    val_var: np.ndarray


def prepare_data(recipe: Recipe, sources: list[TrainingImage], log, progress: bool) -> TrainingData:
    """Decode every image once (unreadable ones named), split by patient, build the validation set."""
    config, kind = recipe.config, recipe.kind
    if not sources:
        raise UserInputError("no candidate images found")
    log(f"{len(sources)} candidate image(s); decoding at working resolution <= {recipe.decode_side} px")
    decode_sources(sources, max_side=recipe.decode_side, workers=config.workers, progress=progress)
    bad = [s for s in sources if s.error]
    for s in bad:
        log(f"  skipped (unreadable): {s.path}: {s.error}")
    split_sources(sources, config.val_fraction, config.seed)
    train_src = [s for s in sources if s.split == "train"]
    val_src = [s for s in sources if s.split == "val"]
    _check_split(kind, train_src, val_src)
    log(f"split by {'patient/image' if any(s.patient_id for s in sources) else 'image'}: "
        f"{len(train_src)} training, {len(val_src)} validation image(s), {len(bad)} unreadable")
    if kind.made_positives:
        train_labels = [s.label for s in train_src if not s.error]
        if train_labels.count(1) >= train_labels.count(0):
            log(f"WARNING: made positives ({kind.made_positives}) replace positives added to balance the classes, and "
                f"there are none: {train_labels.count(1)} positive(s) against {train_labels.count(0)} negative(s)")
    val_x, val_y, val_idx, val_var = build_eval_set(
        [s.pixels for s in val_src], [s.label for s in val_src], kind, recipe.spec, progress=progress
    )  # deterministic (no augmentation): every member is validated on the same examples
    return TrainingData(sources, train_src, val_src, bad, val_x, val_y, val_idx, val_var)


def train(kind: str, normals: str | os.PathLike | None = None, *, out: str | os.PathLike,
          positives: str | os.PathLike | None = None, negatives: str | os.PathLike | None = None,
          labels: str | os.PathLike | None = None, config: TrainConfig | None = None,
          log: Callable[[str], None] = _stderr, progress: bool = True, **settings) -> Detector:
    """Train a ``kind`` detector and write its bundle to ``out``; returns the ready-to-use ``Detector``.

    Synthetic kinds (rotation, inversion, flip) need ``normals`` (a folder or CSV of presumed-normal images);
    ``custom`` needs ``positives`` + ``negatives`` folders or a ``labels`` CSV (path,label). Every other
    setting is a ``TrainConfig`` field, given as ``config`` and/or keywords (``backbone="compact"``).
    """
    started = time.perf_counter()
    config = TrainConfig.from_kwargs(config, **settings)
    kind_def = get_kind(kind)
    weights_path = backbones.resolve_weights(config.backbone, config.weights)  # fails fast, before any decoding
    recipe = Recipe.of(kind_def, config)
    data = prepare_data(recipe, gather_sources(kind_def, normals, positives, negatives, labels), log, progress)
    device = use_gpu_if_available()
    weighted = [s for s in data.train for _ in range(s.weight)]  # repeats share one decoded array
    if not weighted:
        raise UserInputError("every training image has weight 0")
    working = {id(s): shrink_to(s.pixels, recipe.max_side) for s in data.train}
    trained = [fit_member(recipe.kind, m, config, recipe.spec, recipe.pool, weights_path, [working[id(s)] for s in weighted],
                          [s.label for s in weighted], data.val_x, data.val_y, device, log)
               for m in range(config.members)]
    model, reader_info = _combine(recipe, trained, data, log)
    scores, choice, val_metrics = _validate(recipe, model, data, reader_info, log)
    suspects = _suspects(recipe, model, data, scores, choice.threshold, log)
    negatives = scores[data.val_y == 0]
    supports = supported_fpr_note(len(negatives), int((negatives >= choice.threshold).sum()))
    log(f"validation threshold: {supports}" + ("" if config.calibrate_on else
        "; give --calibrate-on with real upright films of your archive to choose a threshold that holds there"))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    name = config.name or kind_def.name
    info = {
        "name": name, "kind": kind_def.name, "description": kind_def.description, "variants": list(kind_def.variants),
        "backbone": config.backbone, "weights": config.weights or "none",
        "weights_sha256": file_sha256(weights_path) if weights_path else None,
        "input": recipe.spec.to_dict(), "threshold": choice.threshold,
        "threshold_choice": choice.to_dict() | {"validation_threshold": choice.threshold, "supports": supports},
        "gate": config.gate,
        "metrics": {"validation": val_metrics},
        "training": _training_record(recipe, trained, data, len(weighted), reader_info, device, started),
        "train_config": config.to_dict(),
        "suspect_normals": [{"path": s.path, "split": s.split, "score": s.score} for s in suspects],
        "training_set_sha256": training_set_sha256(data.sources), "manifest": MANIFEST_FILE,
        "plots": save_curves(data.val_y, scores, out, f"{name} (validation)", choice.threshold),
        "seed": config.seed, "package": {"cxclean": library_versions().get("cxclean", "unknown")},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    write_manifest(data.sources, out / MANIFEST_FILE, kind_def.name)
    save_bundle(model, info, out)
    if config.calibrate_on:
        calibrate_bundle(out, config.calibrate_on, config.target_fpr, workers=config.workers, log=log, progress=progress)
    saved = json.loads((out / INFO_FILE).read_text())
    log(f"bundle {out} ({saved['version']}): validation AUC {val_metrics['auc']:.4f}, threshold "
        f"{choice.threshold:.4g}, precision {val_metrics['precision']:.4f}, recall {val_metrics['recall']:.4f}, "
        f"{info['training']['seconds']:.0f} s")
    return Detector(model=model, info=saved, path=out)


def _combine(recipe: Recipe, trained: list, data: TrainingData, log) -> tuple:
    """One model from the members (their log-odds averaged) and, for a kind that reads glyphs, its reader."""
    config = recipe.config
    model, state = trained[0]
    if config.members > 1:
        model = average_logits([m for m, _ in trained])
        log(f"validation AUC of the {config.members} members' mean log-odds: "
            f"{binary_metrics(data.val_y, predict(model, data.val_x, config.batch_size), 0.5)['auc']:.4f}")
    if not recipe.reads_glyphs:
        return model, None
    reader, reader_info = glyphs.train_reader([preprocess(s.pixels, recipe.spec)[..., 0] for s in data.train],
                                              config.glyph_patches, config.glyph_epochs, config.seed, config.glyph_width,
                                              log, fast=config.glyph_fast)
    # a kind that compares a film with its mirror reads the mirror's markers too (as the shipped flip, decision 0017)
    mirrored = recipe.kind.compares_mirror
    reader_info.update(input_pool=recipe.pool, backbone_validation_auc=state["best_auc"], bands=config.glyph_bands,
                       mirrored=mirrored)
    return glyphs.with_reader(model, reader, bands=config.glyph_bands, mirrored=mirrored), reader_info


def _validate(recipe: Recipe, model, data: TrainingData, reader_info, log) -> tuple:
    """Validation scores, the threshold (at the target precision) and the metrics at it."""
    kind = recipe.kind
    scores = predict(model, data.val_x, recipe.config.batch_size)
    choice = choose_threshold(data.val_y, scores, recipe.config.target_precision)
    log(("" if choice.met else "WARNING: ") + choice.note)
    val_metrics = binary_metrics(data.val_y, scores, choice.threshold)
    if reader_info is not None:
        log(f"validation AUC: backbone alone {reader_info['backbone_validation_auc']:.4f}, "
            f"with the glyph reader {val_metrics['auc']:.4f}")
    val_metrics["recall_curve"] = recall_curve(data.val_y, scores, choice.threshold)
    if kind.synthetic and len(kind.variants) > 1:
        val_metrics["recall_by_variant"] = recall_by_variant(data.val_y, scores, data.val_var, kind.variants,
                                                             choice.threshold)
    return scores, choice, val_metrics


def _suspects(recipe: Recipe, model, data: TrainingData, val_scores, threshold: float, log) -> list:
    """Presumed normals that score like artefacts themselves (a film that really is rotated, say), for review."""
    kind = recipe.kind
    if not kind.synthetic:
        return []
    _score_sources(model, [s for s in data.sources if s.error is None], kind, recipe.spec, recipe.config.batch_size,
                   data.val, data.val_y, val_scores, data.val_idx)
    for s in data.sources:
        s.suspect = is_suspect_normal(s.score, s.artefact_score, threshold)
    suspects = [s for s in data.sources if s.suspect]
    if suspects:
        log(f"{len(suspects)} presumed-normal image(s) score like {kind.name} artefacts "
            f"(suspect=True in {MANIFEST_FILE}; review them, and retrain without those that are):")
        for s in sorted(suspects, key=lambda s: -s.score)[:20]:
            log(f"  {s.path}  [{s.split}] score {s.score:.3f}, its synthesised artefact {s.artefact_score:.3f}")
    return suspects


def _training_record(recipe: Recipe, trained: list, data: TrainingData, n_weighted: int, reader_info, device: str,
                     started: float) -> dict:
    """detector.json's ``training``: how the run went (history, members, images), beside ``train_config``."""
    config, kind = recipe.config, recipe.kind
    _, state = trained[0]
    return {
        "epochs_requested": config.epochs, "epochs_run": state["epoch"], "best_epoch": state["best_epoch"],
        "history": state["history"], "batch_size": config.batch_size, "learning_rate": config.learning_rate,
        "patience": config.patience, "copies_per_epoch": config.copies,
        "epoch_selection": "lowest validation log loss; AUC breaks a tie (docs/decisions/0015)",
        "members": [{"seed": config.seed + i, "best_epoch": st["best_epoch"], "validation_auc": st["best_auc"],
                     "validation_loss": st["best_loss"], "epochs_run": st["epoch"]} for i, (_, st) in enumerate(trained)],
        "val_fraction": config.val_fraction,
        "working_max_side": recipe.max_side,  # evaluate reuses it
        "batchnorm_momentum": backbones.BN_MOMENTUM,
        "glyph_reader": reader_info,
        "augmentation": synthesis.AUGMENTATION,
        "augmentation_settings": {"haze": kind.haze, "plates": kind.plates},
        "compares_inverse": {"vote_trim": backbones.VOTE_TRIM} if kind.compares_inverse else False,
        "compares_mirror": kind.compares_mirror,
        "made_positives": {"share": kind.made_positives, "how": synthesis.MADE_POSITIVES} if kind.made_positives else None,
        "turned_positives": synthesis.TURNED_POSITIVES if kind.turned_positives else None,
        "nuisances": {"kinds": list(kind.nuisances), "probability": NUISANCE_PROBABILITY} if kind.nuisances else None,
        "device": device,
        "seconds": round(time.perf_counter() - started, 1),
        "images": {"train": len(data.train), "val": len(data.val), "unreadable": len(data.bad),
                   "train_examples_per_epoch_source": n_weighted},
    }


def _input_pool(image_size: int, glyph_size: int) -> int:
    """How many times the glyph reader's input is averaged down for the backbone (a whole number)."""
    if glyph_size < image_size or glyph_size % image_size:
        raise UserInputError(f"the glyph reader's input ({glyph_size} px) must be a whole multiple of --image-size "
                             f"({image_size} px): the backbone sees it averaged down")
    return glyph_size // image_size


def _score_sources(model, usable, kind, spec, batch_size, val_src, val_y, val_scores, val_idx) -> None:
    """Fill ``score`` / ``artefact_score`` of every usable normal (validation ones from ``val_scores``)."""

    def fill(items, labels, scores, idx):
        for y, score, i in zip(labels, scores, idx):
            if y == 0:
                items[i].score = float(score)
            else:
                items[i].artefact_score = float(score)

    fill(val_src, val_y, val_scores, val_idx)
    val_set = {id(s) for s in val_src}
    rest = [s for s in usable if id(s) not in val_set]
    if rest:
        x, y, idx, _ = build_eval_set([s.pixels for s in rest], [s.label for s in rest], kind, spec)
        fill(rest, y, predict(model, x, batch_size), idx)


def _check_split(kind: Kind, train_src: list[TrainingImage], val_src: list[TrainingImage]) -> None:
    if not train_src or not val_src:
        raise UserInputError(
            f"need readable images on both sides of the split (got {len(train_src)} training, {len(val_src)} validation)"
        )
    if not kind.synthetic:
        for side, items in (("training", train_src), ("validation", val_src)):
            got = {s.label for s in items}
            if got != {0, 1}:
                raise UserInputError(f"the {side} split has no {'positive' if 1 not in got else 'negative'} images")
