"""Training a detector: sources -> leak-free split -> synthesised examples -> backbone -> threshold -> bundle."""
from __future__ import annotations

import datetime as _dt
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

from cleaner.io.manifests import file_sha256
from cleaner.io.preprocess import InputSpec, preprocess

from . import backbones, glyphs, synthesis
from .bundle import INFO_FILE, Detector, save_bundle
from .data import Source, decode_sources, list_sources, shrink_to, split_sources, training_set_sha256, write_manifest
from .kinds import NUISANCE_PROBABILITY, Kind, get_kind
from .metrics import binary_metrics, choose_threshold, is_suspect_normal, recall_by_variant, save_curves
from .synthesis import TrainingBatches, build_eval_set

MANIFEST_FILE = "training_manifest.csv"


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def gather_sources(kind: Kind, normals=None, positives=None, negatives=None, labels=None) -> list[Source]:
    """The images a kind learns from: normals for synthetic kinds; labelled examples for ``custom``."""
    if kind.synthetic:
        if normals is None:
            raise ValueError(f"a {kind.name} detector is synthesised from presumed-normal images: give --normals")
        if any(v is not None for v in (positives, negatives, labels)):
            raise ValueError(f"a {kind.name} detector is synthesised: --positives/--negatives/--labels are for custom")
        return list_sources(normals)
    if labels is not None:
        if positives is not None or negatives is not None:
            raise ValueError("give either --labels CSV or --positives/--negatives, not both")
        return list_sources(labels, need_label=True)
    if positives is None or negatives is None:
        raise ValueError("a custom detector learns from labelled images: give --positives DIR --negatives DIR, or --labels CSV")
    return list_sources(positives, label=1) + list_sources(negatives, label=0)


def use_gpu_if_available() -> str:
    """'gpu (mixed precision)' when TensorFlow sees a GPU (and sets mixed precision), else 'cpu'."""
    import keras

    try:
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
        elif keras.backend.backend() == "torch":
            import torch

            gpus = [0] if torch.cuda.is_available() else []
        else:
            gpus = []
    except Exception:
        gpus = []
    if gpus:
        keras.mixed_precision.set_global_policy("mixed_float16")
        return "gpu (mixed precision)"
    return "cpu"


