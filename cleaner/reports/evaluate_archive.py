"""End-to-end quality of a scan against a truth table: per detector and per artefact, from scores.csv.

Nothing is re-scored: the scan's own scores and flags are what is judged, so the figures are those
a user gets. Truth labels: upright, rot90, rot180, rot270, inverted, hflip, lateral, other_body, corrupt.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from cleaner.reports.truth import NAME_TARGETS, PLANTS, TRUTH_LABELS, plant_artefact
from cleaner.scan.folder import load_scan_output
from cleaner.scan.orientation import TURN_COLUMN

#: detector kind -> the truth labels it exists to find (from the artefacts the archive builder plants)
#: truth-table roles of frontal chest films (planted or not); children are role "child"
FRONTAL_ROLES = {"frontal"}
KIND_TARGETS = {kind: {t for t, (k, _) in PLANTS.items() if k == kind} for kind, _ in PLANTS.values()}


def _as_bool(series: pd.Series) -> pd.Series:
    return series.astype(str).str.lower().isin(["true", "1", "yes"])


def detector_targets(detectors: pd.DataFrame, overrides: dict | None = None) -> dict[str, set]:
    """Detector name -> target truths: from its kind, or a custom detector named after a truth label."""
    targets = {}
    for row in detectors.itertuples():
        if overrides and row.name in overrides:
            targets[row.name] = set(overrides[row.name])
        elif row.kind in KIND_TARGETS:
            targets[row.name] = KIND_TARGETS[row.kind]
        elif row.name in NAME_TARGETS:
            targets[row.name] = set(NAME_TARGETS[row.name])
        elif row.name in TRUTH_LABELS:
            targets[row.name] = {row.name}
    return targets


def undoing_turns() -> dict[str, int]:
    """Planted rotation truth -> the clockwise degrees that undo it, read off the planting itself: a
    film turned k quarter turns counter-clockwise (``np.rot90``) is made upright by 90 k degrees clockwise."""
    probe = np.arange(6, dtype=np.float32).reshape(2, 3)
    turns = {}
    for truth, (kind, _) in PLANTS.items():
        planted = plant_artefact(probe, truth) if kind == "rotation" else None
        for k in (1, 2, 3):
            if planted is not None and np.array_equal(planted, np.rot90(probe, k)):
                turns[truth] = 90 * k
    return turns


def _detector_figures(ok: pd.DataFrame, name: str, targets: set) -> dict:
    """Recall, precision (over all files, frontal films, upright films) and AUC of one detector's flags, and the
    recall and precision of the reason it gives (after a gate detector has overridden it on a film)."""
    frontal = ok.role.isin(FRONTAL_ROLES)
    pos = ok.truth.isin(targets)
    flag = ok[f"{name}_flag"]
    reason = ok.reasons.fillna("").map(lambda r: name in str(r).split(";"))
    score = pd.to_numeric(ok[f"{name}_score"], errors="coerce").fillna(0)
    tp, fp = int((flag & pos).sum()), int((flag & ~pos).sum())
    fp_frontal = int((flag & ~pos & frontal).sum())
    fp_upright = int((flag & (ok.truth == "upright")).sum())  # a good film lost: the error that matters most
    r_tp, r_fp = int((reason & pos).sum()), int((reason & ~pos).sum())
    return dict(
        detector=name, targets="/".join(sorted(targets)), positives=int(pos.sum()),
        flagged=int(flag.sum()), true_pos=tp, false_pos=fp,
        recall=tp / max(int(pos.sum()), 1),
        precision=tp / max(tp + fp, 1),
        precision_frontal=tp / max(tp + fp_frontal, 1),
        precision_vs_upright=tp / max(tp + fp_upright, 1),
        recall_as_reason=r_tp / max(int(pos.sum()), 1),
        precision_as_reason=r_tp / max(r_tp + r_fp, 1),
        auc=float(roc_auc_score(pos, score)) if 0 < pos.sum() < len(pos) else float("nan"),
        auc_frontal=float(roc_auc_score(pos[frontal], score[frontal])) if 0 < pos[frontal].sum() < frontal.sum() else float("nan"),
    )


def evaluate(scan_out: str | Path, truth_csv: str | Path, overrides: dict | None = None) -> dict:
    scan = load_scan_output(scan_out)
    scores, detectors = scan.scores, scan.detectors
    errors = scan.errors if scan.errors is not None else pd.DataFrame(columns=["path"])
    truth = pd.read_csv(truth_csv, dtype={"path": str})
    missing = sorted(set(truth.path) - set(scores.path))
    table = truth.merge(scores, on="path", how="left", suffixes=("_truth", ""))
    ok = table[table.status == "ok"].copy()
    targets = detector_targets(detectors, overrides)
    names = list(detectors.name)
    for name in names:
        ok[f"{name}_flag"] = _as_bool(ok[f"{name}_flag"])
    ok["any_flag"] = ok[[f"{n}_flag" for n in names]].any(axis=1) if names else False
    per_detector = [_detector_figures(ok, name, targets[name]) for name in names if name in targets]
    per_truth = ok.groupby("truth")[[f"{n}_flag" for n in names] + ["any_flag"]].mean().reindex(
        [t for t in TRUTH_LABELS if t in set(ok.truth)])
    per_truth.insert(0, "files", ok.groupby("truth").size())
    false_pos = []
    for name in names:
        if name not in targets:
            continue
        fps = ok[ok[f"{name}_flag"] & ~ok.truth.isin(targets[name])]
        for (source, truth_label), group in fps.groupby(["source", "truth"]):
            false_pos.append(dict(detector=name, source=source, truth=truth_label, count=len(group),
                                  examples=";".join(group.path.head(5))))
    age_col = "age_years_truth" if "age_years_truth" in ok.columns else "age_years"
    ages = pd.to_numeric(ok[age_col], errors="coerce") if age_col in ok.columns else pd.Series(float("nan"), index=ok.index)
    adult = ~(ages < 18)  # unknown ages count as adults
    upright_adult = ok[(ok.truth == "upright") & ok.role.isin(FRONTAL_ROLES) & adult]
    corrupt = truth[truth.truth == "corrupt"].path
    turns = None
    if TURN_COLUMN in ok.columns:
        undo = undoing_turns()
        turned = ok[ok.truth.isin(undo) & pd.to_numeric(ok[TURN_COLUMN], errors="coerce").notna()]
        right = pd.to_numeric(turned[TURN_COLUMN]) == turned.truth.map(undo)
        turns = dict(turned=len(turned), right=int(right.sum()), wrong=";".join(turned.path[~right].head(5)))
    return dict(
        files_in_truth=len(truth), missing_from_scores=missing,
        per_detector=per_detector,
        per_truth=per_truth.reset_index().to_dict(orient="records"),
        false_positives=false_pos,
        upright_adult_frontal=dict(files=len(upright_adult), flagged_by_any=int(upright_adult.any_flag.sum()),
                                   rate=float(upright_adult.any_flag.mean()) if len(upright_adult) else float("nan")),
        corrupt=dict(files=int(len(corrupt)), in_errors_csv=int(corrupt.isin(set(errors.path)).sum())),
        turn_upright=turns,
    )


def format_report(result: dict) -> str:
    lines = ["Per detector (on every readable file; *_frontal: upright and planted frontal films only;",
             "precision_vs_upright: only flagged upright films count as false positives)"]
    det = pd.DataFrame(result["per_detector"])
    if len(det):
        lines.append(det.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    lines += ["", "Flag rate per truth label (fraction of files flagged by each detector; any = any detector)"]
    lines.append(pd.DataFrame(result["per_truth"]).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    lines += ["", "False positives by source folder"]
    fps = pd.DataFrame(result["false_positives"])
    lines.append(fps.to_string(index=False) if len(fps) else "none")
    up = result["upright_adult_frontal"]
    lines += ["", f"Upright adult frontal films flagged by any detector: {up['flagged_by_any']}/{up['files']} ({up['rate']:.2%})"]
    c = result["corrupt"]
    lines.append(f"Corrupt files in errors.csv: {c['in_errors_csv']}/{c['files']}")
    t = result.get("turn_upright")
    if t:
        lines.append(f"Planted rotations flagged, turned back upright by turn_upright_cw: {t['right']}/{t['turned']} right"
                     + (f" (wrong: {t['wrong']})" if t["wrong"] else ""))
    if result["missing_from_scores"]:
        lines.append(f"Files in the truth table but not in scores.csv: {len(result['missing_from_scores'])}")
    return "\n".join(lines)


def write_report(result: dict, out: str | Path) -> None:
    Path(out).write_text(json.dumps(result, indent=2, default=lambda v: None if v != v else v) + "\n")


__all__ = ["evaluate", "format_report", "write_report", "KIND_TARGETS", "TRUTH_LABELS"]
