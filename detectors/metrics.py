"""Validation metrics, the operating threshold, and ROC / precision-recall plots (scikit-learn, matplotlib)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


@dataclass
class ThresholdChoice:
    threshold: float
    target_precision: float
    met: bool
    precision: float
    recall: float
    note: str

    def to_dict(self) -> dict:
        return asdict(self)


def choose_threshold(y_true, scores, target_precision: float = 0.999) -> ThresholdChoice:
    """The threshold with the highest recall whose precision is at least ``target_precision``.

    Among thresholds with that recall the highest is kept (fewest false positives), then moved
    down to the midpoint of the gap below it, which flags the same validation examples. When no
    threshold reaches the target, the one with the highest precision is chosen (highest recall
    among ties) and ``met`` is False with a note saying so: the caller must tell the user.
    Flags are ``score >= threshold``.
    """
    from sklearn.metrics import precision_recall_curve

    y_true = np.asarray(y_true).astype(int)
    scores = np.asarray(scores, dtype=np.float64)
    if y_true.sum() == 0 or y_true.sum() == len(y_true):
        raise ValueError("choosing a threshold needs both positive and negative validation examples")
    precision, recall, thresholds = precision_recall_curve(y_true, scores)
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    ok = precision >= target_precision
    if ok.any():
        best_recall = recall[ok].max()
        candidates = np.flatnonzero(ok & (recall == best_recall))
        i = candidates[np.argmax(thresholds[candidates])]
        t = _margin_threshold(scores, thresholds[i])
        note = (
            f"precision {precision[i]:.4f} >= target {target_precision} on validation, "
            f"recall {recall[i]:.4f} at threshold {t:.6g}"
        )
        return ThresholdChoice(t, target_precision, True, float(precision[i]), float(recall[i]), note)
    best_precision = precision.max()
    candidates = np.flatnonzero(precision == best_precision)
    i = candidates[np.argmax(recall[candidates])]
    t = _margin_threshold(scores, thresholds[i])
    note = (
        f"TARGET NOT MET: no threshold reaches precision {target_precision} on validation; "
        f"chose the most precise one instead: precision {precision[i]:.4f}, recall {recall[i]:.4f} "
        f"at threshold {t:.6g}"
    )
    return ThresholdChoice(t, target_precision, False, float(precision[i]), float(recall[i]), note)


def is_suspect_normal(score: float | None, artefact_score: float | None, threshold: float) -> bool:
    """Whether a presumed-normal image looks like an artefact itself and deserves a person's look.

    Flagged at the threshold, or scoring above 0.5 *and* above the artefact synthesised from it
    (the detector finds the image more artefact-like than its own artefact). The second rule
    matters: one real artefact among the validation normals (NIH holds mirrored and inverted
    films) pushes the threshold above itself, so the first rule alone never names it.
    """
    if score is None:
        return False
    if score >= threshold:
        return True
    return score >= 0.5 and artefact_score is not None and score > artefact_score


def _margin_threshold(scores: np.ndarray, t: float) -> float:
    """Midpoint between the chosen score ``t`` and the next lower validation score.

    It flags exactly the same validation examples as ``t`` but leaves a margin on both sides,
    instead of sitting on the lowest flagged positive (which new images would fall just under).
    """
    below = scores[scores < t]
    return float((t + below.max()) / 2.0) if below.size else float(t)


def binary_metrics(y_true, scores, threshold: float) -> dict:
    """AUC, accuracy, precision, recall and the confusion matrix at ``threshold`` (and accuracy at 0.5)."""
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_score, recall_score, roc_auc_score

    y_true = np.asarray(y_true).astype(int)
    scores = np.asarray(scores, dtype=np.float64)
    pred = (scores >= threshold).astype(int)
    both = 0 < y_true.sum() < len(y_true)
    tn, fp, fn, tp = confusion_matrix(y_true, pred, labels=[0, 1]).ravel()
    return {
        "n": int(len(y_true)),
        "positives": int(y_true.sum()),
        "negatives": int(len(y_true) - y_true.sum()),
        "auc": float(roc_auc_score(y_true, scores)) if both else None,
        "threshold": float(threshold),
        "accuracy": float(accuracy_score(y_true, pred)),
        "precision": float(precision_score(y_true, pred, zero_division=0)),
        "recall": float(recall_score(y_true, pred, zero_division=0)),
        "confusion_matrix": {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
        "accuracy_at_0.5": float(accuracy_score(y_true, (scores >= 0.5).astype(int))),
    }


def recall_by_variant(y_true, scores, variant, names, threshold: float) -> dict:
    """Recall at ``threshold`` for each artefact variant (e.g. each rotation angle)."""
    y_true, scores, variant = np.asarray(y_true), np.asarray(scores), np.asarray(variant)
    out = {}
    for v, name in enumerate(names):
        mask = (y_true == 1) & (variant == v)
        if mask.any():
            out[name] = float((scores[mask] >= threshold).mean())
    return out


def save_curves(y_true, scores, out_dir, title: str, threshold: float | None = None) -> dict:
    """``roc.png`` and ``precision_recall.png`` in ``out_dir``; returns their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import auc, precision_recall_curve, roc_curve

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    y_true = np.asarray(y_true).astype(int)
    scores = np.asarray(scores, dtype=np.float64)

    fpr, tpr, roc_t = roc_curve(y_true, scores)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(fpr, tpr, label=f"AUC = {auc(fpr, tpr):.4f}")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    if threshold is not None:
        pred = scores >= threshold
        ax.plot([pred[y_true == 0].mean()], [pred[y_true == 1].mean()], "o", label=f"threshold {threshold:.4g}")
    ax.set(xlabel="false positive rate", ylabel="true positive rate (recall)", title=f"{title}: ROC")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out_dir / "roc.png", dpi=100)
    plt.close(fig)

    precision, recall, _ = precision_recall_curve(y_true, scores)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(recall, precision)
    if threshold is not None:
        pred = scores >= threshold
        tp = (pred & (y_true == 1)).sum()
        p = tp / max(pred.sum(), 1)
        r = tp / max((y_true == 1).sum(), 1)
        ax.plot([r], [p], "o", label=f"threshold {threshold:.4g}")
        ax.legend(loc="lower left")
    ax.set(xlabel="recall", ylabel="precision", title=f"{title}: precision-recall", ylim=(0, 1.02))
    fig.tight_layout()
    fig.savefig(out_dir / "precision_recall.png", dpi=100)
    plt.close(fig)
    return {"roc": "roc.png", "precision_recall": "precision_recall.png"}
