"""``cxclean review apply``: the reviewer's decisions read back into the dataset and into labels.

Decisions are made per (image, reason) and come from three places:

* **moved files**: a file in ``review/<reason-folder>/_keep/`` (at its relative path below ``_keep``,
  or just its file name; a ``_keep/`` inside a subfolder stands for that subfolder; a DICOM's
  ``.png`` preview counts for the DICOM) marks that image as a
  false positive for that reason: *overturned*;
* **decisions files** exported by the review page (CSV ``path,reason,decision``; JSON: a list of
  such objects, or ``{"decisions": [...]}``): decision ``keep`` (also ``overturned``,
  ``false_positive``) = *overturned*, ``exclude`` (also ``confirmed``) = *confirmed*; an empty
  reason or ``*`` applies to every reason the image was flagged for;
* ``confirm_rest`` (every not-overturned image of a reason with at least one decision) and
  ``confirm_reasons`` (named reasons): *confirmed*.

Confirmation needs such a positive signal: an image nobody decided on stays *unreviewed* (it is
still excluded by the scan, but it is no training label). A file deleted from ``review/`` carries
no decision either: deleting is ambiguous (tidying up, or "bad image"), so it is unreviewed.
When one source says keep and another exclude, keep wins (nothing is excluded against a
reviewer's keep) and a warning says so.

An image flagged for several reasons gets the row decision: ``confirmed`` if any reason is
confirmed; ``overturned`` if every reason is overturned; else ``unreviewed``.

Outputs in SCAN_OUT: ``exclusions_final.csv`` (exclusions.csv + ``decision`` + ``reason_decisions``
e.g. ``rotation=overturned;age<10=unreviewed``), ``labels.csv`` (``path,label``: absolute paths,
1 = confirmed artefact, 0 = overturned) and ``labels/<reason-folder>.csv`` (the same per reason,
to retrain that reason's detector), and ``review_apply.json`` (counts and warnings).
"""
from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cleaner.io.errors import UserInputError
from cleaner.io.folderlock import FolderLock
from cleaner.scan.folder import (EXCLUSIONS_FINAL_FILE, KEEP_DIR, LABEL_COLUMNS, LABELS_DIR, LABELS_FILE,
                                 REVIEW_APPLY_FILE, ScanOutput, atomic_write_text, load_scan_output, reason_folder,
                                 review_relpath, split_reasons, write_frame)

KEEP_WORDS = {"keep", "kept", "overturned", "overturn", "false_positive", "false positive", "fp", "0"}
EXCLUDE_WORDS = {"exclude", "excluded", "confirmed", "confirm", "true_positive", "artefact", "artifact", "1"}
SKIP_WORDS = {"", "unreviewed", "undecided", "skip"}


@dataclass
class ApplyResult:
    exclusions_final: Path
    labels: Path
    n_labels: int
    counts: Counter  # row decision -> images
    pair_decisions: dict  # (path, reason) -> decision
    warnings: list = field(default_factory=list)


