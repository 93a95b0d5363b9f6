"""Evaluating a bundle on other images: synthetic (from normals, like validation) or real labelled images."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Callable

from .bundle import Detector, load
from .data import decode_sources, list_sources
from .kinds import get_kind
from .metrics import binary_metrics, recall_by_variant, save_curves
from .synthesis import build_eval_set
from .training import gather_sources
from cleaner.io.errors import UserInputError


def evaluate(
    bundle: str | os.PathLike | Detector,
    normals: str | os.PathLike | None = None,
    *,
    labels: str | os.PathLike | None = None,
    positives: str | os.PathLike | None = None,
    negatives: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    workers: int = 1,
    batch_size: int = 64,
    log: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True),
    progress: bool = True,
) -> dict:
    """Metrics of a detector at its own threshold, plus AUC.

    With ``normals`` the bundle's artefact is synthesised exactly as in validation (no augmentation);
    with ``labels`` (CSV path,label) or ``positives``/``negatives`` folders, real labelled images are
    scored as they are. ``out`` gets ``scores.csv``, ``metrics.json`` and the ROC / PR plots.
    """
    detector = bundle if isinstance(bundle, Detector) else load(bundle)
    kind = get_kind(detector.kind)
    spec = detector.input_spec
    if normals is not None:
        if not kind.synthetic:
            raise UserInputError(f"{detector.name} is a custom detector: evaluate it with --labels or --positives/--negatives")
        if any(v is not None for v in (labels, positives, negatives)):
            raise UserInputError("give --normals (synthetic evaluation) or labelled images, not both")
        sources = list_sources(normals)
        mode = "synthetic"
    else:
        sources = gather_sources(get_kind("custom"), None, positives, negatives, labels)
        mode = "labelled"
    # never below the input size: a glyph-reading detector reads detail finer than its backbone's working size
    max_side = max(int(detector.info.get("training", {}).get("working_max_side", 2 * spec.size)), spec.size)
    decode_sources(sources, max_side=max_side, workers=workers, progress=progress)
    bad = [s for s in sources if s.error]
    for s in bad:
        log(f"  skipped (unreadable): {s.path}: {s.error}")
    good = [s for s in sources if s.error is None]
    if not good:
        raise UserInputError("no readable images to evaluate")
    eval_kind = kind if mode == "synthetic" else get_kind("custom")
    # Labelled images are scored once each, as they are (no rebalancing): build_eval_set with rng=None.
    x, y, idx, variant = build_eval_set([s.pixels for s in good], [s.label for s in good], eval_kind, spec, progress)
    scores = detector.predict(x, batch_size=batch_size)
    metrics = binary_metrics(y, scores, detector.threshold)
    metrics.update(
        mode=mode, detector=detector.version, images=len(good), unreadable=len(bad),
        unreadable_files=[{"path": s.path, "error": s.error} for s in bad],
    )
    if mode == "synthetic" and len(kind.variants) > 1:
        metrics["recall_by_variant"] = recall_by_variant(y, scores, variant, kind.variants, detector.threshold)
    if out is not None:
        import pandas as pd

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(
            {
                "path": [good[i].path for i in idx],
                "label": y.astype(int),
                "artefact": [kind.variants[v] if (mode == "synthetic" and lab) else "" for v, lab in zip(variant, y)],
                f"{detector.name}_score": scores,
                f"{detector.name}_flag": scores >= detector.threshold,
            }
        ).to_csv(out / "scores.csv", index=False)
        if 0 < y.sum() < len(y):
            save_curves(y, scores, out, f"{detector.name} ({mode})", detector.threshold)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
