"""``studies.csv``: the scan's results per study, because radiology reports cases, not images.

A study is the DICOM StudyInstanceUID where known; otherwise the PatientID (from DICOM or the
metadata CSV) stands in, marked ``key_type=patient_id``. Images with neither are counted but
have no study row.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cleaner.scan.folder import STUDIES_FILE, load_scan_output, split_reasons, write_frame

STUDY_COLUMNS = ["study", "key_type", "patient_id", "images", "read_errors", "flagged", "all_flagged",
                 "reasons", "flagged_paths"]


@dataclass
class StudiesResult:
    path: Path
    table: pd.DataFrame
    n_studies: int
    n_without_key: int


def study_table(scores: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Per study: images, unreadable images, flagged (excluded) images, whether all were flagged,
    reasons with counts (``rotation:2;age<10:1``) and the flagged paths. Returns (table, images
    without a study or patient id)."""
    study = scores.get("study_uid", pd.Series([""] * len(scores), index=scores.index)).fillna("").astype(str).str.strip()
    patient = scores.get("patient_id", pd.Series([""] * len(scores), index=scores.index)).fillna("").astype(str).str.strip()
    rows = []
    keyed = pd.DataFrame({"study": study.where(study != "", patient), "key_type": ["study_uid" if s else "patient_id" for s in study],
                          "patient_id": patient, "path": scores["path"], "status": scores["status"],
                          "excluded": scores["excluded"].astype(str) == "True", "reasons": scores["reasons"]})
    without = int((keyed["study"] == "").sum())
    keyed = keyed[keyed["study"] != ""]
    for (key, key_type), grp in keyed.groupby(["study", "key_type"], sort=True):
        flagged = grp[grp["excluded"]]
        reasons = Counter(r for rs in flagged["reasons"] for r in split_reasons(rs))
        patients = sorted({p for p in grp["patient_id"] if p})
        rows.append({
            "study": key, "key_type": key_type, "patient_id": ";".join(patients), "images": len(grp),
            "read_errors": int((grp["status"] != "ok").sum()), "flagged": len(flagged),
            "all_flagged": bool(len(flagged) == len(grp)),
            "reasons": ";".join(f"{r}:{n}" for r, n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
            "flagged_paths": ";".join(flagged["path"]),
        })
    return pd.DataFrame(rows, columns=STUDY_COLUMNS), without


def write_studies(scan_out: str | os.PathLike) -> StudiesResult:
    """Write ``SCAN_OUT/studies.csv``."""
    scan = load_scan_output(scan_out)
    table, without = study_table(scan.scores)
    path = scan.root / STUDIES_FILE
    write_frame(path, table)
    return StudiesResult(path, table, len(table), without)