def read_decisions_file(path: str | os.PathLike) -> list[dict]:
    """Rows ``{path, reason, decision}`` from a CSV or JSON decisions file; ValueError names the problem."""
    path = Path(path)
    with open(path, encoding="utf-8-sig", newline="") as fh:  # newline="": a "\r" inside a quoted name is kept
        text = fh.read()
    if path.suffix.lower() == ".json" or text.lstrip().startswith(("[", "{")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserInputError(f"{path}: not valid JSON ({exc})") from None
        rows = data.get("decisions") if isinstance(data, dict) else data
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise UserInputError(f"{path}: expected a list of {{path, reason, decision}} objects")
    else:
        from io import StringIO

        try:
            df = pd.read_csv(StringIO(text), dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise UserInputError(f"{path}: cannot be read as CSV ({exc})") from None
        rows = df.to_dict("records")
        if rows and not {"path", "decision"} <= set(df.columns):
            raise UserInputError(f"{path}: needs the columns path,reason,decision (has {', '.join(df.columns)})")
    return [{"path": str(r.get("path", "")), "reason": str(r.get("reason", "") or "").strip(),
             "decision": str(r.get("decision", "")).strip().lower()} for r in rows]


def _flagged_path(written: str, flagged: dict) -> str:
    """The flagged path a decision names: as written (a name may hold ``\\``, ``\\r`` or spaces at its ends),
    else with spaces trimmed and Windows separators read as ``/`` (a hand-made file)."""
    if any(written in paths for paths in flagged.values()):
        return written
    return written.strip().replace("\\", "/")


def _keep_moves(scan: ScanOutput, flagged: dict, warn) -> dict:
    """(path, reason) -> 'overturned' for every file found in a ``review/<reason>/_keep/`` folder."""
    found = {}
    by_folder = {reason_folder(r): r for r in flagged}
    review = scan.review_dir
    if not review.is_dir():
        return found
    for sub in sorted(review.iterdir()):
        if not sub.is_dir() or sub.name.startswith("_"):
            continue
        if sub.is_symlink():
            warn(f"{sub}: a symbolic link (to {sub.resolve()}); decisions are files moved inside {review}, so it "
                 "is not followed. Ignored")
            continue
        reason = by_folder.get(sub.name)
        keeps = sorted(k for k in sub.rglob(KEEP_DIR) if k.is_dir())
        if reason is None:
            for keep in keeps:
                warn(f"{keep}: not the folder of any exclusion reason of this scan; ignored")
            continue
        # copies sit at review_relpath(path): kept files are matched in those names, then mapped back
        paths = {review_relpath(p): p for p in flagged[reason]}
        by_name = defaultdict(list)
        for name, p in paths.items():
            by_name[name.rsplit("/", 1)[-1]].append(p)
        for keep in keeps:
            if _links_out(keep, review):
                warn(f"{keep}: a symbolic link (to {keep.resolve()}); decisions are files moved inside {review}, "
                     "so it is not followed. Ignored")
                continue
            # a _keep/ made inside a subfolder (review/rotation/siteA/_keep/) stands for that subfolder
            prefix = keep.parent.relative_to(sub).as_posix()
            prefix = "" if prefix == "." else prefix + "/"
            for f in sorted(keep.rglob("*")):
                if not f.is_file() or f.name.startswith(".") or KEEP_DIR in f.relative_to(keep).parts:
                    continue
                hit = _match_kept(f, f.relative_to(keep).as_posix(), prefix, paths, by_name, reason, warn)
                if hit is None:
                    warn(f"{f}: not an image flagged for {reason}; ignored")
                elif hit:
                    found[(hit, reason)] = "overturned"
    return found


def _links_out(folder: Path, review: Path) -> bool:
    """Whether ``folder`` or a folder between it and ``review`` is a symbolic link: followed, it could lead
    anywhere (outside the scan folder), and a file found there is no reviewer's move."""
    rel = folder.relative_to(review)
    return any((review / p).is_symlink() for p in [rel, *rel.parents] if p != Path("."))


def _match_kept(f: Path, rel: str, prefix: str, paths: dict, by_name: dict, reason: str, warn) -> str | None:
    """The flagged path a kept file stands for: by its path below ``_keep`` (as ``review_relpath`` names copies;
    a DICOM's ``.png`` preview counts for the DICOM), else by a file name that is unique among the reason's
    images; '' when ambiguous."""
    for cand in (prefix + rel, rel):
        for c in (cand, cand[:-4] if cand.endswith(".png") else None):
            if c and c in paths:
                return paths[c]
    for name in (f.name, f.name[:-4] if f.name.endswith(".png") else None):
        hits = by_name.get(name, []) if name else []
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            warn(f"{f}: the file name {name} matches {len(hits)} flagged images of {reason} ({', '.join(hits)}); "
                 f"keep the relative path below _keep/ to say which. Ignored")
            return ""
    return None


def apply_review(scan_out: str | os.PathLike, decisions_files: list = (), confirm_rest: bool = False,
                 confirm_reasons: list = ()) -> ApplyResult:
    """Read every decision back and write exclusions_final.csv, labels.csv and labels/<reason>.csv, holding the
    folder's lock (a scan writing it at the same time, e.g. with --overwrite, stops this with its name)."""
    lock = FolderLock(scan_out, "review apply") if Path(scan_out).is_dir() else nullcontext()
    with lock:
        return _apply(load_scan_output(scan_out), decisions_files, confirm_rest, confirm_reasons)


def _apply(scan: ScanOutput, decisions_files, confirm_rest: bool, confirm_reasons) -> ApplyResult:
    notes: list[str] = []
    warn = notes.append
    flagged: dict[str, set] = {r: set(scan.flagged(r)["path"]) for r in scan.reasons()}
    unknown_reasons = [r for r in confirm_reasons if r not in flagged]
    if unknown_reasons:
        raise UserInputError(f"--confirm-reason {', '.join(unknown_reasons)}: no such reason in this scan "
                             f"(reasons: {', '.join(flagged) or 'none'})")

    pair_decision = _pair_decisions(scan, flagged, decisions_files, warn)
    reviewed_reasons = {r for (_p, r) in pair_decision}
    to_confirm = set(confirm_reasons) | (reviewed_reasons if confirm_rest else set())
    for reason in to_confirm:
        for p in flagged[reason]:
            pair_decision.setdefault((p, reason), "confirmed")

    final = _final_exclusions(scan, pair_decision)
    row_decisions = list(final["decision"])
    out = scan.root
    write_frame(out / EXCLUSIONS_FINAL_FILE, final)

    def absolute(rel: str) -> str:
        return os.path.abspath(scan.source(rel)) if scan.summary.get("archive") else rel

    labels = [{"path": absolute(p), "label": 1 if d == "confirmed" else 0}
              for p, d in zip(final["path"], final["decision"]) if d != "unreviewed"]
    write_frame(out / LABELS_FILE, pd.DataFrame(labels, columns=LABEL_COLUMNS))
    (out / LABELS_DIR).mkdir(exist_ok=True)
    for reason in flagged:
        rows = [{"path": absolute(p), "label": 1 if pair_decision[(p, reason)] == "confirmed" else 0}
                for p in sorted(flagged[reason]) if (p, reason) in pair_decision]
        write_frame(out / LABELS_DIR / f"{reason_folder(reason)}.csv", pd.DataFrame(rows, columns=LABEL_COLUMNS))
    counts = Counter(row_decisions)
    atomic_write_text(out / REVIEW_APPLY_FILE, json.dumps({
        "decisions_files": [str(Path(f).resolve()) for f in decisions_files],
        "confirm_rest": confirm_rest, "confirm_reasons": list(confirm_reasons),
        "images": dict(counts),
        "per_reason": {r: dict(Counter(pair_decision.get((p, r), "unreviewed") for p in flagged[r])) for r in flagged},
        "warnings": notes,
    }, indent=2) + "\n")
    return ApplyResult(out / EXCLUSIONS_FINAL_FILE, out / LABELS_FILE, len(labels), counts, pair_decision, notes)


def _pair_decisions(scan: ScanOutput, flagged: dict, decisions_files, warn) -> dict[tuple, str]:
    """(path, reason) -> overturned/confirmed from the ``_keep`` folders and the decisions files; keep wins."""
    votes: dict[tuple, set] = defaultdict(set)
    for pair, decision in _keep_moves(scan, flagged, warn).items():
        votes[pair].add(decision)
    for dfile in decisions_files:
        for row in read_decisions_file(dfile):
            row["path"] = _flagged_path(row["path"], flagged)
            word = row["decision"]
            if word in SKIP_WORDS:
                continue
            if word in KEEP_WORDS:
                decision = "overturned"
            elif word in EXCLUDE_WORDS:
                decision = "confirmed"
            else:
                warn(f"{dfile}: {row['path']}: unknown decision {row['decision']!r} (use keep or exclude); ignored")
                continue
            reasons = [r for r in flagged if row["path"] in flagged[r]] if row["reason"] in ("", "*") else [row["reason"]]
            matched = False
            for reason in reasons:
                if reason in flagged and row["path"] in flagged[reason]:
                    votes[(row["path"], reason)].add(decision)
                    matched = True
            if not matched:
                warn(f"{dfile}: {row['path']} was not flagged for {row['reason'] or 'any reason'} in this scan; ignored")
    pair_decision: dict[tuple, str] = {}
    for pair, vs in votes.items():
        if len(vs) > 1:
            warn(f"{pair[0]} ({pair[1]}): both keep and exclude were given; keep wins")
        pair_decision[pair] = "overturned" if "overturned" in vs else "confirmed"
    return pair_decision


def _final_exclusions(scan: ScanOutput, pair_decision: dict):
    """exclusions.csv plus each row's decision (confirmed if any reason is, overturned if every reason is, else
    unreviewed) and the decision per reason."""
    final = scan.exclusions.copy()
    row_decisions, details = [], []
    for p, rs in zip(final["path"], final["reasons"]):
        ds = [pair_decision.get((p, r), "unreviewed") for r in split_reasons(rs)]
        if "confirmed" in ds:
            row_decisions.append("confirmed")
        elif ds and all(d == "overturned" for d in ds):
            row_decisions.append("overturned")
        else:
            row_decisions.append("unreviewed")
        details.append(";".join(f"{r}={d}" for r, d in zip(split_reasons(rs), ds)))
    final["decision"] = row_decisions
    final["reason_decisions"] = details
    return final