class _BestOnValidationAUC:
    """Keras callback factory: per-epoch validation AUC line, early stopping, keeps the best weights."""

    def __new__(cls, val_x, val_y, patience, log, batch_size, phase, state, batches=None):
        import keras
        from sklearn.metrics import log_loss, roc_auc_score

        class _Callback(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.t0 = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                if batches is not None:
                    backbones.recalibrate_batchnorm(self.model, batches)
                scores = self.model.predict(val_x, batch_size=batch_size, verbose=0).reshape(-1).astype(np.float64)
                auc = float(roc_auc_score(val_y, scores))
                loss = float(log_loss(val_y, np.clip(scores, 1e-7, 1 - 1e-7), labels=[0, 1]))
                acc = float(((scores >= 0.5) == (val_y == 1)).mean())
                state["epoch"] += 1
                record = {
                    "epoch": state["epoch"], "phase": phase, "loss": float((logs or {}).get("loss", np.nan)),
                    "val_auc": auc, "val_loss": loss, "val_accuracy_at_0.5": acc,
                    "seconds": round(time.perf_counter() - self.t0, 1),
                }
                state["history"].append(record)
                better = auc > state["best_auc"] + 1e-6 or (abs(auc - state["best_auc"]) <= 1e-6 and loss < state["best_loss"])
                if better:
                    state.update(best_auc=auc, best_loss=loss, best_epoch=state["epoch"], wait=0)
                    state["weights"] = [w.copy() for w in self.model.get_weights()]
                else:
                    state["wait"] += 1
                    if state["wait"] % 2 == 0:  # plateau: halve the learning rate, then keep going
                        lr = self.model.optimizer.learning_rate
                        lr.assign(float(np.asarray(lr)) * 0.5)
                        log(f"validation AUC flat for 2 epochs: learning rate halved to {float(np.asarray(lr)):.2e}")
                log(
                    f"epoch {state['epoch']:3d} [{phase}] loss {record['loss']:.4f}  val AUC {auc:.4f}  "
                    f"val loss {loss:.4f}  val acc@0.5 {acc:.3f}  {record['seconds']:.1f} s" + ("  *best" if better else "")
                )
                if state["wait"] >= patience:
                    log(f"early stop: validation AUC has not improved for {patience} epoch(s)")
                    self.model.stop_training = True

        return _Callback()


def train(
    kind: str,
    normals: str | os.PathLike | None = None,
    *,
    out: str | os.PathLike,
    positives: str | os.PathLike | None = None,
    negatives: str | os.PathLike | None = None,
    labels: str | os.PathLike | None = None,
    name: str | None = None,
    backbone: str = "resnet50",
    weights: str | None = "imagenet",
    image_size: int = 256,
    epochs: int = 30,
    batch_size: int = 32,
    val_fraction: float = 0.3,
    target_precision: float = 0.999,
    seed: int = 0,
    learning_rate: float = 1e-3,
    patience: int = 6,
    head_epochs: int = 3,
    copies: int = 1,
    members: int = 1,
    workers: int = 1,
    max_side: int | None = None,
    glyph_reader: bool | None = None,
    glyph_size: int = 512,
    glyph_patches: int = 40000,
    glyph_epochs: int = 5,
    glyph_width: float = 0.5,
    log: Callable[[str], None] = _stderr,
    progress: bool = True,
) -> Detector:
    """Train a ``kind`` detector and write its bundle to ``out``; returns the ready-to-use ``Detector``.

    Synthetic kinds (rotation, inversion, flip) need ``normals`` (a folder or CSV of presumed-normal
    images); ``custom`` needs ``positives`` + ``negatives`` folders or a ``labels`` CSV (path,label).
    ``glyph_reader`` (default: the kind's ``reads_glyphs``, i.e. flip) adds a reader of burned-in text:
    the model then takes ``glyph_size`` px, the backbone sees it pooled to ``image_size``, and a reader
    trained on synthetic letters over the training films adds its evidence to the backbone's log-odds.
    ``members`` > 1 trains that many backbones on the same split (seeds ``seed``, ``seed`` + 1, ...) and
    averages their log-odds in one model: measured on the development archive, three inversion detectors
    disagreed on which Hannover films looked inverted (1-4 false positives each); their mean had none.
    """
    started = time.perf_counter()
    kind_def = get_kind(kind)
    name = name or kind_def.name
    if not name.replace("_", "").isalnum():
        raise ValueError(f"--name {name!r}: use letters, digits and underscores (it becomes the {name}_score column)")
    if members < 1:
        raise ValueError(f"members must be at least 1, not {members}")
    weights_path = backbones.resolve_weights(backbone, weights)  # fails fast, before any decoding
    reads_glyphs = kind_def.reads_glyphs if glyph_reader is None else bool(glyph_reader)
    pool = _input_pool(image_size, glyph_size) if reads_glyphs else 1
    spec = InputSpec(size=image_size * pool, low_pct=kind_def.percentiles[0], high_pct=kind_def.percentiles[1])
    max_side = max_side or 2 * image_size
    # the glyph reader needs the films' fine detail; the backbone's augmented examples use max_side
    decode_side = max(max_side, spec.size) if reads_glyphs else max_side
    out = Path(out)

    sources = gather_sources(kind_def, normals, positives, negatives, labels)
    if not sources:
        raise ValueError("no candidate images found")
    log(f"{len(sources)} candidate image(s); decoding at working resolution <= {decode_side} px")
    decode_sources(sources, max_side=decode_side, workers=workers, progress=progress)
    bad = [s for s in sources if s.error]
    for s in bad:
        log(f"  skipped (unreadable): {s.path}: {s.error}")
    split_sources(sources, val_fraction, seed)
    train_src = [s for s in sources if s.split == "train"]
    val_src = [s for s in sources if s.split == "val"]
    _check_split(kind_def, train_src, val_src)
    log(
        f"split by {'patient/image' if any(s.patient_id for s in sources) else 'image'}: "
        f"{len(train_src)} training, {len(val_src)} validation image(s), {len(bad)} unreadable"
    )

    import keras

    device = use_gpu_if_available()
    val_x, val_y, val_idx, val_var = build_eval_set(
        [s.pixels for s in val_src], [s.label for s in val_src], kind_def, spec, progress=progress
    )  # deterministic (no augmentation): every member is validated on the same examples
    weighted = [s for s in train_src for _ in range(s.weight)]  # repeats share one decoded array
    if not weighted:
        raise ValueError("every training image has weight 0")
    working = {id(s): shrink_to(s.pixels, max_side) for s in train_src}
    trained = []
    for member in range(members):
        keras.utils.set_random_seed(seed + member)
        policy = keras.mixed_precision.global_policy().name
        try:
            model, base = backbones.build(backbone, image_size, weights_path, input_pool=pool)
            if kind_def.compares_inverse:
                model = backbones.compare_with_inverse(model)
        finally:
            keras.mixed_precision.set_global_policy("float32")
        log(f"backbone {backbone} ({model.count_params():,} parameters, weights {weights or 'none'}) on {device} [{policy}]"
            + (f", member {member + 1}/{members} (seed {seed + member})" if members > 1 else ""))
        batches = TrainingBatches(
            [working[id(s)] for s in weighted], [s.label for s in weighted], kind_def, spec, batch_size, seed + member, copies
        )
        state = {"epoch": 0, "history": [], "best_auc": -1.0, "best_loss": np.inf, "best_epoch": 0, "wait": 0, "weights": None}

        def fit(n_epochs, lr, phase):
            if n_epochs <= 0:
                return
            model.compile(optimizer=keras.optimizers.Adam(lr), loss="binary_crossentropy")
            callback = _BestOnValidationAUC(val_x, val_y, patience, log, batch_size, phase, state, batches)
            state["wait"] = 0
            model.fit(batches, epochs=n_epochs, verbose=0, callbacks=[callback])

        if base is not None:  # pretrained: train the head on a frozen backbone first, then fine-tune everything
            head = min(head_epochs, epochs)
            base.trainable = False
            fit(head, learning_rate, "head")
            base.trainable = True
            fit(epochs - head, learning_rate * 0.1, "fine-tune")
        else:
            fit(epochs, learning_rate, "train")
        if state["weights"] is not None:
            model.set_weights(state["weights"])
        log(f"best epoch {state['best_epoch']} (validation AUC {state['best_auc']:.4f}); kept its weights")
        trained.append((model, state))
    model, state = trained[0]
    if members > 1:
        model = average_logits([m for m, _ in trained])
        log(f"validation AUC of the {members} members' mean log-odds: "
            f"{binary_metrics(val_y, model.predict(val_x, batch_size=batch_size, verbose=0).reshape(-1), 0.5)['auc']:.4f}")
    reader_info = None
    if reads_glyphs:
        anatomy_auc = state["best_auc"]
        reader, reader_info = glyphs.train_reader(
            [preprocess(s.pixels, spec)[..., 0] for s in train_src], glyph_patches, glyph_epochs, seed, glyph_width, log
        )
        model = glyphs.with_reader(model, reader)
        reader_info.update(input_pool=pool, backbone_validation_auc=anatomy_auc)

    scores = model.predict(val_x, batch_size=batch_size, verbose=0).reshape(-1)
    choice = choose_threshold(val_y, scores, target_precision)
    log(("" if choice.met else "WARNING: ") + choice.note)
    val_metrics = binary_metrics(val_y, scores, choice.threshold)
    if reads_glyphs:
        log(f"validation AUC: backbone alone {reader_info['backbone_validation_auc']:.4f}, "
            f"with the glyph reader {val_metrics['auc']:.4f}")
    if kind_def.synthetic and len(kind_def.variants) > 1:
        val_metrics["recall_by_variant"] = recall_by_variant(val_y, scores, val_var, kind_def.variants, choice.threshold)

    if kind_def.synthetic:
        _score_sources(
            model, [s for s in sources if s.error is None], kind_def, spec, batch_size, val_src, val_y, scores, val_idx
        )
        for s in sources:
            s.suspect = is_suspect_normal(s.score, s.artefact_score, choice.threshold)
        suspects = [s for s in sources if s.suspect]
        if suspects:
            log(f"{len(suspects)} presumed-normal image(s) score like {kind_def.name} artefacts "
                f"(suspect=True in {MANIFEST_FILE}; review them, and retrain without those that are):")
            for s in sorted(suspects, key=lambda s: -s.score)[:20]:
                log(f"  {s.path}  [{s.split}] score {s.score:.3f}, its synthesised artefact {s.artefact_score:.3f}")
    else:
        suspects = []

    out.mkdir(parents=True, exist_ok=True)
    plots = save_curves(val_y, scores, out, f"{name} (validation)", choice.threshold)
    write_manifest(sources, out / MANIFEST_FILE, kind_def.name)
    import cleaner

    info = {
        "name": name,
        "kind": kind_def.name,
        "description": kind_def.description,
        "variants": list(kind_def.variants),
        "backbone": backbone,
        "weights": weights or "none",
        "weights_sha256": file_sha256(weights_path) if weights_path else None,
        "input": spec.to_dict(),
        "threshold": choice.threshold,
        "threshold_choice": choice.to_dict(),
        "metrics": {"validation": val_metrics},
        "training": {
            "epochs_requested": epochs,
            "epochs_run": state["epoch"],
            "best_epoch": state["best_epoch"],
            "history": state["history"],
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "patience": patience,
            "copies_per_epoch": copies,
            "members": [{"seed": seed + i, "best_epoch": st["best_epoch"], "validation_auc": st["best_auc"],
                         "epochs_run": st["epoch"]} for i, (_, st) in enumerate(trained)],
            "val_fraction": val_fraction,
            "working_max_side": max_side,  # evaluate reuses it
            "batchnorm_momentum": backbones.BN_MOMENTUM,
            "glyph_reader": reader_info,
            "augmentation": synthesis.AUGMENTATION,
            "augmentation_settings": {"haze": kind_def.haze, "plates": kind_def.plates},
            "compares_inverse": {"vote_trim": backbones.VOTE_TRIM} if kind_def.compares_inverse else False,
            "nuisances": {"kinds": list(kind_def.nuisances), "probability": NUISANCE_PROBABILITY}
            if kind_def.nuisances else None,
            "device": device,
            "seconds": round(time.perf_counter() - started, 1),
            "images": {"train": len(train_src), "val": len(val_src), "unreadable": len(bad),
                       "train_examples_per_epoch_source": len(weighted)},
        },
        "suspect_normals": [{"path": s.path, "split": s.split, "score": s.score} for s in suspects],
        "training_set_sha256": training_set_sha256(sources),
        "manifest": MANIFEST_FILE,
        "plots": plots,
        "seed": seed,
        "package": {"cxclean": getattr(cleaner, "__version__", "unknown")},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    save_bundle(model, info, out)
    saved = json.loads((out / INFO_FILE).read_text())
    log(
        f"bundle {out} ({saved['version']}): validation AUC {val_metrics['auc']:.4f}, threshold "
        f"{choice.threshold:.4g}, precision {val_metrics['precision']:.4f}, recall {val_metrics['recall']:.4f}, "
        f"{info['training']['seconds']:.0f} s"
    )
    return Detector(model=model, info=saved, path=out)


def average_logits(models, name: str = "mean_of_members"):
    """One model whose log-odds are the mean of ``models``' (cxclean backbones: each has a ``logit`` layer)."""
    import keras

    image = keras.Input(models[0].inputs[0].shape[1:], name="image")
    logits = [keras.Model(m.inputs[0], m.get_layer("logit").output, name=f"member_{i}")(image) for i, m in enumerate(models)]
    logit = keras.layers.Average(dtype="float32", name="logit")(logits)
    return keras.Model(image, keras.layers.Activation("sigmoid", dtype="float32", name="score")(logit), name=name)


def _input_pool(image_size: int, glyph_size: int) -> int:
    """How many times the glyph reader's input is averaged down for the backbone (a whole number)."""
    if glyph_size < image_size or glyph_size % image_size:
        raise ValueError(f"the glyph reader's input ({glyph_size} px) must be a whole multiple of --image-size "
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
        fill(rest, y, model.predict(x, batch_size=batch_size, verbose=0).reshape(-1), idx)


def _check_split(kind: Kind, train_src: list[Source], val_src: list[Source]) -> None:
    if not train_src or not val_src:
        raise ValueError(
            f"need readable images on both sides of the split (got {len(train_src)} training, {len(val_src)} validation)"
        )
    if not kind.synthetic:
        for side, items in (("training", train_src), ("validation", val_src)):
            got = {s.label for s in items}
            if got != {0, 1}:
                raise ValueError(f"the {side} split has no {'positive' if 1 not in got else 'negative'} images")
